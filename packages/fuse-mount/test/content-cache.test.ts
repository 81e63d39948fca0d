import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSyncError } from '@workspace-sync/shared';
import { ContentCache, blobFilePath, blobName, writeBlobFile } from '../src/content-cache.js';
import { quietLogger, removeDir, tempDir } from './helpers.js';

const dirs: string[] = [];
const caches: ContentCache[] = [];
afterEach(async () => {
  await Promise.all(caches.splice(0).map((c) => c.close()));
  for (const d of dirs.splice(0)) removeDir(d);
});

async function open(opts: Partial<Parameters<typeof ContentCache.open>[0]> = {}): Promise<ContentCache> {
  const dir = opts.dir ?? tempDir('cache');
  if (!dirs.includes(dir)) dirs.push(dir);
  const cache = await ContentCache.open({ dir, maxSize: 1024 * 1024, maxAge: 0, memSize: 0, logger: quietLogger, ...opts });
  caches.push(cache);
  return cache;
}

const name = (i: number | string) => blobName('bucket', `ws/file-${i}`, 'etag', 0);

async function read(cache: ContentCache, n: string, size: number, position = 0, length = size): Promise<Buffer | undefined> {
  const out = Buffer.alloc(length);
  const got = await cache.readInto(n, size, out, 0, position, length);
  return got === undefined ? undefined : out.subarray(0, got);
}

function blobFiles(cache: ContentCache): string[] {
  const root = path.join(cache.root, 'blobs');
  return readdirSync(root).flatMap((fan) => readdirSync(path.join(root, fan)));
}

