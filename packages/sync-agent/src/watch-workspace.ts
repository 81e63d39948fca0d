/**
 * One workspace under watch: its filter, its directory watcher, its batcher and its sync loop.
 * Pipeline: inotify event → normalize (watcher.ts) → filter → coalesce/batch (batcher.ts) → sync
 * (incremental.ts for a batch, the push path for a reconcile).
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
  createFilter, errorProperties, isSafeRelativePath, isSyncError, trackedChanges,
  type AgentConfig, type Filter, type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import { Batcher, type BatchPolicy } from './batcher.js';
import type { FsChange, PendingChange } from './coalesce.js';
import { mirrorFrom, syncChanges, type ChangedPaths, type Mirror } from './incremental.js';
import { watchIndexFiles, type IndexWatcher } from './index-watcher.js';
import { reconcileWorkspace, workspaceStateStore } from './push.js';
import type { Skipped } from './scan.js';
import type { StateStore } from './state.js';
import type { SyncOutcome } from './sync.js';
import type { WatchMetrics } from './watch-metrics.js';
import { watchTree, type TreeWatcher } from './watcher.js';

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
}

export type WorkspaceStatus = 'starting' | 'synced' | 'pending' | 'failing' | 'refused' | 'missing';

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
export const DELETE_WINDOW_MS = 5 * 60_000;

/** Backoff after failed syncs: 0.5 s doubling to 15 s. */
export function retryDelayMs(failures: number): number {
  return Math.min(500 * 2 ** Math.max(failures - 1, 0), 15_000);
}

/** How often the git index files are stat'ed when the watcher itself is not polling. */
export const INDEX_POLL_MS = 500;


