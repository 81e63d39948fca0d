/**
 * Content for reads: v2 files from their immutable pack range or blob, checked against their
 * sha256 (per 4 MiB chunk for large blobs) and cached under it; v1 files pinned to the ETag the
 * manifest names (see download.ts).
 *
 * A file is read in pieces: v2 by the format's chunks (CHUNK_SIZE), v1 by `chunkSize`. Small files
 * are one piece; larger ones are fetched by ranges, so the first byte never waits for the whole
 * file, and a sequential reader gets the next pieces ahead.
 *
 * `warm` hands a workspace's small files to the prefetch worker (prefetcher.ts), which downloads
 * them with --prefetch-concurrency off the main event loop. Files in a data pack are fetched as
 * whole packs (a source tree of 100,000 files is about a hundred GETs, not one per file), each
 * cached as one blob: the cache then indexes a blob per pack instead of one per file. A read of such
 * a file takes its bytes from the cached pack and checks them against the file's sha256 first (a
 * damaged pack is never served: the file is fetched on its own instead). Files without a pack (v1
 * without one, v2 blobs up to 1 MiB) are fetched one by one.
 *
 * Concurrency rules: on this thread, at most one download per blob (single-flight on the blob
 * name); readers needing a blob being downloaded join that download. Demand reads never wait for
 * the prefetch worker: a file whose pack has not landed is fetched here on its own, so a reader is
 * never queued behind a warm-up.
 */
import { CHUNK_SIZE, isOutageCode, isSyncError, sha256Hex, SyncError, type ErrorCode, type Logger, type ObjectStore, type S3Settings } from '@workspace-sync/shared';
import { blobName, dataPackName, type ContentCache } from './content-cache.js';
import { downloadContent, downloadPinned, pieceSha } from './download.js';
import type { MountMetrics } from './metrics.js';
import { MAX_PREFETCH_PACK, Prefetcher, type FromWorker, type PrefetchTask } from './prefetcher.js';
import type { RemoteStatus } from './remote-status.js';
import type { FileNode } from './tree.js';

const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
const DEFAULT_READ_AHEAD_CHUNKS = 4;
/** Files up to this size are prefetched when their workspace is first used. */
const PREFETCH_MAX_FILE = 1024 * 1024;

export interface PrefetchOptions {
  /** How the worker reaches S3 (it builds its own client). */
  settings: S3Settings;
  /** Parallel prefetch GETs (whole packs: at most two at once). */
  concurrency: number;
  /** Bytes one warm-up may request, so prefetching never flushes the whole cache. */
  budget: number;
  /** Tasks handed to the worker at a time (default 2,000). */
  window?: number | undefined;
}

/** A data pack a file's bytes can be read from once the pack is cached whole. */
interface PackSource {
  /** Cache name of the whole pack. */
  name: string;
  key: string;
  /** v1 packs are pinned to an ETag and size; v2 packs are immutable. */
  etag: string | undefined;
  size: number | undefined;
  offset: number;
  /** What the file's bytes must hash to (a file without one is never read from a pack). */
  sha256: string;
}

/** Bytes a warm-up may still request (0 once spent), and the packs it asked for with the bytes charged for each. */
export interface WarmBudget {
  left: number;
  packs: Map<string, number>;
}

export interface FetcherOptions {
  store: ObjectStore;
  cache: ContentCache;
  status: RemoteStatus;
  logger: Logger;
  metrics?: MountMetrics | undefined;
  chunkSize?: number;
  readAheadChunks?: number;
  /** Absent (or concurrency 0): no prefetching. */
  prefetch?: PrefetchOptions | undefined;
}

export class Fetcher {
  readonly chunkSize: number;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly readAheadChunks: number;
  private readonly prefetcher: Prefetcher | undefined;
  /** Data packs handed to the worker and not answered yet, with how many files each was asked for. */
  private readonly packsQueued = new Map<string, { files: number }>();
  /** Single files handed to the worker and not answered yet. */
  private readonly filesQueued = new Set<string>();
  private warnedOutage = false;
  /** After `stop`, warm-ups still walking hand over nothing (that would start a new worker). */
  private stopped = false;

