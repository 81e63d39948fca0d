/**
 * Executes the transfers of a plan: server-side copies first (their sources may be overwritten by
 * uploads of the same push), then uploads, in parallel with p-queue. Each object that lands is recorded
 * in the journal before anything else happens, so a crash never costs a re-upload.
 *
 * What is uploaded is exactly what was hashed: small files are read into memory once (stat-checked
 * around the read); large files stream through lib-storage multipart while being hashed, and are sent
 * again if the file changed during the upload. A file that vanished since the scan is reported, not fatal.
 * S3 errors abort the run (the SDK already retried them); nothing after them is committed.
 */
import { createReadStream, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Transform } from 'node:stream';
import PQueue from 'p-queue';
import mime from 'mime-types';
import { isSyncError, objectKey, readFileStable, SyncError, type Logger, type ObjectStore } from '@workspace-sync/shared';
import type { HashedEntry, Plan } from './planner.js';
import type { JournalRecord } from './state.js';
import { fileFromStats, type Skipped } from './scan.js';


export interface TransferContext {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  wsDir: string;
  concurrency: number;
  multipartThreshold: number;
  journal: (rec: JournalRecord) => Promise<void>;
  onBytes?: (bytes: number) => void;
  onFile?: (entry: HashedEntry, how: 'uploaded' | 'copied') => void;
  log: Logger;
  signal?: AbortSignal;
}

export interface TransferResult {
  /** Entries now in the bucket, with the ETag of their object (may differ from the plan if the file changed). */
  landed: Map<string, Landed>;
  skipped: Skipped[];
  /** Planned paths that no longer exist locally. */
  vanished: string[];
  bytes: number;
}

export interface Landed {
  entry: HashedEntry;
  etag: string;
  how: 'uploaded' | 'copied';
  /** The stat the upload read under (files only), for the state index. */
  stat?: StatLike;
}

export interface StatLike { size: number; mtimeMs: number; ctimeMs: number; ino: number; readAtMs: number }

const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** Metadata that also lets rclone and s3fs show mtime, mode and symlinks for these objects. */
export function objectMetadata(e: HashedEntry): Record<string, string> {
  const meta: Record<string, string> = { sha256: e.sha256, mtime: String(Math.floor(e.mtimeMs / 1000)) };
  if (e.type === 'file') meta.mode = String(S_IFREG | e.mode);
  else {
    meta.mode = String(S_IFLNK | 0o777);
    meta['symlink-target'] = encodeURIComponent(e.target);
  }
  return meta;
}

export function contentTypeFor(e: HashedEntry): string {
  if (e.type === 'symlink') return 'application/octet-stream';
  return mime.lookup(e.path) || 'application/octet-stream';
}

export async function executeTransfers(plan: Pick<Plan, 'copies' | 'uploads'>, ctx: TransferContext): Promise<TransferResult> {
  const result: TransferResult = { landed: new Map(), skipped: [], vanished: [], bytes: 0 };
  const queue = new PQueue({ concurrency: ctx.concurrency });
  let fatal: unknown;

  const record = async (entry: HashedEntry, etag: string, how: 'uploaded' | 'copied', stat?: StatLike) => {
    const key = objectKey(ctx.prefix, ctx.workspace, entry.path);
    await ctx.journal({ path: entry.path, key, sha256: entry.sha256, size: entry.type === 'file' ? entry.size : 0, etag });
    result.landed.set(entry.path, stat ? { entry, etag, how, stat } : { entry, etag, how });
    ctx.onFile?.(entry, how);
  };

  const guarded = (fn: () => Promise<void>) => async () => {
    if (fatal !== undefined || ctx.signal?.aborted) return;
    try {
      await fn();
    } catch (err) {
      if (fatal === undefined) fatal = err;
      queue.clear();
    }
  };

  const upload = async (entry: HashedEntry) => {
    const key = objectKey(ctx.prefix, ctx.workspace, entry.path);
    if (entry.type === 'symlink') {
      const body = Buffer.from(entry.target);
      const { etag } = await ctx.store.put(key, body, { contentType: contentTypeFor(entry), metadata: objectMetadata(entry) });
      result.bytes += body.length;
      ctx.onBytes?.(body.length);
      await record(entry, etag, 'uploaded');
      return;
    }
    const abs = path.join(ctx.wsDir, entry.path);
    try {
      const fresh = entry.size >= ctx.multipartThreshold
        ? await uploadLarge(ctx, key, entry, abs)
        : await uploadSmall(ctx, key, entry, abs);
      result.bytes += fresh.entry.type === 'file' ? fresh.entry.size : 0;
      await record(fresh.entry, fresh.etag, 'uploaded', fresh.stat);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') { result.vanished.push(entry.path); return; }
      if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' || code === 'ELOOP') {
        result.skipped.push({ path: entry.path, reason: `cannot read (${code})` });
        return;
      }
      if (isSyncError(err, 'FILE_UNSTABLE')) { result.skipped.push({ path: entry.path, reason: err.message }); return; }
      throw err;
    }
  };

  for (const { from, entry } of plan.copies) {
    queue.add(guarded(async () => {
      const src = objectKey(ctx.prefix, ctx.workspace, from);
      const dst = objectKey(ctx.prefix, ctx.workspace, entry.path);
      try {
        const { etag } = await ctx.store.copy(src, dst, { contentType: contentTypeFor(entry), metadata: objectMetadata(entry) });
        await record(entry, etag, 'copied');
      } catch (err) {
        // The source may be gone (another writer) or the server may mangle the copy source's encoding:
        // uploading from the local file gives the same result.
        if (!isSyncError(err, 'OBJECT_NOT_FOUND')) throw err;
        ctx.log.debug({ from, to: entry.path }, 'server-side copy failed; uploading instead');
        await upload(entry);
      }
    }));
  }
  await queue.onIdle();
  if (fatal === undefined) for (const entry of plan.uploads) queue.add(guarded(() => upload(entry)));
  await queue.onIdle();
  if (fatal !== undefined) throw fatal;
  return result;
}

