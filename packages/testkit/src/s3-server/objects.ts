/** Object operations: PutObject, GetObject/HeadObject, DeleteObject, CopyObject. */
import type { IncomingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { checkCopySource, checkRead, parseRange, writeCheck } from './conditions.js';
import { S3Error, invalidArgument, invalidRequest, noSuchKey, notImplemented } from './errors.js';
import { bodySource, contentMd5, declaredLength, header, httpDate, isoDate, send, sendXml, setHeaders, verifyBody, type Ctx } from './http.js';
import { closeBodyFile, readBody, type OpenFile } from './object-file.js';
import type { Bucket, ObjectAttributes, ObjectHeader } from './store.js';
import { el, xmlDocument } from './xml.js';

const MAX_KEY_BYTES = 1024;
const MAX_METADATA_BYTES = 2048;
const MAX_PUT_BYTES = 5 * 1024 ** 3;

export function checkKey(key: string): void {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError', 400, 'Your key is too long', { MaxSizeAllowed: String(MAX_KEY_BYTES) });
}

/** Content headers and `x-amz-meta-*` of a PUT, CopyObject with REPLACE, or CreateMultipartUpload. */
export function attributesFrom(h: IncomingHttpHeaders): ObjectAttributes {
  const str = (name: string) => (typeof h[name] === 'string' ? (h[name] as string) : undefined);
  const metadata: Record<string, string> = {};
  let metaBytes = 0;
  for (const [name, value] of Object.entries(h)) {
    if (!name.startsWith('x-amz-meta-') || name.length === 11 || value === undefined) continue;
    const v = Array.isArray(value) ? value.join(',') : value;
    metadata[name.slice(11)] = v;
    metaBytes += name.length - 11 + Buffer.byteLength(v);
  }
  if (metaBytes > MAX_METADATA_BYTES) {
    throw new S3Error('MetadataTooLarge', 400, 'Your metadata headers exceed the maximum allowed metadata size.', { MaxSizeAllowed: String(MAX_METADATA_BYTES) });
  }
  // aws-chunked describes this request's framing, not the object.
  const encoding = str('content-encoding')?.split(',').map((s) => s.trim()).filter((s) => s && s !== 'aws-chunked').join(', ');
  const attrs: ObjectAttributes = { metadata };
  const set = (field: keyof Omit<ObjectAttributes, 'metadata'>, v: string | undefined) => { if (v) attrs[field] = v; };
  set('contentType', str('content-type'));
  set('contentEncoding', encoding);
  set('cacheControl', str('cache-control'));
  set('contentDisposition', str('content-disposition'));
  set('contentLanguage', str('content-language'));
  set('expires', str('expires'));
  return attrs;
}

/** Content headers of an object, as GET and HEAD answer them. */
function objectHeaders(o: ObjectHeader): Record<string, string | number> {
  const h: Record<string, string | number> = {
    etag: `"${o.etag}"`, 'last-modified': httpDate(o.lastModified), 'content-type': o.contentType ?? 'binary/octet-stream', 'accept-ranges': 'bytes',
  };
  if (o.contentEncoding) h['content-encoding'] = o.contentEncoding;
  if (o.cacheControl) h['cache-control'] = o.cacheControl;
  if (o.contentDisposition) h['content-disposition'] = o.contentDisposition;
  if (o.contentLanguage) h['content-language'] = o.contentLanguage;
  if (o.expires) h.expires = o.expires;
  for (const [k, v] of Object.entries(o.metadata)) h[`x-amz-meta-${k}`] = v;
  return h;
}

const OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type', 'response-content-language': 'content-language', 'response-expires': 'expires',
  'response-cache-control': 'cache-control', 'response-content-disposition': 'content-disposition', 'response-content-encoding': 'content-encoding',
};

function checkVersion(ctx: Ctx): void {
  const v = ctx.query.get('versionId');
  if (v !== undefined && v !== 'null') throw invalidArgument('Invalid version id specified', 'versionId', v);
}

export async function putObject(ctx: Ctx): Promise<void> {
  checkKey(ctx.key);
  const bucket = ctx.store.need(ctx.bucket);
  const length = declaredLength(ctx);
  if (length === undefined && ctx.payload.kind !== 'chunked') throw new S3Error('MissingContentLength', 411, 'You must provide the Content-Length HTTP header.');
  if (length !== undefined && length > MAX_PUT_BYTES) throw new S3Error('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed size', { MaxSizeAllowed: String(MAX_PUT_BYTES) });
  const attributes = attributesFrom(ctx.req.headers);
  const check = writeCheck(ctx.req.headers, ctx.key);
  const md5 = contentMd5(ctx);
  const written = await bucket.write(ctx.key, attributes, bodySource(ctx), { sha256: ctx.payload.kind === 'sha256' });
  try {
    verifyBody(ctx, written, md5);
  } catch (err) {
    await bucket.discard(written);
    throw err;
  }
  const obj = await bucket.commit(written, check);
  send(ctx, 200, { etag: `"${obj.etag}"` });
}

