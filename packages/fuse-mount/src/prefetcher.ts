/**
 * Main-thread side of the prefetch worker (prefetch-worker.ts): sends it data packs and files to
 * download and hears back which blobs landed in the cache directory. Every task gets exactly one answer
 * (done, failed, or listed as cleared), so `idle` knows when nothing is outstanding.
 *
 * Tasks go to the worker a slice at a time, with a bounded number unanswered: warming a
 * 100,000-file workspace as one message (when there was a task per file) cloned every task into the
 * worker at once, hundreds of megabytes between the two heaps.
 */
import { Worker } from 'node:worker_threads';
import type { S3Settings } from '@workspace-sync/shared';
import type { PinnedObject } from './download.js';
import type { WorkerConfig } from './prefetch-worker.js';
import { workerUrl } from './worker-url.js';

export type PrefetchTask =
  /**
   * A whole data pack, cached as one blob (`name`); reads check each file cut from it against
   * the file's sha256. v1 packs are pinned to an ETag and size, v2 packs are immutable.
   */
  | { kind: 'pack'; name: string; key: string; etag: string | undefined; size: number | undefined }
  /** A file without a pack: its own object, cached under the file's blob name. */
  | { kind: 'file'; name: string; own: PinnedObject & { size: number } };

/**
 * Largest data pack fetched whole: writers close a pack at 4 MiB plus the one file that overflowed
 * it (at most 256 KiB). The files of a larger v2 pack are left to demand reads.
 */
export const MAX_PREFETCH_PACK = 8 * 1024 * 1024;

export type ToWorker = { type: 'fetch'; tasks: PrefetchTask[] };

export type FromWorker =
  | { type: 'done'; name: string; size: number; downloaded: boolean }
  | { type: 'failed'; name: string; code: string; message: string }
  | { type: 'cleared'; names: string[] };

export interface PrefetcherOptions {
  settings: S3Settings;
  cacheRoot: string;
  concurrency: number;
  chunkSize: number;
  onMessage: (msg: FromWorker) => void;
  onCrash: (err: Error) => void;
  /** Tasks the worker may hold unanswered (posted in quarters); tests make it small. */
  window?: number | undefined;
}

const WORKER_URL = workerUrl('prefetch-worker.js');
const DEFAULT_WINDOW = 2000;
/**
 * The worker's heap garbage is request plumbing, short-lived (bodies live outside the V8 heap). A
 * young generation of 8 MiB (V8's default is several times that) measured ~20 MiB less mount RSS
 * while a 100,000-file workspace is prefetched, at the same download rate (docs/scale.md).
 */
const WORKER_YOUNG_GENERATION_MB = 8;

export class Prefetcher {
  private worker: Worker | undefined;
  private outstanding = 0;
  private waiters: Array<() => void> = [];
  private roomWaiters: Array<() => void> = [];
  /** Tasks not yet posted, from `next` on. */
  private backlog: PrefetchTask[] = [];
  private next = 0;
  /** Tasks posted to the worker and not yet answered. */
  private posted = 0;
  private readonly window: number;
  private readonly slice: number;

  constructor(private readonly opts: PrefetcherOptions) {
    this.window = opts.window ?? DEFAULT_WINDOW;
    this.slice = Math.max(1, Math.floor(this.window / 4));
  }

  send(tasks: PrefetchTask[]): void {
    if (tasks.length === 0) return;
    this.outstanding += tasks.length;
    if (this.next === this.backlog.length) { this.backlog = tasks.slice(); this.next = 0; } else for (const t of tasks) this.backlog.push(t);
    this.pump();
  }

  private pump(): void {
    while (this.posted < this.window && this.next < this.backlog.length) {
      const tasks = this.backlog.slice(this.next, this.next + this.slice);
      this.next += tasks.length;
      this.posted += tasks.length;
      this.ensureWorker().postMessage({ type: 'fetch', tasks } satisfies ToWorker);
    }
    if (this.next === this.backlog.length) this.resetBacklog();
  }

  private resetBacklog(): void {
    this.backlog = [];
    this.next = 0;
    for (const resolve of this.roomWaiters.splice(0)) resolve();
  }

  /** Answers the tasks never posted as cleared (the fetcher forgets them). */
  private dropBacklog(): void {
    const names = this.backlog.slice(this.next).map((t) => t.name);
    this.resetBacklog();
    if (names.length === 0) return;
    this.settle(names.length);
    this.opts.onMessage({ type: 'cleared', names });
  }

  /** Starts the worker ahead of the first warm-up (it loads the S3 client, which takes a moment). */
  start(): void {
    this.ensureWorker();
  }

  /** Resolves once every task sent so far has been handed to the worker (or dropped): a caller paces what it sends by it. */
  room(): Promise<void> {
    if (this.next === this.backlog.length) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Resolves once every task sent so far has been answered. */
  idle(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.resetBacklog();
    this.posted = 0;
    this.settle(this.outstanding);
    await w?.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const workerData: WorkerConfig = {
      settings: this.opts.settings, cacheRoot: this.opts.cacheRoot, concurrency: this.opts.concurrency, chunkSize: this.opts.chunkSize,
    };
    const worker = new Worker(WORKER_URL, { workerData, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
    // Prefetching alone never keeps the process alive.
    worker.unref();
    worker.on('message', (msg: FromWorker) => {
      const answered = msg.type === 'cleared' ? msg.names.length : 1;
      this.posted = Math.max(0, this.posted - answered);
      this.settle(answered);
      this.opts.onMessage(msg);
      // The worker clears its queue when S3 is unreachable: what was never posted goes too.
      if (msg.type === 'cleared') this.dropBacklog();
      else this.pump();
    });
    worker.on('error', (err) => {
      if (this.worker === worker) this.worker = undefined;
      this.dropBacklog();
      this.posted = 0;
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
