/**
 * One file per object (and per multipart part): a 4-byte big-endian header length, the JSON header
 * (padded with spaces to that length), then the body. A file is written under a temporary name and
 * renamed into place, so a reader that opened it sees one whole version; the header travels with
 * the body, so what a reader serves always describes the bytes it serves.
 *
 * The body's ETag and size are known only at its end: the header's room is reserved up front from
 * everything else already known, the body is written after it, and the header last.
 */
import { createHash, type Hash } from 'node:crypto';
import { close, closeSync, open, openSync, read, readSync, write, writeFile } from 'node:fs';
import { promisify } from 'node:util';

// The callback API, promisified: per small request it costs a third less CPU than fs/promises'
// FileHandle, and a push is thousands of small requests.
const openFd = promisify(open);
const closeFd = promisify(close);
const writeAll = promisify(writeFile);
const readAt = (fd: number, buf: Buffer, length: number, position: number) =>
  new Promise<number>((resolve, reject) => read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
const writeAt = (fd: number, buf: Buffer, position: number) =>
  new Promise<void>((resolve, reject) => write(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : n === buf.length ? resolve() : reject(new Error('short write')))));

export interface FileHeader {
  size: number;
  etag: string;
  /** Milliseconds since the epoch. */
  lastModified: number;
}

export interface Written<H extends FileHeader> {
  path: string;
  header: H;
  /** Hex sha256 of the body, when asked for. */
  sha256: string | undefined;
  /** Binary MD5 of the body. */
  md5: Buffer;
}

export interface OpenFile<H extends FileHeader> {
  /** Open while part of the body is still to be read; undefined once `head` holds all of it. */
  fd: number | undefined;
  header: H;
  bodyOffset: number;
  /** The first bytes of the body, read with the header (the whole body of a small object). */
  head: Buffer;
}

/** Bodies up to this size are gathered in memory and written with one call. */
const SMALL = 1024 * 1024;
/** The first read of an open: the header and, for most source files, the whole body. */
const FIRST_READ = 64 * 1024;
/** Room for a typical header in that read (a larger one costs a second read). */
const HEADER_ROOM = 1024;

export interface WriteOptions {
  sha256?: boolean;
  /** ETag from the body's binary MD5 (default: its hex). */
  etag?: (md5: Buffer) => string;
  lastModified?: number;
}

/** Writes `body` with the header `base` + size/etag/lastModified to `path` (a new file). */
export async function writeBodyFile<H extends FileHeader>(
  path: string, base: Omit<H, keyof FileHeader>, body: AsyncIterable<Buffer> | Buffer, opts: WriteOptions = {},
): Promise<Written<H>> {
  const md5 = createHash('md5');
  const sha = opts.sha256 ? createHash('sha256') : undefined;
  const finish = (size: number): { header: H; md5: Buffer; sha256: string | undefined } => {
    const digest = md5.digest();
    const header = { ...base, size, etag: opts.etag ? opts.etag(digest) : digest.toString('hex'), lastModified: opts.lastModified ?? Date.now() } as H;
    return { header, md5: digest, sha256: sha?.digest('hex') };
  };

  if (Buffer.isBuffer(body)) {
    update(md5, sha, body);
    const done = finish(body.length);
    await writeAll(path, Buffer.concat([encodeHeader(done.header), body]), { flag: 'wx' });
    return { path, ...done };
  }

  const pending: Buffer[] = [];
  let size = 0;
  let fd: number | undefined;
  let reserved = 0;
  try {
    for await (const chunk of body) {
      update(md5, sha, chunk);
      size += chunk.length;
      if (fd !== undefined) {
        await writeAt(fd, chunk, 4 + reserved + size - chunk.length);
        continue;
      }
      pending.push(chunk);
      if (size <= SMALL) continue;
      // Too large to gather: the body goes after room for the largest header this object can have.
      reserved = Buffer.byteLength(JSON.stringify({ ...base, size: Number.MAX_SAFE_INTEGER, etag: 'x'.repeat(48), lastModified: 8.64e15 }));
      fd = await openFd(path, 'wx');
      const gathered = Buffer.concat(pending);
      pending.length = 0;
      await writeAt(fd, gathered, 4 + reserved);
    }
    const done = finish(size);
    if (fd === undefined) await writeAll(path, Buffer.concat([encodeHeader(done.header), ...pending]), { flag: 'wx' });
    else await writeAt(fd, encodeHeader(done.header, reserved), 0);
    return { path, ...done };
  } finally {
    if (fd !== undefined) await closeFd(fd);
  }
}

