/**
 * Wires one mount together: S3 store, content cache, tree store, tree and poller, fetcher, core,
 * FUSE, and the health server. Start-up order puts the cheap local checks first (mount point,
 * /dev/fuse, cache directory), then the first poll, so a wrong endpoint or bucket fails before
 * mounting. With S3 down or silent at start-up, the heads and trees an earlier run left in the cache
 * directory are served (degraded) if there are any; otherwise start-up fails with the S3 error,
 * within about 10 s. Start-up can be abandoned at any step (a signal): nothing is left mounted.
 */
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  SyncError, createObjectStore, createRegistry, createS3Client, isOutage, s3SettingsFor, startHealthServer,
  type Health, type HealthServer, type Logger, type MountConfig, type S3Settings,
} from '@workspace-sync/shared';
import { ContentCache } from './content-cache.js';
import { MountCore } from './core.js';
import { Fetcher } from './fetcher.js';
import { EventHub } from './events.js';
import { createFuseHandlers } from './fuse-ops.js';
import { History } from './history.js';
import { ManifestDecoder } from './manifest-decoder.js';
import { createMetrics } from './metrics.js';
import { openKernelNotifier } from './kernel-notify.js';
import { mountFuse, prepareMountpoint, type MountedFs } from './mount.js';
import { OfflineState } from './offline-state.js';
import { Poller } from './poller.js';
import { RemoteStatus } from './remote-status.js';
import { Tree } from './tree.js';
import { TreeStore } from './tree-store.js';

/**
 * Per-request limits: 2 s of silence fails an attempt, two attempts with the SDK's backoff end a
 * request against a silent endpoint after about 4.2 s, so S3 is marked down (healthz degraded)
 * right after the adapter's 4 s deadline answered the reader with EIO.
 */
const REQUEST_TIMEOUT_MS = 2_000;
const MAX_ATTEMPTS = 2;
/** Every FUSE operation answers within this (fuse-native's own limit is 10 s, see mount.ts). */
const OP_DEADLINE_MS = 4_000;
/** The first poll at start-up: longer than one request's worst case, well within 30 s. */
const FIRST_POLL_DEADLINE_MS = 10_000;
/** Sockets for demand reads, read-ahead and polls (prefetching has its own client in a worker). */
const MAIN_SOCKETS = 32;

export interface RunningMount {
  readonly mountpoint: string;
  readonly healthPort: number | undefined;
  /** Resolves when the mount was removed from outside; the process should then stop. */
  readonly gone: Promise<void>;
  health(): Health;
  /** Unmounts and releases everything; safe to call more than once. */
  stop(): Promise<void>;
}

