/**
 * The decisions of one workspace's watch loop, as pure functions: `step` turns the loop's state and
 * one input (an event, a sync starting or ending, a command) into the next state, and `next` says
 * what the loop waits for and until when. watch-workspace.ts is the shell: it feeds inputs in, keeps
 * one timer for `next(...).at`, and does the I/O (watchers, filters, syncs). No clock is read here:
 * every time comes in with an input.
 *
 *   starting ──watcher in place──▶ reconciling (no sync before: a change between the scan and the watch would be lost)
 *   idle ──change──▶ batching ──due──▶ syncing ──ok──▶ idle
 *                    reconciling ─due─┘   │ └─failed (remote, transient)──▶ backing-off ──due──▶ syncing
 *                                         └─refused (the workspace's own state)──▶ refused ──change/rescan──▶ …
 *   any ──directory gone──▶ missing ──directory back──▶ starting;   any ──stop──▶ stopped
 */

/** What `summary()` and the health endpoint report. */
export type WorkspaceStatus = 'starting' | 'synced' | 'pending' | 'failing' | 'refused' | 'missing';

export interface LoopState {
  readonly status: WorkspaceStatus;
  /** Why the workspace is refused, failing or missing. */
  readonly reason: string | undefined;
  /** The next sync re-reads the whole workspace (first sync, overflow, watcher error, rescan, a failed reconcile). */
  readonly full: boolean;
  /** The next sync reads the ignore files and git index again first (they have settled by then). */
  readonly refilter: boolean;
  /** The next sync rebuilds the directory watcher first. */
  readonly rewatch: boolean;
  /** Consecutive failed syncs, for the backoff. */
  readonly failures: number;
  /** No sync starts before this time (backoff); 0 for none. */
  readonly retryAt: number;
  /** Refused, and waiting for a change in the workspace or a rescan rather than for a time. */
  readonly held: boolean;
  /** The directory watcher is in place: syncs wait for it, so no change falls between a scan and the watch. */
  readonly watching: boolean;
  /** A sync is running; its end decides what comes next. */
  readonly syncing: boolean;
  /** A filesystem event arrived while the sync in flight ran (a refusal is then retried at once). */
  readonly changedDuringSync: boolean;
  readonly stopped: boolean;
}

export type LoopInput =
  /** A filesystem event (queued or filtered out); `overflow`: the queue is full, re-read everything. */
  | { type: 'fs-change'; overflow: boolean }
  /** An ignore file changed: `whole` when it applies to the whole workspace (else its directory was queued). */
  | { type: 'ignore-file'; whole: boolean }
  /** The git index changed the tracked state of queued paths; `rewatch` when one lies where the watcher does not look. */
  | { type: 'tracked-change'; rewatch: boolean; overflow: boolean }
  /** The git index could not be read: read it again (and report) at the next sync. */
  | { type: 'index-unreadable' }
  /** The watcher failed or fell back to polling: changes may have been missed. */
  | { type: 'watch-error' }
  /** The periodic safety rescan. */
  | { type: 'rescan' }
  /** The root .gitignore changed: every decision of the filter may have changed. */
  | { type: 'root-ignore' }
  /** S3 answers again after an outage. */
  | { type: 'remote-back' }
  /** The directory watcher is in place (after start, or after the directory came back). */
  | { type: 'watching' }
  | { type: 'directory-gone'; reason: string }
  | { type: 'directory-back' }
  | { type: 'sync-start' }
  /** `pending`: changes are queued behind the sync that just ended. */
  | { type: 'sync-ok'; pending: boolean }
  /**
   * `requeued: false` when what the failed sync had taken could not all go back in the queue;
   * `refilter`/`rewatch`: the owed work it did not get done. `outcome`: `refused` for errors about the
   * workspace itself (held until it changes), `gone` when its directory vanished (a `directory-gone`
   * follows), `retry` for the rest (backoff).
   */
  | {
    type: 'sync-failed'; full: boolean; requeued: boolean; refilter: boolean; rewatch: boolean;
    outcome: 'refused' | 'gone' | 'retry'; reason: string; now: number;
  }
  | { type: 'stop' };

/** What the loop waits for; `at` is when the shell runs the next sync. */
export type Next =
  | { kind: 'starting' }
  | { kind: 'idle' }
  | { kind: 'batching'; at: number }
  | { kind: 'reconciling'; at: number }
  | { kind: 'backing-off'; at: number }
  | { kind: 'refused' }
  | { kind: 'syncing' }
  | { kind: 'missing' }
  | { kind: 'stopped' };

export const INITIAL_LOOP_STATE: LoopState = Object.freeze({
  status: 'starting', reason: undefined, full: true, refilter: false, rewatch: false, failures: 0, retryAt: 0,
  held: false, watching: false, syncing: false, changedDuringSync: false, stopped: false,
});

