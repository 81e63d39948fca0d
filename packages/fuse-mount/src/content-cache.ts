/**
 * Downloaded content: blobs on disk under `<cache-dir>/v1/`, indexed by an lru-cache bounded by
 * bytes (--cache-max-size, enforced on every insert) and by idle age (--cache-max-age), plus a
 * memory LRU for small blobs (--mem-cache-size).
 *
 * A blob is named by 64 hex characters whatever the key holds, so no key can escape the cache
 * directory: format-v2 content by its own sha256 (one copy serves every path, generation and
 * workspace with those bytes; chunks of large files by the chunk's sha256), format-v1 content by the
 * sha256 of (bucket, key, ETag, chunk), tree packs and prefetched data packs by the sha256 of their
 * bucket and key (and ETag, for v1 packs).
 *
 * Nothing on disk is trusted blindly: a blob whose expected sha256 the reader knows (v2 content,
 * whole v1 files) is hashed the first time this process serves it from disk; a mismatch (a
 * damaged disk, a tampered file) is dropped, logged and reported as a miss, so it is fetched again
 * instead of served. Blobs downloaded by this process were checked before they were stored.
 *
 * Concurrency rules: one process per cache directory (a lock file with its pid). Blobs are
 * written to `tmp/` and renamed into place, so a blob file is complete or absent. Room for a blob
 * is made before it is written, counting the blobs still being written, so the directory stays
 * within the budget at every moment. Blobs the prefetch worker writes are counted when they are
 * adopted, so those may overshoot by the worker's downloads in flight (two packs and a few single
 * files). A blob is readable from memory (`pending`) from `put` until its file is indexed. Eviction unlinks the file;
 * a reader that loses that race gets ENOENT and reports a miss. On start, blobs left by an earlier
 * run are indexed again (oldest first, so the LRU order roughly survives); blobs older than the
 * max age and unfinished temporary files are removed.
 */
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { isProcessAlive, readFullySync, sha256Hex, SyncError, type Logger } from '@workspace-sync/shared';
import type { MountMetrics } from './metrics.js';

const LAYOUT = 'v1';
const MEM_ENTRY_MAX = 1024 * 1024;
const PURGE_INTERVAL_MAX_MS = 60_000;

export interface ContentCacheOptions {
  dir: string;
  /** Bytes on disk; 0 disables the disk tier. */
  maxSize: number;
  /** Idle time after which a blob is dropped; 0 means no age limit. */
  maxAge: number;
  /** Bytes in memory for small blobs; 0 disables the memory tier. */
  memSize: number;
  logger: Logger;
  metrics?: MountMetrics | undefined;
  /** Clock in ms since the epoch (tests move it). */
  now?: () => number;
}

export function blobName(bucket: string, key: string, etag: string, chunk: number): string {
  return createHash('sha256').update(`${bucket}\0${key}\0${etag}\0${chunk}`).digest('hex');
}

/** Cache name of a whole data pack (v1 packs: of the version with that ETag). */
export function dataPackName(bucket: string, key: string, etag: string | undefined): string {
  return createHash('sha256').update(`data-pack\0${bucket}\0${key}\0${etag ?? ''}`).digest('hex');
}

/** `<root>/blobs/<first two hex>/<name>`; only blob names are accepted, so nothing escapes `root`. */
export function blobFilePath(root: string, name: string): string {
  if (!/^[0-9a-f]{64}$/.test(name)) throw new Error(`not a blob name: ${name}`);
  return path.join(root, 'blobs', name.slice(0, 2), name);
}

