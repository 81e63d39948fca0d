/**
 * Keeps the tree fresh, at a cost that does not grow with the number of workspaces.
 *
 * Every --poll-interval: one LIST of `<prefix>.sync/.heads/` gives every format-v2 head with its
 * ETag (a 1,000-workspace mount sends one request, or one per 1,000 heads); only heads whose ETag
 * changed are fetched (the head's body is the commit), and the new commit's root directory is
 * loaded before the workspace switches to it in one step. Format-v1 workspaces (a manifest and no
 * head) keep their conditional GET (If-None-Match) per poll; a manifest replaced by a `version: 2`
 * stub means "read the head", which the heads listing then has.
 *
 * Discovery of workspaces without a head (two LISTs with delimiter "/", of `<prefix>` and
 * `<prefix>.sync/`) runs on the first poll, then once per --dir-cache-time (the time plain prefixes
 * are trusted anyway), and at once when a head disappears. Plain prefixes (no head, no manifest)
 * are listed (ListObjectsV2, no delimiter) when first used and again when used after
 * --dir-cache-time.
 *
 * The heads seen are saved in the cache directory (offline-state.ts), so a restart with S3 down
 * serves the last commits it knew (`restoreOffline`).
 *
 * Concurrency rules: one poll at a time (the next is scheduled when one ends); at most one head GET,
 * one manifest GET and one listing per workspace at a time (single-flight), shared by the poll,
 * readers waiting for a first view, and re-resolution after an ETag mismatch.
 */