export async function startMount(
  config: Readonly<MountConfig>, mountpointArg: string, logger: Logger, abort?: AbortSignal,
): Promise<RunningMount> {
  const mountpoint = path.resolve(mountpointArg);
  const checkAbort = () => {
    if (abort?.aborted) throw new SyncError('INTERRUPTED', 'start-up interrupted by a signal');
  };
  await prepareMountpoint(mountpoint, logger);
  checkAbort();

  const registry = createRegistry('fuse_mount_');
  const metrics = createMetrics(registry);
  const status = new RemoteStatus();
  const settings: S3Settings = {
    ...s3SettingsFor(config, logger), maxSockets: MAIN_SOCKETS, requestTimeoutMs: REQUEST_TIMEOUT_MS, maxAttempts: MAX_ATTEMPTS,
  };
  const client = createS3Client(settings);
  const store = createObjectStore(settings, client);
  const cleanups: Array<() => Promise<void> | void> = [() => client.destroy()];
  /** Runs every step even when one fails, then reports the first failure (an unmount that failed). */
  const cleanup = async () => {
    let first: unknown;
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  };

  try {
    await privateDir(config.cacheDir, logger);
    const cache = await ContentCache.open({
      dir: config.cacheDir, maxSize: config.cacheMaxSize, maxAge: config.cacheMaxAge, memSize: config.memCacheSize, logger, metrics,
    });
    cleanups.push(() => cache.close());
    const offline = new OfflineState(cache.root, config.bucket, config.prefix, logger);
    cleanups.push(() => offline.flush());
    const tree = new Tree();
    const trees = new TreeStore({ store, prefix: config.prefix, cache, status, logger, metrics });
    const decoder = new ManifestDecoder();
    cleanups.push(() => decoder.close());
    // Workers load while the first poll runs, not when the first reader is waiting.
    decoder.start();
    const poller = new Poller({
      store, tree, trees, prefix: config.prefix, pollInterval: config.pollInterval, dirCacheTime: config.dirCacheTime, status, logger, metrics,
      decode: decoder.decode, offline,
    });
    cleanups.push(() => poller.stop());
    await firstPoll(poller, status, logger, abort);
    checkAbort();
    const fetcher = new Fetcher({
      store, cache, status, logger, metrics,
      prefetch: {
        settings: { ...settings, maxSockets: config.prefetchConcurrency },
        concurrency: config.prefetchConcurrency,
        budget: Math.floor(config.cacheMaxSize / 2),
      },
    });
    cleanups.push(() => fetcher.stop());
    fetcher.startPrefetcher();
    const history = new History({ store, prefix: config.prefix, trees, status, logger, dirCacheTime: config.dirCacheTime });
    // After the first poll: what it found is the starting state, not a change.
    const events = new EventHub({ tree, trees, history, logger, metrics });
    const core = new MountCore({
      tree, poller, fetcher, trees, history, logger, uid: config.uid ?? process.getuid?.() ?? 0, gid: config.gid ?? process.getgid?.() ?? 0,
    });
    checkAbort();
    const mounted: MountedFs = await mountFuse(createFuseHandlers(core, { logger, metrics, deadlineMs: OP_DEADLINE_MS }), {
      mountpoint, fsname: `s3:${config.bucket}`, allowOther: config.allowOther, defaultPermissions: config.defaultPermissions, logger,
      kernelTimeoutSec: kernelTimeout(config.pollInterval),
    });
    cleanups.push(() => mounted.unmount());
    if (config.kernelNotify) {
      const notifier = await openKernelNotifier(logger);
      if (notifier) {
        // Runs before the unmount (cleanups run in reverse), and when the mount is removed from outside.
        cleanups.push(() => notifier.close());
        void mounted.gone.then(() => notifier.close());
        tree.onInstall((state) => notifier.workspaceChanged(state.name));
        tree.onMembership((added, removed) => {
          for (const { name } of added) notifier.workspaceChanged(name);
          for (const name of removed) notifier.workspaceChanged(name);
        });
      }
    }
    checkAbort();
    poller.start();

    const health = (): Health => ({
      status: status.down ? 'degraded' : 'ok',
      reasons: status.down ? [status.reason, 'cached content is still served'] : [],
      mountpoint, workspaces: tree.names().length, cacheBytes: cache.bytes,
    });
    let server: HealthServer | undefined;
    if (config.healthPort !== undefined) {
      server = await startHealthServer({
        port: config.healthPort, host: config.healthAddress, prefix: config.prefix, registry, health,
        routes: { '/events': (req, res) => events.handle(req, res) }, onClose: () => events.close(),
      });
      cleanups.push(() => server!.close());
    }
    logger.info({
      mountpoint, bucket: config.bucket, prefix: config.prefix, endpoint: store.endpointLabel, workspaces: tree.names().length,
      healthPort: server?.port,
    }, 'mounted');
    let stopping: Promise<void> | undefined;
    return {
      mountpoint,
      healthPort: server?.port,
      gone: mounted.gone,
      health,
      stop: () => (stopping ??= cleanup()),
    };
  } catch (err) {
    await cleanup().catch((cleanupErr: unknown) => logger.warn({ err: cleanupErr }, 'cleanup after a failed start failed'));
    throw err;
  }
}

/** Kernel entry/attribute lifetime: a quarter of the poll interval, between 0.1 s and 1 s. */
function kernelTimeout(pollIntervalMs: number): number {
  return Math.round(Math.min(1, Math.max(0.1, pollIntervalMs / 4000)) * 10) / 10;
}

/**
 * The first poll, bounded in time. S3 unreachable or silent: serve what an earlier run saved, if
 * anything; otherwise fail with the S3 error. Other failures (credentials, no such bucket) fail.
 */
async function firstPoll(poller: Poller, status: RemoteStatus, logger: Logger, abort: AbortSignal | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SyncError('ENDPOINT_UNREACHABLE', `S3 did not answer within ${FIRST_POLL_DEADLINE_MS / 1000} s`, {
      hint: 'check --endpoint / S3_ENDPOINT and that the server is running and reachable',
    })), FIRST_POLL_DEADLINE_MS);
    onAbort = () => reject(new SyncError('INTERRUPTED', 'start-up interrupted by a signal'));
    abort?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([poller.pollOnce(), stop]);
  } catch (err) {
    if (!isOutage(err)) throw err;
    status.failed(err);
    const restored = await poller.restoreOffline();
    if (restored === 0) throw err;
    logger.warn({ err: (err as Error).message, workspaces: restored }, 'S3 does not answer; serving the workspaces cached by an earlier run until it does');
  } finally {
    clearTimeout(timer);
    if (onAbort) abort?.removeEventListener('abort', onAbort);
  }
}

/**
 * The cache holds workspace contents in clear (SSE-C objects included): only the mount's user may
 * read it, whatever --allow-other lets other users see through the mount.
 */
async function privateDir(dir: string, logger: Logger): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  } catch (err) {
    logger.warn({ dir, err: (err as Error).message }, 'cannot make the cache directory private (mode 0700): other local users may read cached content');
  }
}