/** Backoff after failed syncs: 0.5 s doubling to 15 s. */
export function retryDelayMs(failures: number): number {
  return Math.min(500 * 2 ** Math.max(failures - 1, 0), 15_000);
}

/** The state after `input`. Inputs that do not apply in the current state leave it unchanged. */
export function step(s: LoopState, input: LoopInput): LoopState {
  if (s.status === 'missing') {
    // Only the directory coming back leaves 'missing' (with ignore files that may have changed meanwhile);
    // a sync that was in flight when it went ends quietly.
    if (input.type === 'directory-back' && !s.stopped) return { ...s, status: 'starting', reason: undefined, full: true, refilter: true };
    if (input.type === 'stop') return { ...s, stopped: true };
    if (input.type === 'sync-ok' || input.type === 'sync-failed') return { ...s, syncing: false, full: true };
    return s;
  }
  // Stopped: only the syncs still running (or the final flush) move the state.
  if (s.stopped && input.type !== 'sync-start' && input.type !== 'sync-ok' && input.type !== 'sync-failed') return s;
  switch (input.type) {
    case 'fs-change':
      return {
        ...s,
        full: s.full || input.overflow,
        status: s.status === 'synced' ? 'pending' : s.status,
        // A refused workspace is retried when something changes (the user may have restored it).
        held: false,
        retryAt: s.status === 'refused' ? 0 : s.retryAt,
        changedDuringSync: s.changedDuringSync || s.syncing,
      };
    case 'ignore-file':
      return { ...s, full: s.full || input.whole, refilter: true, rewatch: true };
    case 'tracked-change':
      return {
        ...s, full: s.full || input.overflow, rewatch: s.rewatch || input.rewatch, status: s.status === 'synced' ? 'pending' : s.status,
      };
    case 'index-unreadable':
      return { ...s, full: true, refilter: true };
    case 'watch-error':
      return { ...s, full: true, rewatch: true };
    case 'rescan':
      return { ...s, full: true, refilter: true, ...(s.status === 'refused' ? { held: false, retryAt: 0 } : {}) };
    case 'root-ignore':
      return { ...s, full: true, refilter: true, rewatch: true };
    case 'remote-back':
      return s.status === 'failing' ? { ...s, retryAt: 0 } : s;
    case 'watching':
      return { ...s, watching: true };
    case 'directory-gone':
      return { ...s, status: 'missing', reason: input.reason, full: true, held: false, watching: false };
    case 'directory-back':
      return s;
    case 'sync-start':
      // The sync takes the owed work with it; what arrives meanwhile is owed by the next one.
      return { ...s, syncing: true, changedDuringSync: false, full: false, refilter: false, rewatch: false };
    case 'sync-ok':
      return {
        ...s, syncing: false, failures: 0, retryAt: 0, held: false, reason: undefined,
        status: input.pending || s.full ? 'pending' : 'synced',
      };
    case 'sync-failed': {
      const owed = {
        ...s, syncing: false, full: s.full || input.full || !input.requeued,
        refilter: s.refilter || input.refilter, rewatch: s.rewatch || input.rewatch,
      };
      if (input.outcome === 'gone') return owed;
      if (input.outcome === 'refused') {
        // Waits for a change in the workspace (or the rescan), not for a timer; one that came while the
        // sync ran counts. The next sync rebuilds the watcher: a disk mounted again over the directory
        // is not seen by the old watches.
        return { ...owed, status: 'refused', reason: input.reason, held: !s.changedDuringSync, retryAt: 0, rewatch: true };
      }
      const failures = s.failures + 1;
      return { ...owed, status: 'failing', reason: input.reason, failures, retryAt: input.now + retryDelayMs(failures) };
    }
    case 'stop':
      return { ...s, stopped: true };
  }
}

/**
 * What the loop waits for, given the batcher: `queued` changes, the next of which may be taken at
 * `batchDueAt` (undefined when none is). A reconcile owed while changes are queued waits for the
 * batch's time, so that a burst is read once it has settled.
 */
export function next(s: LoopState, queued: number, batchDueAt: number | undefined, now: number): Next {
  if (s.stopped) return { kind: 'stopped' };
  if (s.status === 'missing') return { kind: 'missing' };
  if (s.syncing) return { kind: 'syncing' };
  if (!s.watching) return { kind: 'starting' };
  const due = s.full && queued === 0 ? now : batchDueAt ?? (s.full ? now : undefined);
  if (due === undefined) return { kind: 'idle' };
  if (s.held) return { kind: 'refused' };
  if (s.retryAt > due) return { kind: 'backing-off', at: s.retryAt };
  return s.full ? { kind: 'reconciling', at: due } : { kind: 'batching', at: due };
}
