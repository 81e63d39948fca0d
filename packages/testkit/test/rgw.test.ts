import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createObjectStore, type ObjectStore, type S3Settings } from '@workspace-sync/shared';
import { startTestS3 } from '../src/backend.js';
import { startRgw } from '../src/rgw.js';
import type { EmbeddedS3 } from '../src/spawn.js';

describe('startRgw without a cluster', () => {
  it('says how to start one', async () => {
    await expect(startRgw({ dir: '/nonexistent/wsync-rgw' })).rejects.toThrow(/scripts\/rgw\.sh start \/nonexistent\/wsync-rgw/);
  });
});

describe('startTestS3', () => {
  it('rejects an unknown S3_BACKEND instead of silently using the embedded server', async () => {
    const saved = process.env.S3_BACKEND;
    process.env.S3_BACKEND = 'RGW';
    try {
      await expect(startTestS3()).rejects.toThrow('S3_BACKEND must be embedded or rgw, not "RGW"');
    } finally {
      if (saved === undefined) delete process.env.S3_BACKEND;
      else process.env.S3_BACKEND = saved;
    }
  });
});

// Needs the cluster from `scripts/rgw.sh start`; the RGW tier runs with S3_BACKEND=rgw.
describe.skipIf(process.env.S3_BACKEND !== 'rgw')('Ceph RGW through ObjectStore', () => {
  let s3: EmbeddedS3;
  let store: ObjectStore;
  const settings = (): S3Settings => ({ endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true });

  beforeAll(async () => {
    s3 = await startRgw();
    // This file's own process: the SDK reads credentials from the environment.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY });
    store = createObjectStore(settings());
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('creates a fresh bucket per call', async () => {
    expect(s3.bucket).toMatch(/^t-[0-9a-f]{12}$/);
    await store.headBucket();
    const entries = [];
    for await (const e of store.list('')) entries.push(e);
    expect(entries).toEqual([]);
  });

  it('puts and gets with metadata, content type and conditions', async () => {
    const body = Buffer.from('hello rgw\n');
    const { etag } = await store.put('a/hello.txt', body, { contentType: 'text/plain', metadata: { sha256: 'abc', mode: '644' } });
    expect(etag).toBe(createHash('md5').update(body).digest('hex'));

    const got = await store.get('a/hello.txt');
    expect(got.notModified).toBe(false);
    if (got.notModified) return;
    expect(got.body).toEqual(body);
    expect(got.metadata).toEqual({ sha256: 'abc', mode: '644' });
    expect(got.contentType).toBe('text/plain');

    expect(await store.get('a/hello.txt', { ifNoneMatch: etag })).toEqual({ notModified: true, etag });
    const matched = await store.get('a/hello.txt', { ifMatch: etag });
    expect(matched.notModified ? undefined : matched.body).toEqual(body);
    await expect(store.get('a/hello.txt', { ifMatch: '0'.repeat(32) })).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' });

    expect(await store.head('a/missing')).toBeUndefined();
    await expect(store.get('a/missing')).rejects.toMatchObject({ code: 'OBJECT_NOT_FOUND' });
  });

  it('serves byte ranges with the total size', async () => {
    const body = randomBytes(10_000);
    await store.put('range.bin', body);
    const got = await store.get('range.bin', { range: { start: 100, end: 1099 } });
    if (got.notModified) throw new Error('unexpected 304');
    expect(got.body).toEqual(body.subarray(100, 1100));
    expect(got.size).toBe(10_000);
  });

  const oddKeys = ['with space/a b.txt', 'ünïcödé/文件 ✓.txt', '100%/x+y=z.txt', `quote"s/it's.txt`, 'amp&/q?#.txt'];

  it('copies keys with spaces, unicode, %, +, quotes', async () => {
    for (const [i, key] of oddKeys.entries()) {
      const body = Buffer.from(`body ${i}`);
      await store.put(key, body, { metadata: { n: String(i) } });
      const { etag } = await store.copy(key, `copy/${key}`);
      expect(etag).toBe(createHash('md5').update(body).digest('hex'));
      const got = await store.get(`copy/${key}`);
      if (got.notModified) throw new Error('unexpected 304');
      expect(got.body).toEqual(body);
      expect(got.metadata).toEqual({ n: String(i) });
    }
    await store.copy(oddKeys[0]!, 'copy/replaced', { metadata: { replaced: 'yes' } });
    expect((await store.head('copy/replaced'))?.metadata).toEqual({ replaced: 'yes' });
  });

  it('deletes many keys, missing ones included', async () => {
    const keys = oddKeys.map((k) => `copy/${k}`);
    const { failed } = await store.deleteMany([...keys, 'never/existed']);
    expect(failed).toEqual([]);
    for (const key of keys) expect(await store.head(key)).toBeUndefined();
    expect(await store.head(oddKeys[0]!)).toBeDefined();
  });

  it('uploads multipart and reports the real ETag (RGW sends an empty one on complete)', async () => {
    const MB = 1024 * 1024;
    const body = randomBytes(12 * MB);
    const { etag } = await store.upload('big/12mb.bin', Readable.from([body.subarray(0, 7 * MB), body.subarray(7 * MB)]), {
      partSize: 5 * MB, contentType: 'application/octet-stream', metadata: { size: String(body.length) },
    });
    expect(etag).toMatch(/^[0-9a-f]{32}-3$/);
    const head = await store.head('big/12mb.bin');
    expect(head).toMatchObject({ etag, size: body.length, metadata: { size: String(body.length) } });
    const got = await store.get('big/12mb.bin');
    if (got.notModified) throw new Error('unexpected 304');
    expect(createHash('sha256').update(got.body).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('lists over several pages in UTF-8 byte order, with delimiter and startAfter', async () => {
    const keys = Array.from({ length: 1050 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, Buffer.from(k))));
    }
    const listed: string[] = [];
    for await (const e of store.list('many/')) if ('key' in e) listed.push(e.key);
    expect(listed).toEqual(keys);

    await store.put('order/Z', Buffer.from('1'));
    await store.put('order/a', Buffer.from('1'));
    await store.put('order/é', Buffer.from('1'));
    await store.put('order/~', Buffer.from('1'));
    const ordered: string[] = [];
    for await (const e of store.list('order/')) if ('key' in e) ordered.push(e.key);
    expect(ordered).toEqual(['order/Z', 'order/a', 'order/~', 'order/é']);

    const top: string[] = [];
    for await (const e of store.list('', { delimiter: '/' })) top.push('key' in e ? e.key : e.commonPrefix);
    expect(top).toEqual(expect.arrayContaining(['many/', 'order/', 'range.bin']));
    expect(top).not.toContain('many/0000');

    const after: string[] = [];
    for await (const e of store.list('many/', { startAfter: 'many/1047' })) if ('key' in e) after.push(e.key);
    expect(after).toEqual(['many/1048', 'many/1049']);
  });

  it('is unreachable while stopped and serves the same data once started again', async () => {
    await store.put('outage/kept.txt', Buffer.from('kept'));
    const once = createObjectStore({ ...settings(), maxAttempts: 1 });
    await s3.stop();
    expect(s3.running).toBe(false);
    await expect(once.headBucket()).rejects.toMatchObject({ code: 'ENDPOINT_UNREACHABLE' });
    await s3.start();
    expect(s3.running).toBe(true);
    const got = await once.get('outage/kept.txt');
    expect(got.notModified ? undefined : got.body.toString()).toBe('kept');
  });

  it('is what startTestS3 returns under S3_BACKEND=rgw', async () => {
    const viaSelector = await startTestS3({ dir: '/not/used/by/rgw' });
    try {
      expect(viaSelector.bucket).toMatch(/^t-[0-9a-f]{12}$/);
      expect(viaSelector.env.AWS_ACCESS_KEY_ID).toBe(s3.env.AWS_ACCESS_KEY_ID);
      await createObjectStore({ ...settings(), endpoint: viaSelector.endpoint, bucket: viaSelector.bucket }).headBucket();
    } finally {
      await viaSelector.stop();
    }
  });

  it('gives each caller its own gateway and bucket: one outage leaves the other serving', async () => {
    const other = await startRgw();
    try {
      expect(other.bucket).not.toBe(s3.bucket);
      expect(other.port).not.toBe(s3.port);
      const otherStore = createObjectStore({ ...settings(), endpoint: other.endpoint, bucket: other.bucket });
      await otherStore.put('x', Buffer.from('y'));
      expect(await store.head('x')).toBeUndefined();
      await other.stop();
      expect((await store.head('outage/kept.txt'))?.size).toBe(4);
    } finally {
      await other.stop();
    }
  });
});
