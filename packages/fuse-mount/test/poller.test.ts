import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import {
  MANIFEST_FORMAT, encodeCommit, encodeTree, headKey, manifestKey, objectKey, Registry, sha256Hex, treePackKey,
  type Commit, type ObjectStore,
} from '@workspace-sync/shared';
import { startTestS3, withFaults, writeCommitFixture, type EmbeddedS3 } from '@workspace-sync/testkit';
import { createMetrics } from '../src/metrics.js';
import { OfflineState } from '../src/offline-state.js';
import { Poller } from '../src/poller.js';
import { RemoteStatus } from '../src/remote-status.js';
import { Tree, type FileNode, type Snapshot } from '../src/tree.js';
import { TreeStore } from '../src/tree-store.js';
import { CommitView } from '../src/views.js';
import { captureLogger, openTrees, publish, releaseS3, storeFor } from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
let n = 0;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
});
afterAll(async () => {
  await releaseS3(s3);
});
afterEach(async () => {
  for (const fn of cleanups.splice(0)) await fn();
});

/** Each test gets its own prefix in the shared bucket. */
async function setup(opts: { dirCacheTime?: number; now?: () => number; offline?: boolean } = {}) {
  const prefix = `t${++n}/`;
  const tree = new Tree();
  const registry = new Registry();
  const metrics = createMetrics(registry);
  const { logger, lines } = captureLogger();
  const faulty = withFaults(store);
  const status = new RemoteStatus();
  const t = await openTrees(faulty, prefix, status);
  cleanups.push(t.close);
  const offline = opts.offline ? new OfflineState(t.cache.root, store.bucket, prefix, logger) : undefined;
  const poller = new Poller({
    store: faulty, tree, trees: t.trees, prefix, pollInterval: 1_000, dirCacheTime: opts.dirCacheTime ?? 60_000, status, logger, metrics,
    now: opts.now, offline,
  });
  const refreshes = async (result: string) => (await metrics.manifestRefreshes.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  const warnings = () => lines().filter((l) => l.level === 40);
  return { prefix, tree, poller, refreshes, warnings, faulty, trees: t.trees, cache: t.cache, status, logger, offline };
}

describe('Poller', () => {
  it('discovers workspaces with and without manifests and hides the control prefix', async () => {
    const { prefix, tree, poller, warnings } = await setup();
    await publish(store, prefix, 'alpha', [{ path: 'a.txt', content: 'a' }]);
    await store.put(objectKey(prefix, 'plain', 'p.txt'), Buffer.from('p'));
    await store.put(`${prefix}.hidden/x`, Buffer.from('x'));
    await poller.pollOnce();
    expect(tree.names()).toEqual(['alpha', 'plain']);
    expect(tree.get('alpha')).toMatchObject({ kind: 'manifest' });
    expect((tree.get('alpha')!.view as Snapshot).nodes.has('a.txt')).toBe(true);
    expect(tree.get('plain')).toMatchObject({ kind: 'plain', view: undefined });
    await poller.pollOnce();
    // One warning for the invalid name, however often it is seen; none for .sync.
    expect(warnings().map((w) => w.name)).toEqual(['.hidden']);
  });

  it('checks manifests with conditional GETs and installs a new push whole', async () => {
    const { prefix, tree, poller, refreshes } = await setup();
    await publish(store, prefix, 'ws', [{ path: 'a', content: 'one' }, { path: 'b', content: 'bee' }]);
    await poller.pollOnce();
    const first = tree.get('ws')!.view as Snapshot;
    await poller.pollOnce();
    expect(await refreshes('unchanged')).toBe(1);
    expect(tree.get('ws')!.view).toBe(first);

    await publish(store, prefix, 'ws', [{ path: 'a', content: 'two' }, { path: 'c', content: 'sea' }], 2);
    await poller.pollOnce();
    const second = tree.get('ws')!.view as Snapshot;
    expect(second).not.toBe(first);
    expect([...second.nodes.keys()].sort()).toEqual(['', 'a', 'c']);
    expect((second.nodes.get('a') as FileNode).size).toBe(3);
    expect(second.nodes.get('a')!.ino).toBe(first.nodes.get('a')!.ino);
    expect(await refreshes('changed')).toBe(2);
  });

  it('keeps serving the last good view when a manifest is invalid, warning once', async () => {
    const { prefix, tree, poller, refreshes, warnings } = await setup();
    await publish(store, prefix, 'ws', [{ path: 'good', content: 'ok' }]);
    await poller.pollOnce();
    const good = tree.get('ws')!.view;
    await store.put(manifestKey(prefix, 'ws'), Buffer.from('not gzip at all'));
    await poller.pollOnce();
    await poller.pollOnce();
    expect(tree.get('ws')!.view).toBe(good);
    expect(await refreshes('invalid')).toBe(2);
    expect(warnings().filter((w) => w.msg.includes('invalid manifest'))).toHaveLength(1);
  });

  it('trusts a listing for --dir-cache-time, then lists again', async () => {
    let now = 1_000_000;
    const { prefix, tree, poller } = await setup({ dirCacheTime: 300_000, now: () => now });
    await store.put(objectKey(prefix, 'plain', 'one.txt'), Buffer.from('1'));
    await poller.pollOnce();
    const state = tree.get('plain')!;
    const first = await poller.ensureView(state) as Snapshot;
    expect([...first!.nodes.keys()].sort()).toEqual(['', 'one.txt']);
    await store.put(objectKey(prefix, 'plain', 'two.txt'), Buffer.from('2'));
    now += 299_000;
    expect(await poller.ensureView(state)).toBe(first);
    now += 2_000;
    const second = await poller.ensureView(state) as Snapshot;
    expect([...second!.nodes.keys()].sort()).toEqual(['', 'one.txt', 'two.txt']);
    expect(second!.nodes.get('one.txt')!.ino).toBe(first!.nodes.get('one.txt')!.ino);
  });

  it('skips listed keys that are not safe paths, warning once per key', async () => {
    let now = 0;
    const { prefix, tree, poller, warnings } = await setup({ dirCacheTime: 1_000, now: () => now });
    await store.put(objectKey(prefix, 'odd', 'fine.txt'), Buffer.from('fine'));
    await store.put(`${prefix}odd/e/..`, Buffer.from('x'));
    await store.put(`${prefix}odd/f/.`, Buffer.from('x'));
    await poller.pollOnce();
    const snap = await poller.ensureView(tree.get('odd')!) as Snapshot;
    expect([...snap!.nodes.keys()].sort()).toEqual(['', 'fine.txt']);
    now += 5_000;
    await poller.ensureView(tree.get('odd')!);
    expect(warnings().map((w) => w.key).sort()).toEqual([`${prefix}odd/e/..`, `${prefix}odd/f/.`]);
  });

  it('falls back to a listing when the manifest disappears', async () => {
    const { prefix, tree, poller } = await setup();
    await publish(store, prefix, 'ws', [{ path: 'listed', content: 'x' }]);
    await store.put(objectKey(prefix, 'ws', 'unlisted'), Buffer.from('y'));
    await poller.pollOnce();
    expect((tree.get('ws')!.view as Snapshot).nodes.has('unlisted')).toBe(false);
    await store.deleteMany([manifestKey(prefix, 'ws')]);
    await poller.pollOnce();
    const snap = await poller.ensureView(tree.get('ws')!) as Snapshot;
    expect(snap!.source).toBe('listing');
    expect([...snap!.nodes.keys()].sort()).toEqual(['', 'listed', 'unlisted']);
  });
});

describe('Poller (format v2)', () => {
  const gets = (calls: Array<{ op: string; key: string }>) => calls.filter((c) => c.op === 'get');

  it('serves a workspace from its head: one LIST of heads per poll, a GET only for heads that changed', async () => {
    const { prefix, tree, poller, faulty } = await setup();
    await writeCommitFixture(store, prefix, 'a', [{ path: 'src/x.ts', content: 'x' }]);
    await writeCommitFixture(store, prefix, 'b', [{ path: 'y.txt', content: 'y' }]);
    await poller.pollOnce();
    expect(tree.names()).toEqual(['a', 'b']);
    const viewA = tree.get('a')!.view as CommitView;
    expect(viewA).toBeInstanceOf(CommitView);
    expect(viewA.commit.generation).toBe(1);
    expect(await viewA.lookup('src/x.ts')).toMatchObject({ kind: 'file', size: 1 });

    faulty.calls.length = 0;
    await poller.pollOnce();
    expect(faulty.calls.map(({ op, key }) => ({ op, key }))).toEqual([{ op: 'list', key: `${prefix}.sync/.heads/` }]);

    await writeCommitFixture(store, prefix, 'a', [{ path: 'src/x.ts', content: 'x2' }]);
    faulty.calls.length = 0;
    await poller.pollOnce();
    // The heads, a's head, and a's new tree pack (its root directory is loaded before the switch).
    expect(faulty.calls.filter((c) => c.op === 'list')).toHaveLength(1);
    expect(gets(faulty.calls).map((c) => c.key)).toEqual([headKey(prefix, 'a'), expect.stringContaining(`${prefix}.sync/a/trees/`)]);
    expect((tree.get('a')!.view as CommitView).commit.generation).toBe(2);
    expect(tree.get('b')!.view).toBe(tree.get('b')!.view);
  });

  it('polls a thousand workspaces with one request when nothing changed', async () => {
    const { prefix, tree, poller, faulty } = await setup();
    const names = Array.from({ length: 1000 }, (_, i) => `w${String(i).padStart(4, '0')}`);
    const tasks = names.map((ws) => async () => {
      const body = encodeTree([{ name: 'f', kind: 'symlink', target: 'x', mtimeMs: 0 }]);
      await store.put(treePackKey(prefix, ws, '0123456789abcdef'), body);
      await store.put(headKey(prefix, ws), encodeCommit(commitOf(ws, [`0123456789abcdef`, 0, body.length, sha256Hex(body)])));
    });
    for (let i = 0; i < tasks.length; i += 50) await Promise.all(tasks.slice(i, i + 50).map((t) => t()));
    await poller.pollOnce();
    expect(tree.names()).toHaveLength(1000);
    faulty.calls.length = 0;
    await poller.pollOnce();
    await poller.pollOnce();
    expect(faulty.calls).toHaveLength(2);
  }, 120_000);

  it('moves a v1 workspace to its head when the manifest becomes a version-2 stub', async () => {
    const { prefix, tree, poller } = await setup();
    await publish(store, prefix, 'ws', [{ path: 'old.txt', content: 'v1' }]);
    await poller.pollOnce();
    expect(tree.get('ws')!.kind).toBe('manifest');
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'new.txt', content: 'v2' }]);
    await store.put(manifestKey(prefix, 'ws'), gzipSync(JSON.stringify({ format: MANIFEST_FORMAT, version: 2, workspace: 'ws' })));
    await poller.pollOnce();
    const state = tree.get('ws')!;
    expect(state.kind).toBe('commit');
    const view = await poller.ensureView(state);
    expect(view).toBeInstanceOf(CommitView);
    expect(await view!.lookup('new.txt')).toBeDefined();
    expect(await view!.lookup('old.txt')).toBeUndefined();
  });

  it('keeps serving the last good commit when a head is invalid, warning once', async () => {
    const { prefix, tree, poller, refreshes, warnings } = await setup();
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'good', content: 'ok' }]);
    await poller.pollOnce();
    const good = tree.get('ws')!.view;
    await store.put(headKey(prefix, 'ws'), Buffer.from('{"format":"something else"}'));
    await poller.pollOnce();
    await poller.pollOnce();
    expect(tree.get('ws')!.view).toBe(good);
    expect(await refreshes('invalid')).toBeGreaterThanOrEqual(1);
    expect(warnings().filter((w) => w.msg.includes('invalid commit'))).toHaveLength(1);
  });

  it('restores the heads and trees saved by an earlier run while S3 cannot be reached', async () => {
    const first = await setup({ offline: true });
    await writeCommitFixture(store, first.prefix, 'ws', [{ path: 'dir/file.txt', content: 'saved' }]);
    await first.poller.pollOnce();
    await (first.tree.get('ws')!.view as CommitView).lookup('dir/file.txt');
    await first.offline!.flush();
    await first.cache.flush();

    // A new process: nothing in memory, S3 unreachable.
    const down = withFaults(store, { fail: () => Object.assign(new Error('down'), { name: 'TimeoutError' }) });
    const tree = new Tree();
    const trees = new TreeStore({ store: down, prefix: first.prefix, cache: first.cache, status: first.status, logger: first.logger });
    const poller = new Poller({
      store: down, tree, trees, prefix: first.prefix, pollInterval: 1_000, dirCacheTime: 60_000, status: first.status, logger: first.logger,
      offline: first.offline,
    });
    await expect(poller.pollOnce()).rejects.toThrow();
    expect(await poller.restoreOffline()).toBe(1);
    const view = tree.get('ws')!.view as CommitView;
    expect(await view.lookup('dir/file.txt')).toMatchObject({ kind: 'file', size: 5 });
    // Another bucket's or prefix's saved heads are not this mount's.
    const other = new OfflineState(first.cache.root, store.bucket, 'elsewhere/', first.logger);
    expect((await other.load()).size).toBe(0);
  });
});

function commitOf(workspace: string, root: Commit['root']): Commit {
  return {
    format: 'workspace-sync.commit', version: 2, workspace, generation: 1, id: '00000000000000aa', parent: null,
    createdAt: '2026-01-01T00:00:00.000Z', writer: { host: 'h', agent: 'a' }, root, stats: { files: 1, dirs: 1, bytes: 0 },
    changes: { added: 1, modified: 0, deleted: 0, bytes: 0, paths: { added: [], modified: [], deleted: [] }, truncated: false },
  };
}
