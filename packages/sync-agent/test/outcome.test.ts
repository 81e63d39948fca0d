import { describe, expect, it } from 'vitest';
import { sha256Hex } from '@workspace-sync/shared';
import { decideOutcome } from '../src/outcome.js';
import type { HashedEntry } from '../src/planner.js';
import type { Landed } from '../src/uploader.js';
import { addEntry, emptyView, type View } from '../src/view.js';

const file = (path: string, content: string, mtimeMs = 1): Extract<HashedEntry, { type: 'file' }> =>
  ({ type: 'file', path, size: content.length, mtimeMs, mode: 0o644, sha256: sha256Hex(content) });

function committed(...entries: Array<Extract<HashedEntry, { type: 'file' }>>): View {
  const v = emptyView();
  v.head = { etag: 'h', stem: '000000000001-0123456789abcdef', generation: 1 };
  for (const e of entries) addEntry(v, e.path, { ...e, pack: 'aaaaaaaaaaaaaaaa', offset: 0, chunks: undefined, etag: `etag-${e.path}` });
  return v;
}

const landed = (entry: HashedEntry, plainEtag?: string): Landed => ({
  entry, location: { pack: 'bbbbbbbbbbbbbbbb', offset: 0, chunks: undefined }, record: undefined,
  plain: plainEtag ? { etag: plainEtag, sha256: entry.sha256, mode: entry.type === 'file' ? entry.mode : 0o777 } : undefined,
});

const base = { plain: new Map(), records: new Map(), gone: [], contentOf: () => undefined };
const noChanges = { removed: [], plainDeletes: [], changes: { added: [], modified: [], deleted: [] } };

describe('decideOutcome', () => {
  it('commits what was read, not what was planned', () => {
    const view = committed(file('a', 'old'));
    const local = new Map<string, HashedEntry>([['a', file('a', 'planned')]]);
    const out = decideOutcome({
      ...base, view, local, plan: { ...noChanges, changes: { added: [], modified: ['a'], deleted: [] } },
      transfers: { landed: new Map([['a', landed(file('a', 'read now'), 'e2')]]), skipped: [], vanished: [] },
    });
    expect(out.mustCommit).toBe(true);
    expect(out.treeUpserts.get('a')).toMatchObject({ sha256: sha256Hex('read now'), etag: 'e2', pack: 'bbbbbbbbbbbbbbbb' });
    expect(local.get('a')).toMatchObject({ sha256: sha256Hex('read now') });
    expect(out.changes.bytes).toBe('read now'.length);
  });

  it('keeps the committed version of a path that could not be stored, and removes one that vanished', () => {
    const view = committed(file('keep', 'k'), file('gone', 'g'));
    const local = new Map<string, HashedEntry>([['keep', file('keep', 'new')], ['gone', file('gone', 'g2')]]);
    const out = decideOutcome({
      ...base, view, local, plan: noChanges,
      transfers: { landed: new Map(), skipped: [{ path: 'keep', reason: 'cannot read (EACCES)' }], vanished: ['gone'] },
    });
    expect(local.get('keep')).toMatchObject({ sha256: sha256Hex('k') });
    expect(local.has('gone')).toBe(false);
    expect([...out.removes]).toEqual(['gone']);
    expect(out.changes.deleted).toEqual(['gone']);
    expect([...out.plainDeletes]).toEqual(['gone']);
    expect(out.upserts.size).toBe(0);
    expect(out.recordRemoves).toEqual(['gone']);
  });

  it('records a rewritten plain object without a new commit when the tree entry is the same', () => {
    const a = file('a', 'same');
    const view = committed(a);
    const out = decideOutcome({
      ...base, view, local: new Map([['a', a]]), plan: noChanges,
      transfers: { landed: new Map([['a', landed(a, 'fresh-etag')]]), skipped: [], vanished: [] },
    });
    expect(out.mustCommit).toBe(false);
    expect(out.treeUpserts.size).toBe(0);
    expect(out.upserts.get('a')).toMatchObject({ etag: 'fresh-etag' });
  });

  it('takes a plain object known from the journal as the entry\'s own when its sha256 and mode match', () => {
    const a = file('a', 'x');
    const view = emptyView();
    const out = decideOutcome({
      ...base, view, local: new Map([['a', a]]), plain: new Map([['a', { etag: 'journaled', sha256: a.sha256, mode: 0o644 }]]),
      plan: { ...noChanges, changes: { added: ['a'], modified: [], deleted: [] } },
      transfers: { landed: new Map([['a', landed(a)]]), skipped: [], vanished: [] },
    });
    expect(out.treeUpserts.get('a')).toMatchObject({ etag: 'journaled' });
  });
});

describe('decideOutcome, plain objects verified apart from the view', () => {
  it('records their ETags in the view when they hold the committed entry, without a commit', () => {
    const a = file('a', 'x');
    const view = committed(a);
    view.entries.get('a')!.etag = undefined;
    const out = decideOutcome({
      ...base, view, local: new Map([['a', a]]), plain: new Map([['a', { etag: 'verified', sha256: a.sha256, mode: 0o644 }]]),
      plan: noChanges, transfers: { landed: new Map(), skipped: [], vanished: [] },
    });
    expect(out.mustCommit).toBe(false);
    expect(out.upserts.get('a')).toMatchObject({ etag: 'verified', sha256: a.sha256 });
  });
});

describe('decideOutcome, an mtime-only change', () => {
  it('keeps the plain object it did not rewrite (same bytes and mode) as known', () => {
    const before = file('big.bin', 'same bytes', 1);
    const after = file('big.bin', 'same bytes', 2);
    const view = committed(before);
    const out = decideOutcome({
      ...base, view, local: new Map([['big.bin', after]]), plan: noChanges,
      transfers: { landed: new Map([['big.bin', { entry: after, location: undefined, plain: undefined, record: undefined }]]), skipped: [], vanished: [] },
      contentOf: () => ({ pack: undefined, offset: 0, chunks: undefined }),
    });
    expect(out.treeUpserts.get('big.bin')).toMatchObject({ mtimeMs: 2, etag: 'etag-big.bin' });
  });
});