/**
 * GetObject and HeadObject. HEAD answers from the index; GET serves the header and body of the file
 * it opened, so a concurrent overwrite can never pair one version's ETag with another's bytes.
 */
export async function getObject(ctx: Ctx): Promise<void> {
  checkVersion(ctx);
  if (ctx.query.has('partNumber')) throw notImplemented('partNumber');
  const bucket = ctx.store.need(ctx.bucket);
  if (ctx.req.method === 'HEAD') {
    const o = bucket.objects.get(ctx.key);
    if (!o) throw noSuchKey(ctx.key);
    const answer = prepareRead(ctx, o);
    if (answer) send(ctx, answer.status, answer.headers);
    return;
  }
  const f = bucket.open(ctx.key);
  if (!f) throw noSuchKey(ctx.key);
  let streaming = false;
  try {
    const answer = prepareRead(ctx, f.header);
    if (!answer) return;
    const { status, headers, start, end } = answer;
    if (end < f.head.length) {
      send(ctx, status, headers, f.head.subarray(start, end + 1));
      return;
    }
    setHeaders(ctx, status, headers);
    streaming = true;
    await streamBody(ctx, f, start, end);
  } finally {
    if (!streaming) await closeBodyFile(f);
  }
}

/** Preconditions, range and headers of a read; undefined when already answered (304). */
function prepareRead(ctx: Ctx, o: ObjectHeader): { status: number; headers: Record<string, string | number>; start: number; end: number } | undefined {
  const headers = objectHeaders(o);
  if (checkRead(ctx.req.headers, o) === 'not-modified') {
    send(ctx, 304, { etag: headers.etag!, 'last-modified': headers['last-modified']! });
    return undefined;
  }
  for (const [q, h] of Object.entries(OVERRIDES)) {
    const v = ctx.query.get(q);
    if (v !== undefined) headers[h] = v;
  }
  const range = parseRange(header(ctx, 'range'), o.size);
  const start = range?.start ?? 0;
  const end = range?.end ?? o.size - 1;
  if (range) headers['content-range'] = `bytes ${start}-${end}/${o.size}`;
  headers['content-length'] = end - start + 1;
  return { status: range ? 206 : 200, headers, start, end };
}

async function streamBody(ctx: Ctx, f: OpenFile<ObjectHeader>, start: number, end: number): Promise<void> {
  try {
    await pipeline(Readable.from(readBody(f, start, end)), ctx.res);
  } catch {
    // The client went away mid-body; nothing more to answer.
    ctx.res.destroy();
  } finally {
    await closeBodyFile(f);
  }
}

export async function deleteObject(ctx: Ctx): Promise<void> {
  checkVersion(ctx);
  await ctx.store.need(ctx.bucket).delete(ctx.key);
  send(ctx, 204);
}

/** The source of a copy: `x-amz-copy-source: [/]bucket/key[?versionId=null]`, URL-encoded. */
export function copySource(ctx: Ctx): { bucket: Bucket; key: string } {
  const raw = header(ctx, 'x-amz-copy-source')!;
  const q = raw.indexOf('?');
  const pathPart = q < 0 ? raw : raw.slice(0, q);
  if (q >= 0) {
    const version = new URLSearchParams(raw.slice(q + 1)).get('versionId');
    if (version !== null && version !== 'null') throw invalidArgument('Invalid version id specified', 'x-amz-copy-source', raw);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathPart);
  } catch {
    throw invalidArgument('Invalid copy source encoding', 'x-amz-copy-source', raw);
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1);
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw invalidArgument('Copy Source must mention the source bucket and key: sourcebucket/sourcekey', 'x-amz-copy-source', raw);
  }
  return { bucket: ctx.store.need(decoded.slice(0, slash)), key: decoded.slice(slash + 1) };
}

export async function copyObject(ctx: Ctx): Promise<void> {
  checkKey(ctx.key);
  const dest = ctx.store.need(ctx.bucket);
  const src = copySource(ctx);
  const directive = header(ctx, 'x-amz-metadata-directive') ?? 'COPY';
  if (directive !== 'COPY' && directive !== 'REPLACE') throw invalidArgument('Unknown metadata directive.', 'x-amz-metadata-directive', directive);
  const replace = directive === 'REPLACE';
  const check = writeCheck(ctx.req.headers, ctx.key);
  const f = src.bucket.open(src.key);
  if (!f) throw noSuchKey(src.key);
  let written;
  try {
    if (src.bucket === dest && src.key === ctx.key && !replace) {
      throw invalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.");
    }
    checkCopySource(ctx.req.headers, f.header);
    const { key: _k, size: _s, etag: _e, lastModified: _l, ...sourceAttributes } = f.header;
    const attributes = replace ? attributesFrom(ctx.req.headers) : sourceAttributes;
    written = await dest.write(ctx.key, attributes, readBody(f));
  } finally {
    await closeBodyFile(f);
  }
  const obj = await dest.commit(written, check);
  sendXml(ctx, xmlDocument('CopyObjectResult', el('LastModified', isoDate(obj.lastModified)) + el('ETag', `"${obj.etag}"`)));
}