  constructor(private readonly opts: FetcherOptions) {
    this.chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.readAheadChunks = opts.readAheadChunks ?? DEFAULT_READ_AHEAD_CHUNKS;
    const pf = opts.prefetch;
    if (pf && pf.concurrency > 0) {
      this.prefetcher = new Prefetcher({
        settings: pf.settings, cacheRoot: opts.cache.root, concurrency: pf.concurrency, chunkSize: this.chunkSize, window: pf.window,
        onMessage: (msg) => this.onPrefetched(msg),
        onCrash: (err) => {
          this.packsQueued.clear();
          this.filesQueued.clear();
          opts.logger.error({ err }, 'prefetch worker crashed; prefetching restarts with the next workspace used');
        },
      });
    }
  }

  /** Bytes per piece of this file. */
  pieceSize(node: FileNode): number {
    return node.content.format === 2 ? CHUNK_SIZE : this.chunkSize;
  }

  chunkCount(node: FileNode): number {
    return Math.ceil(node.size / this.pieceSize(node));
  }

  /**
   * Copies up to `length` bytes at `offset` of the file into `target`; returns the count (0 at EOF).
   * Once `live()` says no (the caller answered already), `target` is left alone: it may be reused.
   */
  async readInto(node: FileNode, target: Buffer, offset: number, length: number, live: () => boolean = () => true): Promise<number> {
    const end = Math.min(node.size, offset + length);
    const pieceSize = this.pieceSize(node);
    let pos = offset;
    while (pos < end) {
      const index = Math.floor(pos / pieceSize);
      const chunkLength = this.chunkLength(node, index);
      const inChunk = pos - index * pieceSize;
      const want = Math.min(end - pos, chunkLength - inChunk);
      const name = this.blobName(node, index);
      if (!live()) throw abandoned();
      let n = this.readFromPack(node, name, target, pos - offset, inChunk, want)
        ?? await this.opts.cache.readInto(name, chunkLength, target, pos - offset, inChunk, want, this.expectedSha(node, index));
      if (n === undefined) {
        const data = await this.fetchChunk(node, index, 'demand');
        if (!live()) throw abandoned();
        n = data.copy(target, pos - offset, inChunk, inChunk + want);
      }
      if (n === 0) break;
      pos += n;
    }
    return pos - offset;
  }

  /** Starts downloading the chunks after `index` that are neither cached nor on their way. */
  readAhead(node: FileNode, index: number): void {
    const last = Math.min(this.chunkCount(node) - 1, index + this.readAheadChunks);
    for (let i = index + 1; i <= last; i++) {
      const name = this.blobName(node, i);
      if (this.inflight.has(name) || this.opts.cache.has(name)) continue;
      this.fetchChunk(node, i, 'readahead').catch((err: unknown) => {
        this.opts.logger.debug({ key: node.content.key, chunk: i, err: (err as Error).message }, 'read-ahead failed');
      });
    }
  }