/** Writes a blob completely or not at all (temporary file, then rename). */
export async function writeBlobFile(root: string, name: string, data: Buffer): Promise<void> {
  const tmp = path.join(root, 'tmp', randomUUID());
  const final = blobFilePath(root, name);
  try {
    await mkdir(path.dirname(final), { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, final);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

export class ContentCache {
  /** The layout directory blobs live under (`<cache-dir>/v1`). */
  readonly root: string;
  private readonly tmpDir: string;
  private readonly disk: LRUCache<string, number> | undefined;
  private readonly mem: LRUCache<string, Buffer> | undefined;
  private readonly pending = new Map<string, { data: Buffer; done: Promise<void> }>();
  private purgeTimer: NodeJS.Timeout | undefined;
  /** Bytes of blobs being written; room for them is made before they land. */
  private reserved = 0;
  private readonly unlinking = new Set<Promise<void>>();
  private diskFull = false;
  /** Blobs checked against their sha256 by this process (on disk or written by it). */
  private readonly verified = new Set<string>();

  private constructor(private readonly opts: ContentCacheOptions) {
    this.root = path.join(opts.dir, LAYOUT);
    this.tmpDir = path.join(this.root, 'tmp');
    const perf = { now: opts.now ?? Date.now };
    if (opts.maxSize > 0) {
      this.disk = new LRUCache<string, number>({
        maxSize: opts.maxSize,
        sizeCalculation: (size) => Math.max(1, size),
        ttl: opts.maxAge,
        updateAgeOnGet: true,
        perf,
        dispose: (_size, name, reason) => {
          if (reason === 'set') return;
          this.verified.delete(name);
          this.opts.metrics?.cacheEvictions.inc();
          const done = unlink(this.blobPath(name)).catch(() => undefined).finally(() => this.unlinking.delete(done));
          this.unlinking.add(done);
        },
      });
    }
    if (opts.memSize > 0) {
      const entryMax = Math.min(MEM_ENTRY_MAX, Math.max(1, Math.floor(opts.memSize / 16)));
      this.mem = new LRUCache<string, Buffer>({
        maxSize: opts.memSize, maxEntrySize: entryMax, sizeCalculation: (b) => Math.max(1, b.length),
        ttl: opts.maxAge, updateAgeOnGet: true, perf,
      });
    }
  }

  static async open(opts: ContentCacheOptions): Promise<ContentCache> {
    const cache = new ContentCache(opts);
    await cache.init();
    return cache;
  }

  /** Where a blob lives on disk (a hash, fanned out by its first two characters). */
  blobPath(name: string): string {
    return blobFilePath(this.root, name);
  }

  get bytes(): number {
    return this.disk?.calculatedSize ?? 0;
  }

  get entries(): number {
    return this.disk?.size ?? 0;
  }

  /** True when the blob can be read without a download. */
  has(name: string): boolean {
    return this.pending.has(name) || (this.mem?.has(name) ?? false) || (this.disk?.has(name) ?? false);
  }

  /**
   * Copies `length` bytes at `position` of blob `name` (which must be `size` bytes long) into
   * `target`; undefined on a miss. With `sha256`, a copy on disk is checked against it before its
   * first use by this process.
   */
  async readInto(
    name: string, size: number, target: Buffer, targetOffset: number, position: number, length: number, sha256?: string,
  ): Promise<number | undefined> {
    const inMemory = this.pending.get(name)?.data ?? this.mem?.get(name);
    if (inMemory) {
      this.opts.metrics?.cacheHits.inc({ tier: 'memory' });
      return inMemory.copy(target, targetOffset, position, Math.min(inMemory.length, position + length));
    }
    const stored = this.disk?.get(name);
    if (stored === undefined) return this.miss();
    if (stored !== size) {
      this.disk!.delete(name);
      return this.miss();
    }
    const fd = this.openBlob(name);
    if (fd === undefined) return this.miss();
    try {
      if (sha256 !== undefined && !this.verified.has(name)) {
        const data = readFileSync(fd);
        if (data.length !== size) return this.corrupt(name, 'has the wrong size');
        if (sha256Hex(data) !== sha256) return this.corrupt(name, 'does not match its sha256');
        this.verified.add(name);
        if (this.mem && size <= (this.mem.maxEntrySize || 0)) this.mem.set(name, data);
        this.opts.metrics?.cacheHits.inc({ tier: 'disk' });
        return data.copy(target, targetOffset, position, Math.min(size, position + length));
      }
      if (this.mem && size <= (this.mem.maxEntrySize || 0) && length < size) {
        // A small blob read in pieces: load it whole once, later pieces come from memory.
        const data = readFileSync(fd);
        if (data.length !== size) return this.corrupt(name, 'has the wrong size');
        this.mem.set(name, data);
        this.opts.metrics?.cacheHits.inc({ tier: 'disk' });
        return data.copy(target, targetOffset, position, Math.min(size, position + length));
      }
      const want = Math.min(length, size - position);
      if (readFullySync(fd, target, targetOffset, want, position) !== want) return this.corrupt(name, 'has the wrong size');
      this.opts.metrics?.cacheHits.inc({ tier: 'disk' });
      return want;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * A whole blob (tree packs), unchecked: the caller verifies what it uses and `drop`s a bad copy.
   * undefined on a miss.
   */
  readWhole(name: string): Buffer | undefined {
    const inMemory = this.pending.get(name)?.data ?? this.mem?.get(name);
    if (inMemory) return inMemory;
    if (this.disk?.get(name) === undefined) return undefined;
    try {
      return readFileSync(this.blobPath(name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.disk.delete(name);
      return undefined;
    }
  }

  /**
   * `length` bytes at `position` of blob `name` on disk (a data pack the prefetch worker wrote),
   * unchecked: the caller verifies them. undefined on a miss or when the blob is shorter.
   */
  readRange(name: string, position: number, length: number): Buffer | undefined {
    const stored = this.disk?.get(name);
    if (stored === undefined || stored < position + length) return undefined;
    const fd = this.openBlob(name);
    if (fd === undefined) return undefined;
    try {
      // Never the shared pool: the caller may keep these bytes in the memory tier.
      const data = Buffer.allocUnsafeSlow(length);
      return readFullySync(fd, data, 0, length, position) === length ? data : undefined;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Opens an indexed blob's file for reading; undefined (and forgotten) when it is gone, evicted
   * under a reader. Synchronous: a cached blob is on local disk (usually in the page cache) and a
   * read is at most one FUSE request (128 KiB); three thread-pool round trips (open, read, close)
   * cost more than the read itself (the mount's read figures: docs/benchmarks.md).
   */
  private openBlob(name: string): number | undefined {
    try {
      return openSync(this.blobPath(name), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.disk!.delete(name);
      return undefined;
    }
  }

  /** Keeps checked bytes in the memory tier only (they are on disk inside another blob). */
  remember(name: string, data: Buffer): void {
    this.mem?.set(name, data);
  }

  /** Forgets a blob (a damaged copy) in memory and on disk. */
  drop(name: string): void {
    this.mem?.delete(name);
    this.verified.delete(name);
    this.disk?.delete(name);
  }

  /** Stores a blob whose content the caller checked; readable at once, on disk once the returned promise settles. Never rejects. */
  put(name: string, data: Buffer): Promise<void> {
    const existing = this.pending.get(name);
    if (existing) return existing.done;
    this.verified.add(name);
    this.mem?.set(name, data);
    if (!this.disk || this.disk.has(name) || data.length > this.opts.maxSize) return Promise.resolve();
    const done = this.write(name, data).finally(() => this.pending.delete(name));
    this.pending.set(name, { data, done });
    return done;
  }

  /** Indexes a blob another thread wrote with `writeBlobFile` (enforcing the budget like `put`). */
  adopt(name: string, size: number): void {
    if (!this.disk || this.disk.has(name)) return;
    if (size > this.opts.maxSize) {
      // Larger than the whole budget (a pack in a tiny cache): the index would refuse it and leave the file behind.
      const done = unlink(this.blobPath(name)).catch(() => undefined).finally(() => this.unlinking.delete(done));
      this.unlinking.add(done);
      return;
    }
    // The worker checked a file's bytes before it wrote them; a pack's are checked per file on every read.
    this.verified.add(name);
    this.disk.set(name, size);
    this.updateGauges();
  }

  /** Resolves once every blob put so far is on disk (or given up on). */
  async flush(): Promise<void> {
    await Promise.all([...this.pending.values()].map((p) => p.done));
  }

  /** Waits for writes and removals in flight and stops the age timer; the lock is released. */
  async close(): Promise<void> {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    await this.flush();
    await Promise.all(this.unlinking);
    await rm(path.join(this.root, 'lock'), { force: true });
  }

  private miss(): undefined {
    this.opts.metrics?.cacheMisses.inc();
    return undefined;
  }

  private corrupt(name: string, why: string): undefined {
    this.opts.logger.warn({ blob: name, file: this.blobPath(name) }, `cached blob ${why}; dropping it and fetching it again`);
    this.opts.metrics?.errors.inc({ op: 'cache' });
    this.drop(name);
    return this.miss();
  }

  /**
   * Makes room first (evicting least recently used blobs and waiting for their files to go), so the
   * bytes on disk never exceed the budget, not even while a blob is being written.
   */
  private async write(name: string, data: Buffer): Promise<void> {
    const disk = this.disk!;
    const size = Math.max(1, data.length);
    this.reserved += size;
    try {
      while (disk.size > 0 && disk.calculatedSize + this.reserved > this.opts.maxSize) disk.pop();
      await Promise.all(this.unlinking);
      await writeBlobFile(this.root, name, data);
      disk.set(name, data.length);
      this.diskFull = false;
      this.updateGauges();
    } catch (err) {
      // A full or broken cache disk must not fail reads: the data is served from memory. Log once.
      if (!this.diskFull) {
        this.diskFull = true;
        this.opts.logger.warn({ err, dir: this.root }, 'cannot write to the cache directory; serving without caching');
      }
    } finally {
      this.reserved -= size;
    }
  }

  private updateGauges(): void {
    this.opts.metrics?.cacheBytes.set(this.bytes);
    this.opts.metrics?.cacheEntries.set(this.entries);
  }

  private async init(): Promise<void> {
    try {
      await mkdir(path.join(this.root, 'blobs'), { recursive: true });
      await this.lock();
      await rm(this.tmpDir, { recursive: true, force: true });
      await mkdir(this.tmpDir, { recursive: true });
    } catch (err) {
      if (err instanceof SyncError) throw err;
      throw new SyncError('MOUNT_FAILED', `cannot use cache directory ${this.opts.dir}: ${(err as Error).message}`, {
        hint: 'pass a writable directory with --cache-dir (env CACHE_DIR)', cause: err,
      });
    }
    await this.reindex();
    if (this.disk && this.opts.maxAge > 0) {
      this.purgeTimer = setInterval(() => { this.disk!.purgeStale(); this.mem?.purgeStale(); this.updateGauges(); },
        Math.min(this.opts.maxAge, PURGE_INTERVAL_MAX_MS));
      this.purgeTimer.unref();
    }
  }

  private async lock(): Promise<void> {
    const file = path.join(this.root, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(file, `${process.pid}\n`, { flag: 'wx' });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isProcessAlive(pid)) {
        throw new SyncError('MOUNT_FAILED', `cache directory ${this.opts.dir} is in use by process ${pid}`, {
          hint: 'give each mount its own --cache-dir, or stop the other mount first',
        });
      }
      // Left by a process that is gone (a crash or kill -9): take it over.
      await rm(file, { force: true });
    }
    throw new SyncError('MOUNT_FAILED', `cannot lock cache directory ${this.opts.dir}`, {
      hint: 'another mount may be starting with the same --cache-dir',
    });
  }

  private async reindex(): Promise<void> {
    const blobs = path.join(this.root, 'blobs');
    const found: Array<{ name: string; size: number; mtimeMs: number }> = [];
    const now = (this.opts.now ?? Date.now)();
    for (const fan of await readdir(blobs)) {
      const dir = path.join(blobs, fan);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      await Promise.all(names.map(async (name) => {
        const file = path.join(dir, name);
        if (!/^[0-9a-f]{64}$/.test(name) || name.slice(0, 2) !== fan || !this.disk) {
          await rm(file, { recursive: true, force: true });
          return;
        }
        const st = await stat(file).catch(() => undefined);
        if (!st?.isFile()) return;
        if (this.opts.maxAge > 0 && now - st.mtimeMs > this.opts.maxAge) await unlink(file).catch(() => undefined);
        else found.push({ name, size: st.size, mtimeMs: st.mtimeMs });
      }));
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const b of found) this.disk!.set(b.name, b.size, { start: Math.min(now, b.mtimeMs) });
    this.updateGauges();
    if (found.length) this.opts.logger.info({ blobs: this.entries, bytes: this.bytes }, 'reusing the content cache from an earlier run');
  }
}
