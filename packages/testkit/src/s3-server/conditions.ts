/** HTTP preconditions and byte ranges as S3 evaluates them (RFC 7232/7233 with S3's choices). */
import type { IncomingHttpHeaders } from 'node:http';
import { S3Error, invalidArgument, noSuchKey, notImplemented, preconditionFailed } from './errors.js';
import type { ObjectHeader } from './store.js';

/** True when an If-Match / If-None-Match list names `etag` (quoted or not) or is `*`. */
export function etagMatches(list: string, etag: string): boolean {
  return list.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
    return v === '*' || v === etag;
  });
}

function httpDate(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

/** Last-Modified has one-second resolution; comparisons use what the client was told. */
const seconds = (ms: number) => Math.floor(ms / 1000) * 1000;

/**
 * GET/HEAD preconditions: throws 412, returns 'not-modified' for 304, else 'ok'. As in S3, If-Match
 * overrides If-Unmodified-Since and If-None-Match overrides If-Modified-Since.
 */
export function checkRead(h: IncomingHttpHeaders, obj: ObjectHeader): 'ok' | 'not-modified' {
  return evaluate(h['if-match'], h['if-none-match'], h['if-modified-since'], h['if-unmodified-since'], obj, false);
}

/** CopyObject / UploadPartCopy source preconditions: every failure is a 412. */
export function checkCopySource(h: IncomingHttpHeaders, obj: ObjectHeader): void {
  const str = (name: string) => (typeof h[name] === 'string' ? (h[name] as string) : undefined);
  evaluate(str('x-amz-copy-source-if-match'), str('x-amz-copy-source-if-none-match'),
    str('x-amz-copy-source-if-modified-since'), str('x-amz-copy-source-if-unmodified-since'), obj, true);
}

function evaluate(
  ifMatch: string | undefined, ifNoneMatch: string | undefined, ifModifiedSince: string | undefined, ifUnmodifiedSince: string | undefined,
  obj: ObjectHeader, copy: boolean,
): 'ok' | 'not-modified' {
  const prefix = copy ? 'x-amz-copy-source-' : '';
  const modified = seconds(obj.lastModified);
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, obj.etag)) throw preconditionFailed(`${copy ? prefix : ''}If-Match`);
  } else {
    const t = httpDate(ifUnmodifiedSince);
    if (t !== undefined && modified > t) throw preconditionFailed(`${prefix}If-Unmodified-Since`);
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, obj.etag)) {
      if (copy) throw preconditionFailed(`${prefix}If-None-Match`);
      return 'not-modified';
    }
  } else {
    const t = httpDate(ifModifiedSince);
    if (t !== undefined && modified <= t) {
      if (copy) throw preconditionFailed(`${prefix}If-Modified-Since`);
      return 'not-modified';
    }
  }
  return 'ok';
}

/**
 * Conditional writes (PutObject, CopyObject's destination, CompleteMultipartUpload): `If-None-Match: *`
 * only if nothing is at the key, `If-Match` only if the current object has that ETag (404 when
 * there is none, as S3 answers).
 */
export function writeCheck(h: IncomingHttpHeaders, key: string): ((current: ObjectHeader | undefined) => void) | undefined {
  const ifMatch = h['if-match'];
  const ifNoneMatch = h['if-none-match'];
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') throw notImplemented('If-None-Match with a value other than *');
  return (current) => {
    if (ifNoneMatch !== undefined && current) throw preconditionFailed('If-None-Match');
    if (ifMatch !== undefined) {
      if (!current) throw noSuchKey(key);
      if (!etagMatches(ifMatch, current.etag)) throw preconditionFailed('If-Match');
    }
  };
}

export interface ByteRange { start: number; end: number }

/**
 * A `Range: bytes=a-b | a- | -n` header against an object of `size` bytes: the range, undefined to
 * serve the whole object (no header, or one S3 ignores: several ranges, malformed), or 416.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw invalidRange(header, size);
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? Infinity : Number(m[2]);
  if (end < start) return undefined;
  if (start >= size) throw invalidRange(header, size);
  return { start, end: Math.min(end, size - 1) };
}

function invalidRange(requested: string, size: number): S3Error {
  return new S3Error('InvalidRange', 416, 'The requested range is not satisfiable', { RangeRequested: requested, ActualObjectSize: String(size) }, { 'content-range': `bytes */${size}` });
}

/** x-amz-copy-source-range: `bytes=a-b`, both required and within the source. */
export function parseCopyRange(header: string, size: number): ByteRange {
  const m = /^bytes=(\d+)-(\d+)$/.exec(header.trim());
  if (!m) throw invalidArgument('The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy', 'x-amz-copy-source-range', header);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start || end >= size) throw invalidRange(header, size);
  return { start, end };
}