describe('ContentCache', () => {
  it('names blobs by hash, so no key can escape the cache directory', async () => {
    const cache = await open();
    const evil = blobName('bucket', '../../../../etc/passwd', '"etag"', 0);
    expect(evil).toMatch(/^[0-9a-f]{64}$/);
    expect(blobName('bucket', 'k', 'e1', 0)).not.toBe(blobName('bucket', 'k', 'e2', 0));
    expect(blobName('bucket', 'k', 'e1', 0)).not.toBe(blobName('bucket', 'k', 'e1', 1));
    await cache.put(evil, Buffer.from('data'));
    const file = cache.blobPath(evil);
    expect(path.relative(cache.root, file)).toBe(path.join('blobs', evil.slice(0, 2), evil));
    expect(existsSync(file)).toBe(true);
    expect(() => blobFilePath(cache.root, '../escape')).toThrow(/not a blob name/);
  });

  it('serves ranges of a blob from disk and reports misses', async () => {
    const cache = await open();
    const data = Buffer.from('0123456789abcdef');
    expect(await read(cache, name(1), 16)).toBeUndefined();
    await cache.put(name(1), data);
    expect((await read(cache, name(1), 16))!.toString()).toBe('0123456789abcdef');
    expect((await read(cache, name(1), 16, 10, 4))!.toString()).toBe('abcd');
    // Asking past the end returns what is there.
    expect((await read(cache, name(1), 16, 14, 8))!.toString()).toBe('ef');
    // A blob whose size is not what the caller expects is dropped, not served.
    expect(await read(cache, name(1), 17)).toBeUndefined();
    expect(cache.has(name(1))).toBe(false);
  });

  it('enforces the size budget on insert, evicting the least recently used blobs', async () => {
    const cache = await open({ maxSize: 10_000 });
    const blob = (i: number) => Buffer.alloc(3_000, i);
    for (const i of [1, 2, 3]) await cache.put(name(i), blob(i));
    expect(cache.bytes).toBe(9_000);
    // Use 1, so 2 is the least recently used when 4 arrives.
    expect(await read(cache, name(1), 3_000)).toBeDefined();
    await cache.put(name(4), blob(4));
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.has(name(2))).toBe(false);
    expect(cache.has(name(1))).toBe(true);
    expect(cache.has(name(4))).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(cache.blobPath(name(2)))).toBe(false);
    const onDisk = blobFiles(cache).reduce((sum, f) => sum + statSync(cache.blobPath(f)).size, 0);
    expect(onDisk).toBeLessThanOrEqual(10_000);
    // A blob larger than the whole budget is never written.
    await cache.put(name(5), Buffer.alloc(20_000));
    expect(existsSync(cache.blobPath(name(5)))).toBe(false);
  });

  it('drops blobs unused for longer than the max age', async () => {
    let now = 1_000_000;
    const cache = await open({ maxAge: 60_000, now: () => now });
    await cache.put(name('old'), Buffer.from('old'));
    now += 30_000;
    await cache.put(name('young'), Buffer.from('young'));
    now += 40_000;
    expect(await read(cache, name('old'), 3)).toBeUndefined();
    expect((await read(cache, name('young'), 5))!.toString()).toBe('young');
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(cache.blobPath(name('old')))).toBe(false);
  });

  it('keeps small blobs in memory as well', async () => {
    const cache = await open({ memSize: 64 * 1024 });
    await cache.put(name('m'), Buffer.from('in memory'));
    // Even with the file gone, memory answers.
    await import('node:fs/promises').then((fs) => fs.unlink(cache.blobPath(name('m'))));
    expect((await read(cache, name('m'), 9))!.toString()).toBe('in memory');
  });

  it('reuses blobs from an earlier run, dropping expired ones and leftovers', async () => {
    const dir = tempDir('cache');
    dirs.push(dir);
    const first = await open({ dir, maxAge: 3_600_000 });
    await first.put(name('a'), Buffer.from('aaa'));
    await first.put(name('b'), Buffer.from('bbb'));
    await writeBlobFile(first.root, name('c'), Buffer.from('ccc'));
    await first.close();
    caches.splice(caches.indexOf(first), 1);
    const old = (Date.now() - 2 * 3_600_000) / 1000;
    utimesSync(first.blobPath(name('b')), old, old);

    const second = await open({ dir, maxAge: 3_600_000 });
    expect((await read(second, name('a'), 3))!.toString()).toBe('aaa');
    expect((await read(second, name('c'), 3))!.toString()).toBe('ccc');
    expect(second.has(name('b'))).toBe(false);
    expect(existsSync(second.blobPath(name('b')))).toBe(false);
    expect(second.entries).toBe(2);
  });

  it('refuses a cache directory another live process holds', async () => {
    const dir = tempDir('cache');
    dirs.push(dir);
    await open({ dir });
    const { writeFileSync } = await import('node:fs');
    // Our own pid in the lock looks like a leftover; a live foreign pid is a conflict.
    writeFileSync(path.join(dir, 'v1', 'lock'), `${process.ppid}\n`);
    const err = await ContentCache.open({ dir, maxSize: 1000, maxAge: 0, memSize: 0, logger: quietLogger }).catch((e: unknown) => e);
    expect(isSyncError(err, 'MOUNT_FAILED')).toBe(true);
    expect((err as Error).message).toContain(`in use by process ${process.ppid}`);
  });

  it('reads ranges of a blob another thread wrote (a data pack), and none past its end', async () => {
    const cache = await open({ maxSize: 100_000, memSize: 10_000 });
    const pack = Buffer.from(Array.from({ length: 5_000 }, (_, i) => i % 251));
    await writeBlobFile(cache.root, name('pack'), pack);
    expect(cache.readRange(name('pack'), 0, 1)).toBeUndefined();
    cache.adopt(name('pack'), pack.length);
    expect(cache.readRange(name('pack'), 100, 50)!.equals(pack.subarray(100, 150))).toBe(true);
    expect(cache.readRange(name('pack'), 4_990, 10)!.equals(pack.subarray(4_990))).toBe(true);
    expect(cache.readRange(name('pack'), 4_990, 11)).toBeUndefined();
    // A range remembered under a file's own name is served from memory, not written to disk.
    const piece = cache.readRange(name('pack'), 200, 40)!;
    cache.remember(name('file'), piece);
    expect(cache.has(name('file'))).toBe(true);
    expect(existsSync(cache.blobPath(name('file')))).toBe(false);
    expect((await read(cache, name('file'), 40))!.equals(piece)).toBe(true);
  });

  it('adopts blobs written by another thread, within the budget', async () => {
    const cache = await open({ maxSize: 5_000 });
    await writeBlobFile(cache.root, name('w1'), Buffer.alloc(3_000, 1));
    await writeBlobFile(cache.root, name('w2'), Buffer.alloc(3_000, 2));
    cache.adopt(name('w1'), 3_000);
    cache.adopt(name('w2'), 3_000);
    expect(cache.has(name('w1'))).toBe(false);
    expect((await read(cache, name('w2'), 3_000))![0]).toBe(2);
    expect(cache.bytes).toBe(3_000);
    // One larger than the whole budget is removed, not left on disk outside it.
    await writeBlobFile(cache.root, name('w3'), Buffer.alloc(6_000, 3));
    cache.adopt(name('w3'), 6_000);
    await cache.close();
    expect(existsSync(cache.blobPath(name('w3')))).toBe(false);
    expect(cache.has(name('w2'))).toBe(true);
  });
});
