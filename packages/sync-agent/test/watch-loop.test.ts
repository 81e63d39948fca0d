import { describe, expect, it } from 'vitest';
import { INITIAL_LOOP_STATE, next, retryDelayMs, step, type LoopInput, type LoopState } from '../src/watch-loop.js';

const T = 1_000_000;

const watching: LoopInput = { type: 'watching' };

/** The state after the watcher is in place and then `inputs`. */
function run(...inputs: LoopInput[]): LoopState {
  return inputs.reduce(step, step(INITIAL_LOOP_STATE, watching));
}

const start: LoopInput = { type: 'sync-start' };
const ok: LoopInput = { type: 'sync-ok', pending: false };
const change: LoopInput = { type: 'fs-change', overflow: false };
function failed(outcome: 'refused' | 'gone' | 'retry', over: Partial<Extract<LoopInput, { type: 'sync-failed' }>> = {}): LoopInput {
  return { type: 'sync-failed', full: false, requeued: true, refilter: false, rewatch: false, outcome, reason: 'boom', now: T, ...over };
}

describe('watch loop: starting and steady state', () => {
  it('waits for its watcher, reconciles at once, then waits idle for a change', () => {
    // No sync before the watcher is in place: a change between the scan and the watch would be lost.
    expect(next(INITIAL_LOOP_STATE, 0, undefined, T)).toEqual({ kind: 'starting' });
    expect(next(step(INITIAL_LOOP_STATE, { type: 'rescan' }), 3, T, T)).toEqual({ kind: 'starting' });
    expect(next(run(), 0, undefined, T)).toEqual({ kind: 'reconciling', at: T });
    const syncing = run(start);
    expect(next(syncing, 0, undefined, T)).toEqual({ kind: 'syncing' });
    const synced = run(start, ok);
    expect(synced).toMatchObject({ status: 'synced', full: false, failures: 0 });
    expect(next(synced, 0, undefined, T)).toEqual({ kind: 'idle' });
  });

  it('batches a change at the batcher\'s time and shows it as pending', () => {
    const s = run(start, ok, change);
    expect(s.status).toBe('pending');
    expect(next(s, 1, T + 100, T)).toEqual({ kind: 'batching', at: T + 100 });
    // Queued changes whose time has not come yet, and nothing owed: idle until one is due.
    expect(next(s, 1, undefined, T)).toEqual({ kind: 'idle' });
  });

  it('ends pending when changes were queued behind the sync', () => {
    expect(run(start, change, { type: 'sync-ok', pending: true }).status).toBe('pending');
    expect(run(start, { type: 'sync-ok', pending: false }).status).toBe('synced');
  });

  it('waits for a burst to settle before an owed reconcile', () => {
    const s = run(start, ok, { type: 'fs-change', overflow: true });
    expect(s.full).toBe(true);
    expect(next(s, 3, T + 2_000, T)).toEqual({ kind: 'reconciling', at: T + 2_000 });
    expect(next(s, 3, undefined, T)).toEqual({ kind: 'reconciling', at: T });
    expect(next(s, 0, undefined, T)).toEqual({ kind: 'reconciling', at: T });
  });

  it('owes a reconcile after a watcher error, a rescan, the root .gitignore and a workspace-wide ignore file', () => {
    const synced = run(start, ok);
    expect(step(synced, { type: 'watch-error' })).toMatchObject({ full: true, rewatch: true, refilter: false });
    expect(step(synced, { type: 'rescan' })).toMatchObject({ full: true, refilter: true, rewatch: false });
    expect(step(synced, { type: 'root-ignore' })).toMatchObject({ full: true, refilter: true, rewatch: true });
    expect(step(synced, { type: 'ignore-file', whole: true })).toMatchObject({ full: true, refilter: true, rewatch: true });
    // A nested .gitignore: its directory is queued instead; the filter and watcher are still redone.
    expect(step(synced, { type: 'ignore-file', whole: false })).toMatchObject({ full: false, refilter: true, rewatch: true });
    expect(step(synced, { type: 'index-unreadable' })).toMatchObject({ full: true, refilter: true });
  });

  it('a tracked-state change marks the workspace pending and rebuilds the watcher only when asked', () => {
    const synced = run(start, ok);
    expect(step(synced, { type: 'tracked-change', rewatch: false, overflow: false })).toMatchObject({ status: 'pending', rewatch: false, full: false });
    expect(step(synced, { type: 'tracked-change', rewatch: true, overflow: true })).toMatchObject({ rewatch: true, full: true });
  });

  it('a sync takes the owed work with it; what arrives meanwhile is owed by the next one', () => {
    const owed = run(start, ok, { type: 'root-ignore' });
    const syncing = step(owed, start);
    expect(syncing).toMatchObject({ full: false, refilter: false, rewatch: false, syncing: true });
    const after = run(start, ok, { type: 'root-ignore' }, start, { type: 'watch-error' }, ok);
    expect(after).toMatchObject({ full: true, rewatch: true, status: 'pending' });
    expect(next(after, 0, undefined, T)).toEqual({ kind: 'reconciling', at: T });
  });
});

