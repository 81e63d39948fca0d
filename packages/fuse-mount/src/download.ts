/**
 * One GET pinned to a version, and checked: shared by the fetcher (main thread) and the prefetch
 * worker. If-Match is sent, and since some servers ignore it, the answer's ETag and size (and the
 * manifest's sha256, for whole objects) are verified too. Any difference is PRECONDITION_FAILED:
 * the object changed underneath the manifest, and the caller re-resolves instead of mixing versions.
 */
import { httpStatus, isSyncError, sha256Hex, stripEtag, SyncError, type GetResult, type ObjectStore } from '@workspace-sync/shared';

export interface PinnedObject {
  key: string;
  etag: string;
  size: number;
  sha256: string | undefined;
}

/** Chunk `index` of the object (the whole object when it fits in one chunk). */
export async function downloadPinned(store: ObjectStore, obj: PinnedObject, index: number, chunkSize: number): Promise<Buffer> {
  const start = index * chunkSize;
  return downloadPinnedRange(store, obj, start, Math.min(chunkSize, obj.size - start));
}

/** `length` bytes at `start` of the object; the whole object (checked against its sha256) when that is all of it. */
export async function downloadPinnedRange(store: ObjectStore, obj: PinnedObject, start: number, length: number): Promise<Buffer> {
  const whole = start === 0 && length === obj.size;
  let res: GetResult;
  try {
    res = await store.get(obj.key, { ifMatch: obj.etag, range: whole ? undefined : { start, end: start + length - 1 } });
  } catch (err) {
    // The range lies past the end of what S3 holds: another, shorter version. A server that
    // honours If-Match (Ceph RGW) says 412 first; one that ignores it (s3rver) says 416.
    if (isSyncError(err) && httpStatus(err.cause) === 416) throw changedUnderneath(store.bucket, obj, 'an object shorter than the range');
    throw err;
  }
  if (res.notModified) throw new Error(`GET s3://${store.bucket}/${obj.key} answered 304 without If-None-Match`);
  const etag = stripEtag(res.etag);
  if (etag !== obj.etag || res.size !== obj.size || res.body.length !== length) {
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
