/**
 * Worker thread that downloads prefetched files into the cache directory. The AWS SDK costs about
 * a millisecond of CPU per GET; thousands of prefetches on the main thread would delay every FUSE
 * call queued behind them (`find` went from 0.2 s to 18 s). Here they cost the main thread one
 * message per file. Blobs are written with the same atomic layout the cache uses; the main thread
 * indexes them when told.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { access } from 'node:fs/promises';
import PQueue from 'p-queue';
import { createObjectStore, createS3Client, isSyncError, type S3Settings } from '@workspace-sync/shared';
import { blobFilePath, writeBlobFile } from './content-cache.js';
import { downloadPinned } from './download.js';
import type { FromWorker, PrefetchTask, ToWorker } from './prefetcher.js';

export interface WorkerConfig {
  settings: S3Settings;
  cacheRoot: string;
  concurrency: number;
  chunkSize: number;
}

const config = workerData as WorkerConfig;
const port = parentPort!;
const client = createS3Client(config.settings);
const store = createObjectStore(config.settings, client);
const queue = new PQueue({ concurrency: config.concurrency });
const queued = new Map<string, PrefetchTask>();

const post = (msg: FromWorker) => port.postMessage(msg);

function clear(): void {
  queue.clear();
  post({ type: 'cleared', names: [...queued.keys()] });
  queued.clear();
}

async function run(task: PrefetchTask): Promise<void> {
  if (!queued.delete(task.name)) return;
  const file = blobFilePath(config.cacheRoot, task.name);
  if (await access(file).then(() => true, () => false)) {
    post({ type: 'done', name: task.name, size: task.size, downloaded: false });
    return;
  }
  try {
    const body = await downloadPinned(store, task, 0, config.chunkSize);
    await writeBlobFile(config.cacheRoot, task.name, body);
    post({ type: 'done', name: task.name, size: body.length, downloaded: true });
  } catch (err) {
    const code = isSyncError(err) ? err.code : 'INTERNAL';
    post({ type: 'failed', name: task.name, code, message: (err as Error).message });
    // Everything behind it would fail the same way; the main thread asks again after recovery.
    if (code === 'ENDPOINT_UNREACHABLE') clear();
  }
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'clear') {
    clear();
    return;
  }
  for (const task of msg.tasks) {
    queued.set(task.name, task);
    void queue.add(() => run(task));
  }
});

