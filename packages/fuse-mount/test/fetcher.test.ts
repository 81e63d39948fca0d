/**
 * The Fetcher's decisions (single flight, pinned ETags, sha256 checks, ranges, read-ahead, format v2
 * content, files read from a cached data pack), on the in-memory store. The prefetch worker, which
 * opens its own S3 client, is tested over the wire in prefetch.int.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { CHUNK_SIZE, decodeCommit, headKey, isSyncError, objectKey, sha256Hex } from '@workspace-sync/shared';
import { createMemoryStore, writeCommitFixture } from '@workspace-sync/testkit';
import { CommitView } from '../src/views.js';
import { blobName, dataPackName, writeBlobFile } from '../src/content-cache.js';
import type { FileNode } from '../src/tree.js';
import { fetcherFixture, readAll, v1, v1Node } from './fetcher-fixture.js';
import { captureLogger, openTrees, tempDir } from './helpers.js';

const store = createMemoryStore();
const cleanups: Array<() => Promise<void> | void> = [];
const { upload, setup } = fetcherFixture(() => store, cleanups);

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

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

  it('serves a file from its cached data pack only when its bytes there match its sha256; otherwise it is fetched on its own', async () => {
    const bodies = Array.from({ length: 5 }, () => randomBytes(2000));
    const { node } = await commitView(bodies.map((content, i) => ({ path: `f${i}`, content })));
    const nodes = await Promise.all(bodies.map((_, i) => node(`f${i}`)));
    const c = nodes[3]!.content as { key: string; offset: number };
    // The pack as the prefetch worker leaves it in the cache, with file 3's copy damaged.
    const res = await store.get(c.key);
    if (res.notModified) throw new Error('304');
    const damaged = Buffer.from(res.body);
    damaged[c.offset + 10] ^= 0xff;
    const { logger, lines } = captureLogger();
    const { fetcher, cache, gets } = await setup({ logger });
    const packName = dataPackName(store.bucket, c.key, undefined);
    await writeBlobFile(cache.root, packName, damaged);
    cache.adopt(packName, damaged.length);
    for (const [i, n] of nodes.entries()) expect((await readAll(fetcher, n)).equals(bodies[i]!), `file ${i}`).toBe(true);
    // Only the damaged file needed a GET; the others came from the pack.
    expect(gets()).toBe(1);
    expect(lines().filter((l) => l.level === 40 && l.msg.includes('cached data pack does not match')).length).toBe(1);
    // Its good copy is now cached under its own name and served from there.
    await cache.flush();
    expect(cache.has(sha256Hex(bodies[3]!))).toBe(true);
    expect((await readAll(fetcher, nodes[3]!)).equals(bodies[3]!)).toBe(true);
    expect(gets()).toBe(1);
  });
});
