/**
 * Manifest decoding (gunzip, JSON, schema validation) off the main thread. Validation costs about
 * 8 µs per entry: a 50k-file workspace would stall every FUSE call for 0.4 s on each push. The
 * worker validates and hands back the decoded manifest (structured clone: a fraction of that on
 * this thread). Small manifests are decoded inline; the worker round trip is not worth it.
 */
import { Worker } from 'node:worker_threads';
import { decodeManifest, SyncError, type ErrorCode, type Manifest } from '@workspace-sync/shared';
import { workerUrl } from './worker-url.js';

export type DecodeFn = (body: Buffer, where: string) => Promise<Manifest>;

export const decodeInline: DecodeFn = async (body, where) => decodeManifest(body, where);

export interface DecodeRequest { id: number; body: Uint8Array; where: string }
export type DecodeReply =
  | { id: number; manifest: Manifest }
  | { id: number; error: { code: ErrorCode | undefined; message: string; hint: string | undefined } };

const INLINE_MAX_BYTES = 16 * 1024;
const WORKER_URL = workerUrl('manifest-worker.js');

export class ManifestDecoder {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (m: Manifest) => void; reject: (e: Error) => void }>();

  readonly decode: DecodeFn = (body, where) => {
    if (body.length <= INLINE_MAX_BYTES) return decodeInline(body, where);
    const id = ++this.nextId;
    return new Promise<Manifest>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.ensureWorker().postMessage({ id, body, where } satisfies DecodeRequest);
    });
  };

  /** Starts the worker ahead of the first large manifest, so the first `ls` does not wait for it to load. */
  start(): void {
    this.ensureWorker();
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new Error('manifest decoder closed'));
    await w?.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(WORKER_URL);
    worker.unref();
    worker.on('message', (reply: DecodeReply) => {
      const waiter = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (!waiter) return;
      if ('manifest' in reply) waiter.resolve(reply.manifest);
      else if (reply.error.code) waiter.reject(new SyncError(reply.error.code, reply.error.message, { hint: reply.error.hint }));
      else waiter.reject(new Error(reply.error.message));
    });
    worker.on('error', (err) => {
      if (this.worker === worker) this.worker = undefined;
      this.failAll(err);
    });
    this.worker = worker;
    return worker;
  }

  private failAll(err: Error): void {
    for (const { reject } of this.waiting.values()) reject(err);
    this.waiting.clear();
  }
}
