import { describe, expect, it } from 'vitest';
import { decodeSplit, decodeTreeObject, sha256Hex, type TreeEntry, type TreeRef } from '@workspace-sync/shared';
import { buildTrees } from '../src/trees.js';
import { applyCommit, childrenOf, emptyView, type View, type ViewEntry } from '../src/view.js';

const f = (content: string, mtimeMs = 1): ViewEntry => ({
  type: 'file', size: content.length, mtimeMs, mode: 0o644, sha256: sha256Hex(content), pack: '1111111111111111', offset: 0, chunks: undefined, etag: undefined,
});

let seq = 0;
const names = () => (++seq).toString(16).padStart(16, '0');

/** Commits `upserts`/`removes` onto `view` and returns the packs written, keyed by name. */
function commit(view: View, upserts: Record<string, ViewEntry>, removes: string[] = [], now = 5000) {
  const up = new Map(Object.entries(upserts));
  const build = buildTrees(view, up, new Set(removes), now, names);
  applyCommit(view, { upserts: up, removes: new Set(removes), dirs: build.dirs, children: build.children, head: { etag: 'e', stem: 's', generation: 1 } });
  return build;
}

/** Reads the tree back from the packs written so far, as path → entry. */
function readBack(packs: Map<string, Buffer>, root: TreeRef): Map<string, TreeEntry> {
  const out = new Map<string, TreeEntry>();
  const bytes = (ref: TreeRef) => {
    const body = packs.get(ref[0])!.subarray(ref[1], ref[1] + ref[2]);
    expect(sha256Hex(body)).toBe(ref[3]);
    return body;
  };
  const walk = (ref: TreeRef, dir: string) => {
    const obj = decodeTreeObject(bytes(ref), 'test');
    const entries = obj.entries ?? decodeSplit(obj.parts.map((p) => ({ bytes: bytes(p), where: 'part' })), 'test');
    for (const e of entries) {
      const p = dir ? `${dir}/${e.name}` : e.name;
      out.set(p, e);
      if (e.kind === 'dir') walk(e.ref, p);
    }
  };
  walk(root, '');
  return out;
}