import PQueue from 'p-queue';
import {
  CONTROL_DIR, decodeCommit, headKey, headsPrefix, isOutage, isSyncError, isValidWorkspaceName, manifestKey, MAX_COMMIT_BYTES, realClock,
  type Clock, type Commit, type ListEntry, type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import { decodeInline, type DecodeFn } from './manifest-decoder.js';
import type { MountMetrics } from './metrics.js';
import type { OfflineState, SavedHead } from './offline-state.js';
import type { RemoteStatus } from './remote-status.js';
import { snapshotFromListing, snapshotFromManifest, type Tree, type WorkspaceKind, type WorkspaceState } from './tree.js';
import type { TreeStore } from './tree-store.js';
import { CommitView, type View } from './views.js';

const REFRESH_CONCURRENCY = 8;

export interface PollerOptions {
  store: ObjectStore;
  tree: Tree;
  trees: TreeStore;
  prefix: string;
  pollInterval: number;
  dirCacheTime: number;
  status: RemoteStatus;
  logger: Logger;
  metrics?: MountMetrics | undefined;
  /** Manifest decoding; the daemon passes a worker-backed one (manifest-decoder.ts). */
  decode?: DecodeFn;
  offline?: OfflineState | undefined;
  /** Poll timers, and the age of listings and discoveries (default: the real clock). */
  clock?: Clock;
}

export class Poller {
  private cancelTimer: (() => void) | undefined;
  private stopped = false;
  private readonly headFlights = new Map<string, Promise<void>>();
  private readonly manifestFlights = new Map<string, Promise<void>>();
  private readonly listingFlights = new Map<string, Promise<View>>();
  private readonly queue = new PQueue({ concurrency: REFRESH_CONCURRENCY });
  private readonly warned = new Set<string>();
  private readonly clock: Clock;
  private pollFailing = false;
  /** Heads as last listed: workspace → ETag. */
  private listedHeads = new Map<string, string>();
  /** Workspaces without a head, from the last discovery. */
  private others = new Map<string, Exclude<WorkspaceKind, 'commit'>>();
  private discoveredAt: number | undefined;
  /** The heads behind the installed views, for an offline restart. */
  private readonly saved = new Map<string, SavedHead>();
  constructor(private readonly opts: PollerOptions) {
    this.clock = opts.clock ?? realClock;
  }

  /** Polls forever, starting after one interval. */
  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.queue.clear();
  }

  /** One poll. Throws when the heads cannot be listed (S3 unreachable, bad credentials). */
  async pollOnce(): Promise<void> {
    const { tree } = this.opts;
    const heads = await this.listHeads();
    const vanished = [...this.listedHeads.keys()].some((ws) => !heads.has(ws));
    this.listedHeads = heads;
    if (this.discoveredAt === undefined || vanished || this.clock.now() - this.discoveredAt >= this.opts.dirCacheTime) await this.discover();
    const present = new Map<string, WorkspaceKind>(this.others);
    for (const ws of heads.keys()) present.set(ws, 'commit');
    tree.reconcile(present);
    for (const ws of this.saved.keys()) if (!heads.has(ws)) this.saved.delete(ws);
    await Promise.all([...tree.all()].map((state) => {
      if (state.kind === 'commit') return state.etag === heads.get(state.name) ? Promise.resolve() : this.queue.add(() => this.refreshHead(state.name));
      if (state.kind === 'manifest') return this.queue.add(() => this.refreshManifest(state.name));
      // No longer a manifest's or a head's: a plain prefix from now on.
      if (state.view && state.view.source !== 'listing') return this.queue.add(() => this.listing(state).then(() => undefined, () => undefined));
      return Promise.resolve();
    }));
  }

  /**
   * Serves the heads an earlier run saved, while S3 cannot be reached at start-up. Returns how
   * many workspaces that restored (0: nothing to serve).
   */
  async restoreOffline(): Promise<number> {
    const saved = await this.opts.offline?.load();
    if (!saved || saved.size === 0) return 0;
    const { tree, trees } = this.opts;
    tree.reconcile(new Map([...saved.keys()].map((ws) => [ws, 'commit' as const])));
    let restored = 0;
    for (const [ws, head] of saved) {
      const view = this.commitView(ws, head.commit);
      try {
        // Only what can be served: the root directory must be in the cache.
        await trees.load(ws, head.commit.root);
      } catch {
        continue;
      }
      tree.install(ws, view, head.etag);
      this.saved.set(ws, head);
      restored++;
    }
    // The next poll lists the heads again and replaces whatever changed meanwhile.
    this.listedHeads = new Map([...this.saved].map(([ws, h]) => [ws, h.etag]));
    return restored;
  }

  /**
   * A view of the workspace that may be served now: its commit's or manifest's, or a listing younger
   * than --dir-cache-time. A failed refresh falls back to the view already held (S3 down: keep serving).
   */
  async ensureView(state: WorkspaceState): Promise<View | undefined> {
    if (state.kind === 'commit') {
      if (!state.view || state.view.source !== 'commit') await this.refreshHead(state.name);
      return state.view;
    }
    if (state.kind === 'manifest') {
      if (state.view?.source === 'manifest') return state.view;
      await this.refreshManifest(state.name);
      // Still named by a manifest: its view, or none while S3 cannot be reached.
      if (state.kind === 'manifest') return state.view;
      if (state.kind === 'commit') return this.ensureView(state);
    }
    const view = state.view;
    if (view?.source === 'listing' && this.clock.now() - view.builtAt < this.opts.dirCacheTime) return view;
    // While S3 is known to be down, do not make every access wait for a listing that will fail.
    if (view && this.opts.status.down) return view;
    try {
      return await this.listing(state);
    } catch (err) {
      if (!view) throw err;
      this.opts.logger.debug({ workspace: state.name, err: (err as Error).message }, 'listing failed; serving the previous one');
      return view;
    }
  }

  /** Checks the workspace's source again now (after an object did not match its manifest). */
  async recheck(state: WorkspaceState): Promise<void> {
    if (state.kind === 'commit') await this.refreshHead(state.name);
    else if (state.kind === 'manifest') await this.refreshManifest(state.name);
    else await this.listing(state);
  }

  /** Conditional GET of one manifest; installs a new snapshot when it changed. Never throws. */
  refreshManifest(name: string): Promise<void> {
    return singleFlight(this.manifestFlights, name, () => this.fetchManifest(name));
  }

  /** GET of one head; installs the new commit once its root directory is loaded. Never throws. */
  refreshHead(name: string): Promise<void> {
    return singleFlight(this.headFlights, name, () => this.fetchHead(name));
  }

  /** Polls start every interval (not an interval after the previous one ended), so a push waits at most one interval. */
  private schedule(delay = this.opts.pollInterval): void {
    if (this.stopped) return;
    this.cancelTimer = this.clock.setTimer(delay, () => {
      const started = this.clock.now();
      this.pollOnce().then(() => {
        if (this.pollFailing) this.opts.logger.info('S3 answers again; polling resumed');
        this.pollFailing = false;
      }, (err: unknown) => {
        this.opts.metrics?.errors.inc({ op: 'poll' });
        // One line per outage, not one per poll.
        if (!this.pollFailing) this.opts.logger.warn({ err: (err as Error).message }, 'poll failed; serving what is cached');
        this.pollFailing = true;
      }).finally(() => {
        // A slow poll (S3 timing out) is followed by a short pause rather than none.
        const interval = this.opts.pollInterval;
        this.schedule(Math.max(interval / 4, interval - (this.clock.now() - started)));
      });
    });
  }

  private async listHeads(): Promise<Map<string, string>> {
    const { store, prefix, status } = this.opts;
    const base = headsPrefix(prefix);
    const heads = new Map<string, string>();
    try {
      for await (const e of store.list(base)) {
        if (!('key' in e)) continue;
        const ws = e.key.slice(base.length);
        if (isValidWorkspaceName(ws)) heads.set(ws, e.etag);
        else this.warnOnce(`head:${ws}`, 'skipping a head whose name is not a valid workspace name', { key: e.key });
      }
      status.ok();
    } catch (err) {
      status.failed(err);
      throw err;
    }
    this.opts.metrics?.s3Lists.inc({ kind: 'heads' });
    return heads;
  }

  /** Workspaces without a head: a `.sync/<ws>/` prefix may hold a v1 manifest; the rest are plain. */
  private async discover(): Promise<void> {
    const { prefix, status } = this.opts;
    try {
      const [top, control] = await Promise.all([
        this.commonPrefixes(prefix),
        this.commonPrefixes(`${prefix}${CONTROL_DIR}/`),
      ]);
      const others = new Map<string, Exclude<WorkspaceKind, 'commit'>>();
      for (const name of top) if (this.acceptName(name)) others.set(name, 'plain');
      // A control prefix without a head may hold a v1 manifest: its GET says (404: plain after all).
      for (const name of control) if (this.acceptName(name)) others.set(name, 'manifest');
      this.others = others;
      this.discoveredAt = this.clock.now();
      status.ok();
    } catch (err) {
      status.failed(err);
      throw err;
    }
  }

  private async fetchHead(name: string): Promise<void> {
    const { store, tree, prefix, metrics, logger, status, trees } = this.opts;
    const state = tree.get(name);
    if (!state) return;
    const key = headKey(prefix, name);
    let res;
    try {
      res = await store.get(key, { ifNoneMatch: state.view?.source === 'commit' ? state.etag : undefined, maxBytes: MAX_COMMIT_BYTES });
      status.ok();
    } catch (err) {
      if (isSyncError(err, 'OBJECT_NOT_FOUND')) {
        status.ok();
        return;
      }
      status.failed(err);
      metrics?.manifestRefreshes.inc({ result: 'error' });
      logger.debug({ workspace: name, err: (err as Error).message }, 'head check failed');
      return;
    }
    metrics?.s3Gets.inc({ kind: 'head' });
    if (res.notModified || (res.etag === state.etag && state.view?.source === 'commit')) {
      metrics?.manifestRefreshes.inc({ result: 'unchanged' });
      return;
    }
    let commit: Commit;
    try {
      commit = decodeCommit(res.body, `s3://${store.bucket}/${key}`);
      if (commit.workspace !== name) {
        this.warnOnce(`${key}@${res.etag}`, 'ignoring a head that names another workspace', { key, names: commit.workspace });
        metrics?.manifestRefreshes.inc({ result: 'invalid' });
        return;
      }
      const current = state.view;
      if (current instanceof CommitView && current.commit.generation > commit.generation) return;
      const view = this.commitView(name, commit);
      // The root directory first: the switch must not leave readers waiting for it.
      await trees.load(name, commit.root);
      if (tree.get(name) !== state) return;
      tree.install(name, view, res.etag);
      this.saved.set(name, { etag: res.etag, commit, body: res.body });
      this.opts.offline?.save(this.saved);
      metrics?.manifestRefreshes.inc({ result: 'changed' });
      logger.debug({ workspace: name, generation: commit.generation }, 'commit installed');
    } catch (err) {
      if (!isSyncError(err)) throw err;
      if (isOutage(err)) return;
      this.warnOnce(`${key}@${res.etag}`, 'ignoring an invalid commit; serving the previous view', { key, err: err.message });
      metrics?.manifestRefreshes.inc({ result: 'invalid' });
    }
  }

  private commitView(workspace: string, commit: Commit): CommitView {
    return new CommitView({ prefix: this.opts.prefix, workspace, commit, namespace: workspace, trees: this.opts.trees, now: this.clock.now() });
  }

  private async fetchManifest(name: string): Promise<void> {
    const { store, tree, prefix, metrics, logger, status } = this.opts;
    const state = tree.get(name);
    if (!state) return;
    const key = manifestKey(prefix, name);
    let res;
    try {
      res = await store.get(key, { ifNoneMatch: state.view?.source === 'manifest' ? state.etag : undefined });
      status.ok();
    } catch (err) {
      if (isSyncError(err, 'OBJECT_NOT_FOUND')) {
        status.ok();
        if (state.kind === 'manifest') state.kind = 'plain';
        this.others.set(name, 'plain');
        return;
      }
      status.failed(err);
      metrics?.manifestRefreshes.inc({ result: 'error' });
      logger.debug({ workspace: name, err: (err as Error).message }, 'manifest check failed');
      return;
    }
    metrics?.s3Gets.inc({ kind: 'manifest' });
    // Some servers ignore If-None-Match; the same ETag is the same manifest all the same.
    if (res.notModified || (res.etag === state.etag && state.view?.source === 'manifest')) {
      metrics?.manifestRefreshes.inc({ result: 'unchanged' });
      return;
    }
    try {
      const manifest = await (this.opts.decode ?? decodeInline)(res.body, `s3://${store.bucket}/${key}`);
      if (manifest.workspace !== name) {
        this.warnOnce(`${key}@${res.etag}`, 'ignoring a manifest that names another workspace', { key, names: manifest.workspace });
        metrics?.manifestRefreshes.inc({ result: 'invalid' });
        return;
      }
      const snapshot = await snapshotFromManifest(manifest, res.etag, prefix, tree.buildContext(state, this.warnFn()), this.clock.now());
      if (tree.get(name) !== state || state.kind !== 'manifest') return;
      tree.install(name, snapshot, res.etag);
      metrics?.manifestRefreshes.inc({ result: 'changed' });
      logger.debug({ workspace: name, generation: manifest.generation, files: snapshot.files }, 'manifest installed');
    } catch (err) {
      if (!isSyncError(err)) throw err;
      if (err.code === 'MANIFEST_TOO_NEW') {
        // A v1 manifest replaced by the v2 stub: the workspace is read from its head from now on.
        metrics?.manifestRefreshes.inc({ result: 'upgraded' });
        await this.adoptHead(state);
        return;
      }
      // Keep serving the last good view; say so once per bad manifest version.
      this.warnOnce(`${key}@${res.etag}`, 'ignoring an invalid manifest; serving the previous view', { key, err: err.message });
      metrics?.manifestRefreshes.inc({ result: 'invalid' });
    }
  }

  /** A workspace whose manifest says "read the head": switch it over now rather than at the next poll. */
  private async adoptHead(state: WorkspaceState): Promise<void> {
    this.others.delete(state.name);
    state.kind = 'commit';
    state.etag = undefined;
    await this.fetchHead(state.name);
  }

  private listing(state: WorkspaceState): Promise<View> {
    let running = this.listingFlights.get(state.name);
    if (!running) {
      running = this.list(state).finally(() => this.listingFlights.delete(state.name));
      this.listingFlights.set(state.name, running);
    }
    return running;
  }

  private async list(state: WorkspaceState): Promise<View> {
    const { store, tree, prefix, status } = this.opts;
    const entries: ListEntry[] = [];
    try {
      for await (const e of store.list(`${prefix}${state.name}/`)) if ('key' in e) entries.push(e);
      status.ok();
    } catch (err) {
      status.failed(err);
      throw err;
    }
    const snapshot = await snapshotFromListing(state.name, entries, prefix, tree.buildContext(state, this.warnFn()), this.clock.now());
    if (tree.get(state.name) === state && state.kind === 'plain') tree.install(state.name, snapshot, undefined);
    return snapshot;
  }

  private async commonPrefixes(prefix: string): Promise<string[]> {
    const names: string[] = [];
    for await (const e of this.opts.store.list(prefix, { delimiter: '/' })) {
      if ('commonPrefix' in e) names.push(e.commonPrefix.slice(prefix.length, -1));
    }
    this.opts.metrics?.s3Lists.inc({ kind: 'discovery' });
    return names;
  }

  private acceptName(name: string): boolean {
    if (isValidWorkspaceName(name)) return true;
    if (name !== CONTROL_DIR && name !== '.heads') this.warnOnce(`name:${name}`, 'skipping a top-level prefix that is not a valid workspace name', { name });
    return false;
  }

  private warnFn() {
    return (message: string, detail: Record<string, unknown>) => this.warnOnce(`${message}:${JSON.stringify(detail)}`, message, detail);
  }

  private warnOnce(id: string, message: string, detail: Record<string, unknown>): void {
    if (this.warned.has(id)) return;
    this.warned.add(id);
    this.opts.logger.warn(detail, message);
  }
}

function singleFlight(flights: Map<string, Promise<void>>, name: string, run: () => Promise<void>): Promise<void> {
  const running = flights.get(name);
  if (running) return running;
  const p = run().finally(() => flights.delete(name));
  flights.set(name, p);
  return p;
}
