/**
 * Worker thread that downloads prefetched files into the cache directory. The AWS SDK costs about
 * a millisecond of CPU per GET; thousands of prefetches on the main thread would delay every FUSE
 * call queued behind them (`find` went from 0.2 s to 18 s). Here they cost the main thread one
 * message per file. Blobs are written with the same atomic layout the cache uses; the main thread
 * indexes them when told.
 *
 * Files with a copy in a pack are fetched by ranges of the pack, neighbours together (a source tree
 * then costs a few GETs instead of one per file). Each file cut from a range is checked against its
 * sha256; one that does not match, or whose range fails, is fetched from its own object instead.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { access } from 'node:fs/promises';
import PQueue from 'p-queue';
import { createObjectStore, createS3Client, isSyncError, sha256Hex, type S3Settings } from '@workspace-sync/shared';
import { blobFilePath, writeBlobFile } from './content-cache.js';
import { downloadPinned, downloadPinnedRange } from './download.js';
import type { FromWorker, PrefetchTask, ToWorker } from './prefetcher.js';

type PackRef = NonNullable<PrefetchTask['pack']>;

export interface WorkerConfig {
  settings: S3Settings;
  cacheRoot: string;
  concurrency: number;
  chunkSize: number;
}

/** Neighbours further apart than this in a pack are fetched by separate ranges (the gap is read and dropped). */
const MAX_RANGE_GAP = 64 * 1024;

const config = workerData as WorkerConfig;
const port = parentPort!;
const client = createS3Client(config.settings);
const store = createObjectStore(config.settings, client);
const queue = new PQueue({ concurrency: config.concurrency });
const queued = new Map<string, PrefetchTask>();

const post = (msg: FromWorker) => port.postMessage(msg);

/** Answers `done` for a blob that reached the cache meanwhile (a demand read fetched it). */
async function answerIfCached(task: PrefetchTask): Promise<boolean> {
  if (!(await access(blobFilePath(config.cacheRoot, task.name)).then(() => true, () => false))) return false;
  post({ type: 'done', name: task.name, size: task.size, downloaded: false, gets: 0 });
  return true;
}

function clear(): void {
  queue.clear();
  post({ type: 'cleared', names: [...queued.keys()] });
  queued.clear();
}

function failed(task: PrefetchTask, err: unknown): void {
  const code = isSyncError(err) ? err.code : 'INTERNAL';
  post({ type: 'failed', name: task.name, code, message: (err as Error).message });
  // Everything behind it would fail the same way; the main thread asks again after recovery.
  if (code === 'ENDPOINT_UNREACHABLE') clear();
}

async function run(task: PrefetchTask): Promise<void> {
  if (!queued.delete(task.name)) return;
  if (await answerIfCached(task)) return;
  try {
    const body = await downloadPinned(store, task.own, 0, Math.max(config.chunkSize, task.size));
    await writeBlobFile(config.cacheRoot, task.name, body);
    post({ type: 'done', name: task.name, size: body.length, downloaded: true, gets: 1 });
  } catch (err) {
    failed(task, err);
  }
}

/** One range GET for `tasks` (sorted by offset, all in `pack`), then each file cut out and checked. */
async function runRange(pack: PackRef, tasks: PrefetchTask[]): Promise<void> {
  const wanted: PrefetchTask[] = [];
  for (const task of tasks) {
    if (!queued.has(task.name)) continue;
    if (await answerIfCached(task)) queued.delete(task.name);
    else wanted.push(task);
  }
  if (wanted.length === 0) return;
  const start = wanted[0]!.pack!.offset;
  const last = wanted.at(-1)!;
  let body: Buffer;
  try {
    body = await downloadPinnedRange(store, { key: pack.key, etag: pack.etag, size: pack.size, sha256: undefined }, start, last.pack!.offset + last.size - start);
  } catch (err) {
    if (isSyncError(err, 'ENDPOINT_UNREACHABLE')) {
      for (const task of wanted) if (queued.delete(task.name)) failed(task, err);
      return;
    }
    // A pack replaced or removed by a newer push: the files' own objects are still right.
    for (const task of wanted) void queue.add(() => run(task));
    return;
  }
  let gets = 1;
  for (const task of wanted) {
    if (!queued.has(task.name)) continue;
    const from = task.pack!.offset - start;
    const data = body.subarray(from, from + task.size);
    if (data.length !== task.size || sha256Hex(data) !== task.sha256) {
      void queue.add(() => run(task));
      continue;
    }
    queued.delete(task.name);
    try {
      await writeBlobFile(config.cacheRoot, task.name, data);
      post({ type: 'done', name: task.name, size: task.size, downloaded: true, gets });
      gets = 0;
    } catch (err) {
      failed(task, err);
    }
  }
}

/** Queues the tasks with a pack as ranges of neighbours, at most a chunk long each; the rest one by one. */
function schedule(tasks: PrefetchTask[]): void {
  const byPack = new Map<string, { pack: PackRef; tasks: PrefetchTask[] }>();
  for (const task of tasks) {
    // Without a sha256 a piece of a pack cannot be checked, so it is never used.
    if (!task.pack || !task.sha256) {
      void queue.add(() => run(task));
      continue;
    }
    const key = `${task.pack.key}\n${task.pack.etag}`;
    let group = byPack.get(key);
    if (!group) byPack.set(key, group = { pack: task.pack, tasks: [] });
    group.tasks.push(task);
  }
  for (const { pack, tasks: members } of byPack.values()) {
    members.sort((a, b) => a.pack!.offset - b.pack!.offset);
    let range: PrefetchTask[] = [];
    const flush = () => {
      const r = range;
      if (r.length > 0) void queue.add(() => runRange(pack, r));
      range = [];
    };
    for (const task of members) {
      const first = range[0];
      const prev = range.at(-1);
      if (first && prev && (task.pack!.offset - (prev.pack!.offset + prev.size) > MAX_RANGE_GAP
        || task.pack!.offset + task.size - first.pack!.offset > config.chunkSize)) flush();
      range.push(task);
    }
    flush();
  }
}

port.on('message', (msg: ToWorker) => {
  for (const task of msg.tasks) queued.set(task.name, task);
  schedule(msg.tasks);
});
