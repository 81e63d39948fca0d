/**
 * AWS Signature Version 4, checked the way S3 checks it: the Authorization header or a presigned
 * query, the canonical request rebuilt from what was received, the clock within 15 minutes, and
 * what the payload hash promises (verified later, by whoever reads the body).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { S3Error, accessDenied, invalidAccessKeyId, invalidArgument, signatureDoesNotMatch } from './errors.js';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const ALGORITHM = 'AWS4-HMAC-SHA256';
const MAX_SKEW_MS = 15 * 60_000;

/** What the body must be, per the signed `x-amz-content-sha256`. */
export type Payload =
  | { kind: 'unsigned' }
  | { kind: 'sha256'; hex: string }
  /** aws-chunked; `signer` set when every chunk is signed; `trailer` when checksums trail the body. */
  | { kind: 'chunked'; signer: ChunkSigner | undefined; trailer: boolean; decodedLength: number | undefined };

/** The chunk signatures of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body, each chained to the one before. */
export class ChunkSigner {
  constructor(private readonly key: Buffer, private readonly amzDate: string, private readonly scope: string, private previous: string) {}

  /** Checks the signature of a chunk whose data hashes to `dataSha256`. */
  verifyChunk(dataSha256: string, signature: string): void {
    this.verify(`AWS4-HMAC-SHA256-PAYLOAD\n${this.amzDate}\n${this.scope}\n${this.previous}\n${EMPTY_SHA256}\n${dataSha256}`, signature);
  }

  /** Checks the signature over the trailing headers (`name:value\n` each). */
  verifyTrailer(trailerText: string, signature: string): void {
    this.verify(`AWS4-HMAC-SHA256-TRAILER\n${this.amzDate}\n${this.scope}\n${this.previous}\n${sha256Hex(trailerText)}`, signature);
  }

  private verify(stringToSign: string, signature: string): void {
    const expected = hmac(this.key, stringToSign).toString('hex');
    if (!safeEqual(expected, signature)) throw signatureDoesNotMatch();
    this.previous = expected;
  }
}

export interface RawTarget { method: string; rawPath: string; rawQuery: string }

/**
 * Authenticates `req` against `secrets` (access key id → secret). Returns what the payload must be;
 * throws S3's error otherwise. Anonymous requests are refused: every bucket here is private.
 */
export function authenticate(req: IncomingMessage, target: RawTarget, secrets: ReadonlyMap<string, string>, now = Date.now()): Payload {
  const header = req.headers.authorization;
  const query = parseRawQuery(target.rawQuery);
  if (header !== undefined) return headerAuth(req, header, target, query, secrets, now);
  if (query.some(([k]) => k === 'X-Amz-Algorithm')) return presignedAuth(req, target, query, secrets, now);
  if (query.some(([k]) => k === 'AWSAccessKeyId')) throw accessDenied('Signature Version 2 is not supported; sign with Signature Version 4');
  throw accessDenied();
}

function headerAuth(
  req: IncomingMessage, header: string, target: RawTarget, query: Array<[string, string]>, secrets: ReadonlyMap<string, string>, now: number,
): Payload {
  if (!header.startsWith(`${ALGORITHM} `)) {
    if (header.startsWith('AWS ')) throw accessDenied('Signature Version 2 is not supported; sign with Signature Version 4');
    throw invalidArgument('Unsupported Authorization Type', 'Authorization', header);
  }
  const fields = new Map<string, string>();
  for (const part of header.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) throw malformedAuth(header);

  const amzDate = headerValue(req, 'x-amz-date') ?? isoBasic(headerValue(req, 'date'));
  if (!amzDate) throw accessDenied('AWS authentication requires a valid Date or x-amz-date header');
  const time = parseAmzDate(amzDate);
  if (Math.abs(now - time) > MAX_SKEW_MS) {
    throw new S3Error('RequestTimeTooSkewed', 403, 'The difference between the request time and the current time is too large.', {
      RequestTime: amzDate, ServerTime: new Date(now).toISOString(),
    });
  }
  const contentSha = headerValue(req, 'x-amz-content-sha256');
  if (contentSha === undefined) throw new S3Error('InvalidRequest', 400, 'Missing required header for this request: x-amz-content-sha256');
  const scope = checkScope(credential, amzDate, secrets);
  const canonicalQuery = canonicalQueryString(query);
  verifySignature(req, target, canonicalQuery, signedHeaders, contentSha, amzDate, scope, signature);
  return payloadOf(req, contentSha, scope, amzDate, signature);
}

function presignedAuth(
  req: IncomingMessage, target: RawTarget, query: Array<[string, string]>, secrets: ReadonlyMap<string, string>, now: number,
): Payload {
  const get = (name: string) => query.find(([k]) => k === name)?.[1];
  if (get('X-Amz-Algorithm') !== ALGORITHM) throw queryAuthError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  const credential = get('X-Amz-Credential');
  const amzDate = get('X-Amz-Date');
  const expires = get('X-Amz-Expires');
  const signedHeaders = get('X-Amz-SignedHeaders');
  const signature = get('X-Amz-Signature');
  if (!credential || !amzDate || !expires || !signedHeaders || !signature) {
    throw queryAuthError('Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.');
  }
  const seconds = Number(expires);
  if (!/^\d+$/.test(expires) || seconds > 604_800) throw queryAuthError('X-Amz-Expires must be a number of seconds up to 604800 (seven days)');
  const time = parseAmzDate(amzDate);
  if (now > time + seconds * 1000) throw accessDenied('Request has expired');
  if (time - now > MAX_SKEW_MS) throw accessDenied('Request is not valid yet');
  const scope = checkScope(credential, amzDate, secrets);
  const canonicalQuery = canonicalQueryString(query.filter(([k]) => k !== 'X-Amz-Signature'));
  const contentSha = get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD';
  verifySignature(req, target, canonicalQuery, signedHeaders, contentSha, amzDate, scope, signature);
  return payloadOf(req, contentSha, scope, amzDate, signature);
}

