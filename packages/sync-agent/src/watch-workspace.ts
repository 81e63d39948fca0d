/**
 * One workspace under watch: its filter, its directory watcher, its batcher and its sync loop.
 * Pipeline: inotify event → normalize (dir-watcher.ts) → filter → coalesce/batch (batcher.ts) → sync
 * (incremental.ts for a batch, the push path for a reconcile).
 *
 * What the loop does next (batch, reconcile, back off, wait for a change) is decided by the pure
 * functions of watch-loop.ts; this class feeds them its inputs, keeps one timer (on the injected
 * clock) for the time they name, and does the I/O.
 *
 * Concurrency rules (one JS thread; what matters is what may interleave across awaits):
 * - At most one sync (batch or reconcile) of a workspace runs at a time: `run()` returns at once while
 *   one is in flight, and the end of every sync schedules the next. Workspaces sync independently.
 * - Events only ever go into the batcher. A sync takes its batch when it starts and owns it; if the sync
 *   fails the batch goes back under the newer events (coalescing does not depend on order).
 * - `mirror` (the local view and state index as of the last sync) is replaced only by a successful sync.
 * - The watcher is swapped (after an ignore-file change, or to polling after ENOSPC) only inside a sync:
 *   the new watcher is ready before the old one closes, so no event falls between the two.
 * - A git index change replaces the filter at once (a sync in flight keeps the one it started with) and
 *   queues the paths whose tracked state changed, like events.
 */
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import {
  createFilter, errorProperties, isSafeRelativePath, isSyncError, realClock, trackedChanges,
  type AgentConfig, type Clock, type Filter, type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import { Batcher, type BatchPolicy } from './batcher.js';
import type { FsChange, PendingChange } from './coalesce.js';
import { mirrorFrom, syncChanges, type ChangedPaths, type Mirror } from './incremental.js';
import { watchIndexFiles, type IndexWatcher } from './index-watcher.js';
import { reconcileWorkspace, workspaceStateStore } from './push.js';
import type { Skipped } from './scan.js';
import type { StateStore } from './state.js';
import type { SyncOutcome } from './sync.js';
import { INITIAL_LOOP_STATE, next, step, type LoopInput, type LoopState, type Next, type WorkspaceStatus } from './watch-loop.js';
import type { WatchMetrics } from './watch-metrics.js';
import { watchTree, type TreeWatcher } from './dir-watcher.js';

export interface WatchContext {
  config: AgentConfig;
  store: ObjectStore;
  log: Logger;
  /** Allow deletes beyond the safety limit (as `push --force`). */
  force: boolean;
  policy: BatchPolicy;
  /** Poll instead of inotify from the start (`--poll`), every this many ms. */
  pollMs: number | undefined;
  /** Polling interval after falling back from inotify (ENOSPC). */
  fallbackPollMs: number;
  metrics: WatchMetrics;
  /** Called on every sync failure that is not the workspace's own fault; logs once per outage. */
  remoteFailed(workspace: string, err: unknown): void;
  remoteOk(): void;
  /** The inotify watch limit was hit while watching this workspace. */
  inotifyLimit(workspace: string, err: Error): void;
  /** The loop's timers and times (default: the real clock). */
  clock?: Clock;
  /** How directories are watched (default: dir-watcher.ts); tests pass a fake to drive events. */
  watchTree?: typeof watchTree;
}

export type { WorkspaceStatus };

export interface WorkspaceSummary {
  workspace: string;
  status: WorkspaceStatus;
  syncs: number;
  uploaded: number;
  copied: number;
  deleted: number;
  bytes: number;
  errors: number;
  queued: number;
  polling: boolean;
  lastSyncAt: string | undefined;
  /** Why the workspace is refused, failing or missing. */
  reason: string | undefined;
  /** Files the last sync could not store for a reason that may pass (kept changing, refused by the server). */
  unsynced: Skipped[];
}

/** Deletes within this window count as one burst for the delete guard (a slow `rm -r` is refused as a whole). */
const DELETE_WINDOW_MS = 5 * 60_000;

/** How often the git index files are stat'ed when the watcher itself is not polling. */
const INDEX_POLL_MS = 500;

export class WorkspaceSync {
  private loop: LoopState = INITIAL_LOOP_STATE;
  private filter: Filter;
  private watcher: TreeWatcher | undefined;
  private readonly batcher: Batcher;
  private readonly stateStore: StateStore;
  private readonly indexWatch: IndexWatcher;
  private readonly clock: Clock;
  private mirror: Mirror | undefined;
  private pollMs: number | undefined;
  private inFlight: Promise<void> | undefined;
  private cancelTimer: (() => void) | undefined;
  private lastSyncAt: number | undefined;
  private readonly totals = { syncs: 0, uploaded: 0, copied: 0, deleted: 0, bytes: 0, errors: 0 };
  /** Tree deletes of recent syncs, for the burst-wide delete guard. */
  private recentDeletes: Array<{ at: number; n: number }> = [];
  /** Files not synced for a reason that may pass (unstable, refused by the server), as of the last sync. */
  private unsynced: Skipped[] = [];
  private readonly reported = new Set<string>();
  private firstAttempt: () => void = () => {};
  /** Resolves after the first sync attempt (successful or not). */
  readonly started: Promise<void>;

  constructor(readonly name: string, private readonly ctx: WatchContext) {
    this.clock = ctx.clock ?? realClock;
    try {
      this.filter = this.newFilter();
    } catch {
      // An unreadable git index: watch nothing until the first sync reads it again and reports the error.
      this.filter = createFilter({ root: ctx.config.root, workspace: name, excludes: ['*'], gitIndex: false });
      this.loop = step(this.loop, { type: 'index-unreadable' });
    }
    this.batcher = new Batcher(ctx.policy);
    this.stateStore = workspaceStateStore({ config: ctx.config, workspace: name, log: ctx.log });
    this.pollMs = ctx.pollMs;
    this.indexWatch = watchIndexFiles(() => this.indexChanged(), ctx.pollMs ?? INDEX_POLL_MS);
    this.started = new Promise((resolve) => { this.firstAttempt = resolve; });
  }

  get status(): WorkspaceStatus {
    return this.loop.status;
  }

  get reason(): string | undefined {
    return this.loop.reason;
  }

  get queued(): number {
    return this.batcher.size;
  }

  get polling(): boolean {
    return this.watcher?.polling ?? this.pollMs !== undefined;
  }

  /** What the loop waits for now, and until when. */
  get next(): Next {
    const now = this.clock.now();
    return next(this.loop, this.batcher.size, this.batcher.dueAt(now), now);
  }

  watchCount(): number {
    return this.watcher?.watchCount() ?? 0;
  }

  start(): void {
    void this.createWatcher().then((w) => {
      if (this.loop.stopped || this.loop.status === 'missing') { void w.close(); return; }
      const previous = this.watcher;
      this.watcher = w;
      void previous?.close();
      this.dispatch({ type: 'watching' });
    });
  }

  /** The workspace directory is gone: stop watching it, delete nothing, wait for it to come back. */
  async missing(): Promise<void> {
    if (this.loop.status === 'missing' || this.loop.stopped) return;
    this.dispatch({ type: 'directory-gone', reason: 'the workspace directory disappeared; nothing is deleted from the bucket until it returns' });
    this.ctx.log.warn({ workspace: this.name }, 'workspace directory disappeared: nothing is deleted from the bucket; it syncs again when the directory returns');
    this.batcher.clear();
    this.indexWatch.set([]);
    this.firstAttempt();
    const w = this.watcher;
    this.watcher = undefined;
    await w?.close();
  }

  /** The workspace directory is back (or appeared): watch it and reconcile. */
  resume(): void {
    if (this.loop.status !== 'missing' || this.loop.stopped) return;
    this.ctx.log.info({ workspace: this.name }, 'workspace directory is back: reconciling');
    this.dispatch({ type: 'directory-back' });
    this.start();
  }

  /** The remote is back: retry now rather than at the end of the backoff. */
  retryNow(): void {
    this.dispatch({ type: 'remote-back' });
  }

  /** Periodic safety net: a stat-based reconcile with freshly read ignore files. */
  rescan(): void {
    this.dispatch({ type: 'rescan' });
  }

  /** The root .gitignore changed: every decision of the filter may have changed. */
  rootIgnoreChanged(): void {
    this.dispatch({ type: 'root-ignore' });
  }

  /** Stops watching; with `flush`, syncs what is queued first. Returns whether everything got synced. */
  async stop(flush: boolean): Promise<boolean> {
    this.dispatch({ type: 'stop' });
    this.indexWatch.close();
    const w = this.watcher;
    this.watcher = undefined;
    await w?.close();
    await this.inFlight;
    const owed = this.loop.status !== 'missing' && (this.loop.full || this.batcher.size > 0);
    if (!flush || !owed) return !owed && this.loop.status !== 'missing';
    return this.sync(this.loop.full || !this.mirror, this.batcher.take(this.clock.now(), true));
  }

  summary(): WorkspaceSummary {
    return {
      workspace: this.name, status: this.loop.status, ...this.totals, queued: this.batcher.size, polling: this.polling,
      lastSyncAt: this.lastSyncAt === undefined ? undefined : new Date(this.lastSyncAt).toISOString(), reason: this.loop.reason,
      unsynced: this.unsynced.map((s) => ({ ...s })),
    };
  }

  /** Moves the loop's state, then re-arms the one timer for what it now waits for. */
  private dispatch(input: LoopInput): void {
    this.loop = step(this.loop, input);
    this.schedule();
  }

  private schedule(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    const n = this.next;
    if (n.kind !== 'batching' && n.kind !== 'reconciling' && n.kind !== 'backing-off') return;
    this.cancelTimer = this.clock.setTimer(Math.max(0, n.at - this.clock.now()), () => this.run());
  }

  private newFilter(): Filter {
    return createFilter({ root: this.ctx.config.root, workspace: this.name, excludes: this.ctx.config.exclude, gitIndex: this.ctx.config.gitIndex });
  }

  private async createWatcher(): Promise<TreeWatcher> {
    const wsDir = path.join(this.ctx.config.root, this.name);
    // A symlinked workspace is watched at its target (links inside workspaces are never followed).
    const dir = await realpath(wsDir).catch(() => wsDir);
    return (this.ctx.watchTree ?? watchTree)({
      dir,
      pollMs: this.pollMs,
      ignored: (rel, kind) => {
        const isDir = kind.isDirectory();
        // Ignore files are watched even when they do not sync themselves: they change what does.
        if (isDir !== true && this.filter.isIgnoreFile(rel)) return false;
        return this.excluded(rel, isDir);
      },
      onChange: (c) => this.onChange(c),
      onError: (err) => this.onWatchError(err),
    });
  }

  /** The filter step; `isDir` undefined when not known: excluded only if excluded either way. */
  private excluded(rel: string, isDir: boolean | undefined): boolean {
    if (!isSafeRelativePath(rel)) return true;
    if (isDir === undefined) return this.filter.excludes(rel, false) && this.filter.excludes(rel, true);
    return this.filter.excludes(rel, isDir);
  }

  private onChange(change: FsChange): void {
    if (this.loop.stopped || this.loop.status === 'missing') return;
    const now = this.clock.now();
    if (!change.isDir && this.filter.isIgnoreFile(change.path)) this.ignoreFileChanged(change.path, now);
    const overflow = !this.excluded(change.path, change.isDir) && !this.batcher.push(change, now);
    if (overflow) this.ctx.log.warn({ workspace: this.name }, 'too many queued changes: they are dropped and the workspace will be re-read as a whole');
    this.dispatch({ type: 'fs-change', overflow });
  }

  /**
   * A .gitignore in directory D re-decides D's subtree: at the next sync the ignore files are read
   * again, the watcher is rebuilt (newly included directories get watched, newly ignored ones do not)
   * and D is re-read as a whole (newly ignored files leave the bucket, newly included ones are
   * uploaded). Not at the event itself: the first event of a save can come while the file is still
   * being written. Ignore files that apply to the whole workspace mean a reconcile.
   */
  private ignoreFileChanged(rel: string, now: number): void {
    const dir = path.posix.dirname(rel);
    const whole = path.posix.basename(rel) !== '.gitignore' || dir === '.';
    if (!whole) this.batcher.push({ type: 'change', path: dir, isDir: true }, now);
    this.loop = step(this.loop, { type: 'ignore-file', whole });
  }

  /**
   * A git index file was rewritten: a `git add`, `git rm`, commit or checkout, or only `git status`
   * refreshing stat data. The paths whose tracked state changed are decided again by the next batch
   * (a newly untracked file the ignore rules exclude leaves the bucket, a newly tracked one under an
   * ignored directory is uploaded); the watcher is rebuilt when one lies where it did not look.
   */
  private indexChanged(): void {
    if (this.loop.stopped || this.loop.status === 'missing') return;
    let after: Filter;
    try {
      after = this.newFilter();
    } catch {
      // An unreadable index: the next sync reads it again and reports the error.
      this.dispatch({ type: 'index-unreadable' });
      return;
    }
    const changed = trackedChanges(this.filter, after);
    if (changed.length === 0) return;
    const before = this.filter;
    this.filter = after;
    const now = this.clock.now();
    let rewatch = false;
    let overflow = false;
    for (const p of changed) {
      const rel = p.endsWith('/') ? p.slice(0, -1) : p;
      if (!rewatch && watchedDirsDiffer(before, after, rel)) rewatch = true;
      if (!this.batcher.push({ type: 'change', path: rel, isDir: p.endsWith('/') }, now)) {
        overflow = true;
        break;
      }
    }
    this.dispatch({ type: 'tracked-change', rewatch, overflow });
  }

  private onWatchError(err: NodeJS.ErrnoException): void {
    if (this.loop.stopped) return;
    if (err.code === 'ENOSPC' && this.pollMs === undefined) {
      this.pollMs = this.ctx.fallbackPollMs;
      this.ctx.inotifyLimit(this.name, err);
    } else if (err.code !== 'ENOSPC') {
      this.ctx.log.warn({ workspace: this.name, code: err.code, error: err.message }, 'watcher error: the workspace will be re-read');
    } else {
      return;
    }
    // Changes may have been missed: rebuild the watcher and reconcile.
    this.dispatch({ type: 'watch-error' });
  }

  private run(): void {
    this.cancelTimer = undefined;
    if (this.inFlight) return; // its end schedules the next sync
    const n = this.next;
    if (n.kind !== 'batching' && n.kind !== 'reconciling' && n.kind !== 'backing-off') return;
    const now = this.clock.now();
    const full = this.loop.full || !this.mirror;
    const batch = this.batcher.take(now, full);
    if (!full && batch.length === 0) { this.schedule(); return; }
    this.inFlight = this.sync(full, batch).then(() => {
      this.inFlight = undefined;
      this.firstAttempt();
      this.schedule();
    });
  }

  /** One sync; never throws. True when it succeeded. */
  private async sync(full: boolean, batch: PendingChange[]): Promise<boolean> {
    const started = performance.now();
    const { config, store, log, force } = this.ctx;
    const now = this.clock.now();
    this.recentDeletes = this.recentDeletes.filter((d) => now - d.at < DELETE_WINDOW_MS);
    const recentDeletes = this.recentDeletes.reduce((n, d) => n + d.n, 0);
    const opts = { config, store, log, workspace: this.name, force, recentDeletes };
    // The sync takes the owed work with it: ignore files to read again, a watcher to rebuild.
    let { refilter, rewatch } = this.loop;
    this.loop = step(this.loop, { type: 'sync-start' });
    try {
      await this.watcher?.ready;
      if (refilter) {
        this.filter = this.newFilter();
        refilter = false;
      }
      if (rewatch && !this.loop.stopped && this.loop.status !== 'missing') await this.swapWatcher();
      rewatch = false;
      let outcome: SyncOutcome;
      if (full) {
        outcome = await reconcileWorkspace({ ...opts, filter: this.filter, stateStore: this.stateStore });
      } else {
        outcome = await syncChanges({ ...opts, filter: this.filter, stateStore: this.stateStore }, this.mirror!, changedPaths(batch));
      }
      this.mirror = mirrorFrom(outcome);
      // The walk has met every nested repository by now: watch each index it read.
      if (!this.loop.stopped && this.loop.status !== 'missing') this.indexWatch.set(this.filter.repositories().map((r) => r.indexFile));
      this.succeeded(full ? 'reconcile' : 'batch', outcome, batch.length, performance.now() - started);
      return true;
    } catch (err) {
      const requeued = full || this.batcher.restore(batch, this.clock.now());
      this.failed(err, { full, requeued, refilter, rewatch });
      return false;
    }
  }

  private async swapWatcher(): Promise<void> {
    const next = await this.createWatcher();
    await next.ready;
    if (this.loop.stopped || this.loop.status === 'missing') { await next.close(); return; }
    const old = this.watcher;
    this.watcher = next;
    await old?.close();
  }

  private succeeded(kind: 'batch' | 'reconcile', { report: r }: SyncOutcome, changes: number, ms: number): void {
    const { log, metrics } = this.ctx;
    this.lastSyncAt = this.clock.now();
    this.totals.syncs++;
    this.totals.uploaded += r.uploaded;
    this.totals.copied += r.copied;
    this.totals.deleted += r.deleted;
    this.totals.bytes += r.bytes;
    metrics.synced(this.name, kind, r);
    if (r.changes.deleted > 0) this.recentDeletes.push({ at: this.lastSyncAt, n: r.changes.deleted });
    this.unsynced = r.skipped.filter((s) => /kept changing|rejected/.test(s.reason));
    this.ctx.remoteOk();
    this.loop = step(this.loop, { type: 'sync-ok', pending: this.batcher.size > 0 });
    const files = r.uploaded + r.copied + r.deleted;
    const line = {
      workspace: this.name, files, uploaded: r.uploaded, copied: r.copied, deleted: r.deleted, bytes: r.bytes, ms: Math.round(ms),
    };
    // Each reason once per path: a file skipped batch after batch is one warning, not a stream.
    for (const s of r.skipped) {
      const id = `${s.path}\0${s.reason.replace(/\(\d+ attempts\)/, '')}`;
      if (this.reported.has(id)) continue;
      this.reported.add(id);
      log.warn({ workspace: this.name, path: s.path }, `not synced: ${s.reason}`);
    }
    if (kind === 'reconcile') log.info({ ...line, unchanged: r.unchanged, skipped: r.skipped.length }, 'reconciled');
    else if (files > 0 || r.manifestWritten) log.info(line, 'synced');
    else log.debug({ ...line, changes }, 'batch changed nothing');
  }

  private failed(err: unknown, owed: { full: boolean; requeued: boolean; refilter: boolean; rewatch: boolean }): void {
    const { log, metrics } = this.ctx;
    const code = isSyncError(err) ? err.code : 'INTERNAL';
    this.totals.errors++;
    metrics.failed(this.name, code);
    const reason = err instanceof Error ? err.message : String(err);
    const repeated = this.loop.reason === reason;
    const gone = isSyncError(err, 'WORKSPACE_MISSING');
    // About the workspace, not the remote: wait for the user (or the directory) to change.
    const refused = !gone && isSyncError(err) && errorProperties(err)?.held === true;
    this.loop = step(this.loop, { type: 'sync-failed', ...owed, outcome: gone ? 'gone' : refused ? 'refused' : 'retry', reason, now: this.clock.now() });
    if (gone) { void this.missing(); return; }
    if (refused) {
      if (!repeated) log.error({ workspace: this.name, code, hint: err.hint }, reason);
      return;
    }
    if (errorProperties(err)?.scope === 'remote') this.ctx.remoteFailed(this.name, err);
    else if (!repeated) log.error({ workspace: this.name, code, err, hint: isSyncError(err) ? err.hint : undefined }, `sync failed: ${reason}; retrying with backoff`);
  }
}

/** Whether `rel` or a directory above it is walked under one filter and not the other (then the watcher must change). */
function watchedDirsDiffer(before: Filter, after: Filter, rel: string): boolean {
  for (let i = rel.indexOf('/'); ; i = rel.indexOf('/', i + 1)) {
    const dir = i < 0 ? rel : rel.slice(0, i);
    if (before.excludes(dir, true) !== after.excludes(dir, true)) return true;
    if (i < 0) return false;
  }
}

/** A batch as what to look at: directories are re-read whole, other paths lstat'ed. */
function changedPaths(batch: readonly PendingChange[]): ChangedPaths {
  const files: string[] = [];
  const dirs: string[] = [];
  for (const c of batch) (c.isDir ? dirs : files).push(c.path);
  return { files, dirs };
}
