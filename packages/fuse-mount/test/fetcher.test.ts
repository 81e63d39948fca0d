import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isSyncError, objectKey, packKey, sha256Hex, stripEtag, type ObjectStore } from '@workspace-sync/shared';
import { startCountingProxy, startTestS3, unreachable, withFaults, type EmbeddedS3, type FaultyStore } from '@workspace-sync/testkit';
import { ContentCache, blobName } from '../src/content-cache.js';
import { Fetcher, type FetcherOptions } from '../src/fetcher.js';
import { RemoteStatus } from '../src/remote-status.js';
import type { FileNode } from '../src/tree.js';
import { quietLogger, releaseS3, removeDir, settingsFor, storeFor, tempDir } from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
});
afterAll(async () => {
  await releaseS3(s3);
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function upload(rel: string, body: Buffer): Promise<FileNode> {
  const key = objectKey('', 'ws', rel);
  const { etag } = await store.put(key, body);
  return { kind: 'file', ino: 2, size: body.length, mtimeMs: 0, srcMtimeMs: 0, perm: 0o644, key, etag: stripEtag(etag), sha256: sha256Hex(body) };
}

async function setup(opts: Partial<FetcherOptions> & { faults?: FaultyStore } = {}) {
  const dir = tempDir('fetch-cache');
  const cache = await ContentCache.open({ dir, maxSize: 64 * 1024 * 1024, maxAge: 0, memSize: 0, logger: quietLogger });
  const faulty = opts.faults ?? withFaults(store);
  const status = new RemoteStatus();
  const fetcher = new Fetcher({ store: faulty, cache, status, logger: quietLogger, ...opts });
  cleanups.push(async () => { await fetcher.stop(); await cache.close(); removeDir(dir); });
  const gets = () => faulty.calls.filter((c) => c.op === 'get').length;
  return { fetcher, cache, faulty, status, gets };
}

async function readAll(fetcher: Fetcher, node: FileNode, offset = 0, length = node.size): Promise<Buffer> {
  const out = Buffer.alloc(length);
  const n = await fetcher.readInto(node, out, offset, length);
  return out.subarray(0, n);
}

describe('Fetcher', () => {
  it('downloads once for concurrent readers of the same file, then serves the cache', async () => {
    const body = randomBytes(50_000);
    const node = await upload('single.bin', body);
    const { fetcher, faulty, gets } = await setup();
    faulty.plan.latencyMs = 100;
    const results = await Promise.all(Array.from({ length: 8 }, () => readAll(fetcher, node)));
    for (const r of results) expect(r.equals(body)).toBe(true);
    expect(gets()).toBe(1);
    expect((await readAll(fetcher, node, 1000, 10)).equals(body.subarray(1000, 1010))).toBe(true);
    expect(gets()).toBe(1);
  });

  it('refuses content whose ETag is not the one the manifest names (the server ignores If-Match)', async () => {
    const node = await upload('changing.txt', Buffer.from('version one'));
    await store.put(node.key, Buffer.from('version two!'));
    const { fetcher, cache } = await setup();
    const err = await readAll(fetcher, node).catch((e: unknown) => e);
    expect(isSyncError(err, 'PRECONDITION_FAILED')).toBe(true);
    expect((err as Error).message).toContain('changed underneath');
    // Nothing of the wrong version reached the cache.
    expect(cache.entries).toBe(0);
  });

  it('refuses content whose sha256 differs from the manifest even when the ETag matches', async () => {
    const node = await upload('tampered.txt', Buffer.from('real content'));
    const lying = { ...node, sha256: sha256Hex('other content') };
    const { fetcher } = await setup();
    const err = await readAll(fetcher, lying).catch((e: unknown) => e);
    expect(isSyncError(err, 'PRECONDITION_FAILED')).toBe(true);
  });

  it('treats a range past the end of a shrunk object as a change, not as an outage', async () => {
    const chunkSize = 64 * 1024;
    const node = await upload('shrinks.bin', randomBytes(chunkSize * 3));
    await store.put(node.key, Buffer.from('short now'));
    const { fetcher, cache, status } = await setup({ chunkSize, readAheadChunks: 0 });
    const err = await readAll(fetcher, node, chunkSize * 2, 100).catch((e: unknown) => e);
    expect(isSyncError(err, 'PRECONDITION_FAILED')).toBe(true);
    expect(status.down).toBe(false);
    expect(cache.entries).toBe(0);
  });

  it('reads an object uploaded in parts by pinned ranges, with the ETag that listings give', async () => {
    const body = randomBytes(11 * 1024 * 1024 + 7);
    const key = objectKey('', 'ws', 'multipart.bin');
    // RGW answers the completing request with an empty ETag (and its ETags of such objects end in -<parts>).
    const { etag } = await store.upload(key, Readable.from([body]), { partSize: 5 * 1024 * 1024 });
    expect(etag).toMatch(/^[0-9a-f]{32}(-3)?$/);
    const listed: string[] = [];
    for await (const e of store.list(key)) if ('key' in e) listed.push(e.etag);
    expect(listed).toEqual([etag]);
    const node: FileNode = { kind: 'file', ino: 2, size: body.length, mtimeMs: 0, srcMtimeMs: 0, perm: 0o644, key, etag, sha256: sha256Hex(body) };
    const { fetcher, gets } = await setup({ readAheadChunks: 0 });
    expect((await readAll(fetcher, node, 5 * 1024 * 1024 - 10, 20)).equals(body.subarray(5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10))).toBe(true);
    expect(gets()).toBe(1);
    expect((await readAll(fetcher, node)).equals(body)).toBe(true);
    expect(gets()).toBe(3);
  });

  it('reads large files by ranges, without downloading the whole file first', async () => {
    const chunkSize = 64 * 1024;
    const body = randomBytes(chunkSize * 5 + 123);
    const node = await upload('large.bin', body);
    const { fetcher, cache, gets } = await setup({ chunkSize, readAheadChunks: 0 });
    expect((await readAll(fetcher, node, 10, 100)).equals(body.subarray(10, 110))).toBe(true);
    expect(gets()).toBe(1);
    await cache.flush();
    expect(cache.bytes).toBe(chunkSize);
    // A read across a chunk boundary needs the next chunk only.
    expect((await readAll(fetcher, node, chunkSize - 50, 100)).equals(body.subarray(chunkSize - 50, chunkSize + 50))).toBe(true);
    expect(gets()).toBe(2);
    // The short last chunk.
    expect((await readAll(fetcher, node, chunkSize * 5, 1000)).equals(body.subarray(chunkSize * 5))).toBe(true);
    expect((await readAll(fetcher, node)).equals(body)).toBe(true);
    expect(gets()).toBe(6);
  });

  it('fetches the next chunks ahead of a sequential reader', async () => {
    const chunkSize = 64 * 1024;
    const body = randomBytes(chunkSize * 6);
    const node = await upload('sequential.bin', body);
    const { fetcher, cache } = await setup({ chunkSize, readAheadChunks: 3 });
    await readAll(fetcher, node, 0, 4096);
    fetcher.readAhead(node, 0);
    const names = [1, 2, 3, 4].map((i) => blobName(store.bucket, node.key, node.etag, i));
    for (let i = 0; i < 50 && !names.slice(0, 3).every((n) => cache.has(n)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(names.map((n) => cache.has(n))).toEqual([true, true, true, false]);
  });

  it('prefetches small files in a worker, within the budget, and skips cached ones', async () => {
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
    const cached = nodes.map((n) => cache.has(blobName(store.bucket, n.key, n.etag, 0)));
    expect(cached).toEqual(nodes.map((_, i) => i <= 14));
    expect(cache.has(blobName(store.bucket, big.key, big.etag, 0))).toBe(false);
    // Reads of prefetched files cost no GET on this thread, and the bytes are right.
    const before = gets();
    const body = await readAll(fetcher, nodes[7]!);
    expect(sha256Hex(body)).toBe(nodes[7]!.sha256);
    expect(gets()).toBe(before);
    // Asking again queues nothing new.
    expect(fetcher.warm(nodes.slice(0, 15))).toBe(0);
  });

  it('prefetches packed files by range GETs of their pack, and falls back to each object when a piece does not match', async () => {
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
      node.pack = { key: pKey, etag: stripEtag(etag), size: packBody.length, offset };
      offset += bodies[i]!.length;
    }
    const proxy = await startCountingProxy(s3.endpoint);
    cleanups.push(() => proxy.close());
    const { fetcher, cache, gets } = await setup({
      prefetch: { settings: { ...settingsFor(s3), endpoint: proxy.endpoint }, concurrency: 4, budget: 1e6 },
      chunkSize: 32 * 1024,
    });
    expect(fetcher.warm(nodes)).toBe(30);
    await fetcher.idle();
    expect(nodes.every((n) => cache.has(blobName(store.bucket, n.key, n.etag, 0)))).toBe(true);
    // ~64 kB of pack in ranges of at most 32 kB: three GETs of the pack, one of file 5's own object.
    expect(proxy.count('GET', pKey)).toBe(3);
    expect(proxy.count('GET', 'packed/f5.txt')).toBe(1);
    expect(proxy.requests.filter((r) => r.method === 'GET').length).toBe(4);
    const before = gets();
    for (const [i, node] of nodes.entries()) expect((await readAll(fetcher, node)).equals(bodies[i]!), `file ${i}`).toBe(true);
    expect(gets()).toBe(before);
  });

  it('prefetches from the files themselves when their pack is gone', async () => {
    const bodies = Array.from({ length: 6 }, () => randomBytes(1500));
    const nodes: FileNode[] = [];
    for (let i = 0; i < bodies.length; i++) nodes.push(await upload(`gone/f${i}.txt`, bodies[i]!));
    let offset = 0;
    for (const [i, node] of nodes.entries()) {
      node.pack = { key: packKey('', 'ws', 'd'.repeat(64)), etag: 'missing', size: 9000, offset };
      offset += bodies[i]!.length;
    }
    const { fetcher, cache } = await setup({ prefetch: { settings: settingsFor(s3), concurrency: 2, budget: 1e6 } });
    expect(fetcher.warm(nodes)).toBe(6);
    await fetcher.idle();
    expect(nodes.every((n) => cache.has(blobName(store.bucket, n.key, n.etag, 0)))).toBe(true);
    for (const [i, node] of nodes.entries()) expect((await readAll(fetcher, node)).equals(bodies[i]!)).toBe(true);
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
