/**
 * When the pending changes of one workspace become a batch. Pure: the caller passes the clock.
 *
 * - A batch closes once the workspace has been quiet for `quietMs`: a save reaches S3 quickly, and
 *   short-lived files (editor temp files, vim's 4913) come and go inside the window and cancel out.
 * - During a long burst it closes `maxDelayMs` after it opened, taking paths quiet for `settleMs`,
 *   so a burst becomes one commit per `maxDelayMs` and a file being written is not read half-way.
 *   `settleMs` exceeds chokidar's 50 ms per-path change throttle: any write after our read is reported.
 *   A path that never settles (a log being appended to) is taken anyway once it has been pending for
 *   `maxDelayMs`: it is read as one stable version (hash.ts) and uploaded, at least every `maxDelayMs`.
 * - Deletes wait until the workspace has been quiet for `deleteQuietMs` (at most `deleteMaxDelayMs`
 *   after their first event), so a half-finished `rm -rf`, a slow `rm` of one file after another, or an
 *   unmount reaches the delete guard as one burst rather than as a partial wipe, batch by batch.
 */
import { ChangeQueue, type FsChange, type PendingChange } from './coalesce.js';

export interface BatchPolicy {
  quietMs: number;
  maxDelayMs: number;
  settleMs: number;
  deleteQuietMs: number;
  deleteMaxDelayMs: number;
}

export const DEFAULT_BATCH_POLICY: Readonly<BatchPolicy> = Object.freeze({
  quietMs: 100, maxDelayMs: 1_000, settleMs: 75, deleteQuietMs: 2_000, deleteMaxDelayMs: 30_000,
});

export class Batcher {
  readonly queue: ChangeQueue;
  private lastEventAt = 0;
  /** When the batch being gathered opened (its first change); undefined when nothing is pending. */
  private openedAt: number | undefined;

  constructor(private readonly policy: BatchPolicy, limit?: number) {
    this.queue = new ChangeQueue(limit);
  }

  get size(): number {
    return this.queue.size;
  }

  /** False when the queue overflowed: the caller must re-read the whole workspace. */
  push(change: FsChange, now: number): boolean {
    this.lastEventAt = now;
    this.openedAt ??= now;
    const ok = this.queue.push(change, now);
    if (this.queue.size === 0) this.openedAt = undefined;
    return ok;
  }

  /** The changes to sync now (empty when no batch is due); `all` takes everything (shutdown, reconcile). */
  take(now: number, all = false): PendingChange[] {
    if (this.queue.size === 0) return [];
    const p = this.policy;
    let taken: PendingChange[] = [];
    const quiet = now - this.lastEventAt;
    if (all) {
      taken = this.queue.take(() => true);
    } else if (quiet >= p.quietMs) {
      taken = this.queue.take((c) => c.type !== 'delete' || quiet >= p.deleteQuietMs || now >= c.firstAt + p.deleteMaxDelayMs);
    } else if (this.openedAt !== undefined && now - this.openedAt >= p.maxDelayMs) {
      taken = this.queue.take((c) => readyAt(c, this.openedAt!, p) <= now);
    }
    if (this.queue.size === 0) this.openedAt = undefined;
    else if (taken.length) this.openedAt = now;
    return taken;
  }

  /** When take() may next return something; undefined when nothing is pending. */
  dueAt(now: number): number | undefined {
    if (this.queue.size === 0 || this.openedAt === undefined) return undefined;
    // Only deletes left: they wait for the longer quiet, or their own deadline.
    let deletesAt = this.lastEventAt + this.policy.deleteQuietMs;
    let onlyDeletes = true;
    for (const c of this.queue.values()) {
      if (c.type !== 'delete') { onlyDeletes = false; break; }
      deletesAt = Math.min(deletesAt, c.firstAt + this.policy.deleteMaxDelayMs);
    }
    if (onlyDeletes) return deletesAt;
    const quietAt = this.lastEventAt + this.policy.quietMs;
    const forceAt = this.openedAt + this.policy.maxDelayMs;
    if (now < forceAt) return Math.min(quietAt, forceAt);
    let due = quietAt;
    for (const c of this.queue.values()) due = Math.min(due, readyAt(c, this.openedAt, this.policy));
    return due;
  }

  /** Puts back a batch whose sync failed. */
  restore(changes: readonly PendingChange[], now: number): boolean {
    if (changes.length === 0) return true;
    let opened = this.openedAt ?? now;
    for (const c of changes) opened = Math.min(opened, c.firstAt);
    this.openedAt = opened;
    const ok = this.queue.restore(changes);
    if (this.queue.size === 0) this.openedAt = undefined;
    return ok;
  }

  clear(): void {
    this.queue.clear();
    this.openedAt = undefined;
  }
}

/** When a change may be taken before the workspace is quiet. */
function readyAt(c: PendingChange, openedAt: number, p: BatchPolicy): number {
  const settled = c.lastAt + p.settleMs;
  const forced = openedAt + p.maxDelayMs;
  if (c.type === 'delete') return Math.max(settled, forced, c.firstAt + p.deleteMaxDelayMs);
  return Math.max(forced, Math.min(settled, c.firstAt + p.maxDelayMs));
}
