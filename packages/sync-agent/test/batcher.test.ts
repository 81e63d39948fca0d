import { describe, expect, it } from 'vitest';
import { Batcher, type BatchPolicy } from '../src/batcher.js';
import type { FsChange, PendingChange } from '../src/coalesce.js';

const policy: BatchPolicy = { quietMs: 100, maxDelayMs: 1_000, settleMs: 75, deleteQuietMs: 2_000, deleteMaxDelayMs: 10_000 };
const change = (p: string, type: FsChange['type'] = 'change'): FsChange => ({ type, path: p, isDir: false });

/** Runs the batcher the way the sync loop does: take at every due time. */
function drive(b: Batcher, events: Array<[number, FsChange]>, until: number) {
  const batches: Array<{ at: number; changes: PendingChange[] }> = [];
  let i = 0;
  for (let now = 0; now <= until; now++) {
    while (i < events.length && events[i]![0] === now) b.push(events[i++]![1], now);
    const due = b.dueAt(now);
    if (due !== undefined && due <= now) {
      const changes = b.take(now);
      if (changes.length) batches.push({ at: now, changes });
    }
  }
  return batches;
}

describe('Batcher', () => {
  it('closes a batch once the workspace has been quiet', () => {
    const b = new Batcher(policy);
    b.push(change('a.ts'), 0);
    b.push(change('b.ts'), 40);
    expect(b.dueAt(50)).toBe(140);
    expect(b.take(139)).toEqual([]);
    expect(b.take(140).map((c) => c.path)).toEqual(['a.ts', 'b.ts']);
    expect(b.dueAt(141)).toBeUndefined();
  });

  it('never takes a temp file that lived inside the quiet window', () => {
    const b = new Batcher(policy);
    const batches = drive(b, [[0, change('x.swp', 'add')], [60, change('x.swp', 'delete')], [70, change('a.ts')]], 500);
    expect(batches.flatMap((x) => x.changes.map((c) => c.path))).toEqual(['a.ts']);
  });

  it('turns a long burst into one batch per max delay, taking a path written within the settle time only once it waited max delay', () => {
    const b = new Batcher(policy);
    // 3 s of writes: a new file every 5 ms, and one hot file rewritten every 20 ms.
    const events: Array<[number, FsChange]> = [];
    for (let t = 0; t < 3_000; t += 5) {
      events.push([t, change(`gen/f${t}.js`, 'add')]);
      if (t % 20 === 0) events.push([t, change('hot.js')]);
    }
    const batches = drive(b, events, 4_000);
    expect(batches.length).toBeGreaterThanOrEqual(3);
    expect(batches.length).toBeLessThanOrEqual(5);
    const seen = batches.flatMap((x) => x.changes.map((c) => c.path)).filter((p) => p.startsWith('gen/'));
    expect(new Set(seen).size).toBe(600);
    expect(seen.length).toBe(600);
    for (const { at, changes } of batches) {
      for (const c of changes) expect(at - c.lastAt >= policy.settleMs || at - c.firstAt >= policy.maxDelayMs).toBe(true);
    }
  });

  it('syncs a file that never settles (a log appended to every 5 ms) at least once per max delay', () => {
    const b = new Batcher(policy);
    const events: Array<[number, FsChange]> = [];
    for (let t = 0; t < 5_000; t += 5) events.push([t, change('app.log')]);
    const batches = drive(b, events, 5_000);
    const taken = batches.filter((x) => x.changes.some((c) => c.path === 'app.log')).map((x) => x.at);
    expect(taken.length).toBeGreaterThanOrEqual(Math.floor(5_000 / (2 * policy.maxDelayMs)));
    for (let i = 1; i < taken.length; i++) expect(taken[i]! - taken[i - 1]!).toBeLessThanOrEqual(2 * policy.maxDelayMs + policy.quietMs);
  });

  it('holds deletes until the workspace is quiet, at most deleteMaxDelayMs', () => {
    const b = new Batcher(policy);
    const events: Array<[number, FsChange]> = [[0, change('old.ts', 'delete')]];
    for (let t = 0; t < 12_000; t += 50) events.push([t, change(`busy${t}.ts`, 'add')]);
    const batches = drive(b, events, 12_500);
    const deletedAt = batches.find((x) => x.changes.some((c) => c.path === 'old.ts'))!.at;
    expect(deletedAt).toBeGreaterThanOrEqual(policy.deleteMaxDelayMs);
    expect(deletedAt).toBeLessThan(policy.deleteMaxDelayMs + policy.maxDelayMs + policy.settleMs);
  });

  it('applies a delete once the workspace has been quiet for the longer delete window', () => {
    const b = new Batcher(policy);
    const batches = drive(b, [[0, change('old.ts', 'delete')], [10, change('a.ts')]], 3_000);
    expect(batches.map((x) => [x.at, x.changes.map((c) => c.path)])).toEqual([[110, ['a.ts']], [2_010, ['old.ts']]]);
  });

  it('turns a slow rm (one file every 200 ms) into one batch of deletes, which the guard then sees whole', () => {
    const b = new Batcher({ ...policy, deleteMaxDelayMs: 30_000 });
    const events: Array<[number, FsChange]> = [];
    for (let i = 0; i < 100; i++) events.push([i * 200, change(`f${i}.ts`, 'delete')]);
    const batches = drive(b, events, 25_000);
    expect(batches).toHaveLength(1);
    expect(batches[0]!.changes).toHaveLength(100);
    expect(batches[0]!.at).toBe(99 * 200 + policy.deleteQuietMs);
  });

  it('puts a failed batch back and makes it due again', () => {
    const b = new Batcher(policy);
    b.push(change('a.ts'), 0);
    const taken = b.take(100);
    expect(b.dueAt(101)).toBeUndefined();
    b.restore(taken, 150);
    expect(b.dueAt(150)).toBeLessThanOrEqual(150);
    expect(b.take(150, true).map((c) => c.path)).toEqual(['a.ts']);
  });

  it('takes everything at once for a flush', () => {
    const b = new Batcher(policy);
    b.push(change('a.ts'), 0);
    b.push(change('gone.ts', 'delete'), 1);
    expect(b.take(2, true).map((c) => c.path)).toEqual(['a.ts', 'gone.ts']);
  });
});