  /**
   * Hands the small files among `nodes` that are not cached yet to the prefetch worker, in the
   * given order, within `budget` (spent here; a warm-up sent in batches shares one): the whole data
   * pack of a file that has one, else the file. Returns how many files (a file in a pack this
   * warm-up already asked for counts), or -1 when refused because S3 is down.
   */
  warm(nodes: Iterable<FileNode>, budget: WarmBudget = this.warmBudget()): number {
    if (!this.prefetcher || this.stopped) { budget.left = 0; return 0; }
    if (this.opts.status.down) return -1;
    const { cache } = this.opts;
    const tasks: PrefetchTask[] = [];
    let queued = 0;
    for (const node of nodes) {
      if (node.size === 0 || node.size > PREFETCH_MAX_FILE || node.size > this.pieceSize(node)) continue;
      const name = this.blobName(node, 0);
      if (this.inflight.has(name) || cache.has(name)) continue;
      const pack = this.packOf(node);
      // A pack larger than writers make (v1 names its size) is not fetched whole; its files go one by one.
      if (pack && (pack.size ?? 0) <= MAX_PREFETCH_PACK) {
        // The whole pack comes, so it is charged up to the end of the furthest file wanted in it
        // (all of it when its size is known); files in it superseded since come along uncounted.
        const charged = budget.packs.get(pack.name);
        const end = pack.size ?? pack.offset + node.size;
        const charge = Math.max(0, end - (charged ?? 0));
        const job = this.packsQueued.get(pack.name);
        if (charged === undefined && (job || cache.has(pack.name))) continue;
        // Asked for by this warm-up before, and answered: landed (cached, above) or failed (not again).
        if (charged !== undefined && !job) continue;
        if (budget.left < charge) { budget.left = 0; break; }
        budget.left -= charge;
        budget.packs.set(pack.name, charged === undefined ? end : Math.max(charged, end));
        if (job) job.files++;
        else {
          this.packsQueued.set(pack.name, { files: 1 });
          tasks.push({ kind: 'pack', name: pack.name, key: pack.key, etag: pack.etag, size: pack.size });
        }
      } else {
        if (this.filesQueued.has(name)) continue;
        if (budget.left < node.size) { budget.left = 0; break; }
        budget.left -= node.size;
        this.filesQueued.add(name);
        const c = node.content;
        tasks.push({
          kind: 'file', name,
          own: c.format === 1
            ? { key: c.key, etag: c.etag, size: node.size, sha256: c.sha256 }
            : { key: c.inPack ? c.plainKey : c.key, etag: undefined, size: node.size, sha256: c.sha256 },
        });
      }
      queued++;
    }
    this.prefetcher.send(tasks);
    return queued;
  }

  /** What one warm-up may request. */
  warmBudget(): WarmBudget {
    return { left: this.prefetcher ? this.opts.prefetch!.budget : 0, packs: new Map() };
  }

  /** Resolves once the prefetch worker has been handed everything warmed so far (pacing a long warm-up). */
  async room(): Promise<void> {
    await this.prefetcher?.room();
  }

  /** Starts the prefetch worker now rather than on the first warm-up. */
  startPrefetcher(): void {
    this.prefetcher?.start();
  }

  /** Resolves when the prefetch worker has answered everything asked of it. */
  async idle(): Promise<void> {
    await this.prefetcher?.idle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.packsQueued.clear();
    this.filesQueued.clear();
    await this.prefetcher?.stop();
  }

  private onPrefetched(msg: FromWorker): void {
    const { cache, status, metrics, logger } = this.opts;
    if (msg.type === 'cleared') {
      for (const name of msg.names) this.forget(name);
      return;
    }
    const files = this.forget(msg.name);
    if (msg.type === 'done') {
      cache.adopt(msg.name, msg.size);
      if (msg.downloaded) {
        status.ok();
        this.warnedOutage = false;
        metrics?.prefetched.inc(files);
        metrics?.s3Gets.inc({ kind: 'prefetch' });
        metrics?.s3GetBytes.inc(msg.size);
      }
      return;
    }
    metrics?.errors.inc({ op: 'prefetch' });
    if (isOutageCode(msg.code)) {
      status.failed(new SyncError(msg.code as ErrorCode, msg.message));
      if (!this.warnedOutage) logger.warn({ err: msg.message }, 'prefetch stopped: S3 does not answer');
      this.warnedOutage = true;
      return;
    }
    // The files are left to demand reads.
    logger.debug({ blob: msg.name, code: msg.code, err: msg.message }, 'prefetch failed');
  }

  /** Drops an answered task; returns how many files it was for. */
  private forget(name: string): number {
    const job = this.packsQueued.get(name);
    if (job) {
      this.packsQueued.delete(name);
      return job.files;
    }
    this.filesQueued.delete(name);
    return 1;
  }

