/** Prometheus metrics of `sync-agent watch`; values that are cheap to read are read at scrape time. */
import { Counter, Gauge, Histogram, type Registry } from '@workspace-sync/shared';
import type { PushReport } from './sync.js';

export interface WatchMetrics {
  synced(workspace: string, kind: 'batch' | 'reconcile', report: PushReport): void;
  failed(workspace: string, code: string): void;
}

export interface MetricSources {
  queued(): Iterable<[workspace: string, changes: number]>;
  watches(): number;
}

export function createWatchMetrics(registry: Registry, sources: MetricSources): WatchMetrics {
  const registers = [registry];
  new Gauge({
    name: 'sync_agent_queued_changes', help: 'Changes waiting to be synced (coalesced paths)', labelNames: ['workspace'], registers,
    collect() {
      this.reset();
      for (const [workspace, n] of sources.queued()) this.set({ workspace }, n);
    },
  });
  new Gauge({
    name: 'sync_agent_watches', help: 'Paths watched (inotify watches, or pollers after a fallback)', registers,
    collect() { this.set(sources.watches()); },
  });
  const uploads = new Counter({ name: 'sync_agent_uploads_total', help: 'Objects uploaded', labelNames: ['workspace'], registers });
  const copies = new Counter({ name: 'sync_agent_copies_total', help: 'Objects copied server-side (renames)', labelNames: ['workspace'], registers });
  const deletes = new Counter({ name: 'sync_agent_deletes_total', help: 'Objects deleted', labelNames: ['workspace'], registers });
  const bytes = new Counter({ name: 'sync_agent_uploaded_bytes_total', help: 'Bytes uploaded', labelNames: ['workspace'], registers });
  const errors = new Counter({ name: 'sync_agent_errors_total', help: 'Failed syncs by error code', labelNames: ['workspace', 'code'], registers });
  const syncs = new Counter({ name: 'sync_agent_syncs_total', help: 'Successful syncs (batches and reconciles)', labelNames: ['workspace', 'kind'], registers });
  const last = new Gauge({
    name: 'sync_agent_last_sync_timestamp_seconds', help: 'When the workspace last synced successfully (unix time)', labelNames: ['workspace'], registers,
  });
  const duration = new Histogram({
    name: 'sync_agent_sync_duration_seconds', help: 'Time from taking a batch to its manifest and state being written', labelNames: ['kind'],
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
  });
  return {
    synced(workspace, kind, r) {
      uploads.inc({ workspace }, r.uploaded);
      copies.inc({ workspace }, r.copied);
      deletes.inc({ workspace }, r.deleted);
      bytes.inc({ workspace }, r.bytes);
      syncs.inc({ workspace, kind });
      last.set({ workspace }, Date.now() / 1000);
      duration.observe({ kind }, r.seconds);
    },
    failed(workspace, code) {
      errors.inc({ workspace, code });
    },
  };
}
