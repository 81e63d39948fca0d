/**
 * Format-v2 directories, loaded when first used. A tree ref names a tree pack, an offset, a length
 * and the sha256 of those bytes. Tree packs are immutable and small: each is fetched whole, kept in
 * memory (a bounded LRU) and on disk in the content cache (so a restart, even with S3 down, has
 * them), and every tree object cut from one is checked against its ref before it is decoded. A
 * copy on disk that fails the check is dropped and the pack fetched again; one from S3 that fails
 * is a damaged bucket (EIO, logged once per object).
 *
 * Decoded directories live in an LRU bounded by an estimate of their size, keyed by the tree's
 * sha256: an unchanged subtree is decoded once for every generation, snapshot and workspace that
 * holds it, and a mount of many workspaces holds only what is being used.
 *
 * Concurrency rules: one fetch per pack and one decode per tree at a time (single-flight).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  decodeSplit, decodeTreeObject, isSyncError, MAX_TREE_PACK_BYTES, sha256Hex, SyncError, treePackKey, type Logger, type ObjectStore,
  type TreeReader, type TreeRef,
} from '@workspace-sync/shared';
import { CompactTree } from './compact-tree.js';
import type { ContentCache } from './content-cache.js';
import type { MountMetrics } from './metrics.js';
import type { RemoteStatus } from './remote-status.js';

/** A directory's entries, sorted by name in UTF-8 byte order, held compactly. */
export type DecodedTree = CompactTree;

export interface TreeStoreOptions {
  store: ObjectStore;
  prefix: string;
  cache: ContentCache;
  status: RemoteStatus;
  logger: Logger;
  metrics?: MountMetrics | undefined;
  /** Estimated bytes of decoded directories kept in memory. */
  maxDecodedBytes?: number;
  /** Bytes of tree packs kept in memory. */
  maxPackBytes?: number;
}

/** Preloads (subdirectories of a listed directory) running at once. */
const PRELOAD_CONCURRENCY = 16;

export class TreeStore {
  private readonly decoded: LRUCache<string, DecodedTree>;
  private readonly packs: LRUCache<string, Buffer>;
  private readonly treeFlights = new Map<string, Promise<DecodedTree>>();
  private readonly packFlights = new Map<string, Promise<{ body: Buffer; local: boolean }>>();
  private readonly reported = new Set<string>();
  private preloading = 0;

  constructor(private readonly opts: TreeStoreOptions) {
    this.decoded = new LRUCache<string, DecodedTree>({
      maxSize: opts.maxDecodedBytes ?? 48 * 1024 * 1024, sizeCalculation: (t) => t.bytes,
    });
    this.packs = new LRUCache<string, Buffer>({
      maxSize: opts.maxPackBytes ?? 16 * 1024 * 1024, sizeCalculation: (b) => Math.max(1, b.length),
    });
  }

  /** Decoded directories held in memory. */
  get size(): number {
    return this.decoded.size;
  }

  /** The directory object `ref` names (in workspace `ws`), verified and decoded. */
  load(ws: string, ref: TreeRef): Promise<DecodedTree> {
    const hit = this.decoded.get(ref[3]);
    if (hit) return Promise.resolve(hit);
    let flight = this.treeFlights.get(ref[3]);
    if (!flight) {
      flight = this.fetchTree(ws, ref).then((tree) => {
        this.decoded.set(ref[3], tree);
        this.opts.metrics?.treeLoads.inc();
        this.opts.metrics?.treesInMemory.set(this.decoded.size);
        return tree;
      }).finally(() => this.treeFlights.delete(ref[3]));
      this.treeFlights.set(ref[3], flight);
    }
    return flight;
  }

  /** The directory `ref` names if it is decoded in memory now. */
  peek(ref: TreeRef): DecodedTree | undefined {
    return this.decoded.get(ref[3]);
  }

  /** The shared tree walkers (walkTree, diffTrees) over this store, for workspace `ws`. */
  reader(ws: string): TreeReader {
    const readWithParts = async (ref: TreeRef) => ({ entries: (await this.load(ws, ref)).entries(), parts: [] });
    return { read: async (ref) => (await readWithParts(ref)).entries, readWithParts, fetches: 0 };
  }

