/**
 * Reading files so that what is hashed is exactly what is uploaded, and never a torn mix:
 * the file is stat'ed before and after the read and re-read when it changed in between.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
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

const sameVersion = (a: Stats, b: Stats) =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;

/** Retries `readOnce` until it reads one version of the file (it answers undefined when the file changed). */
async function untilStable<T>(file: string, attempts: number, readOnce: () => Promise<{ value: T; stat: Stats } | undefined>): Promise<{ value: T; stat: Stats }> {
  for (let i = 0; i < attempts; i++) {
    const got = await readOnce();
    if (got) return got;
    await new Promise((r) => setTimeout(r, 20 * (i + 1)));
  }
  throw new SyncError('FILE_UNSTABLE', `${file} kept changing while it was read (${attempts} attempts)`, {
    hint: 'it is being written continuously; it will be picked up by the next push once it settles',
  });
}

async function withStableFile<T>(file: string, attempts: number, body: (fh: FileHandle, before: Stats) => Promise<T>): Promise<{ value: T; stat: Stats }> {
  return untilStable(file, attempts, async () => {
    const fh = await open(file, 'r');
    try {
      const before = await fh.stat();
      const value = await body(fh, before);
      const after = await fh.stat();
      return sameVersion(before, after) ? { value, stat: after } : undefined;
    } finally {
      await fh.close();
    }
  });
}

/** Files up to this size are read with synchronous calls: five thread-pool round trips cost more than the read. */
const SYNC_READ_LIMIT = 1024 * 1024;

/** Whole file in memory plus its sha256, consistent with one version of the file. */
export async function readFileStable(file: string, attempts = 5): Promise<StableRead> {
  const { value, stat } = await untilStable(file, attempts, async () => {
    const fd = openSync(file, 'r');
    try {
      const before = fstatSync(fd);
      const data = before.size <= SYNC_READ_LIMIT ? readAllSync(fd, before.size) : await readAll(fd, before.size);
      const after = fstatSync(fd);
      return sameVersion(before, after) ? { value: data, stat: after } : undefined;
    } finally {
      closeSync(fd);
    }
  });
  return { data: value, sha256: sha256Hex(value), stat };
}

function readAllSync(fd: number, size: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, data, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return off === size ? data : data.subarray(0, off);
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

/** sha256 of a file streamed in chunks (for files too large to hold in memory). */
export async function hashFileStable(file: string, attempts = 5): Promise<StableHash> {
  const { value, stat } = await withStableFile(file, attempts, async (fh) => {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1024 * 1024);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return h.digest('hex');
  });
  return { sha256: value, stat };
}
