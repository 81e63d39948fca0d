/**
 * A failure-injecting ObjectStore wrapper for reliability tests: the real store underneath, with
 * scripted errors and latency on chosen operations.
 */
import { SyncError, type ObjectStore } from '@workspace-sync/shared';

export type Op = 'get' | 'head' | 'put' | 'upload' | 'copy' | 'deleteMany' | 'list';

export interface FaultPlan {
  /** Return an error to throw for this call, or undefined to let it through. */
  fail?: (op: Op, key: string, callIndex: number) => Error | undefined;
  latencyMs?: number;
}

export interface FaultyStore extends ObjectStore {
  calls: Array<{ op: Op; key: string }>;
  plan: FaultPlan;
}

export function unreachable(): SyncError {
  return new SyncError('ENDPOINT_UNREACHABLE', 'injected: cannot reach S3 endpoint', { hint: 'injected fault' });
}

export function withFaults(inner: ObjectStore, plan: FaultPlan = {}): FaultyStore {
  const calls: Array<{ op: Op; key: string }> = [];
  const gate = async (op: Op, key: string) => {
    calls.push({ op, key });
    if (plan.latencyMs) await new Promise((r) => setTimeout(r, plan.latencyMs));
    const err = store.plan.fail?.(op, key, calls.length - 1);
    if (err) throw err;
  };
  const store: FaultyStore = {
    calls,
    plan,
    bucket: inner.bucket,
    endpointLabel: inner.endpointLabel,
    async get(key, opts) { await gate('get', key); return inner.get(key, opts); },
    async head(key) { await gate('head', key); return inner.head(key); },
    async put(key, body, opts) { await gate('put', key); return inner.put(key, body, opts); },
    async upload(key, body, opts) { await gate('upload', key); return inner.upload(key, body, opts); },
    async copy(src, dst, opts) { await gate('copy', dst); return inner.copy(src, dst, opts); },
    async deleteMany(keys) { await gate('deleteMany', keys[0] ?? ''); return inner.deleteMany(keys); },
    async *list(prefix, opts) { await gate('list', prefix); yield* inner.list(prefix, opts); },
    async *listUploads(prefix) { await gate('list', prefix); yield* inner.listUploads(prefix); },
    async abortUpload(key, uploadId) { await gate('deleteMany', key); return inner.abortUpload(key, uploadId); },
    headBucket: () => inner.headBucket(),
    createBucket: () => inner.createBucket(),
  };
  return store;
}