export class WorkspaceSync {
  status: WorkspaceStatus = 'starting';
  reason: string | undefined;
  private filter: Filter;
  private watcher: TreeWatcher | undefined;
  private readonly batcher: Batcher;
  private readonly stateStore: StateStore;
  private readonly indexWatch: IndexWatcher;
  private mirror: Mirror | undefined;
  private needFull = true;
  /** Ignore files changed: read them all again when the next sync starts (they have settled by then). */
  private refilter = false;
  private rewatch = false;
  private pollMs: number | undefined;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private retryAt = 0;
  /** Events seen so far, and as of the start of the sync in flight: a refusal is retried if one came meanwhile. */
  private events = 0;
  private eventsAtSync = 0;
  private stopped = false;
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
    try {
      this.filter = this.newFilter();
    } catch {
      // An unreadable git index: watch nothing until the first sync reads it again and reports the error.
      this.filter = createFilter({ root: ctx.config.root, workspace: name, excludes: ['*'], gitIndex: false });
      this.refilter = true;
    }
    this.batcher = new Batcher(ctx.policy);
    this.stateStore = workspaceStateStore({ config: ctx.config, workspace: name, log: ctx.log });
    this.pollMs = ctx.pollMs;
    this.indexWatch = watchIndexFiles(() => this.indexChanged(), ctx.pollMs ?? INDEX_POLL_MS);
    this.started = new Promise((resolve) => { this.firstAttempt = resolve; });
  }

  get queued(): number {
    return this.batcher.size;
  }

  get polling(): boolean {
    return this.watcher?.polling ?? this.pollMs !== undefined;
  }

  watchCount(): number {
    return this.watcher?.watchCount() ?? 0;
  }

  start(): void {
    void this.createWatcher().then((w) => {
      if (this.stopped || this.status === 'missing') { void w.close(); return; }
      const previous = this.watcher;
      this.watcher = w;
      void previous?.close();
      this.schedule();
    });
  }

  /** The workspace directory is gone: stop watching it, delete nothing, wait for it to come back. */
  async missing(): Promise<void> {
    if (this.status === 'missing' || this.stopped) return;
    this.setStatus('missing', 'the workspace directory disappeared; nothing is deleted from the bucket until it returns');
    this.ctx.log.warn({ workspace: this.name }, 'workspace directory disappeared: nothing is deleted from the bucket; it syncs again when the directory returns');
    clearTimeout(this.timer);
    this.batcher.clear();
    this.indexWatch.set([]);
    this.needFull = true;
    this.firstAttempt();
    const w = this.watcher;
    this.watcher = undefined;
    await w?.close();
  }

  /** The workspace directory is back (or appeared): watch it and reconcile. */
  resume(): void {
    if (this.status !== 'missing' || this.stopped) return;
    this.ctx.log.info({ workspace: this.name }, 'workspace directory is back: reconciling');
    this.setStatus('starting');
    this.needFull = true;
    this.start();
  }

  /** The remote is back: retry now rather than at the end of the backoff. */
  retryNow(): void {
    if (this.status !== 'failing') return;
    this.retryAt = 0;
    this.schedule();
  }

  /** Periodic safety net: a stat-based reconcile with freshly read ignore files. */
  rescan(): void {
    if (this.stopped || this.status === 'missing') return;
    this.refilter = true;
    this.needFull = true;
    if (this.status === 'refused') this.retryAt = 0;
    this.schedule();
  }

  /** The root .gitignore changed: every decision of the filter may have changed. */
  rootIgnoreChanged(): void {
    if (this.stopped) return;
    this.refilter = true;
    this.needFull = true;
    this.rewatch = true;
    this.schedule();
  }

  /** Stops watching; with `flush`, syncs what is queued first. Returns whether everything got synced. */
  async stop(flush: boolean): Promise<boolean> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.indexWatch.close();
    const w = this.watcher;
    this.watcher = undefined;
    await w?.close();
    await this.inFlight;
    let clean = this.status !== 'missing' && !this.needFull && this.batcher.size === 0;
    if (flush && this.status !== 'missing' && (this.needFull || this.batcher.size > 0)) {
      const full = this.needFull || !this.mirror;
      clean = await this.sync(full, this.batcher.take(Date.now(), true));
    }
    return clean;
  }

  summary(): WorkspaceSummary {
    return {
      workspace: this.name, status: this.status, ...this.totals, queued: this.batcher.size, polling: this.polling,
      lastSyncAt: this.lastSyncAt === undefined ? undefined : new Date(this.lastSyncAt).toISOString(), reason: this.reason,
      unsynced: this.unsynced.map((s) => ({ ...s })),
    };
  }

  private newFilter(): Filter {
    return createFilter({ root: this.ctx.config.root, workspace: this.name, excludes: this.ctx.config.exclude, gitIndex: this.ctx.config.gitIndex });
  }

  private async createWatcher(): Promise<TreeWatcher> {
    const wsDir = path.join(this.ctx.config.root, this.name);
    // A symlinked workspace is watched at its target (links inside workspaces are never followed).
    const dir = await realpath(wsDir).catch(() => wsDir);
    return watchTree({
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
    if (this.stopped || this.status === 'missing') return;
    this.events++;
    if (!change.isDir && this.filter.isIgnoreFile(change.path)) this.ignoreFileChanged(change.path);
    if (!this.excluded(change.path, change.isDir) && !this.batcher.push(change, Date.now())) {
      this.ctx.log.warn({ workspace: this.name }, 'too many queued changes: they are dropped and the workspace will be re-read as a whole');
      this.needFull = true;
    }
    if (this.status === 'synced') this.setStatus('pending');
    // A refused workspace is retried when something changes (the user may have restored it).
    if (this.status === 'refused') this.retryAt = 0;
    this.schedule();
  }

  /**
   * A .gitignore in directory D re-decides D's subtree: at the next sync the ignore files are read
   * again, the watcher is rebuilt (newly included directories get watched, newly ignored ones do not)
   * and D is re-read as a whole (newly ignored files leave the bucket, newly included ones are
   * uploaded). Not at the event itself: the first event of a save can come while the file is still
   * being written. Ignore files that apply to the whole workspace mean a reconcile.
   */
  private ignoreFileChanged(rel: string): void {
    const dir = path.posix.dirname(rel);
    if (path.posix.basename(rel) === '.gitignore' && dir !== '.') this.batcher.push({ type: 'change', path: dir, isDir: true }, Date.now());
    else this.needFull = true;
    this.refilter = true;
    this.rewatch = true;
  }

  /**
   * A git index file was rewritten: a `git add`, `git rm`, commit or checkout, or only `git status`
   * refreshing stat data. The paths whose tracked state changed are decided again by the next batch
   * (a newly untracked file the ignore rules exclude leaves the bucket, a newly tracked one under an
   * ignored directory is uploaded); the watcher is rebuilt when one lies where it did not look.
   */
  private indexChanged(): void {
    if (this.stopped || this.status === 'missing') return;
    let next: Filter;
    try {
      next = this.newFilter();
    } catch {
      // An unreadable index: the next sync reads it again and reports the error.
      this.refilter = true;
      this.needFull = true;
      this.schedule();
      return;
    }
    const changed = trackedChanges(this.filter, next);
    if (changed.length === 0) return;
    const before = this.filter;
    this.filter = next;
    const now = Date.now();
    for (const p of changed) {
      const rel = p.endsWith('/') ? p.slice(0, -1) : p;
      if (!this.rewatch && watchedDirsDiffer(before, next, rel)) this.rewatch = true;
      if (!this.batcher.push({ type: 'change', path: rel, isDir: p.endsWith('/') }, now)) {
        this.needFull = true;
        break;
      }
    }
    if (this.status === 'synced') this.setStatus('pending');
    this.schedule();
  }

  private onWatchError(err: NodeJS.ErrnoException): void {
    if (this.stopped) return;
    if (err.code === 'ENOSPC' && this.pollMs === undefined) {
      this.pollMs = this.ctx.fallbackPollMs;
      this.ctx.inotifyLimit(this.name, err);
    } else if (err.code !== 'ENOSPC') {
      this.ctx.log.warn({ workspace: this.name, code: err.code, error: err.message }, 'watcher error: the workspace will be re-read');
    } else {
      return;
    }
    // Changes may have been missed: rebuild the watcher and reconcile.
    this.rewatch = true;
    this.needFull = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped || this.status === 'missing') return;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight) return; // the end of the sync in flight schedules the next one
    const now = Date.now();
    const due = this.needFull && this.batcher.size === 0 ? now : this.batcher.dueAt(now) ?? (this.needFull ? now : undefined);
    if (due === undefined) return;
    if (this.status === 'refused' && this.retryAt === Infinity) return;
    const at = Math.max(due, this.retryAt);
    this.timer = setTimeout(() => this.run(), Math.max(0, at - now));
  }

  private run(): void {
    this.timer = undefined;
    if (this.inFlight || this.stopped || this.status === 'missing') return;
    const now = Date.now();
    const full = this.needFull || !this.mirror;
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
    const now = Date.now();
    this.recentDeletes = this.recentDeletes.filter((d) => now - d.at < DELETE_WINDOW_MS);
    const recentDeletes = this.recentDeletes.reduce((n, d) => n + d.n, 0);
    const opts = { config, store, log, workspace: this.name, force, recentDeletes };
    this.eventsAtSync = this.events;
    try {
      await this.watcher?.ready;
      if (this.refilter) {
        this.refilter = false;
        this.filter = this.newFilter();
      }
      if (this.rewatch && !this.stopped && this.status !== 'missing') await this.swapWatcher();
      this.needFull = false;
      let outcome: SyncOutcome;
      if (full) {
        outcome = await reconcileWorkspace({ ...opts, filter: this.filter, stateStore: this.stateStore });
      } else {
        outcome = await syncChanges({ ...opts, filter: this.filter, stateStore: this.stateStore }, this.mirror!, changedPaths(batch));
      }
      this.mirror = mirrorFrom(outcome);
      // The walk has met every nested repository by now: watch each index it read.
      if (!this.stopped && this.status !== 'missing') this.indexWatch.set(this.filter.repositories().map((r) => r.indexFile));
      this.succeeded(full ? 'reconcile' : 'batch', outcome, batch.length, performance.now() - started);
      return true;
    } catch (err) {
      if (full) this.needFull = true;
      else if (!this.batcher.restore(batch, Date.now())) this.needFull = true;
      this.failed(err);
      return false;
    }
  }

  private async swapWatcher(): Promise<void> {
    this.rewatch = false;
    const next = await this.createWatcher();
    await next.ready;
    if (this.stopped || this.status === 'missing') { await next.close(); return; }
    const old = this.watcher;
    this.watcher = next;
    await old?.close();
  }

  private succeeded(kind: 'batch' | 'reconcile', { report: r }: SyncOutcome, changes: number, ms: number): void {
    const { log, metrics } = this.ctx;
    this.failures = 0;
    this.retryAt = 0;
    this.lastSyncAt = Date.now();
    this.totals.syncs++;
    this.totals.uploaded += r.uploaded;
    this.totals.copied += r.copied;
    this.totals.deleted += r.deleted;
    this.totals.bytes += r.bytes;
    metrics.synced(this.name, kind, r);
    if (r.changes.deleted > 0) this.recentDeletes.push({ at: Date.now(), n: r.changes.deleted });
    this.unsynced = r.skipped.filter((s) => /kept changing|rejected/.test(s.reason));
    this.ctx.remoteOk();
    this.setStatus(this.batcher.size > 0 || this.needFull ? 'pending' : 'synced');
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

  private failed(err: unknown): void {
    const { log, metrics } = this.ctx;
    const code = isSyncError(err) ? err.code : 'INTERNAL';
    this.totals.errors++;
    metrics.failed(this.name, code);
    const message = err instanceof Error ? err.message : String(err);
    const repeated = this.reason === message;
    if (isSyncError(err, 'WORKSPACE_MISSING')) { void this.missing(); return; }
    // About the workspace, not the remote: wait for the user (or the directory) to change.
    if (isSyncError(err) && errorProperties(err)?.held) {
      // Waits for a change in the workspace (or the periodic rescan), not for a timer. The next sync
      // rebuilds the watcher: a disk mounted again over the directory is not seen by the old watches.
      if (!repeated) log.error({ workspace: this.name, code, hint: err.hint }, message);
      this.setStatus('refused', message);
      // A change that came while this sync ran (files arriving in a directory that just reappeared) counts.
      this.retryAt = this.events === this.eventsAtSync ? Infinity : 0;
      this.rewatch = true;
      return;
    }
    this.failures++;
    this.retryAt = Date.now() + retryDelayMs(this.failures);
    this.setStatus('failing', message);
    if (errorProperties(err)?.scope === 'remote') this.ctx.remoteFailed(this.name, err);
    else if (!repeated) log.error({ workspace: this.name, code, err, hint: isSyncError(err) ? err.hint : undefined }, `sync failed: ${message}; retrying with backoff`);
  }

  private setStatus(status: WorkspaceStatus, reason?: string): void {
    // Only resume() leaves 'missing'; a sync that was in flight when the directory went does not.
    if (this.status === 'missing' && status !== 'starting') return;
    this.status = status;
    this.reason = reason;
  }
}

/** Whether `rel` or a directory above it is walked under one filter and not the other (then the watcher must change). */
export function watchedDirsDiffer(before: Filter, after: Filter, rel: string): boolean {
  for (let i = rel.indexOf('/'); ; i = rel.indexOf('/', i + 1)) {
    const dir = i < 0 ? rel : rel.slice(0, i);
    if (before.excludes(dir, true) !== after.excludes(dir, true)) return true;
    if (i < 0) return false;
  }
}

/** A batch as what to look at: directories are re-read whole, other paths lstat'ed. */
export function changedPaths(batch: readonly PendingChange[]): ChangedPaths {
  const files: string[] = [];
  const dirs: string[] = [];
  for (const c of batch) (c.isDir ? dirs : files).push(c.path);
  return { files, dirs };
}
