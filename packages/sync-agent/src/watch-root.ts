/**
 * `sync-agent watch`: every workspace under the root, mirrored continuously.
 *
 * A depth-0 watcher on the root notices workspaces appearing and disappearing and edits of the root
 * .gitignore; each workspace has its own pipeline (watch-workspace.ts) that reconciles first (the push
 * path), then syncs batches of changes. A periodic rescan (a stat-based reconcile) catches whatever a
 * watcher missed. S3 failures are logged once per outage, not once per batch or file.
 */
import { readFileSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  isSyncError, isValidWorkspaceName, realClock, type AgentConfig, type Clock, type Health, type Logger, type ObjectStore, type Registry,
} from '@workspace-sync/shared';
import { DEFAULT_BATCH_POLICY, type BatchPolicy } from './batcher.js';
import { createWatchMetrics } from './watch-metrics.js';
import { WorkspaceSync, type WatchContext, type WorkspaceSummary } from './watch-workspace.js';
import { watchTree } from './dir-watcher.js';
import { listWorkspaces } from './workspaces.js';

export interface WatchOptions {
  config: AgentConfig;
  store: ObjectStore;
  log: Logger;
  /** Allow deletes beyond the safety limit. */
  force?: boolean;
  policy?: Partial<BatchPolicy>;
  /** Safety rescan period; 0 turns it off. */
  rescanIntervalMs?: number;
  /** Poll instead of using inotify, every this many ms. */
  pollMs?: number;
  /** Polling period after an inotify ENOSPC fallback. */
  fallbackPollMs?: number;
  /** Where the metrics go (the CLI serves it on --health-port). */
  registry: Registry;
  /** Timers and times of the watch loops and the rescan (default: the real clock). */
  clock?: Clock;
}

export interface WatchSummary {
  /** Everything queued was synced when watching stopped. */
  flushed: boolean;
  seconds: number;
  workspaces: WorkspaceSummary[];
}

export interface WatchHandle {
  /** Resolves once every workspace present at start has been reconciled (or has failed to). */
  readonly started: Promise<void>;
  health(): Health;
  watchCount(): number;
  workspaces(): WorkspaceSummary[];
  /** Stops accepting events, syncs what is queued (unless `flush` is false), writes the manifests. */
  stop(opts?: { flush?: boolean }): Promise<WatchSummary>;
}

const DEFAULT_RESCAN_INTERVAL_MS = 5 * 60_000;
const DEFAULT_FALLBACK_POLL_MS = 2_000;

