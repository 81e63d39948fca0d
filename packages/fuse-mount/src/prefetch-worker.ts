/**
 * Worker thread that downloads prefetched data packs and files into the cache directory. The AWS
 * SDK costs about a millisecond of CPU per GET, and every downloaded byte passes through the
 * socket's buffers: on the main thread a warm-up's downloads delayed every FUSE call queued behind
 * them (a warm `find` during a warm-up of 100,000 files: 0.8–0.9 s with the worker, 4.1–4.4 s
 * without). Here they cost the main thread one message per pack or file. Blobs are written with the
 * same atomic layout the cache uses; the main thread indexes them when told.
 *
 * A data pack is fetched whole and stored as one blob: the files in it are checked against their
 * sha256 when they are read (fetcher.ts), so a damaged pack is never served, only not used.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { stat } from 'node:fs/promises';
import PQueue from 'p-queue';
import { createObjectStore, createS3Client, isSyncError, type S3Settings } from '@workspace-sync/shared';
import { blobFilePath, writeBlobFile } from './content-cache.js';
import { downloadPinned, downloadPinnedRange } from './download.js';
import { MAX_PREFETCH_PACK, type FromWorker, type PrefetchTask, type ToWorker } from './prefetcher.js';

type PackTask = Extract<PrefetchTask, { kind: 'pack' }>;
type FileTask = Extract<PrefetchTask, { kind: 'file' }>;

export interface WorkerConfig {
  settings: S3Settings;
  cacheRoot: string;
  concurrency: number;
  chunkSize: number;
}

/**
 * Whole packs downloading at once, each held in memory until it is on disk. A warm-up of 100,000
 * files (390 MiB, 105 packs) took 4.4 s with two and 3.8–4.4 s with four, at 214–217 against
 * 221–239 MiB mount RSS.
 */
const PACK_GETS = 2;
/**
 * Packs at least this large are read into reused buffers: a fresh 4 MiB buffer per pack lives
 * through a few scavenges while it downloads, so it would die in the old generation, where V8
 * lets tens of megabytes of such garbage pile up while the worker's heap is otherwise idle.
 */
const REUSE_PACK_BUFFER = 1024 * 1024;

const config = workerData as WorkerConfig;
const port = parentPort!;
const client = createS3Client(config.settings);
const store = createObjectStore(config.settings, client);
const packGets = new PQueue({ concurrency: Math.min(PACK_GETS, config.concurrency) });
const fileGets = new PQueue({ concurrency: config.concurrency });
const queued = new Map<string, PrefetchTask>();
/** One buffer per pack download, dropped when no pack is being fetched. */
let packBuffers: Buffer[] = [];
packGets.on('idle', () => { packBuffers = []; });

const post = (msg: FromWorker) => port.postMessage(msg);

/** Answers `done` for a blob that reached the cache meanwhile (a demand read fetched it). */
async function answerIfCached(task: PrefetchTask): Promise<boolean> {
  const st = await stat(blobFilePath(config.cacheRoot, task.name)).catch(() => undefined);
  if (!st) return false;
  post({ type: 'done', name: task.name, size: st.size, downloaded: false });
  return true;
}

function clear(): void {
  packGets.clear();
  fileGets.clear();
  post({ type: 'cleared', names: [...queued.keys()] });
  queued.clear();
}

function failed(task: PrefetchTask, err: unknown): void {
  const code = isSyncError(err) ? err.code : 'INTERNAL';
  post({ type: 'failed', name: task.name, code, message: (err as Error).message });
  // Everything behind it would fail the same way; the main thread asks again after recovery.
  if (code === 'ENDPOINT_UNREACHABLE') clear();
}

async function runPack(task: PackTask): Promise<void> {
  if (!queued.delete(task.name) || await answerIfCached(task)) return;
  let buffer = packBuffers.pop();
  const into = (length: number): Buffer => {
    if (length >= REUSE_PACK_BUFFER && (buffer === undefined || buffer.length < length)) buffer = Buffer.allocUnsafeSlow(length);
    return buffer ?? EMPTY;
  };
  try {
    let body: Buffer;
    if (task.etag === undefined) {
      const res = await store.get(task.key, { maxBytes: MAX_PREFETCH_PACK, into });
      if (res.notModified) throw new Error(`GET s3://${store.bucket}/${task.key} answered 304 without If-None-Match`);
      body = res.body;
    } else {
      // The size is the manifest's: an object larger than any pack is refused before it is read, whatever the server answers.
      body = await downloadPinnedRange(store, { key: task.key, etag: task.etag, size: task.size, sha256: undefined }, 0, task.size!, { into, maxBytes: MAX_PREFETCH_PACK });
    }
    await writeBlobFile(config.cacheRoot, task.name, body);
    if (buffer) packBuffers.push(buffer);
    post({ type: 'done', name: task.name, size: body.length, downloaded: true });
  } catch (err) {
    failed(task, err);
  }
}

async function runFile(task: FileTask): Promise<void> {
  if (!queued.delete(task.name) || await answerIfCached(task)) return;
  try {
    const body = await downloadPinned(store, task.own, 0, Math.max(config.chunkSize, task.own.size));
    await writeBlobFile(config.cacheRoot, task.name, body);
    post({ type: 'done', name: task.name, size: body.length, downloaded: true });
  } catch (err) {
    failed(task, err);
  }
}

const EMPTY = Buffer.alloc(0);

port.on('message', (msg: ToWorker) => {
  for (const task of msg.tasks) {
    queued.set(task.name, task);
    if (task.kind === 'pack') void packGets.add(() => runPack(task));
    else void fileGets.add(() => runFile(task));
  }
});