interface Scope { key: Buffer; text: string }

/** `AKID/YYYYMMDD/region/s3/aws4_request`: the key id must exist and the date match the request's. */
function checkScope(credential: string, amzDate: string, secrets: ReadonlyMap<string, string>): Scope {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || parts[3] !== 's3') throw malformedAuth(credential);
  const [id, date, region] = parts as [string, string, string, string, string];
  const secret = secrets.get(id);
  if (secret === undefined) throw invalidAccessKeyId(id);
  if (date !== amzDate.slice(0, 8)) throw malformedAuth(credential);
  return { key: signingKey(secret, date, region), text: `${date}/${region}/s3/aws4_request` };
}

const keyCache = new Map<string, Buffer>();

function signingKey(secret: string, date: string, region: string): Buffer {
  const id = `${secret}\n${date}\n${region}`;
  let key = keyCache.get(id);
  if (!key) {
    key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), 's3'), 'aws4_request');
    if (keyCache.size > 100) keyCache.clear();
    keyCache.set(id, key);
  }
  return key;
}

function verifySignature(
  req: IncomingMessage, target: RawTarget, canonicalQuery: string, signedHeaders: string, contentSha: string,
  amzDate: string, scope: Scope, signature: string,
): void {
  const headers = canonicalHeaders(req, signedHeaders);
  const sign = (uri: string) => {
    const canonical = `${target.method}\n${uri}\n${canonicalQuery}\n${headers}\n${signedHeaders}\n${contentSha}`;
    // Header values arrive as bytes, which Node hands over as latin1 characters: hashing the
    // request as latin1 hashes exactly the bytes the client signed (UTF-8 metadata included).
    return hmac(scope.key, `${ALGORITHM}\n${amzDate}\n${scope.text}\n${sha256Hex(Buffer.from(canonical, 'latin1'))}`).toString('hex');
  };
  if (safeEqual(sign(target.rawPath), signature)) return;
  // Clients sign S3's canonical encoding of the path; most also send exactly that, some send
  // characters such as `(` or `!` unencoded. Either way the same key was meant.
  const canonicalPath = canonicalUri(target.rawPath);
  if (canonicalPath !== undefined && canonicalPath !== target.rawPath && safeEqual(sign(canonicalPath), signature)) return;
  throw signatureDoesNotMatch();
}

function payloadOf(req: IncomingMessage, contentSha: string, scope: Scope, amzDate: string, seed: string): Payload {
  const decoded = headerValue(req, 'x-amz-decoded-content-length');
  const decodedLength = decoded !== undefined && /^\d+$/.test(decoded) ? Number(decoded) : undefined;
  switch (contentSha) {
    case 'UNSIGNED-PAYLOAD':
      return { kind: 'unsigned' };
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD':
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER':
      return { kind: 'chunked', signer: new ChunkSigner(scope.key, amzDate, scope.text, seed), trailer: contentSha.endsWith('TRAILER'), decodedLength };
    case 'STREAMING-UNSIGNED-PAYLOAD-TRAILER':
      return { kind: 'chunked', signer: undefined, trailer: true, decodedLength };
    default:
      if (!/^[0-9a-f]{64}$/.test(contentSha)) {
        throw invalidArgument('x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.', 'x-amz-content-sha256', contentSha);
      }
      return { kind: 'sha256', hex: contentSha };
  }
}

/** Each signed header's values as received (repeats joined by commas), trimmed, inner spaces collapsed. */
function canonicalHeaders(req: IncomingMessage, signedHeaders: string): string {
  const wanted = signedHeaders.split(';');
  const values = new Map<string, string[]>(wanted.map((h) => [h, []]));
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    values.get(raw[i]!.toLowerCase())?.push(raw[i + 1]!.trim().replace(/\s+/g, ' '));
  }
  return wanted.map((h) => `${h}:${values.get(h)!.join(',')}\n`).join('');
}

/** The raw query as name/value pairs, percent-decoded (`+` stays `+`, as S3 reads it). */
export function parseRawQuery(raw: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const part of raw.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? '' : part.slice(eq + 1);
    out.push([decode(k), decode(v)]);
  }
  return out;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new S3Error('InvalidURI', 400, "Couldn't parse the specified URI.");
  }
}

function canonicalQueryString(query: Array<[string, string]>): string {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** S3's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as %XX of its UTF-8 bytes. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalUri(rawPath: string): string | undefined {
  try {
    return rawPath.split('/').map((seg) => uriEncode(decodeURIComponent(seg))).join('/');
  } catch {
    return undefined;
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** `YYYYMMDDTHHMMSSZ` → ms; throws AccessDenied when malformed. */
function parseAmzDate(s: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw accessDenied('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

function isoBasic(httpDate: string | undefined): string | undefined {
  if (!httpDate) return undefined;
  const t = Date.parse(httpDate);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

function malformedAuth(what: string): S3Error {
  return new S3Error('AuthorizationHeaderMalformed', 400, `The authorization header is malformed: ${what}`);
}

function queryAuthError(message: string): S3Error {
  return new S3Error('AuthorizationQueryParametersError', 400, message);
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function safeEqual(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}
