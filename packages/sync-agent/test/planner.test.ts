import { describe, expect, it } from 'vitest';
import { isSyncError, sha256Hex } from '@workspace-sync/shared';
import { allPaths, checkDeleteGuard, planSync, type HashedEntry, type PlanInput, type PlainObject } from '../src/planner.js';
import { addEntry, emptyView, type View } from '../src/view.js';

const file = (path: string, content: string, mode = 0o644, mtimeMs = 1000): HashedEntry =>
  ({ type: 'file', path, size: Buffer.byteLength(content), mtimeMs, mode, sha256: sha256Hex(content) });
const link = (path: string, target: string): HashedEntry => ({ type: 'symlink', path, target, mtimeMs: 1000, sha256: sha256Hex(target) });

/** A committed view holding `entries`, their content in one pack, their plain objects known (etag) unless `plainUnknown`. */
function committed(entries: HashedEntry[], opts: { plainUnknown?: boolean } = {}): View {
  const view = emptyView();
  view.head = { etag: 'head-etag', stem: '000000000001-0123456789abcdef', generation: 1 };
  let offset = 0;
  for (const e of entries) {
    const etag = opts.plainUnknown ? undefined : `etag-${e.path}`;
    if (e.type === 'file') {
      addEntry(view, e.path, { type: 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: e.sha256, pack: 'aaaaaaaaaaaaaaaa', offset, chunks: undefined, etag });
      offset += e.size;
    } else {
      addEntry(view, e.path, { type: 'symlink', target: e.target, mtimeMs: e.mtimeMs, etag });
    }
  }
  return view;
}

function plan(local: HashedEntry[], view: View, extra: Partial<PlanInput> = {}) {
  const map = new Map(local.map((e) => [e.path, e]));
  return planSync({
    local: map, view, paths: allPaths(map, view, extra.plain?.keys() ?? []), skipped: [], plain: new Map(), pending: new Map(), ...extra,
  });
}

const paths = (es: readonly HashedEntry[]) => es.map((e) => e.path).sort();

