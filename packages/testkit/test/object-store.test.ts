// ObjectStore against the test server over HTTP (the embedded server, or Ceph RGW in the RGW tier): the PUT path
// that bypasses the SDK's middleware must store exactly what the SDK would, and fail the same way.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createObjectStore, isSyncError, type ObjectStore, type S3Settings } from '@workspace-sync/shared';
import { startTestS3 } from '../src/backend.js';
import type { EmbeddedS3 } from '../src/spawn.js';

let s3: EmbeddedS3;
let store: ObjectStore;
const settings = (over: Partial<S3Settings> = {}): S3Settings => ({
  endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxAttempts: 2, requestTimeoutMs: 5_000,
  credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! }, ...over,
});

beforeAll(async () => {
  s3 = await startTestS3();
  store = createObjectStore(settings());
});
afterAll(async () => {
  await s3?.stop();
});

describe('ObjectStore.put on a custom endpoint', () => {
  it('stores the bytes, content type and metadata, and returns the ETag a HEAD shows', async () => {
    const body = randomBytes(10_000);
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = 'direct/a file with spaces, +plus, %percent, "quotes", ünïcödé & (parens)!*~.bin';
    const { etag } = await store.put(key, body, {
      contentType: 'text/x-typescript', metadata: { sha256, mode: '33188' }, cacheControl: 'no-cache', sha256,
    });
    expect(etag).toMatch(/^[0-9a-f]{32}$/);
    const got = await store.get(key);
    if (got.notModified) throw new Error('unexpected 304');
    expect(got.body.equals(body)).toBe(true);
    expect(got.etag).toBe(etag);
    expect(got.contentType).toBe('text/x-typescript');
    expect(got.metadata).toMatchObject({ sha256, mode: '33188' });
    const keys: string[] = [];
    for await (const e of store.list('direct/')) if ('key' in e) keys.push(e.key);
    expect(keys).toEqual([key]);
  });

  it('hashes the body itself when the caller has no sha256, and stores an empty body', async () => {
    await store.put('direct/nohash.txt', Buffer.from('hello'));
    await store.put('direct/empty', Buffer.alloc(0));
    const a = await store.get('direct/nohash.txt');
    const b = await store.get('direct/empty');
    expect(!a.notModified && a.body.toString()).toBe('hello');
    expect(!b.notModified && b.body.length).toBe(0);
  });

  it('refuses a body that does not match the sha256 it is signed with', async () => {
    const err = await store.put('direct/mismatch', Buffer.from('abc'), { sha256: '0'.repeat(64) }).catch((e: unknown) => e);
    expect(isSyncError(err)).toBe(true);
    expect(await store.head('direct/mismatch')).toBeUndefined();
  });

  it('fails with the errors users act on: bad credentials, missing bucket, unreachable endpoint', async () => {
    const bad = createObjectStore(settings({ credentials: { accessKeyId: 'NOSUCHKEYID', secretAccessKey: 'wrong-secret' } }));
    await expect(bad.put('direct/x', Buffer.from('x'))).rejects.toMatchObject({ code: 'BAD_CREDENTIALS' });
    const nobucket = createObjectStore(settings({ bucket: 'no-such-bucket-here' }));
    await expect(nobucket.put('direct/x', Buffer.from('x'))).rejects.toMatchObject({ code: 'BUCKET_NOT_FOUND' });
    const down = createObjectStore(settings({ endpoint: 'http://127.0.0.1:9' }));
    await expect(down.put('direct/x', Buffer.from('x'))).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
  });
});

describe('ObjectStore.get with a size bound', () => {
  it('refuses an object larger than its format allows before reading it, and reads one within it', async () => {
    const body = randomBytes(4096);
    await store.put('bounded/obj', body);
    const refused = await store.get('bounded/obj', { maxBytes: 4095 }).catch((e: unknown) => e);
    expect(isSyncError(refused, 'MANIFEST_INVALID')).toBe(true);
    expect((refused as Error).message).toMatch(/4096 bytes, more than the 4095/);
    const ok = await store.get('bounded/obj', { maxBytes: 4096 });
    expect(!ok.notModified && ok.body.equals(body)).toBe(true);
    // The connection is still good for the next request.
    expect((await store.head('bounded/obj'))?.size).toBe(4096);
  });
});

describe('ObjectStore.get into a buffer of the caller', () => {
  it('reads into the buffer given when it is long enough, and into a new one when it is not', async () => {
    const body = randomBytes(5000);
    await store.put('into/obj', body);
    const mine = Buffer.alloc(8000, 7);
    const asked: number[] = [];
    const res = await store.get('into/obj', { into: (length) => { asked.push(length); return mine; } });
    if (res.notModified) throw new Error('304');
    expect(asked).toEqual([5000]);
    expect(res.body.equals(body)).toBe(true);
    expect(res.body.buffer).toBe(mine.buffer);
    // The rest of the buffer is left alone.
    expect(mine.subarray(5000).every((b) => b === 7)).toBe(true);
    const short = Buffer.alloc(100);
    const again = await store.get('into/obj', { into: () => short });
    if (again.notModified) throw new Error('304');
    expect(again.body.equals(body)).toBe(true);
    expect(again.body.buffer).not.toBe(short.buffer);
    await store.put('into/empty', Buffer.alloc(0));
    const empty = await store.get('into/empty', { into: () => mine });
    expect(!empty.notModified && empty.body.length).toBe(0);
  });

  it('destroys the answer when the buffer cannot be had, and the next request goes through', async () => {
    await store.put('into/refused', randomBytes(3000));
    const err = await store.get('into/refused', { into: () => { throw new Error('no buffer for you'); } }).catch((e: unknown) => e);
    expect((err as Error).message).toContain('no buffer for you');
    expect((await store.head('into/refused'))?.size).toBe(3000);
  });
});
