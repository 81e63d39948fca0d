/**
 * Keeps the tree fresh. Every --poll-interval: discover workspaces (two LISTs with delimiter "/",
 * of `<prefix>` and `<prefix>.sync/`), then check each manifest with a conditional GET
 * (If-None-Match): an unchanged manifest costs one 304. A changed manifest is decoded, validated
 * and built into a snapshot off to the side, then installed in one step.
 *
 * Prefixes without a manifest are listed (ListObjectsV2, no delimiter) when first used and again
 * when used after --dir-cache-time.
 *
 * Concurrency rules: one poll at a time (the next is scheduled when one ends); at most one manifest
 * GET and one listing per workspace at a time (single-flight), shared by the poll, readers waiting
 * for a first view, and re-resolution after an ETag mismatch.
 */
import PQueue from 'p-queue';
import {
  CONTROL_DIR, isSyncError, isValidWorkspaceName, manifestKey, type ListEntry, type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import { decodeInline, type DecodeFn } from './manifest-decoder.js';
import type { MountMetrics } from './metrics.js';
import type { RemoteStatus } from './remote-status.js';
import { snapshotFromListing, snapshotFromManifest, type Snapshot, type Tree, type WorkspaceState } from './tree.js';

const MANIFEST_CONCURRENCY = 8;

export interface PollerOptions {
  store: ObjectStore;
  tree: Tree;
  prefix: string;
  pollInterval: number;
  dirCacheTime: number;
  status: RemoteStatus;
  logger: Logger;
  metrics?: MountMetrics | undefined;
  /** Manifest decoding; the daemon passes a worker-backed one (manifest-decoder.ts). */
  decode?: DecodeFn;
  now?: () => number;
}

export class Poller {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly manifestFlights = new Map<string, Promise<void>>();
  private readonly listingFlights = new Map<string, Promise<Snapshot>>();
  private readonly queue = new PQueue({ concurrency: MANIFEST_CONCURRENCY });
  private readonly warned = new Set<string>();
  private readonly now: () => number;
  private pollFailing = false;

  constructor(private readonly opts: PollerOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Polls forever, starting after one interval. */
  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.queue.clear();
  }

  /** Discovery plus every manifest check. Throws when discovery fails (S3 unreachable, bad credentials). */
  async pollOnce(): Promise<void> {
    const { tree, prefix } = this.opts;
    const present = new Map<string, boolean>();
    try {
      const [top, control] = await Promise.all([
        this.commonPrefixes(prefix),
        this.commonPrefixes(`${prefix}${CONTROL_DIR}/`),
      ]);
      for (const name of top) if (this.acceptName(name)) present.set(name, false);
      for (const name of control) if (this.acceptName(name)) present.set(name, true);
      this.opts.status.ok();
    } catch (err) {
      this.opts.status.failed(err);
      throw err;
    }
    tree.reconcile(present);
    await Promise.all([...tree.all()].map((state) => {
      if (state.hasManifest) return this.queue.add(() => this.refreshManifest(state.name));
      // Its manifest is gone: the workspace is a plain prefix from now on.
      if (state.snapshot?.source === 'manifest') return this.queue.add(() => this.listing(state).then(() => undefined, () => undefined));
      return undefined;
    }));
  }

  /**
   * A view of the workspace that may be served now: the manifest's, or a listing younger than
   * --dir-cache-time. A failed refresh falls back to the view already held (S3 down: keep serving).
   */
  async ensureSnapshot(state: WorkspaceState): Promise<Snapshot | undefined> {
    if (state.hasManifest) {
      if (state.snapshot?.source === 'manifest') return state.snapshot;
      await this.refreshManifest(state.name);
      // Still named by a manifest: its view, or none while S3 cannot be reached.
      if (state.hasManifest) return state.snapshot;
    }
    const snap = state.snapshot;
    if (snap?.source === 'listing' && this.now() - snap.builtAt < this.opts.dirCacheTime) return snap;
    // While S3 is known to be down, do not make every access wait for a listing that will fail.
    if (snap && this.opts.status.down) return snap;
    try {
      return await this.listing(state);
    } catch (err) {
      if (!snap) throw err;
      this.opts.logger.debug({ workspace: state.name, err: (err as Error).message }, 'listing failed; serving the previous one');
      return snap;
    }
  }

  /** Checks the workspace's source again now (after an object did not match its manifest). */
  async recheck(state: WorkspaceState): Promise<void> {
    if (state.hasManifest) await this.refreshManifest(state.name);
    else await this.listing(state);
  }

  /** Conditional GET of one manifest; installs a new snapshot when it changed. Never throws. */
  refreshManifest(name: string): Promise<void> {
    const running = this.manifestFlights.get(name);
    if (running) return running;
    const p = this.fetchManifest(name).finally(() => this.manifestFlights.delete(name));
    this.manifestFlights.set(name, p);
    return p;
  }

  /** Polls start every interval (not an interval after the previous one ended), so a push waits at most one interval. */
  private schedule(delay = this.opts.pollInterval): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = performance.now();
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
        this.schedule(Math.max(interval / 4, interval - (performance.now() - started)));
      });
    }, delay);
  }

  private async fetchManifest(name: string): Promise<void> {
    const { store, tree, prefix, metrics, logger, status } = this.opts;
    const state = tree.get(name);
    if (!state) return;
    const key = manifestKey(prefix, name);
    let res;
    try {
      res = await store.get(key, { ifNoneMatch: state.manifestEtag });
      status.ok();
    } catch (err) {
      if (isSyncError(err, 'OBJECT_NOT_FOUND')) {
        status.ok();
        state.hasManifest = false;
        return;
      }
      status.failed(err);
      metrics?.manifestRefreshes.inc({ result: 'error' });
      logger.debug({ workspace: name, err: (err as Error).message }, 'manifest check failed');
      return;
    }
    metrics?.s3Gets.inc({ kind: 'manifest' });
    // Some servers ignore If-None-Match; the same ETag is the same manifest all the same.
    if (res.notModified || res.etag === state.manifestEtag) {
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
      const snapshot = await snapshotFromManifest(manifest, res.etag, prefix, tree.buildContext(state, this.warnFn()), this.now());
      if (tree.get(name) !== state) return;
      tree.install(name, snapshot, res.etag);
      metrics?.manifestRefreshes.inc({ result: 'changed' });
      logger.debug({ workspace: name, generation: manifest.generation, files: snapshot.files }, 'manifest installed');
    } catch (err) {
      if (!isSyncError(err)) throw err;
      // Keep serving the last good view; say so once per bad manifest version.
      this.warnOnce(`${key}@${res.etag}`, 'ignoring an invalid manifest; serving the previous view', { key, err: err.message });
      metrics?.manifestRefreshes.inc({ result: 'invalid' });
    }
  }

  private listing(state: WorkspaceState): Promise<Snapshot> {
    const running = this.listingFlights.get(state.name);
    if (running) return running;
    const p = this.list(state).finally(() => this.listingFlights.delete(state.name));
    this.listingFlights.set(state.name, p);
    return p;
  }

  private async list(state: WorkspaceState): Promise<Snapshot> {
    const { store, tree, prefix, status } = this.opts;
    const entries: ListEntry[] = [];
    try {
      for await (const e of store.list(`${prefix}${state.name}/`)) if ('key' in e) entries.push(e);
      status.ok();
    } catch (err) {
      status.failed(err);
      throw err;
    }
    const snapshot = await snapshotFromListing(state.name, entries, prefix, tree.buildContext(state, this.warnFn()), this.now());
    if (tree.get(state.name) === state && !state.hasManifest) tree.install(state.name, snapshot, undefined);
    return snapshot;
  }

  private async commonPrefixes(prefix: string): Promise<string[]> {
    const names: string[] = [];
    for await (const e of this.opts.store.list(prefix, { delimiter: '/' })) {
      if ('commonPrefix' in e) names.push(e.commonPrefix.slice(prefix.length, -1));
    }
    return names;
  }

  private acceptName(name: string): boolean {
    if (isValidWorkspaceName(name)) return true;
    if (name !== CONTROL_DIR) this.warnOnce(`name:${name}`, 'skipping a top-level prefix that is not a valid workspace name', { name });
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
