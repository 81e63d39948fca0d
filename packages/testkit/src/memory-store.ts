/**
 * An in-memory ObjectStore that answers like a correct S3 server reached through createObjectStore:
 * the same ETags (MD5, or MD5 of the part MD5s + "-N" for multipart), listing in UTF-8 byte order
 * in pages of 1000 with common prefixes and StartAfter, inclusive ranges, conditional reads and
 * writes, multipart uploads driven the way lib-storage drives them, and the same coded errors:
 * each failure is the S3 error a server would send, passed through translateS3Error.
 *
 * Where servers differ, it follows AWS S3: a copy is a new single-part object (its ETag is the MD5
 * of the bytes, never the source's "-N"), and If-None-Match is honoured on the multipart complete.
 * It is stricter than some servers where they would silently store something else: metadata must
 * be printable ASCII, and a `sha256` given to put must be the body's.
 *
 * Every call runs to completion in one turn of the event loop except `upload`, which reads its
 * stream: like lib-storage, it starts a multipart upload (visible in listUploads) as soon as more
 * than one part has arrived, and completes or aborts it when the stream ends or fails.
 */
import { createHash } from 'node:crypto';
import { compareUtf8, refuseLarger, stripEtag, translateS3Error, type ObjectInfo, type ObjectStore } from '@workspace-sync/shared';
import { realClock, type Clock } from './clock.js';

export interface StoredObject {
  body: Buffer;
  etag: string;
  lastModified: Date;
  /** Keys lower-cased, as S3 stores them. */
  metadata: Record<string, string>;
  contentType: string;
  contentEncoding: string | undefined;
  cacheControl: string | undefined;
}

export interface MemoryStoreOptions {
  bucket?: string;
  /** Source of lastModified and of multipart `initiated` times (default: the real clock). */
  clock?: Pick<Clock, 'now'>;
  /** false: the bucket does not exist until createBucket (default true). */
  bucketExists?: boolean;
}

export interface MemoryStore extends ObjectStore {
  /** Copies of every object, in listing order; changing them does not change the store. */
  snapshot(): Map<string, StoredObject>;
  readonly objectCount: number;
  /** Writes an object as another writer would, without conditions: an out-of-band change. */
  setObject(key: string, body: Buffer | string, opts?: { metadata?: Record<string, string>; contentType?: string }): { etag: string };
}

/** Servers' default when a PUT has no Content-Type (AWS, Ceph RGW). */
const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';
const LIST_PAGE = 1000;
const MAX_KEY_BYTES = 1024;
/** lib-storage refuses smaller parts before sending anything. */
const MIN_PART_SIZE = 5 * 1024 * 1024;

