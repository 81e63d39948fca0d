/** One request's context, and the helpers that read its body and answer it the way S3 does. */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Payload } from './auth.js';
import { decodeAwsChunked } from './chunked.js';
import { S3Error } from './errors.js';
import type { Store } from './store.js';
import { el, escapeXml } from './xml.js';

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  store: Store;
  requestId: string;
  /** Decoded bucket and key ('' when absent). */
  bucket: string;
  key: string;
  /** Decoded query parameters (first value of each name). */
  query: Map<string, string>;
  payload: Payload;
  /** The owner every bucket and object here has. */
  owner: { id: string; displayName: string };
}

export function header(ctx: Ctx, name: string): string | undefined {
  const v = ctx.req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** Status and headers of an answer whose body the caller writes. */
export function setHeaders(ctx: Ctx, status: number, headers: Record<string, string | number>): void {
  const { res } = ctx;
  res.statusCode = status;
  res.setHeader('x-amz-request-id', ctx.requestId);
  res.setHeader('x-amz-id-2', ctx.requestId);
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
}

export function send(ctx: Ctx, status: number, headers: Record<string, string | number> = {}, body?: string | Buffer): void {
  const { res } = ctx;
  setHeaders(ctx, status, headers);
  if (body === undefined) {
    if (status !== 204 && status !== 304 && !res.hasHeader('content-length')) res.setHeader('content-length', 0);
    res.end();
    return;
  }
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  if (!res.hasHeader('content-length')) res.setHeader('content-length', buf.length);
  res.end(ctx.req.method === 'HEAD' ? undefined : buf);
}

export function sendXml(ctx: Ctx, xml: string, status = 200, headers: Record<string, string | number> = {}): void {
  send(ctx, status, { 'content-type': 'application/xml', ...headers }, xml);
}

export function sendError(ctx: Ctx, err: S3Error): void {
  const resource = ctx.req.url?.split('?')[0] ?? '/';
  const fields = Object.entries(err.fields).map(([k, v]) => el(k, v)).join('');
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${escapeXml(err.code)}</Code><Message>${escapeXml(err.message)}</Message>${fields}<Resource>${escapeXml(resource)}</Resource><RequestId>${ctx.requestId}</RequestId><HostId>${ctx.requestId}</HostId></Error>`;
  // HEAD answers carry no body: the status says it all.
  if (ctx.req.method === 'HEAD') send(ctx, err.status, err.headers);
  else sendXml(ctx, xml, err.status, err.headers);
}

/** The request body as sent by the client, aws-chunked framing removed (not yet verified). */
export function bodySource(ctx: Ctx): AsyncIterable<Buffer> {
  const p = ctx.payload;
  if (p.kind === 'chunked') return decodeAwsChunked(ctx.req, p);
  return ctx.req;
}

/** Content-MD5 as binary, undefined when absent; InvalidDigest when it is not a base64 MD5. */
export function contentMd5(ctx: Ctx): Buffer | undefined {
  const v = header(ctx, 'content-md5');
  if (v === undefined) return undefined;
  const b = Buffer.from(v, 'base64');
  if (b.length !== 16 || b.toString('base64') !== v.trim()) throw new S3Error('InvalidDigest', 400, 'The Content-MD5 you specified was invalid.');
  return b;
}

/** The size the body will have once decoded, when the client said so (411 for PUTs that did not). */
export function declaredLength(ctx: Ctx): number | undefined {
  const p = ctx.payload;
  if (p.kind === 'chunked' && p.decodedLength !== undefined) return p.decodedLength;
  const len = header(ctx, 'content-length');
  if (len !== undefined && /^\d+$/.test(len) && p.kind !== 'chunked') return Number(len);
  return undefined;
}

/**
 * After a body was read: the digests it had against what the request promised (signed sha256,
 * Content-MD5). Throws S3's error for a mismatch.
 */
export function verifyBody(ctx: Ctx, got: { sha256: string | undefined; md5: Buffer }, expectedMd5: Buffer | undefined): void {
  if (ctx.payload.kind === 'sha256' && got.sha256 !== ctx.payload.hex) {
    throw new S3Error('XAmzContentSHA256Mismatch', 400, "The provided 'x-amz-content-sha256' header does not match what was computed.", {
      ClientComputedContentSHA256: ctx.payload.hex, S3ComputedContentSHA256: got.sha256 ?? '',
    });
  }
  if (expectedMd5 && !expectedMd5.equals(got.md5)) {
    throw new S3Error('BadDigest', 400, 'The Content-MD5 you specified did not match what we received.', {
      ExpectedDigest: expectedMd5.toString('base64'), CalculatedDigest: got.md5.toString('base64'),
    });
  }
}

/** A small request body (XML documents), verified; MaxMessageLengthExceeded above `limit`. */
export async function readSmallBody(ctx: Ctx, limit = 4 * 1024 * 1024): Promise<Buffer> {
  const md5 = contentMd5(ctx);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of bodySource(ctx)) {
    size += chunk.length;
    if (size > limit) throw new S3Error('MaxMessageLengthExceeded', 400, 'Your request was too big.');
    parts.push(chunk);
  }
  const body = Buffer.concat(parts);
  verifyBody(ctx, {
    sha256: ctx.payload.kind === 'sha256' ? createHash('sha256').update(body).digest('hex') : undefined,
    md5: createHash('md5').update(body).digest(),
  }, md5);
  return body;
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** ISO 8601 with milliseconds, as S3 lists dates. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}
