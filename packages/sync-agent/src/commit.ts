/**
 * Publishing a commit: tree packs and the commit object first (immutable, unreferenced until the
 * head names them), then the head with a conditional PUT on the head the plan was based on. That
 * PUT is the commit point. A 412 means another writer committed first, unless the head now names
 * this very commit (a retried PUT whose first answer was lost), which is success.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  commitKey, commitStem, COMMIT_FORMAT, createTreeReader, decodeCommit, diffTrees, encodeCommit, FORMAT_VERSION, headKey, isSyncError,
  MAX_CHANGE_PATHS, MAX_COMMIT_BYTES, SyncError, treePackKey, type Commit, type CommitChanges, type Logger, type ObjectStore, type TreeRef,
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

function makeCommit(args: {
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
async function publish(t: CommitTarget, commit: Commit, base: HeadInfo | undefined): Promise<PublishResult> {
  const body = encodeCommit(commit);
  await t.store.put(commitKey(t.prefix, t.workspace, commitStem(commit)), body, { contentType: 'application/json' });
  const key = headKey(t.prefix, t.workspace);
  const put = (cond: { ifMatch: string } | { ifNoneMatch: '*' }) => t.store.put(key, body, { contentType: 'application/json', cacheControl: 'no-cache', ...cond });
  try {
    const { etag } = await put(base ? { ifMatch: base.etag } : { ifNoneMatch: '*' });
    return { ok: true, head: headOf(commit, etag) };
  } catch (err) {
    // AWS answers If-Match on a key that is gone (someone deleted the head) with 404: start it again.
    if (base && isSyncError(err, 'OBJECT_NOT_FOUND')) {
      try {
        return { ok: true, head: headOf(commit, (await put({ ifNoneMatch: '*' })).etag) };
      } catch (again) {
        if (!isSyncError(again, 'PRECONDITION_FAILED')) throw again;
      }
    } else if (!isSyncError(err, 'PRECONDITION_FAILED')) {
      throw err;
    }
  }
  const res = await t.store.get(key, { maxBytes: MAX_COMMIT_BYTES });
  if (res.notModified) throw new Error('unconditional GET answered 304');
  const current = decodeCommit(res.body, `s3://${t.store.bucket}/${key}`);
  if (current.id === commit.id) return { ok: true, head: headOf(current, res.etag) };
  return { ok: false, current, etag: res.etag };
}

/** Rounds of rebasing over other writers' commits before giving up with CONFLICT. */
const MAX_REBASES = 5;

export interface CommitRequest {
  workspace: string;
  /** The head the plan was based on (undefined: none yet), and the root tree it had. */
  base: HeadInfo | undefined;
  baseRoot: TreeRef | undefined;
  /** Generation to continue from when there is no head (a v1 manifest's). */
  v1Generation: number;
  build: TreeBuild;
  changes: CommitChanges;
  createdAt: Date;
  /** The delete guard, applied again to what a rebase would delete of the other writer's tree. */
  guard: (deletes: number, of: number) => void;
  log: Logger;
}

export interface CommitResult {
  head: HeadInfo;
  conflicts: number;
  requests: number;
  /** Paths whose plain objects other writers may have written or deleted meanwhile. */
  touched: Set<string>;
}

/**
 * Publishes the commit; on a lost race, rebases this tree over the other writer's commit (which
 * stays in the history) and tries again, a few times, then gives up with CONFLICT.
 */
export async function commitWithRebase(t: CommitTarget, req: CommitRequest): Promise<CommitResult> {
  const { build, createdAt, log } = req;
  let base = req.base;
  let commit = makeCommit({
    workspace: req.workspace, generation: (base?.generation ?? req.v1Generation) + 1, parent: base?.stem ?? null,
    root: build.root, stats: build.stats, changes: req.changes, createdAt,
  });
  const result: CommitResult = { head: undefined as unknown as HeadInfo, conflicts: 0, requests: 0, touched: new Set() };
  for (let round = 0; ; round++) {
    const res = await publish(t, commit, base);
    result.requests += 2;
    if (res.ok) return { ...result, head: res.head };
    if (round >= MAX_REBASES) {
      throw new SyncError('CONFLICT', `workspace "${req.workspace}" keeps being pushed by another writer (${res.current.writer.host}); gave up after ${MAX_REBASES} rebases`, {
        hint: 'run one sync-agent per workspace, or retry once the other writer is done; nothing was lost (sync-agent log shows every generation)',
      });
    }
    result.conflicts++;
    log.warn({ workspace: req.workspace, generation: res.current.generation, writer: res.current.writer },
      `workspace "${req.workspace}" was pushed by ${res.current.writer.host} while this sync ran: publishing this machine's copy over it (its generation ${res.current.generation} stays in the history)`);
    const rebase = await rebaseOver(t, res.current, req.baseRoot, build.root);
    result.requests += rebase.requests;
    req.guard(rebase.theirsOnly, res.current.stats.files);
    for (const p of rebase.touched) result.touched.add(p);
    base = headOf(res.current, res.etag);
    commit = makeCommit({
      workspace: req.workspace, generation: res.current.generation + 1, parent: base.stem, root: build.root, stats: build.stats,
      changes: rebase.changes, createdAt,
    });
  }
}

/**
 * What rebasing over another writer's commit takes: which paths it may have written as plain objects
 * (everything that differs between our base and its tree), how many of its files this tree drops
 * (for the delete guard), and the changes this commit makes relative to it.
 */
async function rebaseOver(
  t: CommitTarget, theirs: Commit, ourBase: TreeRef | undefined, ours: TreeRef,
): Promise<{ touched: string[]; theirsOnly: number; changes: CommitChanges; requests: number }> {
  const reader = createTreeReader(t);
  const [theirChanges, mine] = await Promise.all([diffTrees(reader, ourBase, theirs.root), diffTrees(reader, theirs.root, ours)]);
  const touched = [
    ...theirChanges.added.map((e) => e.path), ...theirChanges.modified.map((m) => m.after.path),
    ...theirChanges.deleted.map((e) => e.path), ...theirChanges.touched.map((e) => e.path),
  ];
  const bytes = [...mine.added, ...mine.modified.map((m) => m.after)].reduce((n, e) => n + (e.kind === 'file' ? e.size : 0), 0);
  return {
    touched, theirsOnly: mine.deleted.length, requests: reader.fetches,
    changes: commitChanges(mine.added.map((e) => e.path), mine.modified.map((m) => m.after.path), mine.deleted.map((e) => e.path), bytes),
  };
}
