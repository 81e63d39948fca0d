/**
 * PutObject for buffers, signed with the SDK's own SigV4 signer but sent straight over a keep-alive
 * agent instead of through the client's middleware stack. Measured on 5,000 source files against a
 * loopback server: the SDK path costs 1.3-1.9 ms of CPU per PUT, this one 0.3-0.4 ms; on a
 * developer machine the push shares its cores with everything else, and with a local S3 server
 * (MinIO, Ceph) with that server too.
 *
 * Used for custom endpoints only (where per-request CPU, not network latency, bounds a push); AWS
 * itself keeps the SDK, with its region and partition rules. Retries mirror the SDK's standard mode:
 * network errors, 5xx and throttling, exponential backoff with full jitter. Errors are shaped like
 * the SDK's (`name`, `$metadata.httpStatusCode`) so `translateS3Error` reads both alike.
 */
import { createHash, createHmac } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import { NETWORK_CODES } from './errors.js';

export interface Credentials { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined }

export interface DirectPutOptions {
  endpoint: string;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
  /** The client's resolved credential provider, so the standard AWS chain applies unchanged. */
  credentials: () => Promise<Credentials>;
  maxSockets: number;
  requestTimeoutMs: number;
  maxAttempts: number;
  /** The same trust settings as the SDK client's agent (see S3Settings). */
  ca?: string | undefined;
  insecureTls?: boolean | undefined;
}

/** Uploads `body` to `key` with the given headers; returns the answer's headers. `sha256` (hex of body) saves hashing it again. */
export type DirectPut = (key: string, body: Buffer, headers: Record<string, string>, sha256?: string) => Promise<IncomingHttpHeaders>;

/** node:crypto behind the hash interface the signer expects. */
type Data = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: Data): string | Uint8Array => (typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));

class Sha256 {
  private readonly h;
  constructor(secret?: Data) { this.h = secret ? createHmac('sha256', bytes(secret)) : createHash('sha256'); }
  update(data: Data): void { this.h.update(bytes(data)); }
  digest(): Promise<Uint8Array> { return Promise.resolve(new Uint8Array(this.h.digest())); }
}

const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests']);

/** S3's canonical URI: every byte but unreserved characters percent-encoded, segment by segment. */
export function encodeKey(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

export function createDirectPut(opts: DirectPutOptions): DirectPut {
  const url = new URL(opts.endpoint);
  const https = url.protocol === 'https:';
  const agent = https
    ? new HttpsAgent({ keepAlive: true, maxSockets: opts.maxSockets, ca: opts.ca, rejectUnauthorized: !opts.insecureTls })
    : new HttpAgent({ keepAlive: true, maxSockets: opts.maxSockets });
  const send = https ? httpsRequest : httpRequest;
  const hostname = opts.forcePathStyle ? url.hostname : `${opts.bucket}.${url.hostname}`;
  const host = url.port ? `${hostname}:${url.port}` : hostname;
  const base = url.pathname.replace(/\/$/, '');
  const signer = new SignatureV4({ credentials: opts.credentials, region: opts.region, service: 's3', sha256: Sha256, uriEscapePath: false });

  const attempt = async (key: string, body: Buffer, headers: Record<string, string>, sha256: string): Promise<IncomingHttpHeaders> => {
    const path = `${base}${opts.forcePathStyle ? `/${opts.bucket}` : ''}/${encodeKey(key)}`;
    const signed = await signer.sign({
      method: 'PUT', protocol: url.protocol, hostname, path, query: {}, body,
      headers: { ...headers, host, 'content-length': String(body.length), 'x-amz-content-sha256': sha256 },
    });
    return new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const req = send({ agent, method: 'PUT', hostname: url.hostname, port: url.port, path, headers: signed.headers, timeout: opts.requestTimeoutMs }, (res) => {
        collect(res).then((text) => {
          if (res.statusCode === 200) resolve(res.headers);
          else reject(s3Error(res.statusCode ?? 0, text));
        }, reject);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`PUT timed out after ${opts.requestTimeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  };

  return async (key, body, headers, sha256) => {
    const hash = sha256 ?? createHash('sha256').update(body).digest('hex');
    for (let i = 1; ; i++) {
      try {
        return await attempt(key, body, headers, hash);
      } catch (err) {
        if (i >= opts.maxAttempts || !retryable(err)) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(20_000, 100 * 2 ** i)));
      }
    }
  };
}

function collect(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    res.on('error', reject);
  });
}

function s3Error(status: number, xml: string): Error {
  const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  const name = tag('Code') ?? (status === 404 ? 'NotFound' : `Http${status}`);
  return Object.assign(new Error(tag('Message') ?? `HTTP ${status}`), { name, $metadata: { httpStatusCode: status } });
}

function retryable(err: unknown): boolean {
  const e = err as { code?: string; name?: string; $metadata?: { httpStatusCode?: number } };
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode ?? 0;
  return status >= 500 || status === 429 || THROTTLING.has(e.name ?? '');
}
