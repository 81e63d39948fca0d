import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestKey, objectKey, Registry, type ObjectStore } from '@workspace-sync/shared';
import { startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import { createMetrics } from '../src/metrics.js';
import { Poller } from '../src/poller.js';
import { RemoteStatus } from '../src/remote-status.js';
import { Tree, type FileNode } from '../src/tree.js';
import { captureLogger, publish, releaseS3, storeFor } from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
let n = 0;

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
});
afterAll(async () => {
  await releaseS3(s3);
});

/** Each test gets its own prefix in the shared bucket. */
function setup(opts: { dirCacheTime?: number; now?: () => number } = {}) {
  const prefix = `t${++n}/`;
  const tree = new Tree();
  const registry = new Registry();
  const metrics = createMetrics(registry);
  const { logger, lines } = captureLogger();
  const poller = new Poller({
    store, tree, prefix, pollInterval: 1_000, dirCacheTime: opts.dirCacheTime ?? 60_000, status: new RemoteStatus(), logger, metrics,
    now: opts.now,
  });
  const refreshes = async (result: string) => (await metrics.manifestRefreshes.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  const warnings = () => lines().filter((l) => l.level === 40);
  return { prefix, tree, poller, refreshes, warnings };
}

describe('Poller', () => {
  it('discovers workspaces with and without manifests and hides the control prefix', async () => {
    const { prefix, tree, poller, warnings } = setup();
    await publish(store, prefix, 'alpha', [{ path: 'a.txt', content: 'a' }]);
    await store.put(objectKey(prefix, 'plain', 'p.txt'), Buffer.from('p'));
    await store.put(`${prefix}.hidden/x`, Buffer.from('x'));
    await poller.pollOnce();
    expect(tree.names()).toEqual(['alpha', 'plain']);
    expect(tree.get('alpha')).toMatchObject({ hasManifest: true });
    expect(tree.get('alpha')!.snapshot!.nodes.has('a.txt')).toBe(true);
    expect(tree.get('plain')).toMatchObject({ hasManifest: false, snapshot: undefined });
    await poller.pollOnce();
    // One warning for the invalid name, however often it is seen; none for .sync.
    expect(warnings().map((w) => w.name)).toEqual(['.hidden']);
  });

  it('checks manifests with conditional GETs and installs a new push whole', async () => {
    const { prefix, tree, poller, refreshes } = setup();
    await publish(store, prefix, 'ws', [{ path: 'a', content: 'one' }, { path: 'b', content: 'bee' }]);
    await poller.pollOnce();
    const first = tree.get('ws')!.snapshot!;
    await poller.pollOnce();
    expect(await refreshes('unchanged')).toBe(1);
    expect(tree.get('ws')!.snapshot).toBe(first);

    await publish(store, prefix, 'ws', [{ path: 'a', content: 'two' }, { path: 'c', content: 'sea' }], 2);
    await poller.pollOnce();
    const second = tree.get('ws')!.snapshot!;
    expect(second).not.toBe(first);
    expect([...second.nodes.keys()].sort()).toEqual(['', 'a', 'c']);
    expect((second.nodes.get('a') as FileNode).size).toBe(3);
    expect(second.nodes.get('a')!.ino).toBe(first.nodes.get('a')!.ino);
    expect(await refreshes('changed')).toBe(2);
  });

  it('keeps serving the last good view when a manifest is invalid, warning once', async () => {
    const { prefix, tree, poller, refreshes, warnings } = setup();
    await publish(store, prefix, 'ws', [{ path: 'good', content: 'ok' }]);
    await poller.pollOnce();
    const good = tree.get('ws')!.snapshot;
    await store.put(manifestKey(prefix, 'ws'), Buffer.from('not gzip at all'));
    await poller.pollOnce();
    await poller.pollOnce();
    expect(tree.get('ws')!.snapshot).toBe(good);
    expect(await refreshes('invalid')).toBe(2);
    expect(warnings().filter((w) => w.msg.includes('invalid manifest'))).toHaveLength(1);
  });

  it('trusts a listing for --dir-cache-time, then lists again', async () => {
    let now = 1_000_000;
    const { prefix, tree, poller } = setup({ dirCacheTime: 300_000, now: () => now });
    await store.put(objectKey(prefix, 'plain', 'one.txt'), Buffer.from('1'));
    await poller.pollOnce();
    const state = tree.get('plain')!;
    const first = await poller.ensureSnapshot(state);
    expect([...first!.nodes.keys()].sort()).toEqual(['', 'one.txt']);
    await store.put(objectKey(prefix, 'plain', 'two.txt'), Buffer.from('2'));
    now += 299_000;
    expect(await poller.ensureSnapshot(state)).toBe(first);
    now += 2_000;
    const second = await poller.ensureSnapshot(state);
    expect([...second!.nodes.keys()].sort()).toEqual(['', 'one.txt', 'two.txt']);
    expect(second!.nodes.get('one.txt')!.ino).toBe(first!.nodes.get('one.txt')!.ino);
  });

  it('skips listed keys that are not safe paths, warning once per key', async () => {
    let now = 0;
    const { prefix, tree, poller, warnings } = setup({ dirCacheTime: 1_000, now: () => now });
    await store.put(objectKey(prefix, 'odd', 'fine.txt'), Buffer.from('fine'));
    await store.put(`${prefix}odd/e/..`, Buffer.from('x'));
    await store.put(`${prefix}odd/f/.`, Buffer.from('x'));
    await poller.pollOnce();
    const snap = await poller.ensureSnapshot(tree.get('odd')!);
    expect([...snap!.nodes.keys()].sort()).toEqual(['', 'fine.txt']);
    now += 5_000;
    await poller.ensureSnapshot(tree.get('odd')!);
    expect(warnings().map((w) => w.key).sort()).toEqual([`${prefix}odd/e/..`, `${prefix}odd/f/.`]);
  });

  it('falls back to a listing when the manifest disappears', async () => {
    const { prefix, tree, poller } = setup();
    await publish(store, prefix, 'ws', [{ path: 'listed', content: 'x' }]);
    await store.put(objectKey(prefix, 'ws', 'unlisted'), Buffer.from('y'));
    await poller.pollOnce();
    expect(tree.get('ws')!.snapshot!.nodes.has('unlisted')).toBe(false);
    await store.deleteMany([manifestKey(prefix, 'ws')]);
    await poller.pollOnce();
    const snap = await poller.ensureSnapshot(tree.get('ws')!);
    expect(snap!.source).toBe('listing');
    expect([...snap!.nodes.keys()].sort()).toEqual(['', 'listed', 'unlisted']);
  });
});
