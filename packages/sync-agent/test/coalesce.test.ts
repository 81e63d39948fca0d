import { describe, expect, it } from 'vitest';
import { ChangeQueue, combine, type ChangeType, type FsChange } from '../src/coalesce.js';

const file = (type: ChangeType, p: string): FsChange => ({ type, path: p, isDir: false });
const dir = (type: ChangeType, p: string): FsChange => ({ type, path: p, isDir: true });
const all = () => true;

function pushAll(q: ChangeQueue, changes: FsChange[], start = 0): void {
  changes.forEach((c, i) => q.push(c, start + i));
}

describe('combine', () => {
  it('follows the watcher rules', () => {
    expect(combine('add', 'delete')).toBeUndefined();
    expect(combine('delete', 'add')).toBe('change');
    expect(combine('add', 'change')).toBe('add');
    expect(combine('change', 'delete')).toBe('delete');
    expect(combine('change', 'change')).toBe('change');
  });

  it('is the composition of existence transitions, for every consistent sequence', () => {
    // A change type is a transition (existed before, exists after); check all sequences up to length 5.
    const effect: Record<ChangeType, [boolean, boolean]> = { add: [false, true], delete: [true, false], change: [true, true] };
    const next = (exists: boolean): ChangeType[] => (exists ? ['change', 'delete'] : ['add']);
    const walk = (seq: ChangeType[], before: boolean, now: boolean): void => {
      if (seq.length > 0) {
        let acc: ChangeType | undefined = seq[0];
        for (const t of seq.slice(1)) acc = acc === undefined ? t : combine(acc, t);
        if (before === now && before === false) expect(acc, seq.join('+')).toBeUndefined();
        else if (acc !== undefined) expect(effect[acc], seq.join('+')).toEqual([before, now]);
        else expect([before, now], seq.join('+')).toEqual([false, false]);
      }
      if (seq.length === 5) return;
      for (const t of next(now)) walk([...seq, t], before, effect[t][1]);
    };
    walk([], false, false);
    walk([], true, true);
  });
});

describe('ChangeQueue', () => {
  it('cancels a file that came and went (editor temp files, vim 4913)', () => {
    const q = new ChangeQueue();
    pushAll(q, [file('add', 'src/4913'), file('change', 'src/4913'), file('delete', 'src/4913')]);
    expect(q.size).toBe(0);
    expect(q.take(all)).toEqual([]);
  });

  it('turns an atomic save (delete then add of the target) into one change', () => {
    const q = new ChangeQueue();
    pushAll(q, [file('add', 'a.txt.tmp'), file('delete', 'a.txt'), file('delete', 'a.txt.tmp'), file('add', 'a.txt')]);
    expect(q.take(all).map((c) => [c.type, c.path])).toEqual([['change', 'a.txt']]);
  });

  it('folds changes under a pending directory into it', () => {
    const q = new ChangeQueue();
    pushAll(q, [dir('delete', 'lib'), file('delete', 'lib/a.ts'), dir('delete', 'lib/sub'), file('delete', 'lib/sub/b.ts'), file('change', 'other.ts')]);
    const taken = q.take(all);
    expect(taken.map((c) => c.path).sort()).toEqual(['lib', 'other.ts']);
    const lib = taken.find((c) => c.path === 'lib')!;
    expect(lib.lastAt).toBe(3); // the folded children kept the directory's batch open
  });

  it('drops children that were queued before their directory when the directory is taken', () => {
    const q = new ChangeQueue();
    pushAll(q, [file('delete', 'lib/a.ts'), file('delete', 'lib/b.ts'), dir('delete', 'lib')]);
    expect(q.take(all).map((c) => c.path)).toEqual(['lib']);
  });

  it('does not fold a sibling whose name merely starts like the directory', () => {
    const q = new ChangeQueue();
    pushAll(q, [dir('add', 'lib'), file('add', 'lib2/x.ts'), file('add', 'lib.ts')]);
    expect(q.take(all).map((c) => c.path).sort()).toEqual(['lib', 'lib.ts', 'lib2/x.ts']);
  });

  it('takes only what the predicate accepts and keeps the rest', () => {
    const q = new ChangeQueue();
    pushAll(q, [file('change', 'a'), file('change', 'b'), file('change', 'c')]);
    expect(q.take((c) => c.path !== 'b').map((c) => c.path)).toEqual(['a', 'c']);
    expect(q.size).toBe(1);
    expect(q.take(all).map((c) => c.path)).toEqual(['b']);
  });

  it('puts a failed batch back under newer changes, coalescing across them', () => {
    const q = new ChangeQueue();
    pushAll(q, [file('add', 'new.txt'), file('change', 'edit.txt'), file('delete', 'gone.txt')]);
    const failed = q.take(all);
    pushAll(q, [file('delete', 'new.txt'), file('change', 'edit.txt'), file('add', 'gone.txt'), file('add', 'later.txt')], 10);
    expect(q.restore(failed)).toBe(true);
    const byPath = Object.fromEntries(q.take(all).map((c) => [c.path, c]));
    expect(Object.keys(byPath).sort()).toEqual(['edit.txt', 'gone.txt', 'later.txt']);
    expect(byPath['edit.txt']).toMatchObject({ type: 'change', firstAt: 1, lastAt: 11 });
    expect(byPath['gone.txt']!.type).toBe('change');
    expect(byPath['later.txt']!.type).toBe('add');
  });

  it('bounds memory: past the limit it empties itself and reports the overflow', () => {
    const q = new ChangeQueue(3);
    expect([0, 1, 2].map((i) => q.push(file('add', `f${i}`), i))).toEqual([true, true, true]);
    expect(q.push(file('change', 'f1'), 3)).toBe(true); // coalesced: still 3 paths
    expect(q.push(file('add', 'f3'), 4)).toBe(false);
    expect(q.size).toBe(0);
  });
});
