import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeCommit, headKey, isSyncError, MAX_TREE_PACK_BYTES, type Commit } from '@workspace-sync/shared';
import { createMemoryStore, withFaults, writeCommitFixture } from '@workspace-sync/testkit';
import { ContentCache } from '../src/content-cache.js';
import { RemoteStatus } from '../src/remote-status.js';
import { TreeStore, packCacheName } from '../src/tree-store.js';
import { CommitView } from '../src/views.js';
import { captureLogger, quietLogger, removeDir, tempDir } from './helpers.js';

// The tree store's decisions on the in-memory store; the mount tests (*.int.test.ts) load trees over the wire.
const store = createMemoryStore();
let n = 0;
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function head(prefix: string, ws: string): Promise<Commit> {
  const res = await store.get(headKey(prefix, ws));
  if (res.notModified) throw new Error('304');
  return decodeCommit(res.body, 'head');
}

async function open(prefix: string, dir = tempDir('trees'), logger = quietLogger, maxDecodedBytes?: number) {
  const cache = await ContentCache.open({ dir, maxSize: 1 << 24, maxAge: 0, memSize: 0, logger });
  const faulty = withFaults(store);
  const trees = new TreeStore({ store: faulty, prefix, cache, status: new RemoteStatus(), logger, maxDecodedBytes });
  cleanups.push(() => cache.close());
  return { trees, cache, faulty, dir };
}

describe('CommitView lookups', () => {
  it('answers from memory once the directories on the way are loaded; otherwise says it cannot (undefined)', async () => {
    const prefix = `cv${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'a/b/c.txt', content: 'c' }, { path: 'a/top.txt', content: 't' }]);
    const { trees, dir } = await open(prefix);
    cleanups.push(() => removeDir(dir));
    const view = new CommitView({ prefix, workspace: 'ws', commit: await head(prefix, 'ws'), namespace: 'ws', trees });
    expect(view.peek('')).toBe(view.root);
    expect(view.peek('a/b/c.txt')).toBeUndefined();
    const node = await view.lookup('a/b/c.txt');
    expect(node).toMatchObject({ kind: 'file', size: 1 });
    expect(view.peek('a/b/c.txt')).toEqual(node);
    expect(view.peek('a/top.txt')).toMatchObject({ kind: 'file' });
    // Known absent: null, both a missing name and a path through a file.
    expect(view.peek('a/b/nope')).toBeNull();
    expect(view.peek('a/top.txt/x')).toBeNull();
    expect(await view.lookup('a/b/nope')).toBeUndefined();
  });

  it('looks paths up even when the decoded-tree budget keeps nothing', async () => {
    const prefix = `cv${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'p/q/r/s.txt', content: 'deep' }]);
    const { trees, dir } = await open(prefix, tempDir('trees'), quietLogger, 1);
    cleanups.push(() => removeDir(dir));
    const view = new CommitView({ prefix, workspace: 'ws', commit: await head(prefix, 'ws'), namespace: 'ws', trees });
    expect(await view.lookup('p/q/r/s.txt')).toMatchObject({ kind: 'file', size: 4 });
    expect(await view.lookup('p/q/x')).toBeUndefined();
    expect(view.peek('p/q/r/s.txt')).toBeUndefined();
  });
});

