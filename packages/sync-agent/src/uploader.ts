/**
 * Executes the transfers of a plan, in parallel with p-queue:
 * - small files are read once (stat-checked around the read): the same bytes go into a data pack
 *   (when the store lacks them) and into the plain object;
 * - larger files become blobs named by their sha256, uploaded multipart while being hashed, and
 *   completed only if what was streamed hashes to that name and the file did not change meanwhile
 *   (otherwise the upload is aborted and the file re-hashed): nothing torn ever completes at a key.
 *   Their plain objects are server-side copies of the blob, which is immutable and verified;
 * - symlinks' plain objects hold the target.
 * Every plain write is journaled as an intent before it is sent and as a result after it landed.
 *
 * What is committed is exactly what was read: a file changed since it was hashed is described as
 * read now. A file that vanished is reported, not fatal; an object the server keeps rejecting
 * (after the client's retries) is skipped and reported so the rest of the workspace is published;
 * an outage (nothing lands) aborts the run, and nothing after it is committed.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, read, type Stats } from 'node:fs';
import path from 'node:path';
import { pipeline, Readable, Transform } from 'node:stream';
import { promisify } from 'node:util';
import PQueue from 'p-queue';
import mime from 'mime-types';
import {
  blobKey, CHUNK_SIZE, hashFileStable, isSyncError, objectKey, readFileStable, sameStat, SyncError,
  type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import { PACK_MAX_FILE, type PackWriter } from './packer.js';
import type { ContentLocation, HashedEntry, HashedFile, Plan, PlainObject } from './planner.js';
import { hashedFile, readAs, type Skipped } from './scan.js';
import { hashRecord, type HashRecord, type StateStore } from './state.js';

/** S3's limit on a key's length in bytes. */
const MAX_KEY_BYTES = 1024;

export interface TransferContext {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  wsDir: string;
  concurrency: number;
  /** Blobs at least this big are uploaded in parts; smaller ones in one PUT the server verifies against its sha256. */
  multipartThreshold: number;
  packs: PackWriter;
  /** Where the store already holds bytes with this sha256 (committed, or landed in an earlier run). */
  contentOf: (sha256: string) => ContentLocation | undefined;
  journal: Pick<StateStore, 'intent' | 'plain' | 'content'>;
  /** The record this run hashed the file under, if any: kept when the read finds the same file. */
  recordOf?: ((path: string) => HashRecord | undefined) | undefined;
  onBytes?: ((bytes: number) => void) | undefined;
  onFile?: ((entry: HashedEntry, how: 'uploaded' | 'copied') => void) | undefined;
  log: Logger;
  signal?: AbortSignal | undefined;
}

export interface Landed {
  /** The entry as read now. */
  entry: HashedEntry;
  /** Where its bytes are stored (files with content). */
  location: ContentLocation | undefined;
  /** What its plain object holds now, when it was written by this run. */
  plain: PlainObject | undefined;
  /** The file's stat record as read now (files this run read), for the state index. */
  record: HashRecord | undefined;
}

export interface TransferResult {
  landed: Map<string, Landed>;
  /** Files that could not be read or stored: their committed version stays. */
  skipped: Skipped[];
  /** Of those, the ones the server kept refusing (retried later, not at once). */
  rejected: string[];
  /** Committed, but without a plain object (a key over S3's limit). */
  notMirrored: Skipped[];
  /** Planned paths that no longer exist locally. */
  vanished: string[];
  bytes: number;
  uploaded: number;
  copied: number;
  blobs: number;
}

const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** Metadata that also lets rclone and s3fs show mtime, mode and symlinks for these objects. */
function objectMetadata(e: HashedEntry): Record<string, string> {
  const meta: Record<string, string> = { sha256: e.sha256, mtime: String(Math.floor(e.mtimeMs / 1000)) };
  if (e.type === 'file') meta.mode = String(S_IFREG | e.mode);
  else {
    meta.mode = String(S_IFLNK | 0o777);
    meta['symlink-target'] = encodeURIComponent(e.target);
  }
  return meta;
}

function contentTypeFor(e: HashedEntry): string {
  if (e.type === 'symlink') return 'application/octet-stream';
  return mime.lookup(e.path) || 'application/octet-stream';
}

/** Errors about one object that the server keeps refusing, as opposed to an outage or a configuration problem. */
function rejectsObject(err: unknown): boolean {
  return isSyncError(err, 'S3_ERROR');
}