  /** Starts loading a directory nobody waits for yet (bounded; failures are left to the next real use). */
  preload(ws: string, ref: TreeRef): void {
    if (this.decoded.has(ref[3]) || this.treeFlights.has(ref[3]) || this.preloading >= PRELOAD_CONCURRENCY || this.opts.status.down) return;
    this.preloading++;
    this.load(ws, ref).catch(() => undefined).finally(() => { this.preloading--; });
  }

  /** A directory: one tree object, or a split directory's index and then its parts (in parallel). */
  private async fetchTree(ws: string, ref: TreeRef): Promise<DecodedTree> {
    const { bytes, where } = await this.fetchObject(ws, ref);
    const obj = decodeTreeObject(bytes, where);
    if (obj.entries) return new CompactTree(obj.entries);
    const parts = await Promise.all(obj.parts.map((p) => this.fetchObject(ws, p)));
    return new CompactTree(decodeSplit(parts, where));
  }

  /** The bytes of the tree object `ref` names, verified against its sha256. */
  private async fetchObject(ws: string, ref: TreeRef): Promise<{ bytes: Buffer; where: string }> {
    const [name, offset, length, sha256] = ref;
    const key = treePackKey(this.opts.prefix, ws, name);
    for (let attempt = 0; ; attempt++) {
      const { body, local } = await this.pack(key, attempt > 0);
      const bytes = offset + length <= body.length ? body.subarray(offset, offset + length) : undefined;
      if (bytes && sha256Hex(bytes) === sha256) return { bytes, where: `s3://${this.opts.store.bucket}/${key}@${offset}` };
      if (local && attempt === 0) {
        // A damaged copy in memory or on disk: never decoded, fetched again.
        this.opts.logger.warn({ key, offset }, 'cached tree pack does not match the tree ref; fetching it again');
        this.packs.delete(key);
        this.opts.cache.drop(packCacheName(this.opts.store.bucket, key));
        continue;
      }
      const where = `s3://${this.opts.store.bucket}/${key}@${offset}`;
      if (!this.reported.has(where)) {
        this.reported.add(where);
        this.opts.logger.error({ key, offset, length, sha256 }, 'tree object does not match its sha256; the directory cannot be served');
      }
      throw new SyncError('MANIFEST_INVALID', `tree object ${where} does not match its sha256`, {
        hint: 'the bucket holds a damaged pack; push the workspace again to write a fresh commit',
      });
    }
  }

  private async pack(key: string, remote: boolean): Promise<{ body: Buffer; local: boolean }> {
    if (!remote) {
      const inMemory = this.packs.get(key);
      if (inMemory) return { body: inMemory, local: true };
    }
    let flight = this.packFlights.get(key);
    if (!flight) {
      flight = this.fetchPack(key, remote).finally(() => this.packFlights.delete(key));
      this.packFlights.set(key, flight);
    }
    return flight;
  }

  private async fetchPack(key: string, remote: boolean): Promise<{ body: Buffer; local: boolean }> {
    const { store, cache, status, metrics } = this.opts;
    const name = packCacheName(store.bucket, key);
    if (!remote) {
      const onDisk = cache.readWhole(name);
      if (onDisk) {
        this.packs.set(key, onDisk);
        return { body: onDisk, local: true };
      }
    }
    status.gate(`s3://${store.bucket}/${key}`);
    let body: Buffer;
    try {
      const res = await store.get(key, { maxBytes: MAX_TREE_PACK_BYTES });
      if (res.notModified) throw new Error(`GET s3://${store.bucket}/${key} answered 304 without If-None-Match`);
      body = res.body;
      status.ok();
    } catch (err) {
      if (isSyncError(err, 'OBJECT_NOT_FOUND')) status.ok();
      else status.failed(err);
      metrics?.errors.inc({ op: 'tree' });
      throw err;
    }
    metrics?.s3Gets.inc({ kind: 'tree' });
    this.packs.set(key, body);
    void cache.put(name, body);
    return { body, local: false };
  }
}

/** Cache name of a tree pack: hashed from bucket and key, so nothing in a key reaches a file name. */
export function packCacheName(bucket: string, key: string): string {
  return createHash('sha256').update(`tree-pack\0${bucket}\0${key}`).digest('hex');
}
