/**
 * Main-thread side of the prefetch worker (prefetch-worker.ts): sends it files to download and
 * hears back which blobs landed in the cache directory. Every task gets exactly one answer
 * (done, failed, or listed as cleared), so `idle` knows when nothing is outstanding.
 */
import { Worker } from 'node:worker_threads';
import type { S3Settings } from '@workspace-sync/shared';
import type { PinnedObject } from './download.js';
import type { WorkerConfig } from './prefetch-worker.js';
import { workerUrl } from './worker-url.js';

export interface PrefetchTask {
  /** Blob name in the content cache. */
  name: string;
  size: number;
  /** What the bytes must hash to (a piece of a pack without one is never used). */
  sha256: string | undefined;
  /** The file's own object: fetched when there is no pack, or the piece of the pack is bad. */
  own: PinnedObject & { size: number };
  /** A pack holding the bytes at `offset`: fetched with its neighbours in one range GET. */
  pack?: (Omit<PinnedObject, 'sha256'> & { offset: number }) | undefined;
}

export type ToWorker = { type: 'fetch'; tasks: PrefetchTask[] } | { type: 'clear' };

export type FromWorker =
  /** `gets`: GET requests this blob accounts for (0 for all but one blob of a pack range). */
  | { type: 'done'; name: string; size: number; downloaded: boolean; gets: number }
  | { type: 'failed'; name: string; code: string; message: string }
  | { type: 'cleared'; names: string[] };

export interface PrefetcherOptions {
  settings: S3Settings;
  cacheRoot: string;
  concurrency: number;
  chunkSize: number;
  onMessage: (msg: FromWorker) => void;
  onCrash: (err: Error) => void;
}

const WORKER_URL = workerUrl('prefetch-worker.js');

export class Prefetcher {
  private worker: Worker | undefined;
  private outstanding = 0;
  private waiters: Array<() => void> = [];

  constructor(private readonly opts: PrefetcherOptions) {}

  send(tasks: PrefetchTask[]): void {
    if (tasks.length === 0) return;
    this.outstanding += tasks.length;
    this.ensureWorker().postMessage({ type: 'fetch', tasks } satisfies ToWorker);
  }

  /** Starts the worker ahead of the first warm-up (it loads the S3 client, which takes a moment). */
  start(): void {
    this.ensureWorker();
  }

  clear(): void {
    this.worker?.postMessage({ type: 'clear' } satisfies ToWorker);
  }

  /** Resolves once every task sent so far has been answered. */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.settle(this.outstanding);
    await w?.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const workerData: WorkerConfig = {
      settings: this.opts.settings, cacheRoot: this.opts.cacheRoot, concurrency: this.opts.concurrency, chunkSize: this.opts.chunkSize,
    };
    const worker = new Worker(WORKER_URL, { workerData });
    // Prefetching alone never keeps the process alive.
    worker.unref();
    worker.on('message', (msg: FromWorker) => {
      this.settle(msg.type === 'cleared' ? msg.names.length : 1);
      this.opts.onMessage(msg);
    });
    worker.on('error', (err) => {
      if (this.worker === worker) this.worker = undefined;
      this.settle(this.outstanding);
      this.opts.onCrash(err);
    });
    this.worker = worker;
    return worker;
  }

  private settle(n: number): void {
    this.outstanding = Math.max(0, this.outstanding - n);
    if (this.outstanding > 0) return;
    for (const resolve of this.waiters.splice(0)) resolve();
  }
}