/** An error shaped like the SDK's for an S3 error response, for translateS3Error. */
function s3Error(name: string, status: number, message: string): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
}
const noSuchKey = () => s3Error('NoSuchKey', 404, 'The specified key does not exist.');
const preconditionFailed = () => s3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold');
const noSuchUpload = () => s3Error('NoSuchUpload', 404, 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');

const md5 = (data: Buffer) => createHash('md5').update(data).digest();

export function createMemoryStore(opts: MemoryStoreOptions = {}): MemoryStore {
  const bucket = opts.bucket ?? 'workspaces';
  const clock = opts.clock ?? realClock;
  const endpointLabel = 'memory';
  let bucketExists = opts.bucketExists ?? true;
  const objects = new Map<string, StoredObject>();
  const uploads = new Map<string, { key: string; initiated: Date; seq: number }>();
  let uploadSeq = 0;

  /** Runs one request: the bucket must exist, and every failure becomes the coded error the real store throws. */
  const request = <T>(op: string, key: string | undefined, fn: () => T): T => {
    try {
      if (!bucketExists) throw s3Error('NoSuchBucket', 404, 'The specified bucket does not exist');
      return fn();
    } catch (err) {
      throw translateS3Error(err, { op, bucket, key, endpoint: endpointLabel });
    }
  };
  // S3 keeps whole seconds (HTTP dates); listings show the same instant.
  const now = () => new Date(Math.floor(clock.now() / 1000) * 1000);
  const info = (o: StoredObject): ObjectInfo => ({
    etag: o.etag, size: o.body.length, lastModified: o.lastModified, metadata: { ...o.metadata }, contentType: o.contentType,
  });
  const write = (key: string, body: Buffer, etag: string, o: Omit<StoredObject, 'body' | 'etag' | 'lastModified'>) => {
    objects.set(key, { ...o, body, etag, lastModified: now() });
    return { etag };
  };

  const store: MemoryStore = {
    bucket,
    endpointLabel,

    async get(key, o = {}) {
      return request('GET', key, () => {
        // What the SDK throws when the caller's signal has already fired.
        if (o.signal?.aborted) throw Object.assign(new Error('Request aborted'), { name: 'AbortError' });
        checkKey(key);
        const obj = objects.get(key);
        if (!obj) throw noSuchKey();
        const invalidRange = () => s3Error('InvalidRange', 416, 'The requested range is not satisfiable');
        if (o.ifMatch !== undefined && stripEtag(o.ifMatch) !== obj.etag) throw preconditionFailed();
        if (o.ifNoneMatch !== undefined && stripEtag(o.ifNoneMatch) === obj.etag) return { notModified: true as const, etag: o.ifNoneMatch };
        let body = obj.body;
        // A range that ends before it starts is ignored, as S3 does (Ceph RGW 16 answers 416); one
        // that starts past the end is refused, after the conditions.
        if (o.range && o.range.end >= o.range.start) {
          if (o.range.start >= body.length) throw invalidRange();
          body = body.subarray(o.range.start, o.range.end + 1);
        }
        refuseLarger(`GET s3://${bucket}/${key}`, body.length, o.maxBytes);
        return { notModified: false as const, body: Buffer.from(body), ...info(obj) };
      });
    },

    async head(key) {
      return request('HEAD', key, () => {
        checkKey(key);
        const obj = objects.get(key);
        return obj && info(obj);
      });
    },

    async put(key, body, o = {}) {
      return request('PUT', key, () => {
        checkKey(key);
        const metadata = checkMetadata(o.metadata);
        if (o.sha256 !== undefined && o.sha256 !== createHash('sha256').update(body).digest('hex')) {
          throw s3Error('XAmzContentSHA256Mismatch', 400, 'The provided x-amz-content-sha256 header does not match what was computed.');
        }
        const cur = objects.get(key);
        // If-Match with nothing at the key is 404 NoSuchKey on S3 (Ceph RGW 16 answers 412).
        if (o.ifMatch !== undefined && !cur) throw noSuchKey();
        if ((o.ifNoneMatch && cur) || (o.ifMatch !== undefined && cur?.etag !== stripEtag(o.ifMatch))) throw preconditionFailed();
        return write(key, Buffer.from(body), md5(body).toString('hex'), {
          metadata, contentType: o.contentType ?? DEFAULT_CONTENT_TYPE, contentEncoding: o.contentEncoding, cacheControl: o.cacheControl,
        });
      });
    },

    async upload(key, body, o) {
      const op = 'multipart upload';
      let uploadId: string | undefined;
      const parts: Buffer[] = [];
      const sendPart = (data: Buffer) => {
        if (uploadId === undefined) {
          uploadId = `memory-upload-${++uploadSeq}`;
          uploads.set(uploadId, { key, initiated: now(), seq: uploadSeq });
        }
        // Swept by abortUpload (or a lifecycle rule) while the stream was still being read.
        if (!uploads.has(uploadId)) throw noSuchUpload();
        parts.push(data);
      };
      try {
        const metadata = request(op, key, () => {
          if (o.partSize < MIN_PART_SIZE) {
            throw new Error(`EntityTooSmall: Your proposed upload part size [${o.partSize}] is smaller than the minimum allowed size [${MIN_PART_SIZE}] (5MB)`);
          }
          checkKey(key);
          return checkMetadata(o.metadata);
        });
        // lib-storage's chunking: a part is sent once more than partSize bytes are buffered, so a
        // body of at most one part becomes a single PUT.
        let chunks: Buffer[] = [];
        let length = 0;
        for await (const chunk of body) {
          const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk as Buffer;
          chunks.push(data);
          length += data.length;
          while (length > o.partSize) {
            const all = Buffer.concat(chunks);
            request(op, key, () => sendPart(all.subarray(0, o.partSize)));
            chunks = [all.subarray(o.partSize)];
            length = chunks[0]!.length;
          }
        }
        const buffered = Buffer.concat(chunks);
        const put = { metadata, contentType: o.contentType ?? DEFAULT_CONTENT_TYPE, contentEncoding: undefined, cacheControl: undefined };
        if (uploadId === undefined) {
          return request(op, key, () => {
            if (o.ifNoneMatch && objects.has(key)) throw preconditionFailed();
            return write(key, buffered, md5(buffered).toString('hex'), put);
          });
        }
        return request(op, key, () => {
          sendPart(buffered);
          uploads.delete(uploadId!);
          if (o.ifNoneMatch && objects.has(key)) throw preconditionFailed();
          const etag = `${md5(Buffer.concat(parts.map(md5))).toString('hex')}-${parts.length}`;
          return write(key, Buffer.concat(parts), etag, put);
        });
      } catch (err) {
        // lib-storage aborts the upload when anything fails (leavePartsOnError: false).
        if (uploadId !== undefined) uploads.delete(uploadId);
        throw translateS3Error(err, { op, bucket, key, endpoint: endpointLabel });
      }
    },

    async copy(sourceKey, destKey, o = {}) {
      return request('COPY', `${sourceKey} -> ${destKey}`, () => {
        checkKey(sourceKey);
        checkKey(destKey);
        const src = objects.get(sourceKey);
        if (!src) throw noSuchKey();
        if (o.sourceIfMatch !== undefined && stripEtag(o.sourceIfMatch) !== src.etag) throw preconditionFailed();
        if (sourceKey === destKey && !o.metadata) {
          throw s3Error('InvalidRequest', 400, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.");
        }
        // MetadataDirective REPLACE (metadata given) replaces the content type too; COPY keeps the source's.
        const attrs = o.metadata
          ? { metadata: checkMetadata(o.metadata), contentType: o.contentType ?? DEFAULT_CONTENT_TYPE, contentEncoding: undefined, cacheControl: undefined }
          : { metadata: { ...src.metadata }, contentType: src.contentType, contentEncoding: src.contentEncoding, cacheControl: src.cacheControl };
        return write(destKey, src.body, md5(src.body).toString('hex'), attrs);
      });
    },

    async deleteMany(keys) {
      return request('DeleteObjects', keys[0], () => {
        for (const key of keys) objects.delete(key);
        return { failed: [] };
      });
    },

    async *list(prefix, o = {}) {
      let after = o.startAfter;
      for (;;) {
        const page = request('LIST', prefix, () => listPage(prefix, o.delimiter, after));
        for (const cp of page.prefixes) yield { commonPrefix: cp };
        for (const [key, obj] of page.objects) yield { key, etag: obj.etag, size: obj.body.length, lastModified: obj.lastModified };
        if (page.last === undefined) return;
        after = page.last;
      }
    },

    async *listUploads(prefix) {
      const found = request('ListMultipartUploads', prefix, () => [...uploads]
        .filter(([, u]) => u.key.startsWith(prefix))
        .sort(([, a], [, b]) => compareUtf8(a.key, b.key) || a.seq - b.seq)
        .map(([uploadId, u]) => ({ key: u.key, uploadId, initiated: u.initiated })));
      yield* found;
    },

    async abortUpload(key, uploadId) {
      request('AbortMultipartUpload', key, () => {
        // Another key's id or an unknown one is a 404, which the real store ignores like this.
        if (uploads.get(uploadId)?.key === key) uploads.delete(uploadId);
      });
    },

    async headBucket() {
      request('HEAD bucket', undefined, () => undefined);
    },

    async createBucket() {
      bucketExists = true;
    },

    snapshot() {
      const sorted = [...objects.keys()].sort(compareUtf8);
      return new Map(sorted.map((k) => {
        const o = objects.get(k)!;
        return [k, { ...o, body: Buffer.from(o.body), metadata: { ...o.metadata } }];
      }));
    },

    get objectCount() {
      return objects.size;
    },

    setObject(key, body, o = {}) {
      const data = Buffer.from(body);
      return write(key, data, md5(data).toString('hex'), {
        metadata: checkMetadata(o.metadata), contentType: o.contentType ?? DEFAULT_CONTENT_TYPE, contentEncoding: undefined, cacheControl: undefined,
      });
    },
  };

  /**
   * One ListObjectsV2 page: entries after `after` in byte order, keys under a common prefix rolled
   * into it. A common prefix sits at its own position in the order, so a StartAfter inside it (or
   * equal to it) has passed it, as with RGW and as continuation after a common prefix requires.
   */
  function listPage(prefix: string, delimiter: string | undefined, after: string | undefined) {
    const prefixes: string[] = [];
    const found: Array<[string, StoredObject]> = [];
    let last: string | undefined;
    let count = 0;
    for (const key of [...objects.keys()].sort(compareUtf8)) {
      if (!key.startsWith(prefix) || (after !== undefined && compareUtf8(key, after) <= 0)) continue;
      const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      const entry = cut >= 0 ? key.slice(0, cut + delimiter!.length) : key;
      if (cut >= 0 && (entry === prefixes.at(-1) || (after !== undefined && compareUtf8(entry, after) <= 0))) continue;
      // A full page and more to come: the caller asks again after the last entry.
      if (count === LIST_PAGE) return { prefixes, objects: found, last };
      count++;
      last = entry;
      if (cut >= 0) prefixes.push(entry);
      else found.push([key, objects.get(key)!]);
    }
    return { prefixes, objects: found, last: undefined };
  }

  return store;
}

function checkKey(key: string): void {
  // Over HTTP an empty key addresses the bucket itself (a GET would list it): always a caller's bug.
  if (key === '') throw s3Error('InvalidArgument', 400, 'the object key is empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw s3Error('KeyTooLongError', 400, 'Your key is too long');
}

/** Lower-cased keys; values must survive an HTTP header unchanged (S3 servers mangle or refuse the rest). */
function checkMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) || !/^[\x20-\x7e]*$/.test(v) || v !== v.trim()) {
      throw s3Error('InvalidArgument', 400, `metadata "${k}" cannot be sent as an HTTP header unchanged: use printable ASCII without surrounding spaces`);
    }
    out[k.toLowerCase()] = v;
  }
  return out;
}
