/** The mount's Prometheus metrics, registered on the registry the health server exposes. */
import { Counter, Gauge, type Registry } from '@workspace-sync/shared';

export interface MountMetrics {
  cacheHits: Counter<'tier'>;
  cacheMisses: Counter;
  cacheBytes: Gauge;
  cacheEntries: Gauge;
  cacheEvictions: Counter;
  s3Gets: Counter<'kind'>;
  s3Lists: Counter<'kind'>;
  s3GetBytes: Counter;
  manifestRefreshes: Counter<'result'>;
  prefetched: Counter;
  treeLoads: Counter;
  treesInMemory: Gauge;
  errors: Counter<'op'>;
  events: Counter<'type'>;
  eventClients: Gauge;
}

export function createMetrics(registry: Registry): MountMetrics {
  const registers = [registry];
  return {
    cacheHits: new Counter({ name: 'fuse_mount_cache_hits_total', help: 'reads served from a cache', labelNames: ['tier'], registers }),
    cacheMisses: new Counter({ name: 'fuse_mount_cache_misses_total', help: 'reads that needed a GET', registers }),
    cacheBytes: new Gauge({ name: 'fuse_mount_cache_bytes', help: 'bytes in the disk cache', registers }),
    cacheEntries: new Gauge({ name: 'fuse_mount_cache_entries', help: 'blobs in the disk cache', registers }),
    cacheEvictions: new Counter({ name: 'fuse_mount_cache_evictions_total', help: 'blobs removed for size or age', registers }),
    s3Gets: new Counter({ name: 'fuse_mount_s3_gets_total', help: 'GET requests by kind', labelNames: ['kind'], registers }),
    s3Lists: new Counter({ name: 'fuse_mount_s3_lists_total', help: 'LIST requests by kind (heads, discovery)', labelNames: ['kind'], registers }),
    s3GetBytes: new Counter({ name: 'fuse_mount_s3_get_bytes_total', help: 'content bytes downloaded', registers }),
    manifestRefreshes: new Counter({
      name: 'fuse_mount_manifest_refreshes_total', help: 'head and manifest checks by result (changed, unchanged, invalid, upgraded, error)',
      labelNames: ['result'], registers,
    }),
    treeLoads: new Counter({ name: 'fuse_mount_tree_loads_total', help: 'directory objects (format v2) verified and decoded', registers }),
    treesInMemory: new Gauge({ name: 'fuse_mount_trees_in_memory', help: 'decoded directories held in memory', registers }),
    prefetched: new Counter({ name: 'fuse_mount_prefetched_total', help: 'files fetched ahead of a read (a prefetched pack counts the files it was fetched for)', registers }),
    errors: new Counter({ name: 'fuse_mount_errors_total', help: 'failed operations by kind', labelNames: ['op'], registers }),
    events: new Counter({ name: 'fuse_mount_events_total', help: 'change events published on /events, by type', labelNames: ['type'], registers }),
    eventClients: new Gauge({ name: 'fuse_mount_event_clients', help: 'open /events streams', registers }),
  };
}
