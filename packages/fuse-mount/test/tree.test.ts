import { describe, expect, it } from 'vitest';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type ListEntry, type Manifest, type ManifestEntry } from '@workspace-sync/shared';
import { Tree, snapshotFromListing, snapshotFromManifest, type BuildContext, type DirNode, type FileNode, type Node, type Snapshot } from '../src/tree.js';
import type { View } from '../src/views.js';

const etagOf = (n: Node | undefined) => ((n as FileNode).content as { etag: string }).etag;

const SHA = 'a'.repeat(64);

function file(path: string, extra: Partial<Extract<ManifestEntry, { type: 'file' }>> = {}): ManifestEntry {
  return { path, type: 'file', size: 10, mtimeMs: 1_000, mode: 0o644, sha256: SHA, etag: `"etag-${path}"`, ...extra };
}

function manifest(entries: ManifestEntry[], workspace = 'ws'): Manifest {
  return {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, workspace, generation: 1, createdAt: '2024-01-01T00:00:00.000Z',
    writer: { host: 'h', agent: 'a' }, entries,
  };
}

function context(_tree: Tree, previous?: Snapshot, warnings: unknown[] = []): BuildContext {
  return { rootIno: 1_000_000, previous, warn: (message, detail) => warnings.push({ message, ...detail }) };
}