export async function executeTransfers(plan: Pick<Plan, 'changed' | 'newContent' | 'plainWrites'>, ctx: TransferContext): Promise<TransferResult> {
  const result: TransferResult = {
    landed: new Map(), skipped: [], rejected: [], notMirrored: [], vanished: [], bytes: 0, uploaded: 0, copied: 0, blobs: 0,
  };
  const queue = new PQueue({ concurrency: ctx.concurrency });
  let fatal: unknown;
  let rejected: unknown;

  const needsContent = new Set(plan.newContent.map((e) => e.path));
  const needsPlain = new Set(plan.plainWrites.map((e) => e.path));
  const work = new Map<string, HashedEntry>();
  for (const e of [...plan.changed, ...plan.newContent, ...plan.plainWrites]) work.set(e.path, e);

  const tooLong = new Set<string>();
  for (const p of work.keys()) {
    if (Buffer.byteLength(objectKey(ctx.prefix, ctx.workspace, p)) <= MAX_KEY_BYTES) continue;
    tooLong.add(p);
    needsPlain.delete(p);
    result.notMirrored.push({ path: p, reason: `its object key would be longer than S3's ${MAX_KEY_BYTES} bytes; it is committed (the mount serves it) but has no plain object` });
  }
  // One journal line before anything is sent: these plain objects are unknown until their results are
  // recorded. A write decided later (a file changed since it was hashed) gets its own line first.
  if (needsPlain.size > 0) ctx.journal.intent([...needsPlain]);
  const intendedLater = new Set<string>();
  const intend = (p: string) => {
    if (needsPlain.has(p) || intendedLater.has(p)) return;
    ctx.journal.intent([p]);
    intendedLater.add(p);
  };

  const putPlain = async (entry: HashedEntry, body: Buffer, sha256?: string) => {
    intend(entry.path);
    const { etag } = await ctx.store.put(objectKey(ctx.prefix, ctx.workspace, entry.path), body, {
      contentType: contentTypeFor(entry), metadata: objectMetadata(entry), sha256,
    });
    result.uploaded++;
    result.bytes += body.length;
    ctx.onBytes?.(body.length);
    return landPlain(entry, etag, 'uploaded');
  };
  const landPlain = (entry: HashedEntry, etag: string, how: 'uploaded' | 'copied'): PlainObject => {
    const plain: PlainObject = { etag, sha256: entry.sha256, mode: entry.type === 'file' ? entry.mode : 0o777 };
    ctx.journal.plain(entry.path, plain);
    ctx.onFile?.(entry, how);
    return plain;
  };

  // The hash's own record when the file read is the one hashed: a push holds one record per file, not two.
  const recordFor = (p: string, st: Stats, sha256: string, readAtMs: number): HashRecord => {
    const prev = ctx.recordOf?.(p);
    return prev && prev.sha256 === sha256 && sameStat(prev, st) ? prev : hashRecord(st, sha256, readAtMs);
  };
  // One read buffer per running job, reused (see readFileStable's `scratch`).
  const scratches: Buffer[] = [];
  const job = async (planned: HashedEntry) => {
    const p = planned.path;
    if (planned.type === 'symlink') {
      const plain = needsPlain.has(p) ? await putPlain(planned, Buffer.from(planned.target)) : undefined;
      result.landed.set(p, { entry: planned, location: undefined, plain, record: undefined });
      return;
    }
    const abs = path.join(ctx.wsDir, p);
    if (planned.size > PACK_MAX_FILE) {
      await largeFile(planned, abs);
      return;
    }
    const known = planned.size === 0 ? undefined : ctx.contentOf(planned.sha256);
    if (!needsPlain.has(p) && !needsContent.has(p) && (known || planned.size === 0)) {
      result.landed.set(p, { entry: planned, location: known, plain: undefined, record: undefined });
      return;
    }
    if (!known && planned.size > 0) await ctx.packs.room();
    const readAtMs = Date.now();
    // The bytes stay in the scratch buffer only until the pack has copied them and the plain PUT
    // (signed with their sha256, so the server refuses anything else) has answered.
    const scratch = scratches.pop() ?? Buffer.allocUnsafeSlow(PACK_MAX_FILE);
    try {
      const read = await readFileStable(abs, { scratch });
      const entry = readAs(planned, read.stat, read.sha256);
      let location: ContentLocation | undefined;
      if (entry.size > PACK_MAX_FILE) {
        // It grew past the pack limit since it was hashed: store it as a blob instead.
        await largeFile(entry, abs);
        return;
      }
      if (entry.size > 0) location = ctx.contentOf(entry.sha256) ?? ctx.packs.add(entry.sha256, read.data);
      const changed = entry.sha256 !== planned.sha256 || entry.mode !== planned.mode;
      const plain = (needsPlain.has(p) || changed) && !tooLong.has(p) ? await putPlain(entry, read.data, read.sha256) : undefined;
      result.landed.set(p, { entry, location, plain, record: recordFor(p, read.stat, entry.sha256, readAtMs) });
    } finally {
      scratches.push(scratch);
    }
  };

  const largeFile = async (planned: HashedFile, abs: string) => {
    const p = planned.path;
    let entry = planned;
    let record: HashRecord | undefined;
    let location = ctx.contentOf(planned.sha256);
    let sourceEtag: string | undefined;
    if (!location) {
      const blob = planned.size < ctx.multipartThreshold ? await putBlob(ctx, planned, abs) : await uploadBlob(ctx, planned, abs);
      result.blobs++;
      result.bytes += blob.entry.size;
      ({ entry, record } = blob);
      sourceEtag = blob.etag;
      location = { pack: undefined, offset: 0, chunks: blob.chunks };
      ctx.journal.content(entry.sha256, location);
    }
    let plain: PlainObject | undefined;
    if ((needsPlain.has(p) || entry !== planned) && !tooLong.has(p)) {
      if (location.pack !== undefined) {
        // Content stored in a pack by an older layout: send the file itself.
        const read = await readFileStable(abs);
        plain = await putPlain(hashedFile(p, read.stat, read.sha256), read.data, read.sha256);
      } else {
        plain = await copyFromBlob(entry, sourceEtag);
      }
    }
    result.landed.set(p, { entry, location, plain, record });
  };

  const copyFromBlob = async (entry: HashedFile, sourceEtag: string | undefined): Promise<PlainObject> => {
    intend(entry.path);
    const { etag } = await ctx.store.copy(blobKey(ctx.prefix, ctx.workspace, entry.sha256), objectKey(ctx.prefix, ctx.workspace, entry.path), {
      contentType: contentTypeFor(entry), metadata: objectMetadata(entry), sourceIfMatch: sourceEtag,
    });
    result.copied++;
    return landPlain(entry, etag, 'copied');
  };

  for (const e of work.values()) {
    // Fed as the queue drains: 100k files are not 100k closures held at once.
    if (queue.size >= ctx.concurrency * 4) await queue.onSizeLessThan(ctx.concurrency * 2);
    if (fatal !== undefined) break;
    // The job catches every failure itself (a fatal one clears the queue and is thrown below).
    void queue.add(async () => {
      if (fatal !== undefined || ctx.signal?.aborted) return;
      try {
        await job(e);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') { result.vanished.push(e.path); return; }
        if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' || code === 'ELOOP' || code === 'ENXIO') {
          result.skipped.push({ path: e.path, reason: `cannot read (${code})` });
          return;
        }
        if (isSyncError(err, 'FILE_UNSTABLE')) { result.skipped.push({ path: e.path, reason: err.message }); return; }
        if (rejectsObject(err)) {
          rejected ??= err;
          result.rejected.push(e.path);
          result.skipped.push({ path: e.path, reason: `the server rejected it after retries: ${(err as Error).message}` });
          return;
        }
        if (fatal === undefined) fatal = err;
        queue.clear();
      }
    });
  }
  await queue.onIdle();
  if (fatal === undefined) {
    try {
      await ctx.packs.finish();
    } catch (err) {
      fatal = err;
    }
  }
  if (fatal !== undefined) throw fatal;
  // Nothing landed and everything was refused: that is the server failing, not one bad object.
  if (rejected !== undefined && result.landed.size === 0) throw rejected;
  return result;
}

