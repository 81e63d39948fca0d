// What a tool costs on the wire and in the bucket: requests and body bytes counted by the testkit
// fault proxy (which can also add latency), and the objects a prefix holds, by the kind of object
// the storage format (docs/design.md) says each key is.
import { createObjectStore } from '@workspace-sync/shared';
import { startFaultProxy } from '@workspace-sync/testkit';

/** The kind of object a key (or a proxy's URL-decoded path) names. */
export function keyKind(key) {
  if (/^\/[^/?]+\/?\?delete/.test(key)) return 'delete-many';
  // A request on the bucket itself: a listing (v1 or v2), or the bucket's HEAD.
  if (/[?&]list-type=/.test(key) || /^\/[^/?]+\/?(\?|$)/.test(key)) return 'list';
  if (/[?&](uploadId|uploads)/.test(key)) return 'multipart';
  if (key.includes('.sync/.heads/')) return 'head';
  if (/\.sync\/[^/]+\/commits\//.test(key)) return 'commit';
  if (/\.sync\/[^/]+\/trees\//.test(key)) return 'tree';
  if (/\.sync\/[^/]+\/packs\//.test(key)) return 'pack';
  if (/\.sync\/[^/]+\/blobs\//.test(key)) return 'blob';
  if (/\.sync\/[^/]+\/manifest/.test(key)) return 'manifest';
  if (key.includes('.sync/')) return 'sync-other';
  return 'plain';
}

/** Requests, bytes each way, and per method and kind, of a list of the proxy's WireRequests. */
export function summarize(requests) {
  const out = { requests: requests.length, bytesUp: 0, bytesDown: 0, byMethod: {}, byKind: {} };
  for (const r of requests) {
    out.bytesUp += r.bytesIn;
    out.bytesDown += r.bytesOut;
    out.byMethod[r.method] = (out.byMethod[r.method] ?? 0) + 1;
    const k = `${r.method} ${keyKind(r.path)}`;
    const e = (out.byKind[k] ??= { requests: 0, bytesUp: 0, bytesDown: 0 });
    e.requests++;
    e.bytesUp += r.bytesIn;
    e.bytesDown += r.bytesOut;
  }
  return out;
}

/** A counting (and, on demand, delaying) proxy in front of `endpoint`, with windows over its requests. */
export async function startWire(endpoint) {
  const proxy = await startFaultProxy(endpoint);
  return {
    endpoint: proxy.endpoint,
    proxy,
    latency: (ms) => proxy.latency(ms),
    /** A position in the request log; `since(mark)` summarizes what came after it. */
    mark: () => proxy.requests.length,
    since: (mark) => summarize(proxy.requests.slice(mark)),
    /** Drops the log (long lanes would otherwise keep every request of a 100k-file push). */
    clear: () => proxy.reset(),
    close: () => proxy.close(),
  };
}

export function storeFor(s3, endpoint = s3.endpoint, maxSockets = 32) {
  return createObjectStore({
    endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxSockets,
    credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY },
  });
}

/** Objects and bytes stored under `prefix`, in all and by kind. */
export async function stored(store, prefix) {
  const out = { objects: 0, bytes: 0, byKind: {} };
  for await (const e of store.list(prefix)) {
    if (!('key' in e)) continue;
    out.objects++;
    out.bytes += e.size;
    const k = (out.byKind[keyKind(e.key)] ??= { objects: 0, bytes: 0 });
    k.objects++;
    k.bytes += e.size;
  }
  return out;
}

export const mib = (bytes) => bytes / 2 ** 20;
export const kib = (bytes) => bytes / 1024;
