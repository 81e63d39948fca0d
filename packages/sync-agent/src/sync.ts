/**
 * The core both push and watch run once they know the local side of a workspace (a hashed snapshot):
 * remote base → plan → guards → transfers (content and plain objects) → trees → commit, published by
 * a conditional write of the head (the commit point) → state → deletes of plain objects.
 *
 * A crash anywhere before the head is written leaves the previous commit valid and fully readable
 * (everything it references is immutable); the journal lets the next run reuse content that landed
 * and tells it which plain objects it cannot vouch for. A lost race for the head is rebased: this
 * machine's tree over the other writer's commit, which stays in the history.
 */
import { gzipSync } from 'node:zlib';
import {
  blobKey, COMMIT_FORMAT, createTreeReader, FORMAT_VERSION, headKey, manifestKey, objectKey, packKey, SyncError, treePackKey, walkTree,
  type AgentConfig, type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import { commitChanges, commitWithRebase, writeTreePacks } from './commit.js';
import { collectGarbage } from './gc.js';
import { decideOutcome, plainEtag } from './outcome.js';
import { newObjectName, PackWriter } from './packer.js';
import type { MutableMap } from './overlay.js';
import { allPaths, checkDeleteGuard, planSync, type ContentLocation, type HashedEntry, type Plan } from './planner.js';
import { loadBase } from './remote.js';
import type { Skipped } from './scan.js';
import { addPending, clearPending, type AgentState, type HashRecord, type StateStore } from './state.js';
import { buildTrees } from './trees.js';
import { executeTransfers, type TransferContext, type TransferResult } from './uploader.js';
import { applyCommit, contentAt, type ViewEntry } from './view.js';

/** An object the server refused (after the client's retries) is tried again after this, or when it changes. */
const REJECTED_BACKOFF_MS = 5 * 60_000;

export interface SyncOptions {
  config: AgentConfig;
  store: ObjectStore;
  log: Logger;
  workspace: string;
  dryRun?: boolean;
  force?: boolean;
  /** Deletes this workspace already had in the recent burst (watch), counted by the delete guard. */
  recentDeletes?: number;
  onPlan?: (plan: Plan) => void;
  onBytes?: TransferContext['onBytes'];
  onFile?: TransferContext['onFile'];
  signal?: AbortSignal;
}

export interface PushReport {
  workspace: string;
  dryRun: boolean;
  uploaded: number;
  copied: number;
  deleted: number;
  unchanged: number;
  skipped: Skipped[];
  bytes: number;
  seconds: number;
  hashed: number;
  /** A new commit was published (the head moved). */
  manifestWritten: boolean;
  /** ETag of the head after this sync. */
  manifestEtag: string | undefined;
  generation: number;
  requests: number;
  trustedState: boolean;
  /** Answered from the last push's clean marker (clean-marker.ts): the walk matched it, the head is unchanged, nothing else was read. */
  marker: boolean;
  /** Other writers' commits this sync was rebased over. */
  conflicts: number;
  changes: { added: number; modified: number; deleted: number };
  plan?: { uploads: string[]; deletes: string[]; uploadBytes: number; changed: string[] };
}

/** The local side of a workspace: every synced entry, hashed, with the hash records made now. */
export interface LocalSnapshot {
  wsDir: string;
  /** Owned by this sync, which updates it to what ends up in the bucket. */
  entries: MutableMap<string, HashedEntry>;
  /** Owned by this sync too: it becomes the records the sync saves. */
  records: Map<string, HashRecord>;
  skipped: Skipped[];
  hashed: number;
  /** Paths that may have changed (a watch batch); undefined: look at everything. */
  paths?: Iterable<string>;
  /** Paths that left the local side (their stat records go). */
  gone?: Iterable<string>;
}

export interface SyncOutcome {
  report: PushReport;
  /** The state after this sync (the base state on a dry run). */
  state: AgentState;
  /** The local entries as they now are in the bucket. */
  local: MutableMap<string, HashedEntry>;
}

export async function syncSnapshot(
  opts: SyncOptions, snap: LocalSnapshot, stateStore: StateStore, saved: AgentState | undefined, started: number,
): Promise<SyncOutcome> {
  const { config, store, log, workspace } = opts;
  const target = { store, prefix: config.prefix, workspace };
  const base = await loadBase({ ...target, wsDir: snap.wsDir, saved, local: snap.entries, concurrency: config.concurrency });
  const st = base.state;
  const view = st.view;
  if (snap.entries.size === 0 && view.entries.size > 0) {
    throw new SyncError('WORKSPACE_EMPTY', `workspace "${workspace}" has no files to sync but its last commit has ${view.entries.size}; refusing to delete them`, {
      hint: `check ${snap.wsDir} (an unmounted disk or a wrong --root?); nothing was changed in the bucket`,
    });
  }

  // Plain objects left unknown are retried every sync, except those the server keeps refusing: those
  // wait for their backoff (or a change of their own), so one bad object never stalls the workspace.
  const now = Date.now();
  const retry = [...st.plain.keys()].filter((p) => !((st.rejected.get(p) ?? 0) > now));
  const paths = base.trusted && snap.paths
    ? new Set([...snap.paths, ...retry, ...st.pendingDeletes])
    : allPaths(snap.entries, view, [...retry, ...st.pendingDeletes]);
  const plan = planSync({ local: snap.entries, view, paths, skipped: snap.skipped, plain: st.plain, pending: st.pending });
  // A burst (watch) counts as one: its earlier deletes count here, against the size before it.
  const recent = opts.recentDeletes ?? 0;
  checkDeleteGuard(workspace, plan.removed.length + recent, view.entries.size + recent, { maxDelete: config.maxDelete, force: !!opts.force });
  opts.onPlan?.(plan);

  const report: PushReport = {
    workspace, dryRun: !!opts.dryRun, uploaded: 0, copied: 0, deleted: 0, unchanged: 0, skipped: [...snap.skipped],
    bytes: 0, seconds: 0, hashed: snap.hashed, manifestWritten: false, manifestEtag: view.head?.etag,
    generation: view.head?.generation ?? view.v1Generation, requests: base.requests, trustedState: base.trusted, marker: false, conflicts: 0,
    changes: { added: plan.changes.added.length, modified: plan.changes.modified.length, deleted: plan.changes.deleted.length },
  };
  report.unchanged = snap.entries.size - new Set([...plan.changed, ...plan.plainWrites].map((e) => e.path)).size;
  const finish = (local: MutableMap<string, HashedEntry>): SyncOutcome => {
    report.seconds = (performance.now() - started) / 1000;
    return { report, state: st, local };
  };
  if (opts.dryRun) {
    report.plan = {
      uploads: [...new Set([...plan.newContent, ...plan.plainWrites].map((e) => e.path))].sort(),
      changed: plan.changed.map((e) => e.path).sort(), deletes: plan.plainDeletes, uploadBytes: plan.uploadBytes,
    };
    return finish(snap.entries);
  }

  // The journal and the in-memory state learn the same things, so a retried batch plans from what really happened.
  const journal: TransferContext['journal'] = {
    intent(ps) { stateStore.intent(ps); for (const p of ps) st.plain.set(p, undefined); },
    plain(p, o) { stateStore.plain(p, o); st.plain.set(p, o); },
    content(s, l) { stateStore.content(s, l); addPending(st, s, l, Date.now()); },
  };
  const packs = new PackWriter({
    ...target, landed: (pack) => { for (const [s, loc] of pack.members) journal.content(s, loc); },
  });
  const contentOf = (sha: string): ContentLocation | undefined =>
    (view.head !== undefined ? contentAt(view, sha) : undefined) ?? st.pending.get(sha) ?? packs.locations.get(sha);
  const ctx: TransferContext = {
    ...target, wsDir: snap.wsDir, concurrency: config.concurrency, multipartThreshold: config.multipartThreshold, packs, contentOf, journal,
    onBytes: opts.onBytes, onFile: opts.onFile, log, signal: opts.signal, recordOf: (p) => snap.records.get(p),
  };
  // When the oldest content this commit may name landed: this sync's start, or an interrupted run's upload.
  const oldestContentAt = Math.min(Date.now() - (performance.now() - started), st.pendingSince ?? Infinity);
  const transfers = await executeTransfers(plan, ctx);
  count(report, transfers);
  for (const p of transfers.landed.keys()) st.rejected.delete(p);
  for (const p of transfers.rejected) st.rejected.set(p, now + REJECTED_BACKOFF_MS);
  report.skipped.push(...transfers.skipped, ...transfers.notMirrored);

  const out = decideOutcome({
    view, plain: st.plain, local: snap.entries, records: snap.records, gone: snap.gone ?? [], plan, transfers, contentOf,
  });
  const local = snap.entries;
  report.changes = { added: out.changes.added.length, modified: out.changes.modified.length, deleted: out.changes.deleted.length };
  // A full snapshot follows anyway when the base was not trusted: no need to journal every entry first.
  const saveAfter = stateStore.compactDue || !base.trusted;
  const { upserts, removes, plainDeletes, records, recordRemoves } = out;

  if (out.mustCommit) {
    const createdAt = new Date();
    const build = buildTrees(view, out.treeUpserts, removes, createdAt.getTime(), newObjectName);
    await writeTreePacks(target, build.packs);
    report.requests += build.packs.length;
    await checkContentStillThere(target, build, oldestContentAt, config.gcGrace);
    const committed = await commitWithRebase(target, {
      workspace, base: view.head, baseRoot: view.head ? view.dirs.get('')?.ref : undefined, v1Generation: view.v1Generation, build,
      changes: commitChanges(out.changes.added, out.changes.modified, out.changes.deleted, out.changes.bytes), createdAt, log,
      guard: (deletes, of) => checkDeleteGuard(workspace, deletes, of, { maxDelete: config.maxDelete, force: !!opts.force }),
    });
    report.requests += committed.requests;
    report.conflicts = committed.conflicts;
    // Plain objects another writer may have written or deleted: rewritten (or deleted) from this tree below.
    for (const p of committed.touched) if (!local.has(p)) plainDeletes.add(p);
    applyCommit(view, { upserts, removes, dirs: build.dirs, children: build.children, head: committed.head });
    for (const p of upserts.keys()) st.plain.delete(p);
    if (!saveAfter) {
      stateStore.commit({
        upserts, removes, dirs: build.dirs, children: build.children, head: committed.head, records, recordRemoves, deletes: [...plainDeletes],
      });
    }
    const rewrite = [...committed.touched].filter((p) => local.has(p));
    if (rewrite.length > 0) journal.intent(rewrite);
    report.manifestWritten = true;
    report.manifestEtag = committed.head.etag;
    report.generation = committed.head.generation;
    if (base.v1Manifest) await retireV1(target, log);
    if (config.gcEvery > 0 && report.generation % config.gcEvery === 0) {
      // Best effort: a failed collection leaves garbage for the next one, never a broken commit.
      await collectGarbage({
        ...target, keepGenerations: config.keepGenerations, keepForMs: config.keepFor, graceMs: config.gcGrace, dryRun: false, log,
      }).catch((err: unknown) => log.warn({ workspace, err: (err as Error).message }, 'garbage collection failed; it runs again later'));
    }
  } else if (upserts.size > 0 || records.size > 0 || recordRemoves.length > 0 || plainDeletes.size > 0) {
    // Only plain objects or the stat cache changed: the commit stays, the state learns it.
    applyCommit(view, { upserts, removes: new Set(), dirs: new Map(), children: new Map(), head: view.head! });
    for (const p of upserts.keys()) st.plain.delete(p);
    stateStore.commit({ upserts, removes: new Set(), dirs: new Map(), children: new Map(), head: view.head!, records, recordRemoves, deletes: [...plainDeletes] });
  }
  for (const [p, r] of records) st.records.set(p, r);
  for (const p of recordRemoves) st.records.delete(p);
  for (const p of plainDeletes) st.pendingDeletes.add(p);
  clearPending(st);

  // Plain objects the other writer touched and this tree has: written again now the head is ours. A path
  // this sync committed without writing its plain object (its content was known) is one of them too.
  const failed = new Set(transfers.skipped.map((s) => s.path));
  const repairs = [...st.plain]
    .filter(([p, o]) => o === undefined && local.has(p) && !transfers.landed.get(p)?.plain && !failed.has(p))
    .map(([p]) => local.get(p)!);
  if (repairs.length > 0) {
    const again = await executeTransfers({ changed: [], newContent: [], plainWrites: repairs }, { ...ctx, packs: new PackWriter({ ...target, landed: () => {} }) });
    count(report, again);
    const fixed = new Map<string, ViewEntry>();
    for (const [p, l] of again.landed) {
      const e = view.entries.get(p);
      const etag = plainEtag(l.plain, l.entry);
      if (e && etag) { fixed.set(p, { ...e, etag }); st.plain.delete(p); }
    }
    applyCommit(view, { upserts: fixed, removes: new Set(), dirs: new Map(), children: new Map(), head: view.head! });
    stateStore.commit({ upserts: fixed, removes: new Set(), dirs: new Map(), children: new Map(), head: view.head!, records: new Map(), recordRemoves: [], deletes: [] });
  }

  // Another writer may have committed since (its tree may have these paths): deleting now could take
  // its files from the mirror, so the deletes wait for a run that sees the head it builds on.
  if (st.pendingDeletes.size > 0 && view.head && (await store.head(headKey(config.prefix, workspace)))?.etag !== view.head.etag) {
    log.debug({ workspace }, 'the head moved since this commit: plain deletes wait for the next sync');
  } else if (st.pendingDeletes.size > 0) {
    const keys = [...st.pendingDeletes].map((p) => objectKey(config.prefix, workspace, p));
    const { failed } = await store.deleteMany(keys);
    report.requests += Math.ceil(keys.length / 1000);
    const failedKeys = new Set(failed.map((f) => f.key));
    for (const f of failed) log.warn({ key: f.key, error: f.message }, 'delete failed; will retry on the next sync');
    const done = [...st.pendingDeletes].filter((p) => !failedKeys.has(objectKey(config.prefix, workspace, p)));
    report.deleted += done.length;
    for (const p of done) { st.pendingDeletes.delete(p); st.plain.delete(p); }
    stateStore.deleted(done);
  }
  if (saveAfter || stateStore.compactDue) stateStore.save(st);
  return finish(local);
}

/**
 * Garbage collection spares anything younger than its grace period and everything retained commits
 * use. A push that ran for more than half the grace period (or reuses content an interrupted run
 * uploaded that long ago) checks, before committing to them, that the packs and blobs its new tree
 * objects name are still there: its own uploads are unreferenced until the head names them.
 */
async function checkContentStillThere(
  t: { store: ObjectStore; prefix: string; workspace: string }, build: ReturnType<typeof buildTrees>, oldestContentAt: number, graceMs: number,
): Promise<void> {
  if (Date.now() - oldestContentAt < graceMs / 2) return;
  const justWritten = new Set(build.packs.map((p) => p.name));
  const keys = new Set<string>();
  await walkTree(createTreeReader(t), build.root, (e) => {
    if (e.kind === 'dir') {
      if (justWritten.has(e.ref[0])) return undefined;
      keys.add(treePackKey(t.prefix, t.workspace, e.ref[0]));
      return false;
    }
    if (e.kind === 'file' && e.size > 0) keys.add(e.pack !== undefined ? packKey(t.prefix, t.workspace, e.pack) : blobKey(t.prefix, t.workspace, e.sha256));
    return undefined;
  }, '', (_path, parts) => {
    for (const p of parts) if (!justWritten.has(p[0])) keys.add(treePackKey(t.prefix, t.workspace, p[0]));
  });
  for (const key of keys) {
    if (!(await t.store.head(key))) {
      throw new SyncError('CONFLICT', `this push ran longer than half the gc grace period and ${key}, which its commit needs, was removed meanwhile`, {
        hint: 'push again (it uploads what is missing); raise --gc-grace if pushes take this long',
      });
    }
  }
}

function count(report: PushReport, t: TransferResult): void {
  report.uploaded += t.uploaded;
  report.copied += t.copied;
  report.bytes += t.bytes;
  report.requests += t.uploaded + t.copied + t.blobs;
}

/**
 * After the first v2 commit of a workspace last pushed in v1: its manifest becomes a stub whose
 * version says 2, so a v1 mount refuses it ("upgrade workspace-sync") instead of serving a view that
 * no longer changes. Best effort: the head is already the truth for v2 readers.
 */
async function retireV1(t: { store: ObjectStore; prefix: string; workspace: string }, log: Logger): Promise<void> {
  const stub = { format: 'workspace-sync.manifest', version: FORMAT_VERSION, workspace: t.workspace, head: headKey(t.prefix, t.workspace), commitFormat: COMMIT_FORMAT };
  try {
    await t.store.put(manifestKey(t.prefix, t.workspace), gzipSync(Buffer.from(JSON.stringify(stub))), { contentType: 'application/json', cacheControl: 'no-cache' });
  } catch (err) {
    log.warn({ workspace: t.workspace, err: (err as Error).message }, 'could not replace the v1 manifest with a stub; v1 mounts keep showing the last v1 push');
  }
}