/**
 * A blob small enough for one PUT: the bytes read (as one stable version of the file) are named by
 * their own sha256, which the request is signed with, so the server refuses anything else.
 */
async function putBlob(ctx: TransferContext, planned: HashedFile, abs: string): Promise<{ entry: HashedFile; etag: string; chunks: string[] | undefined; record: HashRecord }> {
  const readAtMs = Date.now();
  const read = await readFileStable(abs);
  const { etag } = await ctx.store.put(blobKey(ctx.prefix, ctx.workspace, read.sha256), read.data, { contentType: 'application/octet-stream', sha256: read.sha256 });
  ctx.onBytes?.(read.data.length);
  const chunks = new ChunkHasher(CHUNK_SIZE);
  chunks.update(read.data);
  return {
    entry: readAs(planned, read.stat, read.sha256), etag,
    chunks: read.data.length > CHUNK_SIZE ? chunks.digests() : undefined, record: hashRecord(read.stat, read.sha256, readAtMs),
  };
}

/**
 * Uploads a large file as the blob named by its sha256. The multipart upload is completed only if
 * the streamed bytes hash to that name and the file's stat did not change; otherwise the stream
 * fails, which aborts the upload, and the file is hashed again under its new content.
 */
async function uploadBlob(ctx: TransferContext, planned: HashedFile, abs: string, attempts = 3): Promise<{ entry: HashedFile; etag: string; chunks: string[] | undefined; record: HashRecord }> {
  let expected = planned.sha256;
  for (let i = 0; i < attempts; i++) {
    if (i > 0) expected = (await hashFileStable(abs)).sha256;
    // A plain descriptor, closed in `finally`: nothing is left for the garbage collector to close.
    const fd = openSync(abs, 'r');
    try {
      const readAtMs = Date.now();
      const before = fstatSync(fd);
      const whole = createHash('sha256');
      const chunks = new ChunkHasher(CHUNK_SIZE);
      let changed = false;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          whole.update(chunk);
          chunks.update(chunk);
          ctx.onBytes?.(chunk.length);
          cb(null, chunk);
        },
        flush(cb) {
          if (!sameStat(before, fstatSync(fd)) || whole.digest('hex') !== expected) {
            changed = true;
            cb(new Error('the file changed while it was uploaded'));
          } else {
            cb();
          }
        },
      });
      const body = pipeline(Readable.from(chunksOf(fd)), tap, () => {});
      try {
        const { etag } = await ctx.store.upload(blobKey(ctx.prefix, ctx.workspace, expected), body, {
          contentType: 'application/octet-stream', partSize: partSizeFor(before.size), queueSize: 4,
        });
        const entry = readAs(planned, before, expected);
        return { entry, etag, chunks: before.size > CHUNK_SIZE ? chunks.digests() : undefined, record: hashRecord(before, expected, readAtMs) };
      } catch (err) {
        if (!changed) throw err;
        ctx.log.debug({ path: planned.path }, 'file changed during upload; upload aborted, hashing it again');
      }
    } finally {
      closeSync(fd);
    }
  }
  throw new SyncError('FILE_UNSTABLE', `${planned.path} kept changing while it was uploaded`, {
    hint: 'it keeps its previous version in the bucket and is picked up again once it settles',
  });
}