describe('buildTrees', () => {
  it('writes every directory once for a first commit, with counts and sizes', () => {
    const view = emptyView();
    const packs = new Map<string, Buffer>();
    const b = commit(view, { 'a.js': f('aa'), 'src/x.ts': f('xxx'), 'src/deep/y.ts': f('y'), 'link': { type: 'symlink', target: 'a.js', mtimeMs: 1, etag: undefined } });
    for (const p of b.packs) packs.set(p.name, p.body);
    const tree = readBack(packs, b.root);
    expect([...tree.keys()].sort()).toEqual(['a.js', 'link', 'src', 'src/deep', 'src/deep/y.ts', 'src/x.ts']);
    expect(tree.get('src')).toMatchObject({ kind: 'dir', files: 2, bytes: 4, changedAtMs: 5000 });
    expect(b.stats).toEqual({ files: 4, dirs: 2, bytes: 6 });
  });

  it('rewrites only the directories on the path from a change to the root', () => {
    const view = emptyView();
    const packs = new Map<string, Buffer>();
    const first: Record<string, ViewEntry> = {};
    for (let d = 0; d < 20; d++) for (let i = 0; i < 5; i++) first[`d${d}/sub/f${i}`] = f(`${d}-${i}`);
    for (const p of commit(view, first).packs) packs.set(p.name, p.body);
    const before = new Map(view.dirs);
    const b = commit(view, { 'd7/sub/f3': f('edited') }, [], 9000);
    for (const p of b.packs) packs.set(p.name, p.body);
    expect([...b.dirs.keys()].sort()).toEqual(['', 'd7', 'd7/sub']);
    for (const [d, info] of view.dirs) if (!['', 'd7', 'd7/sub'].includes(d)) expect(info).toBe(before.get(d));
    const tree = readBack(packs, b.root);
    expect(tree.get('d7/sub/f3')).toMatchObject({ sha256: sha256Hex('edited') });
    expect(tree.get('d7')).toMatchObject({ changedAtMs: 9000 });
    expect(tree.get('d8')).toMatchObject({ changedAtMs: 5000 });
    expect(tree.size).toBe(100 + 40);
  });

  it('drops directories left empty, and turns a symlink into a directory in one commit', () => {
    const view = emptyView();
    const packs = new Map<string, Buffer>();
    for (const p of commit(view, { 'keep': f('k'), 'gone/a/b': f('b'), 'lnk': { type: 'symlink', target: 'keep', mtimeMs: 1, etag: undefined } }).packs) packs.set(p.name, p.body);
    const b = commit(view, { 'lnk/r.txt': f('x') }, ['gone/a/b', 'lnk']);
    for (const p of b.packs) packs.set(p.name, p.body);
    const tree = readBack(packs, b.root);
    expect([...tree.keys()].sort()).toEqual(['keep', 'lnk', 'lnk/r.txt']);
    expect(tree.get('lnk')).toMatchObject({ kind: 'dir', files: 1 });
    expect(view.dirs.has('gone')).toBe(false);
    expect(view.dirs.has('gone/a')).toBe(false);
    expect(childrenOf(view).get('')).toEqual(new Set(['keep', 'lnk']));
  });

  it('turns a directory into a file of the same name', () => {
    const view = emptyView();
    const packs = new Map<string, Buffer>();
    for (const p of commit(view, { 'x/1': f('1'), 'x/2': f('2') }).packs) packs.set(p.name, p.body);
    const b = commit(view, { x: f('now a file') }, ['x/1', 'x/2']);
    for (const p of b.packs) packs.set(p.name, p.body);
    const tree = readBack(packs, b.root);
    expect([...tree.keys()]).toEqual(['x']);
    expect(tree.get('x')).toMatchObject({ kind: 'file' });
  });

  it('splits a large directory into parts, and a one-file change rewrites one part and the index', () => {
    const view = emptyView();
    const packs = new Map<string, Buffer>();
    const first: Record<string, ViewEntry> = {};
    for (let i = 0; i < 3000; i++) first[`big/f${i}.ts`] = f(`content ${i}`);
    first['big/sub/deep.ts'] = f('deep');
    const a = commit(view, first);
    for (const p of a.packs) packs.set(p.name, p.body);
    const big = view.dirs.get('big')!;
    expect(big.parts!.length).toBeGreaterThan(20);
    const wholeBytes = a.packs.reduce((n, p) => n + p.body.length, 0);

    const b = commit(view, { 'big/f1234.ts': f('edited') }, [], 9000);
    for (const p of b.packs) packs.set(p.name, p.body);
    const after = view.dirs.get('big')!;
    const newParts = after.parts!.filter((r) => !big.parts!.some((o) => o[3] === r[3]));
    expect(newParts).toHaveLength(1);
    expect(after.parts!.length).toBe(big.parts!.length);
    // One part, the index and the root: a small fraction of the whole directory.
    const written = b.packs.reduce((n, p) => n + p.body.length, 0);
    expect(written).toBeLessThan(wholeBytes / 10);
    const tree = readBack(packs, b.root);
    expect(tree.size).toBe(3000 + 2 + 1);
    expect(tree.get('big/f1234.ts')).toMatchObject({ sha256: sha256Hex('edited') });
    expect(tree.get('big/f1233.ts')).toMatchObject({ sha256: sha256Hex('content 1233') });
    expect(tree.get('big')).toMatchObject({ kind: 'dir', files: 3001 });

    // Shrunk below the threshold: an ordinary tree object again.
    const gone = Array.from({ length: 2900 }, (_, i) => `big/f${i}.ts`);
    const c = commit(view, {}, gone, 10000);
    for (const p of c.packs) packs.set(p.name, p.body);
    expect(view.dirs.get('big')!.parts).toBeUndefined();
    expect(readBack(packs, c.root).size).toBe(100 + 2 + 1);
  });

  it('writes an empty root for an empty workspace', () => {
    const b = buildTrees(emptyView(), new Map(), new Set(), 1, names);
    expect(b.stats).toEqual({ files: 0, dirs: 0, bytes: 0 });
    expect(decodeTreeObject(b.packs[0]!.body, 'root')).toEqual({ entries: [] });
  });

  it('builds the same trees from name sets derived from the entries (a view loaded from the state index) as from kept ones', () => {
    const kept = emptyView();
    commit(kept, { 'a/b/c.txt': f('c'), 'a/d.txt': f('d'), 'e.txt': f('e'), 'x/y/z.txt': f('z') });
    commit(kept, { 'a/b/c2.txt': f('c2') }, ['x/y/z.txt']);
    const copy = (): View => ({ ...kept, entries: new Map(kept.entries), dirs: new Map(kept.dirs), names: undefined, bySha: new Map(kept.bySha) });
    const derived = copy();
    expect(childrenOf(derived)).toEqual(kept.names);
    // A commit applied before the sets are built leaves them to be built from the entries it changed.
    const lazy = copy();
    const fresh = copy();
    const change = { 'a/b/c.txt': f('c, edited', 2), 'n/new.txt': f('new') };
    const gone = ['e.txt'];
    const start = seq;
    const a = commit(kept, change, gone);
    seq = start;
    const b = commit(fresh, change, gone);
    expect(b.root).toEqual(a.root);
    expect(b.packs.map((p) => p.body)).toEqual(a.packs.map((p) => p.body));
    applyCommit(lazy, { upserts: new Map(Object.entries(change)), removes: new Set(gone), dirs: a.dirs, children: a.children, head: { etag: 'e', stem: 's', generation: 2 } });
    expect(lazy.names).toBeUndefined();
    expect(childrenOf(lazy)).toEqual(kept.names);
  });
});
