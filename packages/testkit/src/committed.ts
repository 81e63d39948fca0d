/**
 * Test-side reading of what a workspace's head commits to (format v2): the commit, every entry of
 * its tree, and each file's bytes from its data pack or blob, verified against the sha256 the tree
 * states. Integrity tests compare this with the local tree (and rclone's copy of the plain objects
 * with it), so that "byte-exact" is checked end to end, not trusted from the writer's own state.
 */
import {
  blobKey, CHUNK_SIZE, createTreeReader, decodeCommit, headKey, isSyncError, packKey, sha256Hex, walkTree,
  type Commit, type FlatEntry, type ObjectStore,
} from '@workspace-sync/shared';

export interface Committed {
  commit: Commit;
  /** ETag of the head object. */
  etag: string;
  /** Every file and symlink of the tree, by path. */
  entries: Map<string, FlatEntry>;
}

/** The workspace's current commit and tree, or undefined when it has no head. */
export async function readCommitted(store: ObjectStore, prefix: string, workspace: string): Promise<Committed | undefined> {
  let res;
  try {
    res = await store.get(headKey(prefix, workspace));
  } catch (err) {
    if (isSyncError(err, 'OBJECT_NOT_FOUND')) return undefined;
    throw err;
  }
  if (res.notModified) throw new Error('unconditional GET answered 304');
  const commit = decodeCommit(res.body, headKey(prefix, workspace));
  return { commit, etag: res.etag, entries: await readTree(store, prefix, workspace, commit.root) };
}

export async function readTree(store: ObjectStore, prefix: string, workspace: string, root: Commit['root']): Promise<Map<string, FlatEntry>> {
  const entries = new Map<string, FlatEntry>();
  await walkTree(createTreeReader({ store, prefix, workspace }), root, (e) => { if (e.kind !== 'dir') entries.set(e.path, e); });
  return entries;
}

/** A committed file's bytes from the immutable store, checked against its sha256 (and its chunks'). */
export async function readCommittedFile(store: ObjectStore, prefix: string, workspace: string, e: FlatEntry): Promise<Buffer> {
  if (e.kind !== 'file') throw new Error(`${e.path} is a symlink`);
  if (e.size === 0) return Buffer.alloc(0);
  const get = async (key: string, range?: { start: number; end: number }) => {
    const res = await store.get(key, range ? { range } : {});
    if (res.notModified) throw new Error('unconditional GET answered 304');
    return res.body;
  };
  const body = e.pack !== undefined
    ? await get(packKey(prefix, workspace, e.pack), { start: e.offset, end: e.offset + e.size - 1 })
    : await get(blobKey(prefix, workspace, e.sha256));
  if (sha256Hex(body) !== e.sha256) throw new Error(`${e.path}: stored bytes do not match the tree's sha256`);
  e.chunks?.forEach((sha, i) => {
    if (sha256Hex(body.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)) !== sha) throw new Error(`${e.path}: chunk ${i} does not match`);
  });
  return body;
}
