import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  CHUNK_SIZE, decodeCommit, headKey, isSyncError, objectKey, packKey, sha256Hex, stripEtag, type ObjectStore,
} from '@workspace-sync/shared';
import {
  startCountingProxy, startTestS3, unreachable, withFaults, writeCommitFixture, type EmbeddedS3, type FaultyStore,
} from '@workspace-sync/testkit';
import { CommitView } from '../src/views.js';
import { ContentCache, blobName } from '../src/content-cache.js';
import { Fetcher, type FetcherOptions } from '../src/fetcher.js';
import { RemoteStatus } from '../src/remote-status.js';
import type { FileNode, V1Content } from '../src/tree.js';
import { captureLogger, openTrees, quietLogger, releaseS3, removeDir, settingsFor, storeFor, tempDir } from './helpers.js';

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
  return v1Node(key, stripEtag(etag), body.length, sha256Hex(body));
}

function v1Node(key: string, etag: string, size: number, sha256: string | undefined): FileNode {
  return { kind: 'file', ino: 2, size, mtimeMs: 0, srcMtimeMs: 0, perm: 0o644, content: { format: 1, key, etag, sha256 } };
}

const v1 = (node: FileNode) => node.content as V1Content;

async function setup(opts: Partial<FetcherOptions> & { faults?: FaultyStore; dir?: string } = {}) {
  const dir = opts.dir ?? tempDir('fetch-cache');
  const cache = await ContentCache.open({ dir, maxSize: 64 * 1024 * 1024, maxAge: 0, memSize: 0, logger: opts.logger ?? quietLogger });
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
    await store.put(v1(node).key, Buffer.from('version two!'));
    const { fetcher, cache } = await setup();
    const err = await readAll(fetcher, node).catch((e: unknown) => e);
    expect(isSyncError(err, 'PRECONDITION_FAILED')).toBe(true);
    expect((err as Error).message).toContain('changed underneath');
    // Nothing of the wrong version reached the cache.
    expect(cache.entries).toBe(0);
  });

  it('refuses content whose sha256 differs from the manifest even when the ETag matches', async () => {
    const node = await upload('tampered.txt', Buffer.from('real content'));
    const lying = { ...node, content: { ...v1(node), sha256: sha256Hex('other content') } };
    const { fetcher } = await setup();
    const err = await readAll(fetcher, lying).catch((e: unknown) => e);
    expect(isSyncError(err, 'PRECONDITION_FAILED')).toBe(true);
  });

  it('treats a range past the end of a shrunk object as a change, not as an outage', async () => {
    const chunkSize = 64 * 1024;
    const node = await upload('shrinks.bin', randomBytes(chunkSize * 3));
    await store.put(v1(node).key, Buffer.from('short now'));
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
    const node = v1Node(key, etag, body.length, sha256Hex(body));
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
    const names = [1, 2, 3, 4].map((i) => blobName(store.bucket, v1(node).key, v1(node).etag, i));
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
      v1(node).pack = { key: pKey, etag: stripEtag(etag), size: packBody.length, offset };
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
    expect(nodes.every((n) => cache.has(blobName(store.bucket, v1(n).key, v1(n).etag, 0)))).toBe(true);
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
      v1(node).pack = { key: packKey('', 'ws', 'd'.repeat(64)), etag: 'missing', size: 9000, offset };
      offset += bodies[i]!.length;
    }
    const { fetcher, cache } = await setup({ prefetch: { settings: settingsFor(s3), concurrency: 2, budget: 1e6 } });
    expect(fetcher.warm(nodes)).toBe(6);
    await fetcher.idle();
    expect(nodes.every((n) => cache.has(blobName(store.bucket, v1(n).key, v1(n).etag, 0)))).toBe(true);
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

let v2n = 0;

/** A v2 commit of `files` and the view the mount would serve of it. */
async function commitView(files: Parameters<typeof writeCommitFixture>[3], opts: { plain?: boolean } = {}) {
  const prefix = `v2-${++v2n}/`;
  await writeCommitFixture(store, prefix, 'ws', files, { plain: opts.plain });
  const res = await store.get(headKey(prefix, 'ws'));
  if (res.notModified) throw new Error('304');
  const t = await openTrees(store, prefix);
  cleanups.push(t.close);
  const view = new CommitView({ prefix, workspace: 'ws', commit: decodeCommit(res.body, 'head'), namespace: 'ws', trees: t.trees });
  const node = async (rel: string) => (await view.lookup(rel)) as FileNode;
  return { prefix, view, node };
}

describe('Fetcher (format v2)', () => {
  it('reads pack ranges and blob chunks, verified, cached by sha256: one copy serves every path with those bytes', async () => {
    const small = randomBytes(3000);
    const big = randomBytes(2 * CHUNK_SIZE + 1234);
    const { node } = await commitView([
      { path: 'a/small.bin', content: small }, { path: 'b/same.bin', content: small }, { path: 'big.bin', content: big },
      { path: 'empty', content: '' },
    ]);
    const { fetcher, cache, gets } = await setup({ readAheadChunks: 0 });
    const a = await node('a/small.bin');
    expect(a.content).toMatchObject({ format: 2, inPack: true, sha256: sha256Hex(small) });
    expect((await readAll(fetcher, a)).equals(small)).toBe(true);
    expect(gets()).toBe(1);
    expect((await readAll(fetcher, await node('b/same.bin'))).equals(small)).toBe(true);
    expect(gets()).toBe(1);
    expect(cache.has(sha256Hex(small))).toBe(true);
    // A range in the middle chunk of the blob: one ranged GET, checked against that chunk's sha256.
    const b = await node('big.bin');
    expect((await readAll(fetcher, b, CHUNK_SIZE + 10, 100)).equals(big.subarray(CHUNK_SIZE + 10, CHUNK_SIZE + 110))).toBe(true);
    expect(gets()).toBe(2);
    expect(cache.has(sha256Hex(big.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE)))).toBe(true);
    expect((await readAll(fetcher, b)).equals(big)).toBe(true);
    expect(gets()).toBe(4);
    expect(await readAll(fetcher, await node('empty'))).toHaveLength(0);
  });

  it('never serves bytes that do not match: the plain object stands in when it matches, otherwise EIO naming the object', async () => {
    const good = Buffer.from('the real content\n');
    const other = Buffer.from('other real bytes\n');
    const { node, prefix } = await commitView([{ path: 'f.txt', content: good }, { path: 'g.txt', content: other }], { plain: true });
    const f = await node('f.txt');
    // Damage the data pack (same size), and g's plain object too.
    const packKeyOf = (f.content as { key: string }).key;
    const res = await store.get(packKeyOf);
    if (res.notModified) throw new Error('304');
    await store.put(packKeyOf, Buffer.alloc(res.body.length, 0x41));
    await store.put(objectKey(prefix, 'ws', 'g.txt'), Buffer.from('tampered plain!!\n'));
    const { logger, lines } = captureLogger();
    const { fetcher, cache } = await setup({ logger });
    expect((await readAll(fetcher, f)).equals(good)).toBe(true);
    const err = await readAll(fetcher, await node('g.txt')).catch((e: unknown) => e);
    expect(isSyncError(err, 'MANIFEST_INVALID')).toBe(true);
    expect((err as Error).message).toContain(`${prefix}ws/g.txt`);
    const errors = lines().filter((l) => l.level === 50 && l.msg.includes('does not match its sha256'));
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors[0]!.key).toBe(packKeyOf);
    expect(cache.has(sha256Hex(other))).toBe(false);
  });

  it('drops a damaged blob of the disk cache (same size) and fetches it again instead of serving it', async () => {
    const body = randomBytes(5000);
    const { node } = await commitView([{ path: 'f.bin', content: body }]);
    const f = await node('f.bin');
    const dir = tempDir('fetch-cache');
    const first = await setup({ dir });
    expect((await readAll(first.fetcher, f)).equals(body)).toBe(true);
    await first.cache.close();
    const file = first.cache.blobPath(sha256Hex(body));
    const damaged = readFileSync(file);
    damaged[100] ^= 0xff;
    writeFileSync(file, damaged);

    // The next process: the blob is indexed again, but checked before its first use.
    const { logger, lines } = captureLogger();
    const second = await setup({ dir, logger });
    expect(second.cache.has(sha256Hex(body))).toBe(true);
    expect((await readAll(second.fetcher, f)).equals(body)).toBe(true);
    expect(second.gets()).toBe(1);
    expect(lines().some((l) => l.level === 40 && l.msg.includes('does not match its sha256'))).toBe(true);
    await second.cache.flush();
    expect(sha256Hex(readFileSync(file))).toBe(sha256Hex(body));
  });
});