type FileEntryH = Extract<HashedEntry, { type: 'file' }>;

async function uploadSmall(ctx: TransferContext, key: string, entry: FileEntryH, abs: string) {
  const readAtMs = Date.now();
  const read = await readFileStable(abs);
  // The file may have changed since it was hashed for planning: upload and describe what was read now.
  const fresh: FileEntryH = { ...fileFromStats(entry.path, read.stat), sha256: read.sha256 };
  const { etag } = await ctx.store.put(key, read.data, { contentType: contentTypeFor(fresh), metadata: objectMetadata(fresh), sha256: read.sha256 });
  ctx.onBytes?.(read.data.length);
  return { entry: fresh, etag, stat: { ...statOf(read.stat), readAtMs } };
}

async function uploadLarge(ctx: TransferContext, key: string, entry: FileEntryH, abs: string, attempts = 3) {
  for (let i = 0; i < attempts; i++) {
    const fh = await open(abs, 'r');
    try {
      const readAtMs = Date.now();
      const before = await fh.stat();
      const hash = createHash('sha256');
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) { hash.update(chunk); ctx.onBytes?.(chunk.length); cb(null, chunk); },
      });
      const stream = createReadStream('', { fd: fh.fd, autoClose: false, start: 0, highWaterMark: 1024 * 1024 }).pipe(tap);
      // sha256 is only known after the upload; metadata carries the planned hash and is corrected below if needed.
      const planned: FileEntryH = { ...fileFromStats(entry.path, before), sha256: entry.sha256 };
      const { etag } = await ctx.store.upload(key, stream, {
        contentType: contentTypeFor(planned), metadata: objectMetadata(planned),
        partSize: partSizeFor(before.size), queueSize: 4,
      });
      const after = await fh.stat();
      const sha256 = hash.digest('hex');
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs || after.ctimeMs !== before.ctimeMs) {
        ctx.log.debug({ path: entry.path }, 'file changed during upload; sending it again');
        continue;
      }
      const fresh: FileEntryH = { ...planned, sha256 };
      if (sha256 !== entry.sha256) {
        // Same bytes, corrected metadata: a copy onto itself replaces metadata without re-sending data.
        const fixed = await ctx.store.copy(key, key, { contentType: contentTypeFor(fresh), metadata: objectMetadata(fresh) });
        return { entry: fresh, etag: fixed.etag || etag, stat: { ...statOf(after), readAtMs } };
      }
      return { entry: fresh, etag, stat: { ...statOf(after), readAtMs } };
    } finally {
      await fh.close();
    }
  }
  throw new SyncError('FILE_UNSTABLE', `${entry.path} kept changing while it was uploaded`, {
    hint: 'it will be picked up by the next push once it settles',
  });
}

function statOf(st: Stats): Omit<StatLike, 'readAtMs'> {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}

/** Parts of at least 8 MiB, and few enough to stay under S3's 10,000-part limit. */
export function partSizeFor(size: number): number {
  return Math.max(8 * 1024 * 1024, Math.ceil(size / 9_000));
}
