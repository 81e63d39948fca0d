/**
 * Publishing a commit: tree packs and the commit object first (immutable, unreferenced until the
 * head names them), then the head with a conditional PUT on the head the plan was based on. That
 * PUT is the commit point. A 412 means another writer committed first, unless the head now names
 * this very commit (a retried PUT whose first answer was lost), which is success.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  commitKey, commitStem, COMMIT_FORMAT, decodeCommit, encodeCommit, FORMAT_VERSION, headKey, isSyncError, MAX_CHANGE_PATHS, treePackKey,
  type Commit, type CommitChanges, type ObjectStore, type TreeRef,
} from '@workspace-sync/shared';
import { headOf } from './remote.js';
import type { TreeBuild } from './trees.js';
import { AGENT_VERSION } from './version.js';
import type { HeadInfo } from './view.js';

export interface CommitTarget {
  store: ObjectStore;
  prefix: string;
  workspace: string;
}

export async function writeTreePacks(t: CommitTarget, packs: TreeBuild['packs']): Promise<void> {
  await Promise.all(packs.map((p) => t.store.put(treePackKey(t.prefix, t.workspace, p.name), p.body, { contentType: 'application/octet-stream' })));
}

export function makeCommit(args: {
  workspace: string; generation: number; parent: string | null; root: TreeRef;
  stats: Commit['stats']; changes: CommitChanges; createdAt: Date;
}): Commit {
  return {
    format: COMMIT_FORMAT, version: FORMAT_VERSION, workspace: args.workspace, generation: args.generation,
    id: randomBytes(8).toString('hex'), parent: args.parent, createdAt: args.createdAt.toISOString(),
    writer: { host: hostname(), agent: `sync-agent/${AGENT_VERSION}` }, root: args.root, stats: args.stats, changes: args.changes,
  };
}

/** Change lists capped as the format says (the counts stay complete). */
export function commitChanges(added: readonly string[], modified: readonly string[], deleted: readonly string[], bytes: number): CommitChanges {
  let room = MAX_CHANGE_PATHS;
  const take = (list: readonly string[]) => {
    const out = [...list].sort().slice(0, room);
    room -= out.length;
    return out;
  };
  const paths = { added: take(added), modified: take(modified), deleted: take(deleted) };
  return {
    added: added.length, modified: modified.length, deleted: deleted.length, bytes, paths,
    truncated: added.length + modified.length + deleted.length > MAX_CHANGE_PATHS,
  };
}

export type PublishResult =
  | { ok: true; head: HeadInfo }
  | { ok: false; current: Commit; etag: string };

/** Writes the commit object, then the head conditionally on `base` (undefined: no head may exist yet). */
export async function publish(t: CommitTarget, commit: Commit, base: HeadInfo | undefined): Promise<PublishResult> {
  const body = encodeCommit(commit);
  await t.store.put(commitKey(t.prefix, t.workspace, commitStem(commit)), body, { contentType: 'application/json' });
  const key = headKey(t.prefix, t.workspace);
  try {
    const { etag } = await t.store.put(key, body, {
      contentType: 'application/json', cacheControl: 'no-cache', ...(base ? { ifMatch: base.etag } : { ifNoneMatch: '*' as const }),
    });
    return { ok: true, head: headOf(commit, etag) };
  } catch (err) {
    if (!isSyncError(err, 'PRECONDITION_FAILED')) throw err;
  }
  const res = await t.store.get(key);
  if (res.notModified) throw new Error('unconditional GET answered 304');
  const current = decodeCommit(res.body, `s3://${t.store.bucket}/${key}`);
  if (current.id === commit.id) return { ok: true, head: headOf(current, res.etag) };
  return { ok: false, current, etag: res.etag };
}
