/**
 * Reading files so that what is hashed is exactly what is uploaded, and never a torn mix:
 * the file is stat'ed before and after the read and re-read when it changed in between.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, read, readSync, type Stats } from 'node:fs';
import { promisify } from 'node:util';
import { SyncError } from './errors.js';

const readAsync = promisify(read);

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface StableRead {
  data: Buffer;
  sha256: string;
  stat: Stats;
}

export interface StableHash {
  sha256: string;
  stat: Stats;
}

/** The fields that tell one version of a file from another, as git's index compares them. */
export type StatVersion = Pick<Stats, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino'>;

/** Same size, mtime, ctime and inode: the same version of the file, as far as a stat can tell. */
export function sameStat(a: StatVersion, b: StatVersion): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;
}

/**
 * Runs `body` on the open file until one run sees a single version of it (same stat before and
 * after); the file is opened afresh for each attempt.
 */
async function untilStable<T>(file: string, attempts: number, body: (fd: number, size: number) => T | Promise<T>): Promise<{ value: T; stat: Stats }> {
  for (let i = 0; i < attempts; i++) {
    const fd = openSync(file, 'r');
    try {
      const before = fstatSync(fd);
      const value = await body(fd, before.size);
      const after = fstatSync(fd);
      if (sameStat(before, after)) return { value, stat: after };
    } finally {
      closeSync(fd);
    }
    await new Promise((r) => setTimeout(r, 20 * (i + 1)));
  }
  throw new SyncError('FILE_UNSTABLE', `${file} kept changing while it was read (${attempts} attempts)`, {
    hint: 'it is being written continuously; it will be picked up by the next push once it settles',
  });
}

/** Files up to this size are read with synchronous calls: five thread-pool round trips cost more than the read. */
const SYNC_READ_LIMIT = 1024 * 1024;

export interface ReadOptions {
  attempts?: number;
  /**
   * Read into this buffer when the file fits: `data` is then a view of it, valid until the caller
   * reuses it. A push reading 100k small files would otherwise leave one buffer per file for the
   * GC, tens of MiB of external memory at any time.
   */
  scratch?: Buffer;
}

/** Whole file in memory plus its sha256, consistent with one version of the file. */
export async function readFileStable(file: string, opts: ReadOptions = {}): Promise<StableRead> {
  const { scratch } = opts;
  const { value, stat } = await untilStable(file, opts.attempts ?? 5, (fd, size) => {
    if (scratch && size <= scratch.length) return scratch.subarray(0, readFullySync(fd, scratch, 0, size, 0));
    return size <= SYNC_READ_LIMIT ? readAllSync(fd, size) : readAll(fd, size);
  });
  return { data: value, sha256: sha256Hex(value), stat };
}

/**
 * Reads from `position` into `target` until `length` bytes or the end of the file; returns the
 * count. Synchronous, for small local reads where a thread-pool round trip costs more than the read.
 */
export function readFullySync(fd: number, target: Buffer, targetOffset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, target, targetOffset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function readAllSync(fd: number, size: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  const n = readFullySync(fd, data, 0, size, 0);
  return n === size ? data : data.subarray(0, n);
}

async function readAll(fd: number, size: number): Promise<Buffer> {
  const data = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const { bytesRead } = await readAsync(fd, data, off, size - off, off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return off === size ? data : data.subarray(0, off);
}

/**
 * sha256 of a file, consistent with one version of it, without keeping its bytes: small files are
 * read synchronously into one scratch buffer (hashing thousands of files for a plan must not leave
 * thousands of buffers for the GC: in the watch daemon that garbage was its peak RSS), larger ones
 * streamed in chunks.
 */
export async function hashFileStable(file: string, attempts = 5): Promise<StableHash> {
  const { value, stat } = await untilStable(file, attempts, (fd, size) => (size <= SYNC_READ_LIMIT ? hashSync(fd, size) : hashChunks(fd)));
  return { sha256: value, stat };
}

/** Shared by every small-file hash: filled and hashed within one synchronous step. */
const scratch = Buffer.allocUnsafe(SYNC_READ_LIMIT);

/**
 * Reads the `size` bytes fstat reported, not on to end of file: that last read finds nothing and
 * costs a system call per file, and a file that grew meanwhile fails the stat after the read anyway.
 */
function hashSync(fd: number, size: number): string {
  const n = readFullySync(fd, scratch, 0, size, 0);
  return createHash('sha256').update(scratch.subarray(0, n)).digest('hex');
}

async function hashChunks(fd: number): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(SYNC_READ_LIMIT);
  let pos = 0;
  for (;;) {
    const { bytesRead } = await readAsync(fd, buf, 0, buf.length, pos);
    if (bytesRead === 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return h.digest('hex');
}