describe('TreeStore', () => {
  it('decodes each directory once, by sha256: a later generation or a snapshot holding the same ref shares it', async () => {
    const prefix = `ts${++n}/`;
    const files = [{ path: 'lib/a.js', content: 'a' }, { path: 'lib/b.js', content: 'b' }];
    await writeCommitFixture(store, prefix, 'one', files);
    const c1 = await head(prefix, 'one');
    const { trees, faulty, dir } = await open(prefix);
    cleanups.push(() => removeDir(dir));
    const root1 = await trees.load('one', c1.root);
    const lib = root1.find('lib')!;
    expect(lib.kind).toBe('dir');
    await trees.load('one', (lib as { ref: Commit['root'] }).ref);
    expect(trees.size).toBe(2);
    // The same ref again (an unchanged directory of the next commit, a snapshot): nothing fetched or decoded.
    const gets = faulty.calls.length;
    expect(await trees.load('one', [...c1.root])).toBe(root1);
    expect(faulty.calls.length).toBe(gets);
  });

  it('reads a split directory whole, and refuses it when one of its parts is damaged', async () => {
    const prefix = `ts${++n}/`;
    const files = Array.from({ length: 700 }, (_, i) => ({ path: `big/f${String(i).padStart(4, '0')}.ts`, content: `${i}` }));
    await writeCommitFixture(store, prefix, 'ws', files);
    const commit = await head(prefix, 'ws');
    const { trees, dir } = await open(prefix);
    cleanups.push(() => removeDir(dir));
    const root = await trees.load('ws', commit.root);
    const big = root.find('big') as { ref: Commit['root'] };
    const loaded = await trees.load('ws', big.ref);
    expect(loaded.entries().map((e) => e.name)).toEqual(files.map((f) => f.path.slice(4)));
    const view = new CommitView({ prefix, workspace: 'ws', commit, namespace: 'ws', trees });
    expect(await view.lookup('big/f0699.ts')).toMatchObject({ kind: 'file', size: 3 });

    // Damage the bytes of the first part in the bucket (the index, written last, is intact).
    const key = `${prefix}.sync/ws/trees/${big.ref[0]}.pack`;
    const res = await store.get(key);
    if (res.notModified) throw new Error('304');
    const bad = Buffer.from(res.body);
    bad[5] ^= 0xff;
    await store.put(key, bad);
    const fresh = await open(prefix);
    cleanups.push(() => removeDir(fresh.dir));
    const err = await fresh.trees.load('ws', big.ref).catch((e: unknown) => e);
    expect(isSyncError(err, 'MANIFEST_INVALID')).toBe(true);
    expect((err as Error).message).toContain(`${key}@0`);
  });

  it('fetches a pack again when the cached copy is damaged, and refuses a damaged pack in the bucket', async () => {
    const prefix = `ts${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'x/y.txt', content: 'y' }]);
    const commit = await head(prefix, 'ws');
    const dir = tempDir('trees');
    cleanups.push(() => removeDir(dir));
    const first = await open(prefix, dir);
    await first.trees.load('ws', commit.root);
    await first.cache.flush();
    // Damage the copy on disk (same size), as a failing disk would.
    const key = `${prefix}.sync/ws/trees/${commit.root[0]}.pack`;
    const file = first.cache.blobPath(packCacheName(store.bucket, key));
    const bytes = readFileSync(file);
    bytes[commit.root[1] + 5] ^= 0xff;
    writeFileSync(file, bytes);

    const { logger, lines } = captureLogger();
    const second = await open(prefix, dir, logger);
    const root = await second.trees.load('ws', commit.root);
    expect(root.entries().map((e) => e.name)).toEqual(['x']);
    expect(second.faulty.calls.filter((c) => c.op === 'get').map((c) => c.key)).toEqual([key]);
    expect(lines().some((l) => l.msg.includes('cached tree pack does not match'))).toBe(true);

    // Now the bucket's copy is damaged: an error naming the object, never a decoded directory.
    const res = await store.get(key);
    if (res.notModified) throw new Error('304');
    const bad = Buffer.from(res.body);
    bad[commit.root[1] + 5] ^= 0xff;
    await store.put(key, bad);
    const third = await open(prefix);
    cleanups.push(() => removeDir(third.dir));
    const err = await third.trees.load('ws', commit.root).catch((e: unknown) => e);
    expect(isSyncError(err, 'MANIFEST_INVALID')).toBe(true);
    expect((err as Error).message).toContain(key);
  });

  it('refuses a tree pack larger than any writer makes before reading it', async () => {
    const prefix = `ts${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'x/y.txt', content: 'y' }]);
    const commit = await head(prefix, 'ws');
    const key = `${prefix}.sync/ws/trees/${commit.root[0]}.pack`;
    const res = await store.get(key);
    if (res.notModified) throw new Error('304');
    // The real pack with 64 MiB of padding after it: every ref in it still matches.
    await store.put(key, Buffer.concat([res.body, Buffer.alloc(MAX_TREE_PACK_BYTES)]));
    const { trees, dir } = await open(prefix);
    cleanups.push(() => removeDir(dir));
    const err = await trees.load('ws', commit.root).catch((e: unknown) => e);
    expect(isSyncError(err, 'MANIFEST_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/more than the 67108864 it may be/);
  });
});
