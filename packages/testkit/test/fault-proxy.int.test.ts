// The fault proxy in front of the embedded S3 server: each fault as a client over real sockets sees it.
import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createObjectStore, type ObjectStore, type S3Settings } from '@workspace-sync/shared';
import { startFaultProxy, type FaultProxy } from '../src/fault-proxy.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../src/spawn.js';

let s3: EmbeddedS3;
let proxy: FaultProxy;

const storeVia = (over: Partial<S3Settings> = {}): ObjectStore => createObjectStore({
  endpoint: proxy.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxAttempts: 1, requestTimeoutMs: 5_000,
  credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! }, ...over,
});

beforeAll(async () => {
  s3 = await startEmbeddedS3();
  proxy = await startFaultProxy(s3.endpoint);
  await storeVia().put('big.bin', Buffer.alloc(256 * 1024, 7));
  proxy.reset();
});

afterEach(() => {
  proxy.fault({ kind: 'pass' });
  proxy.latency(0);
  proxy.reset();
});

afterAll(async () => {
  await proxy?.close();
  await s3?.stop();
  if (s3) rmSync(s3.dir, { recursive: true, force: true });
});

describe('fault proxy', () => {
  it('passes requests through unchanged (signatures verify upstream) and counts them', async () => {
    const store = storeVia();
    await store.put('dir/a file+x.txt', Buffer.from('hello'));
    const got = await store.get('dir/a file+x.txt');
    expect(got.notModified ? undefined : got.body.toString()).toBe('hello');
    expect(await store.head('dir/missing')).toBeUndefined();
    expect(proxy.requests.map((r) => [r.method, r.status])).toEqual([['PUT', 200], ['GET', 200], ['HEAD', 404]]);
    expect(proxy.count('PUT', 'dir/a file+x.txt')).toBe(1);
    expect(proxy.count('GET')).toBe(1);
  });

  it('answers 5xx to matching requests only, for a number of times', async () => {
    proxy.fault({ kind: 'error', status: 503, match: { method: 'PUT', path: '/only-this' } });
    const store = storeVia();
    await expect(store.put('only-this.txt', Buffer.from('x'))).rejects.toMatchObject({ code: 'S3_ERROR', message: expect.stringMatching(/SlowDown.*503/) });
    await store.put('other.txt', Buffer.from('x'));
    expect(await store.head('only-this.txt')).toBeUndefined();

    proxy.fault({ kind: 'error', status: 500, times: 2 });
    proxy.reset();
    await storeVia({ maxAttempts: 3 }).put('retried.txt', Buffer.from('x'));
    expect(proxy.requests.map((r) => [r.method, r.status, r.fault])).toEqual([['PUT', 500, 'error'], ['PUT', 500, 'error'], ['PUT', 200, undefined]]);
  });

  it('resets connections: requests on open ones and new connections alike', async () => {
    const store = storeVia();
    await store.head('big.bin'); // a keep-alive connection is open now
    proxy.fault({ kind: 'reset' });
    await expect(store.head('big.bin')).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
    await expect(storeVia().get('big.bin')).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
    proxy.fault({ kind: 'pass' });
    expect((await store.head('big.bin'))?.size).toBe(256 * 1024);
  });

  it('hangs: accepts, reads, never answers, until the client gives up', async () => {
    proxy.fault({ kind: 'hang', match: { method: 'GET' } });
    const store = storeVia({ requestTimeoutMs: 300 });
    await expect(store.get('big.bin')).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
    expect(proxy.requests.at(-1)).toMatchObject({ method: 'GET', status: 0, fault: 'hang' });
    // Other requests still pass.
    expect((await store.head('big.bin'))?.size).toBe(256 * 1024);
  });

  it('cuts response bodies after N bytes', async () => {
    proxy.fault({ kind: 'truncate', afterBytes: 1000, match: { path: 'big.bin' } });
    const received = await new Promise<{ status: number; bytes: number; complete: boolean }>((resolve, reject) => {
      // Unauthenticated: the upstream's 403 body is shorter than the cut, so it arrives whole.
      const req = request(`${proxy.endpoint}/${s3.bucket}/big.bin`, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => { bytes += c.length; });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(received).toMatchObject({ status: 403, complete: true });
    // A body that ends before its Content-Length is a broken connection to the client.
    await expect(storeVia().get('big.bin')).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
    expect(proxy.requests.at(-1)).toMatchObject({ method: 'GET', status: 200, fault: 'truncate' });
  });

  it('adds latency to every request', async () => {
    proxy.latency(250);
    const t0 = performance.now();
    await storeVia().head('big.bin');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240);
  });

  it('counts body bytes each way, latency or not', async () => {
    proxy.latency(50);
    const store = storeVia();
    await store.put('counted.bin', Buffer.alloc(70_000, 1));
    await store.get('big.bin');
    await store.get('big.bin', { range: { start: 0, end: 99 } });
    expect(proxy.requests.map((r) => [r.method, r.bytesIn, r.bytesOut])).toEqual([['PUT', 70_000, 0], ['GET', 0, 256 * 1024], ['GET', 0, 100]]);
    proxy.fault({ kind: 'truncate', afterBytes: 1000, match: { path: 'big.bin' } });
    await expect(store.get('big.bin')).rejects.toThrow();
    expect(proxy.requests.at(-1)?.bytesOut).toBe(1000);
  });
});
