// The embedded S3 server's own guarantees, over HTTP: persistence across a kill -9, SigV4 in all
// the forms clients send (header, presigned, aws-chunked), addressing, error bodies, and its CLI.
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createObjectStore, type ObjectStore, type S3Settings } from '@workspace-sync/shared';
import { EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY } from '../src/server.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../src/spawn.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'embedded-s3.js');
const credentials = { accessKeyId: EMBEDDED_ACCESS_KEY, secretAccessKey: EMBEDDED_SECRET_KEY };

let s3: EmbeddedS3;
let store: ObjectStore;
const settings = (over: Partial<S3Settings> = {}): S3Settings => ({
  endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxAttempts: 1, credentials, ...over,
});

beforeAll(async () => {
  s3 = await startEmbeddedS3();
  store = createObjectStore(settings());
});

afterAll(async () => {
  await s3?.stop();
  if (s3) rmSync(s3.dir, { recursive: true, force: true });
});

class Sha256 {
  private readonly h;
  constructor(secret?: string | Uint8Array) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(data: string | Uint8Array): void { this.h.update(data); }
  digest(): Promise<Uint8Array> { return Promise.resolve(new Uint8Array(this.h.digest())); }
}
const signer = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

/** One raw HTTP exchange with the server. */
function exchange(opts: { method: string; path: string; headers?: Record<string, string>; body?: Buffer }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: s3.port, method: opts.method, path: opts.path, headers: opts.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A request signed with the SDK's own SigV4 signer; `payloadHash` is what x-amz-content-sha256 claims. */
async function signed(method: string, key: string, opts: {
  body?: Buffer; headers?: Record<string, string>; query?: Record<string, string>; payloadHash?: string; host?: string; pathStyle?: boolean;
} = {}) {
  const pathStyle = opts.pathStyle ?? true;
  const host = opts.host ?? `127.0.0.1:${s3.port}`;
  const p = `${pathStyle ? `/${s3.bucket}` : ''}/${key.split('/').map(encodeURIComponent).join('/')}`;
  const body = opts.body ?? Buffer.alloc(0);
  const req = await signer.sign({
    method, protocol: 'http:', hostname: host.split(':')[0]!, port: s3.port, path: p, query: opts.query ?? {},
    headers: { host, 'x-amz-content-sha256': opts.payloadHash ?? sha256(body), 'content-length': String(body.length), ...opts.headers },
  });
  const qs = new URLSearchParams(opts.query ?? {}).toString();
  return exchange({ method, path: qs ? `${p}?${qs}` : p, headers: req.headers, body });
}

const xmlCode = (a: Answer) => /<Code>([^<]*)<\/Code>/.exec(a.body.toString())?.[1];

describe('embedded S3 server', () => {
  it('keeps objects, their order and unfinished uploads across a kill -9', async () => {
    const keys = ['keep/😀', 'keep/\uff5e', 'keep/a-b', 'keep/a/b', 'keep/a.b'];
    for (const k of keys) await store.put(k, Buffer.from(`body of ${k}`), { metadata: { k: encodeURIComponent(k) } });
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });
    const { CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand } = await import('@aws-sdk/client-s3');
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: 'keep/mp' }));
    const { ETag } = await client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: 'keep/mp', UploadId, PartNumber: 1, Body: 'part one' }));

    await s3.stop();
    await s3.start();
    client.destroy();
    const again = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED' });
    try {
      const listed: string[] = [];
      for await (const e of store.list('keep/')) if ('key' in e) listed.push(e.key);
      expect(listed).toEqual([...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      for (const k of keys) {
        const got = await store.get(k);
        expect(got.notModified ? undefined : [got.body.toString(), got.metadata]).toEqual([`body of ${k}`, { k: encodeURIComponent(k) }]);
      }
      const uploads = [];
      for await (const u of store.listUploads('keep/')) uploads.push(u.uploadId);
      expect(uploads).toEqual([UploadId]);
      await again.send(new CompleteMultipartUploadCommand({ Bucket: s3.bucket, Key: 'keep/mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] } }));
      const mp = await store.get('keep/mp');
      expect(mp.notModified ? undefined : mp.body.toString()).toBe('part one');
    } finally {
      again.destroy();
    }
  });

  it('checks SigV4: wrong secret, unknown key id, anonymous requests', async () => {
    const wrong = await createObjectStore(settings({ credentials: { ...credentials, secretAccessKey: 'wrong' } })).put('x', Buffer.from('x')).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'BAD_CREDENTIALS', message: expect.stringContaining('SignatureDoesNotMatch') });
    const unknown = await createObjectStore(settings({ credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'x' } })).put('x', Buffer.from('x')).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'BAD_CREDENTIALS', message: expect.stringContaining('InvalidAccessKeyId') });
    const anonymous = await exchange({ method: 'GET', path: `/${s3.bucket}/x` });
    expect([anonymous.status, xmlCode(anonymous)]).toEqual([403, 'AccessDenied']);
    expect(await store.head('x')).toBeUndefined();
  });

  it('verifies a signed payload hash: XAmzContentSHA256Mismatch, and nothing stored', async () => {
    const res = await signed('PUT', 'hash/mismatch', { body: Buffer.from('abd'), payloadHash: sha256('abc') });
    expect([res.status, xmlCode(res)]).toEqual([400, 'XAmzContentSHA256Mismatch']);
    expect(await store.head('hash/mismatch')).toBeUndefined();
    const ok = await signed('PUT', 'hash/unsigned', { body: Buffer.from('free'), payloadHash: 'UNSIGNED-PAYLOAD' });
    expect(ok.status).toBe(200);
  });

  it('serves presigned URLs, and refuses expired or altered ones', async () => {
    await store.put('pre/file.txt', Buffer.from('presigned'));
    const presign = async (key: string, signingDate = new Date()) => {
      const r = await signer.presign({
        // As the SDK's S3 presigner does: the payload is not signed (the header is hoisted into the query).
        method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: s3.port, path: `/${s3.bucket}/${key}`, query: {},
        headers: { host: `127.0.0.1:${s3.port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      }, { expiresIn: 60, signingDate });
      const qs = Object.entries(r.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
      return `${r.path}?${qs}`;
    };
    const ok = await exchange({ method: 'GET', path: await presign('pre/file.txt') });
    expect([ok.status, ok.body.toString()]).toEqual([200, 'presigned']);
    const expired = await exchange({ method: 'GET', path: await presign('pre/file.txt', new Date(Date.now() - 3_600_000)) });
    expect([expired.status, xmlCode(expired)]).toEqual([403, 'AccessDenied']);
    const altered = await exchange({ method: 'GET', path: (await presign('pre/file.txt')).replace('file.txt', 'other.txt') });
    expect([altered.status, xmlCode(altered)]).toEqual([403, 'SignatureDoesNotMatch']);
  });

  it('takes STREAMING-AWS4-HMAC-SHA256-PAYLOAD bodies, verifying every chunk signature', async () => {
    const data = randomBytes(150_000);
    const put = async (key: string, tamper: boolean) => {
      const host = `127.0.0.1:${s3.port}`;
      const chunks = [data.subarray(0, 65_536), data.subarray(65_536, 131_072), data.subarray(131_072), Buffer.alloc(0)];
      const framedLength = chunks.reduce((n, c) => n + c.length.toString(16).length + ';chunk-signature='.length + 64 + 4 + c.length, 0);
      const req = await signer.sign({
        method: 'PUT', protocol: 'http:', hostname: '127.0.0.1', port: s3.port, path: `/${s3.bucket}/${key}`, query: {},
        headers: {
          host, 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length), 'content-length': String(framedLength),
        },
      });
      // Each chunk's signature chains to the previous one (the seed is the request's).
      const amzDate = req.headers['x-amz-date']!;
      const scope = `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`;
      const hmac = (k: string | Buffer, d: string) => createHmac('sha256', k).update(d).digest();
      const key4 = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, amzDate.slice(0, 8)), 'us-east-1'), 's3'), 'aws4_request');
      let prev = /Signature=([0-9a-f]{64})/.exec(req.headers.authorization!)![1]!;
      const framed = chunks.map((c, i) => {
        const sig = hmac(key4, `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${prev}\n${sha256('')}\n${sha256(c)}`).toString('hex');
        prev = sig;
        const body = tamper && i === 1 ? Buffer.concat([c.subarray(0, 10), Buffer.from([c[10]! ^ 1]), c.subarray(11)]) : c;
        return Buffer.concat([Buffer.from(`${c.length.toString(16)};chunk-signature=${sig}\r\n`), body, Buffer.from('\r\n')]);
      });
      const body = Buffer.concat(framed);
      expect(body.length).toBe(framedLength);
      return exchange({ method: 'PUT', path: `/${s3.bucket}/${key}`, headers: req.headers, body });
    };
    const ok = await put('chunked/signed.bin', false);
    expect(ok.status).toBe(200);
    const head = await store.head('chunked/signed.bin');
    expect(head).toMatchObject({ size: data.length, etag: createHash('md5').update(data).digest('hex') });
    expect(head?.metadata).toEqual({});
    const bad = await put('chunked/tampered.bin', true);
    expect([bad.status, xmlCode(bad)]).toEqual([403, 'SignatureDoesNotMatch']);
    expect(await store.head('chunked/tampered.bin')).toBeUndefined();
  });

  it('takes the SDK default: streams as STREAMING-UNSIGNED-PAYLOAD-TRAILER with a checksum trailer', async () => {
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
    try {
      const data = randomBytes(100_000);
      await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'chunked/trailer.bin', Body: Readable.from([data.subarray(0, 40_000), data.subarray(40_000)]), ContentLength: data.length }));
      const got = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'chunked/trailer.bin' }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
      expect(got.ContentEncoding).toBeUndefined();
    } finally {
      client.destroy();
    }
  });

  it('addresses buckets by path or by virtual host (<bucket>.localhost)', async () => {
    await store.put('vhost/a.txt', Buffer.from('by host'));
    const res = await signed('GET', 'vhost/a.txt', { host: `${s3.bucket}.localhost:${s3.port}`, pathStyle: false });
    expect([res.status, res.body.toString()]).toEqual([200, 'by host']);
  });

  it('answers errors as S3 XML, HEAD errors with no body', async () => {
    const noBucket = await createObjectStore(settings({ bucket: 'no-such-bucket' })).get('k').catch((e: unknown) => e);
    expect(noBucket).toMatchObject({ code: 'BUCKET_NOT_FOUND' });
    const missing = await signed('GET', 'nothing/here');
    expect([missing.status, xmlCode(missing), missing.headers['content-type']]).toEqual([404, 'NoSuchKey', 'application/xml']);
    expect(missing.body.toString()).toContain('<Key>nothing/here</Key>');
    const head = await signed('HEAD', 'nothing/here');
    expect([head.status, head.body.length]).toEqual([404, 0]);
    const notImplemented = await signed('GET', 'vhost/a.txt', { query: { tagging: '' } });
    expect([notImplemented.status, xmlCode(notImplemented)]).toEqual([501, 'NotImplemented']);
  });
});

describe('embedded-s3 CLI', () => {
  const run = promisify(execFile);
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args]).then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);

  it('prints its usage and credentials with --help', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: embedded-s3/);
    expect(r.stdout).toContain(`access key ${EMBEDDED_ACCESS_KEY}, secret key ${EMBEDDED_SECRET_KEY}`);
    expect(r.stderr).toBe('');
  });

  it('refuses bad arguments in one line, without a stack', async () => {
    const unknown = await cli(['--nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^embedded-s3: Unknown option '--nope'/);
    const port = await cli(['--port', 'http']);
    expect([port.code, port.stderr.trim()]).toEqual([2, 'embedded-s3: --port must be a number from 0 to 65535, not "http"']);
    const bucket = await cli(['--port', '0', '--dir', path.join(s3.dir, 'cli'), '--bucket', 'Bad_Name']);
    expect(bucket.code).toBe(1);
    expect(bucket.stderr).toMatch(/"Bad_Name" is not a valid bucket name/);
    expect(bucket.stderr).not.toMatch(/\n\s+at /);
  });
});