export async function startWatch(opts: WatchOptions): Promise<WatchHandle> {
  const began = performance.now();
  const { config, log } = opts;
  const clock = opts.clock ?? realClock;
  const pipelines = new Map<string, WorkspaceSync>();
  let stopping = false;
  let outageSince: number | undefined;
  let inotifyLimitHit = false;

  const ctx: WatchContext = {
    config, store: opts.store, log, force: !!opts.force,
    policy: { ...DEFAULT_BATCH_POLICY, ...opts.policy },
    pollMs: opts.pollMs,
    fallbackPollMs: opts.fallbackPollMs ?? DEFAULT_FALLBACK_POLL_MS,
    clock,
    metrics: createWatchMetrics(opts.registry, {
      queued: () => [...pipelines.values()].map((p) => [p.name, p.queued] as [string, number]),
      watches: () => watchCount(),
    }),
    remoteFailed(workspace, err) {
      const e = err as Error;
      if (outageSince !== undefined) {
        log.debug({ workspace, error: e.message }, 'still failing');
        return;
      }
      outageSince = clock.now();
      log.warn({ workspace, code: isSyncError(err) ? err.code : undefined, hint: isSyncError(err) ? err.hint : undefined },
        `${e.message}: changes are queued and retried with backoff`);
    },
    remoteOk() {
      if (outageSince === undefined) return;
      log.info({ downSeconds: Math.round((clock.now() - outageSince) / 1000) }, 'S3 is reachable again: syncing queued changes');
      outageSince = undefined;
      for (const p of pipelines.values()) p.retryNow();
    },
    inotifyLimit(workspace, err) {
      if (inotifyLimitHit) return;
      inotifyLimitHit = true;
      log.error({ workspace, maxUserWatches: readMaxUserWatches(), error: err.message, hint: 'sudo sysctl fs.inotify.max_user_watches=524288 (persist it in /etc/sysctl.d/)' },
        `inotify watch limit reached (fs.inotify.max_user_watches) while watching workspace "${workspace}": falling back to polling every ${ctx.fallbackPollMs / 1000} s, which is slower and costs CPU`);
    },
  };

  const addWorkspace = async (name: string, appeared: boolean): Promise<void> => {
    if (stopping || !isValidWorkspaceName(name)) return;
    const st = await stat(path.join(config.root, name)).catch(() => undefined);
    if (!st?.isDirectory() || stopping) return;
    const existing = pipelines.get(name);
    if (existing) { existing.resume(); return; }
    const p = new WorkspaceSync(name, ctx);
    pipelines.set(name, p);
    if (appeared) log.info({ workspace: name }, 'new workspace: reconciling');
    p.start();
  };

  // The root first, so that a workspace created while the others start is not missed.
  const rootDir = await realpath(config.root).catch(() => config.root);
  const root = watchTree({
    dir: rootDir,
    depth: 0,
    ignored: (rel, kind) => rel !== '.gitignore' && (!isValidWorkspaceName(rel) || kind.isFile()),
    onChange: (c) => {
      if (stopping) return;
      if (c.path === '.gitignore') {
        for (const p of pipelines.values()) p.rootIgnoreChanged();
      } else if (c.type === 'delete') {
        void pipelines.get(c.path)?.missing();
      } else {
        void addWorkspace(c.path, true);
      }
    },
    onError: (err) => log.warn({ code: err.code, error: err.message }, 'error watching the workspaces root'),
  });
  await root.ready;
  const initial = await listWorkspaces(config.root);
  if (initial.length === 0) log.warn({ root: config.root }, 'no workspaces under the root yet; watching for new ones');
  await Promise.all(initial.map((name) => addWorkspace(name, false)));
  const started = Promise.all([...pipelines.values()].map((p) => p.started)).then(() => undefined);

  const rescanMs = opts.rescanIntervalMs ?? DEFAULT_RESCAN_INTERVAL_MS;
  let cancelRescan: (() => void) | undefined;
  const rescan = () => {
    cancelRescan = clock.setTimer(rescanMs, rescan);
    for (const p of pipelines.values()) p.rescan();
    // A workspace missed by the root watcher (or back after being missing) is picked up here.
    void listWorkspaces(config.root).then((names) => { for (const n of names) void addWorkspace(n, true); }, () => {});
  };
  if (rescanMs > 0) cancelRescan = clock.setTimer(rescanMs, rescan);

  function watchCount(): number {
    let n = root.watchCount();
    for (const p of pipelines.values()) n += p.watchCount();
    return n;
  }

  const summaries = () => [...pipelines.values()].map((p) => p.summary());

  return {
    started,
    watchCount,
    workspaces: summaries,
    health() {
      const workspaces = summaries();
      const reasons: string[] = [];
      if (outageSince !== undefined) {
        const queued = workspaces.reduce((n, w) => n + w.queued, 0);
        reasons.push(`S3 unreachable or failing since ${new Date(outageSince).toISOString()}; ${queued} changes queued`);
      }
      for (const w of workspaces) {
        if (w.status === 'missing' || w.status === 'refused') reasons.push(`workspace ${w.workspace}: ${w.reason}`);
        else if (w.status === 'failing' && outageSince === undefined) reasons.push(`workspace ${w.workspace}: ${w.reason}`);
        // Which files is the log's to say: health may name workspaces, never what is in them.
        if (w.unsynced.length > 0) reasons.push(`workspace ${w.workspace}: ${w.unsynced.length} file(s) not synced (the log names them)`);
      }
      if (inotifyLimitHit) reasons.push('inotify watch limit reached: polling (raise fs.inotify.max_user_watches)');
      return {
        status: reasons.length ? 'degraded' : 'ok', reasons, watches: watchCount(),
        workspaces: workspaces.map((w) => ({ ...w, unsynced: w.unsynced.length })),
      };
    },
    async stop({ flush = true } = {}) {
      stopping = true;
      cancelRescan?.();
      await root.close();
      const results = await Promise.all([...pipelines.values()].map((p) => p.stop(flush)));
      return { flushed: results.every(Boolean), seconds: (performance.now() - began) / 1000, workspaces: summaries() };
    },
  };
}

function readMaxUserWatches(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8').trim());
  } catch {
    return undefined;
  }
}
