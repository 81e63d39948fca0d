/**
 * A workspace's history: its commits (one per generation, immutable, under `.sync/<ws>/commits/`)
 * and the chain from the head back through `parent`. One LIST names every commit; bodies are
 * fetched in parallel, only for the commits asked for.
 */
import PQueue from 'p-queue';
import {
  commitKey, commitsPrefix, decodeCommit, headKey, isCommitStem, isSyncError, MAX_COMMIT_BYTES, SyncError,
  type Commit, type ObjectStore,
} from '@workspace-sync/shared';

export interface CommitListing {
  stem: string;
  generation: number;
  /** When the commit object was written (the listing's LastModified). */
  lastModified: Date | undefined;
  size: number;
}

export interface History {
  /** The head's commit and ETag; undefined when the workspace has no v2 commit. */
  head: { commit: Commit; etag: string } | undefined;
  /** Every commit object in the bucket, newest generation first. */
  listed: CommitListing[];
}

export async function loadHistory(store: ObjectStore, prefix: string, workspace: string): Promise<History> {
  const [head, listed] = await Promise.all([readHead(store, prefix, workspace), listCommits(store, prefix, workspace)]);
  return { head, listed };
}

export async function readHead(store: ObjectStore, prefix: string, workspace: string): Promise<{ commit: Commit; etag: string } | undefined> {
  const key = headKey(prefix, workspace);
  try {
    const res = await store.get(key, { maxBytes: MAX_COMMIT_BYTES });
    if (res.notModified) throw new Error('unconditional GET answered 304');
    return { commit: decodeCommit(res.body, `s3://${store.bucket}/${key}`), etag: res.etag };
  } catch (err) {
    if (isSyncError(err, 'OBJECT_NOT_FOUND')) return undefined;
    throw err;
  }
}

export async function listCommits(store: ObjectStore, prefix: string, workspace: string): Promise<CommitListing[]> {
  const base = commitsPrefix(prefix, workspace);
  const out: CommitListing[] = [];
  for await (const item of store.list(base)) {
    if ('commonPrefix' in item) continue;
    const name = item.key.slice(base.length);
    if (!name.endsWith('.json')) continue;
    const stem = name.slice(0, -'.json'.length);
    if (!isCommitStem(stem)) continue;
    out.push({ stem, generation: Number(stem.slice(0, 12)), lastModified: item.lastModified, size: item.size });
  }
  return out.sort((a, b) => b.generation - a.generation || (a.stem < b.stem ? 1 : -1));
}

export async function readCommit(store: ObjectStore, prefix: string, workspace: string, stem: string): Promise<Commit> {
  const key = commitKey(prefix, workspace, stem);
  const res = await store.get(key, { maxBytes: MAX_COMMIT_BYTES });
  if (res.notModified) throw new Error('unconditional GET answered 304');
  const commit = decodeCommit(res.body, `s3://${store.bucket}/${key}`);
  if (commit.workspace !== workspace || `${String(commit.generation).padStart(12, '0')}-${commit.id}` !== stem) {
    throw new SyncError('MANIFEST_INVALID', `commit ${key} does not describe itself (workspace ${commit.workspace}, generation ${commit.generation})`, {
      hint: 'the object was copied or written by something else; it is ignored',
    });
  }
  return commit;
}

/**
 * The chain of commits from the head back through `parent`, newest first, at most `limit` long. It
 * ends at the first commit, or where garbage collection removed the rest.
 */
export async function chainFromHead(store: ObjectStore, prefix: string, workspace: string, history: History, limit = Infinity): Promise<Commit[]> {
  const present = new Set(history.listed.map((c) => c.stem));
  const out: Commit[] = [];
  let next = history.head?.commit;
  // Read ahead: the chain is usually the newest commits in order, so their bodies can load in parallel.
  const queue = new PQueue({ concurrency: 16 });
  const bodies = new Map<string, Promise<Commit | undefined>>();
  const fetchBody = (stem: string) => {
    let p = bodies.get(stem);
    if (!p) {
      p = queue.add(() => readCommit(store, prefix, workspace, stem).catch((err: unknown) => {
        if (isSyncError(err, 'OBJECT_NOT_FOUND') || isSyncError(err, 'MANIFEST_INVALID')) return undefined;
        throw err;
      })) as Promise<Commit | undefined>;
      bodies.set(stem, p);
    }
    return p;
  };
  // Errors surface where a body is awaited below; a prefetch nobody awaits must not crash the process.
  for (const c of history.listed.slice(0, Math.min(limit, 256))) fetchBody(c.stem).catch(() => undefined);
  while (next && out.length < limit) {
    out.push(next);
    const parent = next.parent;
    if (!parent || !present.has(parent)) break;
    next = await fetchBody(parent);
  }
  queue.clear();
  return out;
}