describe('snapshotFromManifest', () => {
  it('turns entries into files, symlinks and implied directories', async () => {
    const tree = new Tree();
    const snap = await snapshotFromManifest(manifest([
      file('README.md', { mtimeMs: 5_000 }),
      file('bin/run.sh', { mode: 0o755, size: 3, mtimeMs: 9_000 }),
      file('src/a/b/c.ts', { size: 0, mtimeMs: 2_000 }),
      { path: 'link', type: 'symlink', target: '../outside', mtimeMs: 4_000, etag: 'x' },
    ]), 'm1', 'pre/', context(tree));

    const readme = snap.nodes.get('README.md') as FileNode;
    expect(readme).toMatchObject({ kind: 'file', size: 10, mtimeMs: 5_000, perm: 0o644, content: { format: 1, key: 'pre/ws/README.md', etag: 'etag-README.md', sha256: SHA } });
    expect((snap.nodes.get('bin/run.sh') as FileNode).perm).toBe(0o755);
    expect(snap.nodes.get('link')).toMatchObject({ kind: 'symlink', target: '../outside' });

    const root = snap.nodes.get('') as DirNode;
    expect(root).toMatchObject({ kind: 'dir', ino: 1_000_000, names: ['README.md', 'bin', 'link', 'src'], subdirs: 2 });
    expect(snap.nodes.get('src')).toMatchObject({ kind: 'dir', names: ['a'], subdirs: 1, mtimeMs: 2_000 });
    expect(snap.nodes.get('src/a/b')).toMatchObject({ kind: 'dir', names: ['c.ts'], subdirs: 0 });
    // A directory's mtime is the newest thing below it; the workspace's includes the push time.
    expect(snap.nodes.get('bin')!.mtimeMs).toBe(9_000);
    expect(root.mtimeMs).toBe(Date.parse('2024-01-01T00:00:00.000Z'));
    expect(snap).toMatchObject({ workspace: 'ws', source: 'manifest', version: 'm1', files: 3, bytes: 13 });
    // Every node has its own inode.
    const inos = [...snap.nodes.values()].map((n) => n.ino);
    expect(new Set(inos).size).toBe(inos.length);
  });

  it('drops setuid, setgid and sticky bits but keeps the exec bits', async () => {
    const snap = await snapshotFromManifest(manifest([file('suid', { mode: 0o4755 }), file('plain', { mode: 0o640 })]), 'm', '', context(new Tree()));
    expect((snap.nodes.get('suid') as FileNode).perm).toBe(0o755);
    expect((snap.nodes.get('plain') as FileNode).perm).toBe(0o640);
  });

  it('skips an entry that collides with a directory, with a warning', async () => {
    const warnings: unknown[] = [];
    const snap = await snapshotFromManifest(manifest([file('a'), file('a/b'), file('c/d'), file('c')]), 'm', '', context(new Tree(), undefined, warnings));
    expect(snap.nodes.get('a')!.kind).toBe('file');
    expect(snap.nodes.has('a/b')).toBe(false);
    expect(snap.nodes.get('c')!.kind).toBe('dir');
    expect(snap.nodes.get('')).toMatchObject({ names: ['a', 'c'] });
    expect(warnings).toHaveLength(2);
  });

  it('keeps inode numbers across refreshes (and restarts) for paths that stay, and gives new paths new ones', async () => {
    const tree = new Tree();
    const first = await snapshotFromManifest(manifest([file('keep'), file('dir/keep'), file('gone')]), 'm1', '', context(tree));
    const second = await snapshotFromManifest(manifest([file('keep', { etag: 'changed', size: 99 }), file('dir/keep'), file('new')]), 'm2', '', context(tree, first));
    expect(second.nodes.get('keep')!.ino).toBe(first.nodes.get('keep')!.ino);
    expect(second.nodes.get('dir')!.ino).toBe(first.nodes.get('dir')!.ino);
    expect(second.nodes.get('dir/keep')!.ino).toBe(first.nodes.get('dir/keep')!.ino);
    expect(second.nodes.get('')!.ino).toBe(1_000_000);
    const oldInos = new Set([...first.nodes.values()].map((n) => n.ino));
    expect(oldInos.has(second.nodes.get('new')!.ino)).toBe(false);
    // A path that changes kind is a new file to tools: new inode.
    const third = await snapshotFromManifest(manifest([file('dir'), file('keep')]), 'm3', '', context(tree, second));
    expect(third.nodes.get('dir')!.ino).not.toBe(second.nodes.get('dir')!.ino);
  });

  it('keeps size and mtime from the manifest, nudging mtime only when content changed without them', async () => {
    const tree = new Tree();
    const a = await snapshotFromManifest(manifest([file('f', { etag: 'v1' }), file('g', { etag: 'g1' })]), 'm1', '', context(tree));
    const b = await snapshotFromManifest(manifest([file('f', { etag: 'v2' }), file('g', { etag: 'g1' })]), 'm2', '', context(tree, a));
    expect(b.nodes.get('g')!.mtimeMs).toBe(1_000);
    expect(b.nodes.get('f')!.mtimeMs).toBe(1_001);
    // Unchanged afterwards: the nudged mtime stays put.
    const c = await snapshotFromManifest(manifest([file('f', { etag: 'v2' }), file('g', { etag: 'g1' })]), 'm3', '', context(tree, b));
    expect(c.nodes.get('f')!.mtimeMs).toBe(1_001);
    // A real mtime change wins.
    const d = await snapshotFromManifest(manifest([file('f', { etag: 'v3', mtimeMs: 5_000 })]), 'm4', '', context(tree, c));
    expect(d.nodes.get('f')!.mtimeMs).toBe(5_000);
  });
});

describe('building a large snapshot', () => {
  it('lets the event loop turn meanwhile (FUSE calls keep being answered)', async () => {
    const entries = Array.from({ length: 10_000 }, (_, i) => file(`d${i % 100}/f${i}`));
    let building = true;
    let turns = 0;
    const turn = () => { if (building) { turns++; setImmediate(turn); } };
    setImmediate(turn);
    const snap = await snapshotFromManifest(manifest(entries), 'm', '', context(new Tree()));
    building = false;
    expect(snap.files).toBe(10_000);
    expect(turns).toBeGreaterThanOrEqual(2);
  });
});

