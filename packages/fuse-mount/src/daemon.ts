/**
 * Wires one mount together: S3 store, content cache, tree and poller, fetcher, core, FUSE, and
 * the health server. Start-up order puts the cheap local checks first (mount point, /dev/fuse,
 * cache directory), then the first poll, so a wrong endpoint or bucket fails before mounting.
 */
import path from 'node:path';
import {
  createObjectStore, createRegistry, createS3Client, s3SettingsFor, startHealthServer,
  type Health, type HealthServer, type Logger, type MountConfig, type S3Settings,
} from '@workspace-sync/shared';
import { ContentCache } from './content-cache.js';
import { MountCore } from './core.js';
import { Fetcher } from './fetcher.js';
import { createFuseHandlers } from './fuse-ops.js';
import { ManifestDecoder } from './manifest-decoder.js';
import { createMetrics } from './metrics.js';
import { mountFuse, prepareMountpoint, type MountedFs } from './mount.js';
import { Poller } from './poller.js';
import { RemoteStatus } from './remote-status.js';
import { Tree } from './tree.js';

/** Short per-request limits: a reader waits for S3 a few seconds at most, then gets EIO. */
const REQUEST_TIMEOUT_MS = 5_000;
const MAX_ATTEMPTS = 2;
/** Sockets for demand reads, read-ahead and polls (prefetching has its own client in a worker). */
const MAIN_SOCKETS = 32;

export interface RunningMount {
  readonly mountpoint: string;
  readonly healthPort: number | undefined;
  health(): Health;
  /** Unmounts and releases everything; safe to call more than once. */
  stop(): Promise<void>;
}

export async function startMount(config: Readonly<MountConfig>, mountpointArg: string, logger: Logger): Promise<RunningMount> {
  const mountpoint = path.resolve(mountpointArg);
  await prepareMountpoint(mountpoint, logger);

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
    const cache = await ContentCache.open({
      dir: config.cacheDir, maxSize: config.cacheMaxSize, maxAge: config.cacheMaxAge, memSize: config.memCacheSize, logger, metrics,
    });
    cleanups.push(() => cache.close());
    const tree = new Tree();
    const decoder = new ManifestDecoder();
    cleanups.push(() => decoder.close());
    // Workers load while the first poll runs, not when the first reader is waiting.
    decoder.start();
    const poller = new Poller({
      store, tree, prefix: config.prefix, pollInterval: config.pollInterval, dirCacheTime: config.dirCacheTime, status, logger, metrics,
      decode: decoder.decode,
    });
    cleanups.push(() => poller.stop());
    await poller.pollOnce();
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
    const core = new MountCore({
      tree, poller, fetcher, logger, uid: config.uid ?? process.getuid?.() ?? 0, gid: config.gid ?? process.getgid?.() ?? 0,
    });
    const mounted: MountedFs = await mountFuse(createFuseHandlers(core, { logger, metrics }), {
      mountpoint, fsname: `s3:${config.bucket}`, allowOther: config.allowOther, defaultPermissions: config.defaultPermissions, logger,
      kernelTimeoutSec: kernelTimeout(config.pollInterval),
    });
    cleanups.push(() => mounted.unmount());
    poller.start();

    const health = (): Health => ({
      status: status.down ? 'degraded' : 'ok',
      reasons: status.down ? [status.reason, 'cached content is still served'] : [],
      mountpoint, workspaces: tree.names().length, cacheBytes: cache.bytes,
    });
    let server: HealthServer | undefined;
    if (config.healthPort !== undefined) {
      server = await startHealthServer({ port: config.healthPort, host: config.healthAddress, prefix: config.prefix, registry, health });
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