describe('watch loop: failures', () => {
  it('backs off after a failed sync: 0.5 s doubling to 15 s, and keeps what the sync owed', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 10].map(retryDelayMs)).toEqual([500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000]);
    let s = run(start, change);
    s = step(s, failed('retry', { requeued: true }));
    expect(s).toMatchObject({ status: 'failing', reason: 'boom', failures: 1, retryAt: T + 500, full: false });
    expect(next(s, 1, T + 100, T)).toEqual({ kind: 'backing-off', at: T + 500 });
    // A batch due after the backoff runs at its own time.
    expect(next(s, 1, T + 900, T)).toEqual({ kind: 'batching', at: T + 900 });
    s = step(step(s, start), failed('retry', { now: T + 500 }));
    expect(s).toMatchObject({ failures: 2, retryAt: T + 1_500 });
    const ok2 = step(step(s, start), ok);
    expect(ok2).toMatchObject({ status: 'synced', failures: 0, retryAt: 0, reason: undefined });
  });

  it('a failed reconcile, or a batch that did not fit back in the queue, owes a reconcile', () => {
    expect(run(start, failed('retry', { full: true })).full).toBe(true);
    expect(run(start, ok, change, start, failed('retry', { requeued: false })).full).toBe(true);
    expect(run(start, ok, change, start, failed('retry')).full).toBe(false);
  });

  it('a failed sync still owes the filter and watcher it did not get to rebuild', () => {
    const s = run(start, ok, { type: 'root-ignore' }, start, failed('retry', { full: true, refilter: true, rewatch: true }));
    expect(s).toMatchObject({ refilter: true, rewatch: true, full: true });
  });

  it('retries at once when S3 answers again, only when failing', () => {
    const failing = run(start, failed('retry'));
    expect(step(failing, { type: 'remote-back' }).retryAt).toBe(0);
    const refused = run(start, failed('refused'));
    expect(step(refused, { type: 'remote-back' })).toBe(refused);
  });

  it('holds a refused workspace until something in it changes or the rescan comes, not on a timer', () => {
    const refused = run(start, failed('refused'));
    expect(refused).toMatchObject({ status: 'refused', reason: 'boom', held: true, rewatch: true, failures: 0 });
    expect(next(refused, 0, undefined, T)).toEqual({ kind: 'idle' });
    expect(next(refused, 2, T + 100, T)).toEqual({ kind: 'refused' });
    // The git index rewriting itself is not the user changing the workspace.
    expect(next(step(refused, { type: 'tracked-change', rewatch: false, overflow: false }), 2, T, T)).toEqual({ kind: 'refused' });
    const changed = step(refused, change);
    expect(changed).toMatchObject({ held: false, status: 'refused' });
    expect(next(changed, 1, T + 100, T)).toEqual({ kind: 'batching', at: T + 100 });
    expect(next(step(refused, { type: 'rescan' }), 0, undefined, T)).toEqual({ kind: 'reconciling', at: T });
  });

  it('retries a refusal at once when a change arrived while the refused sync ran', () => {
    const s = run(start, change, failed('refused', { full: true }));
    expect(s).toMatchObject({ status: 'refused', held: false });
    expect(next(s, 1, T + 100, T)).toEqual({ kind: 'reconciling', at: T + 100 });
  });
});

describe('watch loop: the directory, and stopping', () => {
  it('waits for a vanished directory whatever arrives, then reconciles with ignore files read again', () => {
    const gone = run(start, ok, { type: 'directory-gone', reason: 'gone' });
    expect(gone).toMatchObject({ status: 'missing', reason: 'gone', full: true });
    for (const input of [change, { type: 'rescan' }, { type: 'root-ignore' }, { type: 'remote-back' }] as LoopInput[]) {
      expect(step(gone, input)).toBe(gone);
      expect(next(step(gone, input), 5, T, T)).toEqual({ kind: 'missing' });
    }
    expect(gone.watching).toBe(false);
    const back = step(gone, { type: 'directory-back' });
    expect(back).toMatchObject({ status: 'starting', full: true, refilter: true, reason: undefined });
    // The reconcile waits for the new watcher: files written back meanwhile are seen by one or the other.
    expect(next(back, 0, undefined, T)).toEqual({ kind: 'starting' });
    expect(next(step(back, watching), 0, undefined, T)).toEqual({ kind: 'reconciling', at: T });
  });

  it('a sync that was in flight when the directory went ends without leaving missing', () => {
    const gone = run(start, { type: 'directory-gone', reason: 'gone' });
    expect(step(gone, ok)).toMatchObject({ status: 'missing', syncing: false, full: true });
    expect(step(gone, failed('gone'))).toMatchObject({ status: 'missing', syncing: false });
    // The sync that finds the directory gone: its failure owes a reconcile, directory-gone follows.
    const s = run(start, failed('gone'), { type: 'directory-gone', reason: 'gone' });
    expect(s).toMatchObject({ status: 'missing', failures: 0, full: true });
  });

  it('stops: nothing more is scheduled, only syncs still running move the state', () => {
    const stopped = run(start, ok, change, { type: 'stop' });
    expect(next(stopped, 1, T, T)).toEqual({ kind: 'stopped' });
    expect(step(stopped, change)).toBe(stopped);
    expect(step(stopped, { type: 'directory-back' })).toBe(stopped);
    const flushed = run(start, ok, change, { type: 'stop' }, start, failed('retry', { full: true }));
    expect(flushed).toMatchObject({ stopped: true, full: true, syncing: false });
    expect(run(start, { type: 'directory-gone', reason: 'x' }, { type: 'stop' }, { type: 'directory-back' }).status).toBe('missing');
  });

  it('never changes the state it is given', () => {
    const s = run(start, ok);
    const copy = structuredClone(s);
    for (const input of [change, { type: 'rescan' }, failed('retry'), { type: 'stop' }] as LoopInput[]) step(s, input);
    expect(s).toEqual(copy);
  });
});
