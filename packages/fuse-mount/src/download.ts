/**
 * Downloads, checked, shared by the fetcher (main thread) and the prefetch worker.
 *
 * v1 (mutable plain objects): one GET pinned to a version. If-Match is sent, and since some
 * servers ignore it, the answer's ETag and size (and the manifest's sha256, for whole objects) are
 * verified too. Any difference is PRECONDITION_FAILED: the object changed underneath the manifest,
 * and the caller re-resolves instead of mixing versions.
 *
 * v2 (immutable objects): a range of a data pack or of a blob, checked against the sha256 the tree
 * names before anything else sees it. A mismatch is never served: the plain mirror object is tried
 * (its body is used only if it hashes right), else the read fails with an error naming the object.
 */
import {
  CHUNK_SIZE, httpStatus, isSyncError, sha256Hex, stripEtag, SyncError, type GetOptions, type GetResult, type ObjectStore,
} from '@workspace-sync/shared';

export interface PinnedObject {
  key: string;
  /** v1: the version every read is pinned to; undefined for immutable objects. */
  etag: string | undefined;
  /** Size of the whole object, when known (checked against the answer). */
  size: number | undefined;
  sha256: string | undefined;
}

/** Where v2 bytes are: see V2Content in tree.ts. */
export interface ContentRef {
  sha256: string;
  size: number;
  key: string;
  inPack: boolean;
  offset: number;
  chunks: readonly string[] | undefined;
  plainKey: string;
}

/** The sha256 piece `index` of a v2 file must have: the file's, or its chunk's. */
export function pieceSha(ref: Pick<ContentRef, 'sha256' | 'chunks'>, index: number): string {
  return ref.chunks ? ref.chunks[index]! : ref.sha256;
}

/**
 * Piece `index` (CHUNK_SIZE bytes; the whole file when it has no chunks) of a v2 file, verified.
 * `onMismatch` hears about a damaged object before the fallback is tried.
 */
export async function downloadContent(
  store: ObjectStore, ref: ContentRef, index: number, onMismatch: (key: string, detail: string) => void,
): Promise<Buffer> {
  const start = ref.chunks ? index * CHUNK_SIZE : 0;
  const length = ref.chunks ? Math.min(CHUNK_SIZE, ref.size - start) : ref.size;
  const expected = pieceSha(ref, index);
  const whole = !ref.inPack && start === 0 && length === ref.size;
  let res: GetResult;
  try {
    res = await store.get(ref.key, { range: whole ? undefined : { start: ref.offset + start, end: ref.offset + start + length - 1 } });
  } catch (err) {
    if (!isSyncError(err, 'OBJECT_NOT_FOUND')) throw err;
    onMismatch(ref.key, 'missing');
    return fallback(store, ref, index, err);
  }
  if (res.notModified) throw new Error(`GET s3://${store.bucket}/${ref.key} answered 304 without If-None-Match`);
  if (res.body.length === length && sha256Hex(res.body) === expected) return res.body;
  onMismatch(ref.key, `${res.body.length} bytes at ${ref.offset + start} do not match sha256 ${expected}`);
  return fallback(store, ref, index, undefined);
}

async function fallback(store: ObjectStore, ref: ContentRef, index: number, cause: unknown): Promise<Buffer> {
  const damaged = () => new SyncError('MANIFEST_INVALID',
    `content of s3://${store.bucket}/${ref.plainKey} (sha256 ${pieceSha(ref, index)}) is damaged or missing in ${ref.key}`, {
      hint: 'the bucket holds a damaged object; push the workspace again to rewrite it', cause,
    });
  // The plain object holds the whole file; it stands in for one piece only when it is the whole file.
  if (ref.chunks) throw damaged();
  let res: GetResult;
  try {
    res = await store.get(ref.plainKey, { maxBytes: ref.size });
  } catch (err) {
    if (isSyncError(err, 'OBJECT_NOT_FOUND')) throw damaged();
    throw err;
  }
  if (!res.notModified && res.body.length === ref.size && sha256Hex(res.body) === ref.sha256) return res.body;
  throw damaged();
}

/** Chunk `index` of the object (the whole object when it fits in one chunk). */
export async function downloadPinned(store: ObjectStore, obj: PinnedObject & { size: number }, index: number, chunkSize: number): Promise<Buffer> {
  const start = index * chunkSize;
  return downloadPinnedRange(store, obj, start, Math.min(chunkSize, obj.size - start));
}

/**
 * `length` bytes at `start` of the object; the whole object (checked against its sha256) when that
 * is all of it. `opts.into` gives a buffer to read them into and `opts.maxBytes` refuses a larger
 * answer before it is read (see GetOptions).
 */
export async function downloadPinnedRange(
  store: ObjectStore, obj: PinnedObject, start: number, length: number, opts: Pick<GetOptions, 'into' | 'maxBytes'> = {},
): Promise<Buffer> {
  const whole = start === 0 && length === obj.size;
  let res: GetResult;
  try {
    res = await store.get(obj.key, { ifMatch: obj.etag, range: whole ? undefined : { start, end: start + length - 1 }, ...opts });
  } catch (err) {
    // The range lies past the end of what S3 holds: another, shorter version. A server that
    // honours If-Match (S3, Ceph RGW, the embedded server) says 412 first; one that ignores it says 416.
    if (isSyncError(err) && httpStatus(err.cause) === 416) throw changedUnderneath(store.bucket, obj, 'an object shorter than the range');
    throw err;
  }
  if (res.notModified) throw new Error(`GET s3://${store.bucket}/${obj.key} answered 304 without If-None-Match`);
  const etag = stripEtag(res.etag);
  if ((obj.etag !== undefined && etag !== obj.etag) || (obj.size !== undefined && res.size !== obj.size) || res.body.length !== length) {
    throw changedUnderneath(store.bucket, obj, `ETag ${etag}, ${res.size} bytes`);
  }
  if (whole && obj.sha256 && sha256Hex(res.body) !== obj.sha256) throw changedUnderneath(store.bucket, obj, 'content with another sha256');
  return res.body;
}

function changedUnderneath(bucket: string, obj: PinnedObject, got: string): SyncError {
  return new SyncError('PRECONDITION_FAILED',
    `s3://${bucket}/${obj.key} changed underneath: the manifest names ETag ${obj.etag} (${obj.size} bytes), S3 has ${got}`, {
      hint: 'a push is probably in progress; the mount re-reads the manifest',
    });
}