describe('snapshotFromListing', () => {
  const entry = (key: string, size = 1): ListEntry => ({ key, etag: `"e-${key}"`, size, lastModified: new Date(3_000) });

  it('maps keys under the workspace prefix to files and markers to directories', async () => {
    const snap = await snapshotFromListing('ws', [entry('p/ws/a.txt', 5), entry('p/ws/empty/'), entry('p/ws/x/y.txt')], 'p/', context(new Tree()));
    expect(snap.nodes.get('a.txt')).toMatchObject({ kind: 'file', size: 5, perm: 0o644, content: { key: 'p/ws/a.txt', etag: 'e-p/ws/a.txt' }, mtimeMs: 3_000 });
    expect(snap.nodes.get('empty')).toMatchObject({ kind: 'dir', names: [] });
    expect(snap.nodes.get('x')).toMatchObject({ kind: 'dir', names: ['y.txt'] });
    expect(snap.source).toBe('listing');
  });

  it('skips keys that are not safe paths, one warning each', async () => {
    const warnings: Array<{ key?: string }> = [];
    const snap = await snapshotFromListing('ws', [
      entry('ws/ok'), entry('ws/a/..'), entry('ws/./b'), entry('ws/c//d'), entry('ws/nul\0'), entry(`ws/${'n'.repeat(256)}`),
    ], '', context(new Tree(), undefined, warnings));
    expect([...snap.nodes.keys()].sort()).toEqual(['', 'ok']);
    expect(warnings.map((w) => w.key)).toEqual(['ws/a/..', 'ws/./b', 'ws/c//d', 'ws/nul\0', `ws/${'n'.repeat(256)}`]);
  });
});

describe('Tree', () => {
  it('switches a workspace atomically: readers holding the old snapshot keep a whole view', async () => {
    const tree = new Tree();
    tree.reconcile(new Map([['ws', 'manifest']]));
    const state = tree.get('ws')!;
    const installs: Array<[View | undefined, View]> = [];
    tree.onInstall((_s, prev, next) => installs.push([prev, next]));

    const v1 = await snapshotFromManifest(manifest([file('a', { etag: 'a1' }), file('b', { etag: 'b1' })]), 'm1', '', tree.buildContext(state, () => {}));
    tree.install('ws', v1, 'm1');
    const held = tree.get('ws')!.view as Snapshot;
    const v2 = await snapshotFromManifest(manifest([file('a', { etag: 'a2' }), file('c', { etag: 'c2' })]), 'm2', '', tree.buildContext(state, () => {}));
    // Building the next snapshot changes nothing a reader can see.
    expect(tree.get('ws')!.view).toBe(held);
    tree.install('ws', v2, 'm2');

    expect(etagOf(held.nodes.get('a'))).toBe('a1');
    expect(held.nodes.has('b')).toBe(true);
    const now = tree.get('ws')!.view as Snapshot;
    expect(etagOf(now.nodes.get('a'))).toBe('a2');
    expect(now.nodes.has('b')).toBe(false);
    expect(now.nodes.has('c')).toBe(true);
    expect(tree.get('ws')!.etag).toBe('m2');
    expect(installs).toEqual([[undefined, v1], [v1, v2]]);
  });

  it('reconciles the workspace set, keeping the inode of workspaces that stay', async () => {
    const tree = new Tree();
    tree.reconcile(new Map([['b', 'plain'], ['a', 'manifest']]));
    expect(tree.names()).toEqual(['a', 'b']);
    const inoA = tree.get('a')!.ino;
    tree.reconcile(new Map([['a', 'plain'], ['c', 'commit']]));
    expect(tree.names()).toEqual(['a', 'c']);
    expect(tree.get('a')).toMatchObject({ ino: inoA, kind: 'plain' });
    expect(tree.get('b')).toBeUndefined();
    // The same name gets the same inode in another process (no table to lose on a restart).
    const elsewhere = new Tree();
    elsewhere.reconcile(new Map([['a', 'commit']]));
    expect(elsewhere.get('a')!.ino).toBe(inoA);
    expect(() => tree.reconcile(new Map([['../x', 'plain']]))).toThrow(/invalid workspace name/);
  });
});