describe('planSync', () => {
  it('stores every content and writes every plain object when the bucket is empty', () => {
    const local = [file('a.js', 'a'), file('b/c.js', 'c'), file('empty', ''), link('l', 'a.js')];
    const p = plan(local, emptyView());
    expect(p.commit).toBe(true);
    expect(paths(p.changed)).toEqual(['a.js', 'b/c.js', 'empty', 'l']);
    expect(paths(p.newContent)).toEqual(['a.js', 'b/c.js']);
    expect(paths(p.plainWrites)).toEqual(['a.js', 'b/c.js', 'empty', 'l']);
    expect(p.changes.added.sort()).toEqual(['a.js', 'b/c.js', 'empty', 'l']);
    expect(p.uploadBytes).toBe(2);
  });

  it('does nothing when the commit and the plain objects already hold the snapshot', () => {
    const local = [file('a.js', 'a'), link('l', 'a.js')];
    const p = plan(local, committed(local));
    expect(p).toMatchObject({ commit: false, changed: [], newContent: [], plainWrites: [], plainDeletes: [], removed: [] });
  });

  it('turns a rename into a tree change and one plain write, without storing the bytes again', () => {
    const before = [file('old.js', 'same bytes')];
    const p = plan([file('new.js', 'same bytes')], committed(before));
    expect(paths(p.changed)).toEqual(['new.js']);
    expect(p.newContent).toEqual([]);
    expect(paths(p.plainWrites)).toEqual(['new.js']);
    expect(p.removed).toEqual(['old.js']);
    expect(p.plainDeletes).toEqual(['old.js']);
    expect(p.changes).toEqual({ added: ['new.js'], modified: [], deleted: ['old.js'] });
  });

  it('stores one copy of content that two new paths share', () => {
    const p = plan([file('x', 'dup'), file('y', 'dup')], emptyView());
    expect(p.newContent).toHaveLength(1);
    expect(paths(p.plainWrites)).toEqual(['x', 'y']);
  });

  it('commits an mtime-only change without writing bytes or plain objects', () => {
    const before = file('a.js', 'a', 0o644, 1000);
    const p = plan([file('a.js', 'a', 0o644, 2000)], committed([before]));
    expect(p.commit).toBe(true);
    expect(paths(p.changed)).toEqual(['a.js']);
    expect(p.plainWrites).toEqual([]);
    expect(p.newContent).toEqual([]);
    expect(p.changes).toEqual({ added: [], modified: [], deleted: [] });
  });

  it('rewrites the plain object on a mode change (its metadata carries the exec bit)', () => {
    const p = plan([file('run.sh', 'x', 0o755)], committed([file('run.sh', 'x', 0o644)]));
    expect(paths(p.plainWrites)).toEqual(['run.sh']);
    expect(p.changes.modified).toEqual(['run.sh']);
    expect(p.newContent).toEqual([]);
  });

  it('handles a file that became a symlink, and a same-size edit', () => {
    const p = plan([link('a', 'b'), file('c', 'XYZ')], committed([file('a', 'aa'), file('c', 'xyz')]));
    expect(paths(p.changed)).toEqual(['a', 'c']);
    expect(p.changes.modified.sort()).toEqual(['a', 'c']);
    expect(paths(p.newContent)).toEqual(['c']);
  });

  it('never vouches for a plain object it cannot: unknown ones are rewritten, unknown strays deleted', () => {
    const local = [file('a.js', 'a'), file('b.js', 'b')];
    const plain = new Map<string, PlainObject | undefined>([['a.js', undefined], ['stray.js', undefined]]);
    const p = plan(local, committed(local), { plain });
    expect(paths(p.plainWrites)).toEqual(['a.js']);
    expect(p.plainDeletes).toEqual(['stray.js']);
    expect(p.commit).toBe(false);
  });

  it('trusts a plain object whose recorded sha256 and mode match, even when the view has no ETag for it', () => {
    const local = [file('a.js', 'a')];
    const plain = new Map<string, PlainObject | undefined>([['a.js', { etag: 'e', sha256: sha256Hex('a'), mode: 0o644 }]]);
    expect(plan(local, committed(local, { plainUnknown: true }), { plain }).plainWrites).toEqual([]);
    const wrongMode = new Map<string, PlainObject | undefined>([['a.js', { etag: 'e', sha256: sha256Hex('a'), mode: 0o755 }]]);
    expect(paths(plan(local, committed(local, { plainUnknown: true }), { plain: wrongMode }).plainWrites)).toEqual(['a.js']);
  });

  it('reuses content that landed in an interrupted run', () => {
    const p = plan([file('a.js', 'a')], emptyView(), { pending: new Map([[sha256Hex('a'), { pack: 'bbbbbbbbbbbbbbbb', offset: 0, chunks: undefined }]]) });
    expect(p.newContent).toEqual([]);
    expect(paths(p.plainWrites)).toEqual(['a.js']);
  });

  it('keeps the committed version of paths it could not read, and of directories it could not list', () => {
    const view = committed([file('a.js', 'a'), file('d/x', 'x'), file('gone', 'g')]);
    const p = planSync({
      local: new Map(), view, paths: [...view.entries.keys()], plain: new Map(), pending: new Map(),
      skipped: [{ path: 'a.js', reason: 'cannot read (EACCES)' }, { path: 'd/', reason: 'cannot read directory (EACCES)' }],
    });
    expect(p.removed).toEqual(['gone']);
    expect(p.plainDeletes).toEqual(['gone']);
  });

  it('before the first v2 commit (a v1 bucket) stores every content but keeps verified plain objects', () => {
    const local = [file('a.js', 'a')];
    const view = committed(local);
    view.head = undefined;
    view.bySha.clear();
    const p = plan(local, view);
    expect(p.commit).toBe(true);
    expect(paths(p.newContent)).toEqual(['a.js']);
    expect(p.plainWrites).toEqual([]);
  });

  it('looks only at the paths it is given (a watch batch costs what changed)', () => {
    const local = [file('a.js', 'a'), file('b.js', 'b2')];
    const view = committed([file('a.js', 'a'), file('b.js', 'b')]);
    const p = planSync({ local: new Map(local.map((e) => [e.path, e])), view, paths: ['a.js'], skipped: [], plain: new Map(), pending: new Map() });
    expect(p.changed).toEqual([]);
  });
});

describe('checkDeleteGuard', () => {
  const guard = { maxDelete: undefined, force: false };
  it('allows small deletes and refuses more than half of a workspace by default', () => {
    expect(() => checkDeleteGuard('w', 10, 12, guard)).not.toThrow();
    expect(() => checkDeleteGuard('w', 11, 30, guard)).not.toThrow();
    expect(() => checkDeleteGuard('w', 16, 30, guard)).toThrow(/refusing to delete 16 of 30/);
  });

  it('uses --max-delete when given, and --force overrides both', () => {
    expect(() => checkDeleteGuard('w', 6, 1000, { maxDelete: 5, force: false })).toThrow(/--max-delete is 5/);
    expect(() => checkDeleteGuard('w', 500, 600, { maxDelete: 500, force: false })).not.toThrow();
    expect(() => checkDeleteGuard('w', 600, 600, { maxDelete: 1, force: true })).not.toThrow();
  });

  it('throws a coded error with a hint', () => {
    try {
      checkDeleteGuard('w', 100, 100, guard);
      expect.unreachable();
    } catch (err) {
      expect(isSyncError(err, 'DELETE_LIMIT')).toBe(true);
      expect((err as { hint?: string }).hint).toMatch(/--force/);
    }
  });
});