  /**
   * The file's bytes from its data pack when the pack is cached whole and the file itself is not,
   * checked against its sha256 (then kept in the memory tier, so the rest of a file read in
   * pieces costs no second check); undefined otherwise, or when they do not match.
   */
  private readFromPack(node: FileNode, name: string, target: Buffer, targetOffset: number, position: number, length: number): number | undefined {
    const { cache, logger, metrics } = this.opts;
    if (cache.has(name)) return undefined;
    const pack = this.packOf(node);
    if (!pack || !cache.has(pack.name)) return undefined;
    const data = cache.readRange(pack.name, pack.offset, node.size);
    if (!data) return undefined;
    if (sha256Hex(data) !== pack.sha256) {
      // Never served; the file is fetched on its own (and then cached under its own name).
      metrics?.errors.inc({ op: 'cache' });
      logger.warn({ pack: pack.key, offset: pack.offset, size: node.size }, 'cached data pack does not match a file in it; fetching the file on its own');
      return undefined;
    }
    cache.remember(name, data);
    metrics?.cacheHits.inc({ tier: 'pack' });
    return data.copy(target, targetOffset, position, Math.min(data.length, position + length));
  }

  /** Where a single-piece file's bytes are in a data pack, when it has one and they can be checked. */
  private packOf(node: FileNode): PackSource | undefined {
    if (node.size > this.pieceSize(node)) return undefined;
    const c = node.content;
    const bucket = this.opts.store.bucket;
    if (c.format === 2) {
      return c.inPack
        ? { name: dataPackName(bucket, c.key, undefined), key: c.key, etag: undefined, size: undefined, offset: c.offset, sha256: c.sha256 }
        : undefined;
    }
    if (!c.pack || c.sha256 === undefined) return undefined;
    return { name: dataPackName(bucket, c.pack.key, c.pack.etag), key: c.pack.key, etag: c.pack.etag, size: c.pack.size, offset: c.pack.offset, sha256: c.sha256 };
  }

  private chunkLength(node: FileNode, index: number): number {
    const size = this.pieceSize(node);
    return Math.min(size, node.size - index * size);
  }

  /** v2 content is cached under its own sha256 (the chunk's for large files); v1 under its key and ETag. */
  private blobName(node: FileNode, index: number): string {
    const c = node.content;
    return c.format === 2 ? pieceSha(c, index) : blobName(this.opts.store.bucket, c.key, c.etag, index);
  }

  /** What a cached piece must hash to, when known. */
  private expectedSha(node: FileNode, index: number): string | undefined {
    const c = node.content;
    if (c.format === 2) return pieceSha(c, index);
    return node.size <= this.chunkSize ? c.sha256 : undefined;
  }

  private fetchChunk(node: FileNode, index: number, why: 'demand' | 'readahead'): Promise<Buffer> {
    const name = this.blobName(node, index);
    const running = this.inflight.get(name);
    if (running) return running;
    const p = this.download(node, index, why).then((data) => {
      void this.opts.cache.put(name, data);
      return data;
    }).finally(() => this.inflight.delete(name));
    this.inflight.set(name, p);
    return p;
  }

  private async download(node: FileNode, index: number, why: 'demand' | 'readahead'): Promise<Buffer> {
    const { store, status, metrics, logger } = this.opts;
    const c = node.content;
    status.gate(`s3://${store.bucket}/${c.key}`);
    let body: Buffer;
    try {
      body = c.format === 2
        ? await downloadContent(store, { ...c, size: node.size }, index, (key, detail) => {
          metrics?.errors.inc({ op: 'verify' });
          logger.error({ key, detail, plain: c.plainKey }, 'downloaded content does not match its sha256; not serving it');
        })
        : await downloadPinned(store, { key: c.key, etag: c.etag, size: node.size, sha256: c.sha256 }, index, this.chunkSize);
      status.ok();
    } catch (err) {
      if (isSyncError(err, 'PRECONDITION_FAILED') || isSyncError(err, 'MANIFEST_INVALID')) status.ok();
      else status.failed(err);
      metrics?.errors.inc({ op: 'get' });
      throw err;
    }
    metrics?.s3Gets.inc({ kind: why });
    metrics?.s3GetBytes.inc(body.length);
    return body;
  }
}

/** The FUSE request was answered (deadline) before this read finished; its buffer is no longer ours. */
function abandoned(): Error {
  return new SyncError('ENDPOINT_UNREACHABLE', 'the read was abandoned after its deadline');
}