function update(md5: Hash, sha: Hash | undefined, chunk: Buffer): void {
  md5.update(chunk);
  sha?.update(chunk);
}

function encodeHeader(header: object, room?: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = room ?? json.length;
  if (json.length > len) throw new Error(`object header of ${json.length} bytes exceeds its reserved ${len}`);
  const out = Buffer.alloc(4 + len, 0x20);
  out.writeUInt32BE(len, 0);
  json.copy(out, 4);
  return out;
}

/**
 * Opens an object file and reads its header and the start of its body, `sizeHint` (the size the
 * index expects) sizing that read. When that read holds the whole body the file is closed at once.
 * ENOENT is the caller's to handle.
 *
 * Synchronous on purpose: opening and reading a small file from the page cache costs a fifth of
 * the CPU the thread-pool round trips of the async calls do, and serving many small GETs is what
 * this server spends its time on. Larger bodies are read asynchronously (readBody).
 */
export function openBodyFile<H extends FileHeader>(path: string, sizeHint = FIRST_READ): OpenFile<H> {
  const fd = openSync(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(Math.min(FIRST_READ, HEADER_ROOM + sizeHint));
    let bytesRead = readSync(fd, buf, 0, buf.length, 0);
    if (bytesRead < 4) throw new Error(`object file ${path} is truncated`);
    const len = buf.readUInt32BE(0);
    if (4 + len > bytesRead) {
      buf = Buffer.allocUnsafe(Math.min(4 + len + sizeHint, 4 + len + FIRST_READ));
      bytesRead = readSync(fd, buf, 0, buf.length, 0);
      if (bytesRead < 4 + len) throw new Error(`object file ${path} is truncated`);
    }
    const header = JSON.parse(buf.toString('utf8', 4, 4 + len)) as H;
    const head = buf.subarray(4 + len, Math.min(bytesRead, 4 + len + header.size));
    const whole = head.length === header.size;
    if (whole) closeSync(fd);
    return { fd: whole ? undefined : fd, header, bodyOffset: 4 + len, head };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

export async function closeBodyFile(f: OpenFile<FileHeader>): Promise<void> {
  if (f.fd !== undefined) await closeFd(f.fd);
}

/** The header alone (start-up rebuilds its index from these). */
export function readHeader<H extends FileHeader>(path: string): H {
  const f = openBodyFile<H>(path, 0);
  if (f.fd !== undefined) closeSync(f.fd);
  return f.header;
}

/** The body of an open file, from `start` to `end` inclusive, as chunks. Closes nothing. */
export async function* readBody(f: OpenFile<FileHeader>, start = 0, end = f.header.size - 1): AsyncGenerator<Buffer> {
  let pos = start;
  if (pos < f.head.length) {
    const piece = f.head.subarray(pos, Math.min(f.head.length, end + 1));
    pos += piece.length;
    if (piece.length) yield piece;
  }
  while (pos <= end) {
    const want = Math.min(256 * 1024, end + 1 - pos);
    const buf = Buffer.allocUnsafe(want);
    const bytesRead = await readAt(f.fd!, buf, want, f.bodyOffset + pos);
    if (bytesRead === 0) throw new Error('object file ended before its body did');
    pos += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}
