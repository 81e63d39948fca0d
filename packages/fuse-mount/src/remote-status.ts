/**
 * Whether S3 answers. Every request reports its outcome here. While the endpoint is down, reads
 * that would need it fail at once (one probe per second is let through) instead of each waiting
 * for connection timeouts: FUSE has few worker threads, and uncached reads stuck on a dead server
 * would starve reads the cache can answer. The poller keeps probing, so recovery is automatic.
 */
import { isOutage, SyncError } from '@workspace-sync/shared';

const PROBE_INTERVAL_MS = 1_000;

export class RemoteStatus {
  private downSince: number | undefined;
  private lastProbe = 0;
  private lastError = '';

  constructor(private readonly now: () => number = Date.now) {}

  get down(): boolean {
    return this.downSince !== undefined;
  }

  get reason(): string {
    return this.down ? `S3 unreachable since ${new Date(this.downSince!).toISOString()}: ${this.lastError}` : '';
  }

  ok(): void {
    this.downSince = undefined;
  }

  /** Records a failure; only outages count (a missing key or a 412 is an answer). */
  failed(err: unknown): void {
    if (!isOutage(err)) return;
    const t = this.now();
    this.downSince ??= t;
    this.lastProbe = t;
    this.lastError = (err as Error).message;
  }

  /** Throws instead of sending a request while down, except for one probe per interval. */
  gate(what: string): void {
    if (this.downSince === undefined) return;
    const t = this.now();
    if (t - this.lastProbe >= PROBE_INTERVAL_MS) {
      this.lastProbe = t;
      return;
    }
    throw new SyncError('ENDPOINT_UNREACHABLE', `S3 is unreachable; not fetching ${what}`, {
      hint: 'cached files are still served; the mount recovers by itself when S3 is back',
    });
  }
}
