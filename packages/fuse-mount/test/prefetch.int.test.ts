/** The prefetch worker (its own S3 client, in a worker thread) against a real S3 server: whole data packs, or single files. */
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createRegistry, decodeCommit, headKey, isSyncError, packKey, sha256Hex, stripEtag, type ObjectStore } from '@workspace-sync/shared';
import { startCountingProxy, unreachable, withFaults, writeCommitFixture, type EmbeddedS3 } from '@workspace-sync/testkit';
import { blobName, dataPackName } from '../src/content-cache.js';
import { createMetrics } from '../src/metrics.js';
import { CommitView } from '../src/views.js';
import type { FileNode } from '../src/tree.js';
import { fetcherFixture, readAll, v1 } from './fetcher-fixture.js';
import { openTrees, settingsFor, useTestS3 } from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
const cleanups: Array<() => Promise<void> | void> = [];
const { upload, setup } = fetcherFixture(() => store, cleanups);

useTestS3((server, onServer) => { s3 = server; store = onServer; });
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('Fetcher prefetch', () => {
  it('prefetches small files without a pack one by one in a worker, within the budget, and skips cached ones', async () => {
    const nodes: FileNode[] = [];
    for (let i = 0; i < 20; i++) nodes.push(await upload(`pre/f${i}.txt`, randomBytes(1000 + i)));
    const big = await upload('pre/big.bin', randomBytes(2 * 1024 * 1024));
    const { fetcher, cache, gets } = await setup({
      prefetch: { settings: settingsFor(s3), concurrency: 4, budget: 15_000 },
    });
    await readAll(fetcher, nodes[0]!);
    const queued = fetcher.warm([...nodes, big]);
    // 15 kB of budget: files 1..14 fit (f0 is cached already); big files are never prefetched.
    expect(queued).toBe(14);
    await fetcher.idle();
    const cached = nodes.map((n) => cache.has(blobName(store.bucket, v1(n).key, v1(n).etag, 0)));
    expect(cached).toEqual(nodes.map((_, i) => i <= 14));
    expect(cache.has(blobName(store.bucket, v1(big).key, v1(big).etag, 0))).toBe(false);
    // Reads of prefetched files cost no GET on this thread, and the bytes are right.
    const before = gets();
    const body = await readAll(fetcher, nodes[7]!);
    expect(sha256Hex(body)).toBe(v1(nodes[7]!).sha256);
    expect(gets()).toBe(before);
    // Asking again queues nothing new.
    expect(fetcher.warm(nodes.slice(0, 15))).toBe(0);
  });

  it('prefetches packed files as one GET of their pack, and never serves a file whose copy in it does not match', async () => {
    const bodies = Array.from({ length: 30 }, (_, i) => randomBytes(2000 + i * 10));
    const nodes: FileNode[] = [];
    for (let i = 0; i < bodies.length; i++) nodes.push(await upload(`packed/f${i}.txt`, bodies[i]!));
    // The pack as sync-agent writes it, except that file 5's copy is damaged.
    const inPack = bodies.map((b, i) => (i === 5 ? Buffer.alloc(b.length, 1) : b));
    const packBody = Buffer.concat(inPack);
    const pKey = packKey('', 'ws', sha256Hex(packBody));
    const { etag } = await store.put(pKey, packBody);
    let offset = 0;
    for (const [i, node] of nodes.entries()) {
      v1(node).pack = { key: pKey, etag: stripEtag(etag), size: packBody.length, offset };
      offset += bodies[i]!.length;
    }
    const proxy = await startCountingProxy(s3.endpoint);
    cleanups.push(() => proxy.close());
    const { fetcher, cache, gets } = await setup({
      prefetch: { settings: { ...settingsFor(s3), endpoint: proxy.endpoint }, concurrency: 4, budget: 1e6 },
    });
    expect(fetcher.warm(nodes)).toBe(30);
    await fetcher.idle();
    expect(cache.has(dataPackName(store.bucket, pKey, stripEtag(etag)))).toBe(true);
    // One blob in the cache for the thirty files.
    expect(cache.entries).toBe(1);
    expect(proxy.count('GET', pKey)).toBe(1);
    expect(proxy.requests.filter((r) => r.method === 'GET').length).toBe(1);
    const before = gets();
    for (const [i, node] of nodes.entries()) expect((await readAll(fetcher, node)).equals(bodies[i]!), `file ${i}`).toBe(true);
    // File 5 alone was fetched, from its own object.
    expect(gets()).toBe(before + 1);
    // Asking again queues nothing.
    expect(fetcher.warm(nodes)).toBe(0);
  });

  it('prefetches a format-v2 workspace by whole packs; files too large for one are never prefetched', async () => {
    const bodies = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + 37 * i));
    const prefix = 'v2pf/';
    await writeCommitFixture(store, prefix, 'ws', [...bodies.map((content, i) => ({ path: `src/f${i}.ts`, content })), { path: 'big.bin', content: randomBytes(2 * 1024 * 1024) }]);
    const res = await store.get(headKey(prefix, 'ws'));
    if (res.notModified) throw new Error('304');
    const t = await openTrees(store, prefix);
    cleanups.push(t.close);
    const view = new CommitView({ prefix, workspace: 'ws', commit: decodeCommit(res.body, 'head'), namespace: 'ws', trees: t.trees });
    const nodes = await Promise.all(bodies.map(async (_, i) => (await view.lookup(`src/f${i}.ts`)) as FileNode));
    const big = (await view.lookup('big.bin')) as FileNode;
    const packs = new Set(nodes.map((n) => (n.content as { key: string }).key));
    const proxy = await startCountingProxy(s3.endpoint);
    cleanups.push(() => proxy.close());
    const metrics = createMetrics(createRegistry('t_'));
    const { fetcher, cache, gets } = await setup({
      metrics, prefetch: { settings: { ...settingsFor(s3), endpoint: proxy.endpoint }, concurrency: 4, budget: 1e9 },
    });
    // Handed over in batches, as a warm-up walk does: files of a pack asked for earlier still count.
    const budget = fetcher.warmBudget();
    expect(fetcher.warm(nodes.slice(0, 15), budget) + fetcher.warm([...nodes.slice(15), big], budget)).toBe(40);
    await fetcher.idle();
    expect((await metrics.prefetched.get()).values[0]!.value).toBe(40);
    expect((await metrics.s3Gets.get()).values.find((v) => v.labels.kind === 'prefetch')?.value).toBe(packs.size);
    for (const key of packs) expect(proxy.count('GET', key)).toBe(1);
    expect(proxy.requests.filter((r) => r.method === 'GET').length).toBe(packs.size);
    expect(cache.entries).toBe(packs.size);
    for (const [i, n] of nodes.entries()) expect((await readAll(fetcher, n)).equals(bodies[i]!), `file ${i}`).toBe(true);
    expect(gets()).toBe(0);
  });

  it('reads packs of a megabyte and more into reused buffers without mixing their bytes', async () => {
    // Three workspaces of one 1.5 MiB pack each: with two pack downloads at a time, the third reuses a buffer.
    const prefix = 'v2big/';
    const all: Array<{ node: FileNode; body: Buffer }> = [];
    for (const ws of ['w1', 'w2', 'w3']) {
      const bodies = Array.from({ length: 6 }, () => randomBytes(250 * 1024));
      await writeCommitFixture(store, prefix, ws, bodies.map((content, i) => ({ path: `f${i}`, content })));
      const res = await store.get(headKey(prefix, ws));
      if (res.notModified) throw new Error('304');
      const t = await openTrees(store, prefix);
      cleanups.push(t.close);
      const view = new CommitView({ prefix, workspace: ws, commit: decodeCommit(res.body, 'head'), namespace: ws, trees: t.trees });
      for (const [i, body] of bodies.entries()) all.push({ node: (await view.lookup(`f${i}`)) as FileNode, body });
    }
    const { fetcher, cache, gets } = await setup({ prefetch: { settings: settingsFor(s3), concurrency: 4, budget: 1e9 } });
    expect(fetcher.warm(all.map((f) => f.node))).toBe(18);
    await fetcher.idle();
    expect(cache.entries).toBe(3);
    for (const [i, f] of all.entries()) expect((await readAll(fetcher, f.node)).equals(f.body), `file ${i}`).toBe(true);
    expect(gets()).toBe(0);
  });

  it('charges a warm-up for the packs it fetches whole, up to the furthest file wanted in each', async () => {
    // Three workspaces of one pack each: six files of 250 KiB, back to back.
    const prefix = 'v2budget/';
    const nodes: FileNode[] = [];
    for (const ws of ['w1', 'w2', 'w3']) {
      await writeCommitFixture(store, prefix, ws, Array.from({ length: 6 }, (_, i) => ({ path: `f${i}`, content: randomBytes(250 * 1024) })));
      const res = await store.get(headKey(prefix, ws));
      if (res.notModified) throw new Error('304');
      const t = await openTrees(store, prefix);
      cleanups.push(t.close);
      const view = new CommitView({ prefix, workspace: ws, commit: decodeCommit(res.body, 'head'), namespace: ws, trees: t.trees });
      for (let i = 0; i < 6; i++) nodes.push((await view.lookup(`f${i}`)) as FileNode);
    }
    const { fetcher, cache } = await setup({ prefetch: { settings: settingsFor(s3), concurrency: 4, budget: 2 * 1024 * 1024 } });
    // The first pack's six files (1.5 MiB to the end of the last), then the second's first two
    // (to 500 KiB): 2,000 KiB of the 2,048; the third file would end at 750 KiB.
    expect(fetcher.warm(nodes)).toBe(8);
    await fetcher.idle();
    expect(cache.entries).toBe(2);
  });

  it('never fetches a pack larger than writers make: a v1 one is skipped for the files, a v2 one is refused', async () => {
    // A hostile or foreign bucket: "packs" of 9 MiB.
    const huge = randomBytes(9 * 1024 * 1024);
    const hugeKey = packKey('', 'ws', 'e'.repeat(64));
    const { etag } = await store.put(hugeKey, huge);
    const v1Body = huge.subarray(100, 1100);
    const v1File = await upload('huge/v1.txt', Buffer.from(v1Body));
    v1(v1File).pack = { key: hugeKey, etag: stripEtag(etag), size: huge.length, offset: 100 };
    const v2Body = huge.subarray(5000, 7000);
    const v2File: FileNode = {
      kind: 'file', ino: 3, size: v2Body.length, mtimeMs: 0, srcMtimeMs: 0, perm: 0o644,
      content: { format: 2, sha256: sha256Hex(v2Body), key: hugeKey, inPack: true, offset: 5000, chunks: undefined, plainKey: 'huge/v2.txt' },
    };
    const proxy = await startCountingProxy(s3.endpoint);
    cleanups.push(() => proxy.close());
    const { fetcher, cache, gets } = await setup({
      prefetch: { settings: { ...settingsFor(s3), endpoint: proxy.endpoint }, concurrency: 2, budget: 1e9 },
    });
    expect(fetcher.warm([v1File, v2File])).toBe(2);
    await fetcher.idle();
    // The worker asked for the v2 pack once and refused it by its announced length.
    expect(proxy.count('GET', hugeKey)).toBe(1);
    // The v1 file came from its own object; the v2 pack was refused by its announced length.
    expect(cache.has(blobName(store.bucket, v1(v1File).key, v1(v1File).etag, 0))).toBe(true);
    expect(proxy.count('GET', 'huge/v1.txt')).toBe(1);
    expect(cache.entries).toBe(1);
    expect(cache.has(dataPackName(store.bucket, hugeKey, undefined))).toBe(false);
    // Both read right: the v2 file by a range of its pack.
    expect((await readAll(fetcher, v1File)).equals(v1Body)).toBe(true);
    expect((await readAll(fetcher, v2File)).equals(v2Body)).toBe(true);
    expect(gets()).toBe(1);
  });

  it('leaves the files of a pack that is gone to demand reads', async () => {
    const bodies = Array.from({ length: 6 }, () => randomBytes(1500));
    const nodes: FileNode[] = [];
    for (let i = 0; i < bodies.length; i++) nodes.push(await upload(`gone/f${i}.txt`, bodies[i]!));
    let offset = 0;
    for (const [i, node] of nodes.entries()) {
      v1(node).pack = { key: packKey('', 'ws', 'd'.repeat(64)), etag: 'missing', size: 9000, offset };
      offset += bodies[i]!.length;
    }
    const { fetcher, status, gets } = await setup({ prefetch: { settings: settingsFor(s3), concurrency: 2, budget: 1e6 } });
    expect(fetcher.warm(nodes)).toBe(6);
    await fetcher.idle();
    expect(status.down).toBe(false);
    for (const [i, node] of nodes.entries()) expect((await readAll(fetcher, node)).equals(bodies[i]!)).toBe(true);
    expect(gets()).toBe(6);
  });

  it('hands a large warm-up to the worker a few tasks at a time and answers every one', async () => {
    const nodes: FileNode[] = [];
    for (let i = 0; i < 40; i++) nodes.push(await upload(`many/f${i}.txt`, randomBytes(500 + i)));
    const { fetcher, cache } = await setup({ prefetch: { settings: settingsFor(s3), concurrency: 2, budget: 1e6, window: 4 } });
    expect(fetcher.warm(nodes)).toBe(40);
    await fetcher.idle();
    expect(nodes.filter((n) => !cache.has(blobName(store.bucket, v1(n).key, v1(n).etag, 0)))).toEqual([]);
  });

  it('answers the tasks it never handed over once the worker finds S3 unreachable', async () => {
    const nodes: FileNode[] = [];
    for (let i = 0; i < 80; i++) nodes.push(await upload(`away/f${i}.txt`, randomBytes(300)));
    // An endpoint that hangs up on every connection, counting them.
    let connections = 0;
    const dead = createServer((socket) => { connections++; socket.destroy(); });
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => dead.close(() => resolve())));
    const endpoint = `http://127.0.0.1:${(dead.address() as AddressInfo).port}`;
    const { fetcher, cache, status } = await setup({
      prefetch: { settings: { ...settingsFor(s3), endpoint }, concurrency: 2, budget: 1e6, window: 4 },
    });
    expect(fetcher.warm(nodes)).toBe(80);
    await fetcher.idle();
    expect(status.down).toBe(true);
    // The first window's few tasks, with their retries (about 15); posting the rest too made about 100.
    expect(connections).toBeLessThan(40);
    expect(nodes.some((n) => cache.has(blobName(store.bucket, v1(n).key, v1(n).etag, 0)))).toBe(false);
  });

  it('fails fast while S3 is down and recovers once it answers', async () => {
    const node = await upload('outage.txt', Buffer.from('outage'));
    let down = true;
    const faults = withFaults(store, { fail: (op) => (op === 'get' && down ? unreachable() : undefined) });
    const { fetcher, status, gets } = await setup({
      faults, prefetch: { settings: settingsFor(s3), concurrency: 2, budget: 1e6 },
    });
    const first = await readAll(fetcher, node).catch((e: unknown) => e);
    expect(isSyncError(first, 'ENDPOINT_UNREACHABLE')).toBe(true);
    expect(status.down).toBe(true);
    // Within the probe interval no request is even sent.
    const second = await readAll(fetcher, node).catch((e: unknown) => e);
    expect(isSyncError(second, 'ENDPOINT_UNREACHABLE')).toBe(true);
    expect(gets()).toBe(1);
    // Prefetching is refused while down (the caller asks again later).
    expect(fetcher.warm([node])).toBe(-1);
    down = false;
    status.ok();
    expect((await readAll(fetcher, node)).toString()).toBe('outage');
  });
});