const readAsync = promisify(read);

/**
 * The file's bytes in 1 MiB chunks. Not fs.createReadStream: destroying that (as pipeline does when
 * the upload is aborted) closes the descriptor whatever autoClose says, and the caller's own close
 * would then close whatever file has reused the number since.
 */
async function* chunksOf(fd: number): AsyncGenerator<Buffer> {
  for (let pos = 0; ;) {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    const { bytesRead } = await readAsync(fd, buf, 0, buf.length, pos);
    if (bytesRead === 0) return;
    pos += bytesRead;
    yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
  }
}

/** sha256 of each `size`-byte piece of a stream. */
class ChunkHasher {
  private readonly done: string[] = [];
  private hash = createHash('sha256');
  private filled = 0;
  constructor(private readonly size: number) {}

  update(data: Buffer): void {
    let pos = 0;
    while (pos < data.length) {
      const n = Math.min(this.size - this.filled, data.length - pos);
      this.hash.update(data.subarray(pos, pos + n));
      this.filled += n;
      pos += n;
      if (this.filled === this.size) {
        this.done.push(this.hash.digest('hex'));
        this.hash = createHash('sha256');
        this.filled = 0;
      }
    }
  }

  digests(): string[] {
    return this.filled > 0 ? [...this.done, this.hash.digest('hex')] : this.done;
  }
}

/** Parts of at least 8 MiB, and few enough to stay under S3's 10,000-part limit. */
function partSizeFor(size: number): number {
  return Math.max(8 * 1024 * 1024, Math.ceil(size / 9_000));
}
