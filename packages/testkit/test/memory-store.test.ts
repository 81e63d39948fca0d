// The in-memory ObjectStore on its own; memory-store.int.test.ts holds it against real servers.
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SyncError, httpStatus, type ObjectStore } from '@workspace-sync/shared';
import { createManualClock } from '../src/clock.js';
import { createMemoryStore } from '../src/memory-store.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');
const multipartEtag = (parts: Buffer[]) =>
  `${createHash('md5').update(Buffer.concat(parts.map((p) => createHash('md5').update(p).digest()))).digest('hex')}-${parts.length}`;

async function listAll(store: ObjectStore, prefix: string, opts?: { delimiter?: string; startAfter?: string }): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.list(prefix, opts)) out.push('key' in e ? e.key : `${e.commonPrefix} (prefix)`);
  return out;
}
async function uploadsOf(store: ObjectStore, prefix = '') {
  const out = [];
  for await (const u of store.listUploads(prefix)) out.push(u);
  return out;
}
/** The coded error a call rejects with, and the HTTP status of the S3 error under it. */
async function failure(p: Promise<unknown>): Promise<{ code: string; status: number | undefined }> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof SyncError)) throw new Error(`expected a SyncError, got ${String(err)}`);
  return { code: err.code, status: httpStatus(err.cause) };
}
async function body(store: ObjectStore, key: string, range?: { start: number; end: number }): Promise<Buffer> {
  const got = await store.get(key, { range });
  if (got.notModified) throw new Error('unexpected 304');
  return got.body;
}

describe('createMemoryStore: objects', () => {
  it('stores bytes, metadata (keys lower-cased), content type and an MD5 ETag; lastModified from its clock, in whole seconds', async () => {
    const clock = createManualClock(Date.UTC(2025, 4, 6, 7, 8, 9, 999));
    const store = createMemoryStore({ clock });
    const { etag } = await store.put('a/b.txt', Buffer.from('hello'), { metadata: { Sha256: 'abc', mode: '644' }, contentType: 'text/plain' });
    expect(etag).toBe(md5('hello'));
    const got = await store.get('a/b.txt');
    expect(got).toEqual({
      notModified: false, body: Buffer.from('hello'), etag, size: 5, lastModified: new Date(Date.UTC(2025, 4, 6, 7, 8, 9)),
      metadata: { sha256: 'abc', mode: '644' }, contentType: 'text/plain',
    });
    const { body: _b, notModified: _n, ...info } = got as Extract<typeof got, { notModified: false }>;
    expect(await store.head('a/b.txt')).toEqual(info);
    await store.put('plain', Buffer.alloc(0));
    expect(await store.head('plain')).toMatchObject({ etag: md5(''), size: 0, contentType: 'binary/octet-stream', metadata: {} });
  });

  it('keeps its own copies: neither the buffer put nor the one returned can change what is stored', async () => {
    const store = createMemoryStore();
    const buf = Buffer.from('abc');
    await store.put('k', buf);
    buf.write('xyz');
    (await body(store, 'k')).write('zzz');
    expect((await body(store, 'k')).toString()).toBe('abc');
    store.snapshot().get('k')!.body.write('qqq');
    expect((await body(store, 'k')).toString()).toBe('abc');
  });

  it('answers a missing key with OBJECT_NOT_FOUND (404) on get and copy, undefined on head', async () => {
    const store = createMemoryStore();
    expect(await failure(store.get('nope'))).toEqual({ code: 'OBJECT_NOT_FOUND', status: 404 });
    expect(await failure(store.get('nope', { ifMatch: 'abc' }))).toEqual({ code: 'OBJECT_NOT_FOUND', status: 404 });
    expect(await failure(store.copy('nope', 'x'))).toEqual({ code: 'OBJECT_NOT_FOUND', status: 404 });
    expect(await store.head('nope')).toBeUndefined();
    await expect(store.get('nope')).rejects.toThrow('not found: GET s3://workspaces/nope');
  });

  it('serves inclusive ranges with the whole size, clamps the end, ignores inverted ones and refuses unsatisfiable ones with a 416 S3_ERROR', async () => {
    const store = createMemoryStore();
    await store.put('r', Buffer.from('0123456789'));
    await store.put('empty', Buffer.alloc(0));
    const got = await store.get('r', { range: { start: 2, end: 4 } });
    expect(got.notModified ? undefined : [got.body.toString(), got.size]).toEqual(['234', 10]);
    expect((await body(store, 'r', { start: 8, end: 100 })).toString()).toBe('89');
    expect((await body(store, 'r', { start: 9, end: 9 })).toString()).toBe('9');
    expect(await failure(store.get('r', { range: { start: 10, end: 20 } }))).toEqual({ code: 'S3_ERROR', status: 416 });
    // A range that ends before it starts is no range: S3 serves the whole object.
    expect((await body(store, 'r', { start: 5, end: 3 })).toString()).toBe('0123456789');
    expect(await failure(store.get('empty', { range: { start: 0, end: 0 } }))).toEqual({ code: 'S3_ERROR', status: 416 });
    // Conditions come before the range.
    const { etag } = (await store.head('r'))!;
    expect(await store.get('r', { range: { start: 10, end: 20 }, ifNoneMatch: etag })).toEqual({ notModified: true, etag });
    expect(await failure(store.get('r', { range: { start: 10, end: 20 }, ifMatch: md5('x') }))).toEqual({ code: 'PRECONDITION_FAILED', status: 412 });
  });

  it('answers conditional reads: If-None-Match → notModified, If-Match on another ETag → PRECONDITION_FAILED; quoted ETags too', async () => {
    const store = createMemoryStore();
    const { etag } = await store.put('c', Buffer.from('v1'));
    expect(await store.get('c', { ifNoneMatch: etag })).toEqual({ notModified: true, etag });
    expect(await store.get('c', { ifNoneMatch: `"${etag}"`, range: { start: 0, end: 0 } })).toMatchObject({ notModified: true });
    expect(await store.get('c', { ifNoneMatch: md5('other') })).toMatchObject({ notModified: false, body: Buffer.from('v1') });
    expect(await store.get('c', { ifMatch: etag })).toMatchObject({ notModified: false, body: Buffer.from('v1') });
    expect(await failure(store.get('c', { ifMatch: md5('other') }))).toEqual({ code: 'PRECONDITION_FAILED', status: 412 });
    expect(await failure(store.get('c', { signal: AbortSignal.abort() }))).toEqual({ code: 'S3_ERROR', status: undefined });
  });

  it('makes conditional writes: If-None-Match * only where nothing is, If-Match only onto that ETag', async () => {
    const store = createMemoryStore();
    const { etag } = await store.put('w', Buffer.from('v1'), { ifNoneMatch: '*' });
    expect(await failure(store.put('w', Buffer.from('v2'), { ifNoneMatch: '*' }))).toEqual({ code: 'PRECONDITION_FAILED', status: 412 });
    expect(await failure(store.put('w', Buffer.from('v2'), { ifMatch: md5('v0') }))).toEqual({ code: 'PRECONDITION_FAILED', status: 412 });
    // S3 answers 404 NoSuchKey when nothing is at the key at all.
    expect(await failure(store.put('absent', Buffer.from('v2'), { ifMatch: etag }))).toEqual({ code: 'OBJECT_NOT_FOUND', status: 404 });
    expect((await body(store, 'w')).toString()).toBe('v1');
    expect(await store.put('w', Buffer.from('v2'), { ifMatch: etag })).toEqual({ etag: md5('v2') });
    expect(await store.head('absent')).toBeUndefined();
  });

  it('refuses a body that does not match the sha256 it comes with', async () => {
    const store = createMemoryStore();
    const sha256 = createHash('sha256').update('abc').digest('hex');
    expect(await failure(store.put('s', Buffer.from('abd'), { sha256 }))).toEqual({ code: 'S3_ERROR', status: 400 });
    await store.put('s', Buffer.from('abc'), { sha256 });
    expect(store.objectCount).toBe(1);
  });

  it('refuses what a real server would refuse or mangle: empty or too long keys, metadata that is no plain header', async () => {
    const store = createMemoryStore();
    expect(await failure(store.put('', Buffer.from('x')))).toMatchObject({ code: 'S3_ERROR' });
    await store.put('é'.repeat(512), Buffer.from('x'));
    expect(await failure(store.put(`${'é'.repeat(512)}a`, Buffer.from('x')))).toEqual({ code: 'S3_ERROR', status: 400 });
    for (const metadata of [{ k: 'ü' }, { k: ' padded' }, { 'bad key': 'v' }, { k: 'line\nbreak' }] as Array<Record<string, string>>) {
      expect(await failure(store.put('m', Buffer.from('x'), { metadata }))).toEqual({ code: 'S3_ERROR', status: 400 });
    }
    await store.put('m', Buffer.from('x'), { metadata: { empty: '', k: 'a b=c' } });
    expect((await store.head('m'))?.metadata).toEqual({ empty: '', k: 'a b=c' });
  });

  it('copies: MD5 ETag of the bytes, metadata and content type kept (COPY) or replaced (REPLACE), If-Match on the source', async () => {
    const store = createMemoryStore();
    const { etag } = await store.put('src', Buffer.from('data'), { metadata: { a: '1' }, contentType: 'text/plain', cacheControl: 'no-cache' });
    expect(await store.copy('src', 'kept', { contentType: 'ignored/with-copy' })).toEqual({ etag });
    expect(await store.head('kept')).toMatchObject({ metadata: { a: '1' }, contentType: 'text/plain' });
    expect(store.snapshot().get('kept')?.cacheControl).toBe('no-cache');
    await store.copy('src', 'replaced', { metadata: { B: '2' } });
    expect(await store.head('replaced')).toMatchObject({ metadata: { b: '2' }, contentType: 'binary/octet-stream' });
    expect(store.snapshot().get('replaced')?.cacheControl).toBeUndefined();
    await store.copy('src', 'typed', { metadata: {}, contentType: 'text/x' });
    expect(await store.head('typed')).toMatchObject({ metadata: {}, contentType: 'text/x' });

    expect(await failure(store.copy('src', 'guarded', { sourceIfMatch: md5('old') }))).toEqual({ code: 'PRECONDITION_FAILED', status: 412 });
    expect(await store.head('guarded')).toBeUndefined();
    await store.copy('src', 'guarded', { sourceIfMatch: etag });
    expect((await body(store, 'guarded')).toString()).toBe('data');

    // Onto itself only with new metadata, as S3 has it.
    expect(await failure(store.copy('src', 'src'))).toEqual({ code: 'S3_ERROR', status: 400 });
    await store.copy('src', 'src', { metadata: { c: '3' } });
    expect(await store.head('src')).toMatchObject({ etag, metadata: { c: '3' } });
  });

  it('deletes idempotently, missing keys included', async () => {
    const store = createMemoryStore();
    await store.put('a', Buffer.from('1'));
    await store.put('b', Buffer.from('2'));
    expect(await store.deleteMany(['a', 'missing', 'a'])).toEqual({ failed: [] });
    expect(await store.deleteMany([])).toEqual({ failed: [] });
    expect([...store.snapshot().keys()]).toEqual(['b']);
  });

  it('lets a test write out of band and inspect everything', async () => {
    const store = createMemoryStore({ bucket: 'other' });
    expect(store.bucket).toBe('other');
    const { etag } = store.setObject('x/y', 'by someone else', { metadata: { Who: 'them' } });
    expect(etag).toBe(md5('by someone else'));
    expect(store.objectCount).toBe(1);
    expect(store.snapshot().get('x/y')).toMatchObject({ body: Buffer.from('by someone else'), etag, metadata: { who: 'them' } });
    expect(await failure(store.put('x/y', Buffer.from('mine'), { ifNoneMatch: '*' }))).toMatchObject({ code: 'PRECONDITION_FAILED' });
  });

  it('has a bucket that may not exist yet: BUCKET_NOT_FOUND until createBucket', async () => {
    const store = createMemoryStore({ bucketExists: false });
    expect(await failure(store.headBucket())).toMatchObject({ code: 'BUCKET_NOT_FOUND' });
    expect(await failure(store.put('k', Buffer.from('x')))).toMatchObject({ code: 'BUCKET_NOT_FOUND' });
    await expect(listAll(store, '')).rejects.toMatchObject({ code: 'BUCKET_NOT_FOUND' });
    await store.createBucket();
    await store.createBucket();
    await store.headBucket();
    await store.put('k', Buffer.from('x'));
  });
});

describe('createMemoryStore: listing', () => {
  // '-' (0x2d) < '.' (0x2e) < '/' (0x2f); U+FF5E sorts before U+1F600 in UTF-8 but after it in UTF-16.
  const KEYS = ['d/a', 'd/a-b', 'd/a-b/c', 'd/a.b', 'd/a/b', 'd/b/c/d', 'd/b/e', 'd/c', 'd/\u{ff5e}', 'd/\u{1f600}', 'e'];

  async function seeded() {
    const store = createMemoryStore();
    for (const k of [...KEYS].reverse()) await store.put(k, Buffer.from(k));
    return store;
  }

  it('lists in UTF-8 byte order with sizes and ETags', async () => {
    const store = await seeded();
    expect(await listAll(store, 'd/')).toEqual(KEYS.slice(0, -1));
    const entries = [];
    for await (const e of store.list('e')) entries.push(e);
    expect(entries).toEqual([{ key: 'e', etag: md5('e'), size: 1, lastModified: expect.any(Date) }]);
  });

  it('rolls keys into common prefixes at the delimiter after the prefix, prefixes first on the page', async () => {
    const store = await seeded();
    expect(await listAll(store, 'd/', { delimiter: '/' })).toEqual([
      'd/a-b/ (prefix)', 'd/a/ (prefix)', 'd/b/ (prefix)', 'd/a', 'd/a-b', 'd/a.b', 'd/c', 'd/\u{ff5e}', 'd/\u{1f600}',
    ]);
    expect(await listAll(store, 'd/a', { delimiter: '/' })).toEqual(['d/a-b/ (prefix)', 'd/a/ (prefix)', 'd/a', 'd/a-b', 'd/a.b']);
    expect(await listAll(store, '', { delimiter: '-' })).toEqual(['d/a- (prefix)', 'd/a', 'd/a.b', 'd/a/b', 'd/b/c/d', 'd/b/e', 'd/c', 'd/\u{ff5e}', 'd/\u{1f600}', 'e']);
    // A delimiter of several characters, searched for only after the prefix.
    expect(await listAll(store, 'd/', { delimiter: 'a/' })).toEqual(['d/a/ (prefix)', 'd/a', 'd/a-b', 'd/a-b/c', 'd/a.b', 'd/b/c/d', 'd/b/e', 'd/c', 'd/\u{ff5e}', 'd/\u{1f600}']);
  });

  it('starts after a key; a common prefix at or before StartAfter is passed, one after it is listed', async () => {
    const store = await seeded();
    expect(await listAll(store, 'd/', { startAfter: 'd/a-b' })).toEqual(['d/a-b/c', 'd/a.b', 'd/a/b', 'd/b/c/d', 'd/b/e', 'd/c', 'd/\u{ff5e}', 'd/\u{1f600}']);
    expect(await listAll(store, 'd/', { delimiter: '/', startAfter: 'd/a' })).toEqual(['d/a-b/ (prefix)', 'd/a/ (prefix)', 'd/b/ (prefix)', 'd/a-b', 'd/a.b', 'd/c', 'd/\u{ff5e}', 'd/\u{1f600}']);
    expect(await listAll(store, 'd/', { delimiter: '/', startAfter: 'd/a/' })).toEqual(['d/b/ (prefix)', 'd/c', 'd/\u{ff5e}', 'd/\u{1f600}']);
    expect(await listAll(store, 'd/', { delimiter: '/', startAfter: 'd/b/c' })).toEqual(['d/c', 'd/\u{ff5e}', 'd/\u{1f600}']);
    expect(await listAll(store, 'd/b', { startAfter: 'a' })).toEqual(['d/b/c/d', 'd/b/e']);
    expect(await listAll(store, 'd/b', { startAfter: 'z' })).toEqual([]);
  });

  it('pages by 1000 entries like ListObjectsV2, each page yielding its common prefixes first', async () => {
    const store = createMemoryStore();
    const keys = Array.from({ length: 1500 }, (_, i) => `a${String(i).padStart(4, '0')}`);
    for (const k of [...keys, 'b/x', 'b/y', 'c/z']) store.setObject(k, '');
    const listed = await listAll(store, '', { delimiter: '/' });
    expect(listed).toEqual([...keys.slice(0, 1000), 'b/ (prefix)', 'c/ (prefix)', ...keys.slice(1000)]);
    expect(await listAll(store, '')).toEqual([...keys, 'b/x', 'b/y', 'c/z']);
  });

  it('sees writes made between pages, as a real listing does', async () => {
    const store = createMemoryStore();
    for (let i = 0; i < 1001; i++) store.setObject(`k${String(i).padStart(4, '0')}`, '');
    const seen: string[] = [];
    for await (const e of store.list('')) {
      if ('key' in e) seen.push(e.key);
      if (seen.length === 1) store.setObject('z-late', '');
    }
    expect(seen.at(-1)).toBe('z-late');
  });
});

describe('createMemoryStore: uploads', () => {
  it('sends a body of at most one part as a single PUT (plain MD5 ETag), a larger one in parts ("-N" ETag)', async () => {
    const store = createMemoryStore();
    const part = Buffer.alloc(5 * MiB, 1);
    const small = await store.upload('one', Readable.from([part.subarray(0, 10), part.subarray(10)]), { partSize: 5 * MiB });
    expect(small.etag).toBe(md5(part));
    const empty = await store.upload('empty', Readable.from([]), { partSize: 5 * MiB });
    expect(empty.etag).toBe(md5(''));
    const big = Buffer.concat([part, part, Buffer.from('tail')]);
    const { etag } = await store.upload('three', Readable.from([big.subarray(0, 3), big.subarray(3)]), {
      partSize: 5 * MiB, contentType: 'application/x-tar', metadata: { Sha256: 'x' },
    });
    expect(etag).toBe(multipartEtag([part, part, Buffer.from('tail')]));
    expect(await store.head('three')).toMatchObject({ etag, size: big.length, contentType: 'application/x-tar', metadata: { sha256: 'x' } });
    expect((await body(store, 'three', { start: 5 * MiB - 1, end: 5 * MiB })).equals(Buffer.from([1, 1]))).toBe(true);
    // A copy is a new single-part object, as on AWS.
    expect(await store.copy('three', 'copied')).toEqual({ etag: md5(big) });
    expect(await uploadsOf(store)).toEqual([]);
  });

  it('shows an upload in listUploads from its first part until it completes, and abortUpload drops it', async () => {
    const clock = createManualClock(Date.UTC(2025, 0, 2));
    const store = createMemoryStore({ clock });
    const stream = new PassThrough();
    const done = store.upload('ws/big', stream, { partSize: 5 * MiB });
    stream.write(Buffer.alloc(5 * MiB));
    await new Promise((r) => setImmediate(r));
    expect(await uploadsOf(store)).toEqual([]);
    stream.write(Buffer.from('x'));
    await new Promise((r) => setImmediate(r));
    const [pending, ...rest] = await uploadsOf(store, 'ws/');
    expect(rest).toEqual([]);
    expect(pending).toEqual({ key: 'ws/big', uploadId: expect.any(String), initiated: new Date(Date.UTC(2025, 0, 2)) });
    expect(await uploadsOf(store, 'other/')).toEqual([]);
    expect(await store.head('ws/big')).toBeUndefined();
    stream.end();
    await done;
    expect(await uploadsOf(store)).toEqual([]);
    expect((await store.head('ws/big'))?.size).toBe(5 * MiB + 1);
    await store.abortUpload('ws/big', pending!.uploadId);
    await store.abortUpload('ws/big', 'no-such-upload');
    expect((await store.head('ws/big'))?.size).toBe(5 * MiB + 1);
  });

  it('aborts when the stream fails: nothing lands, nothing is left, and the stream\'s own SyncError comes through', async () => {
    const store = createMemoryStore();
    const stream = new PassThrough();
    const done = store.upload('bad', stream, { partSize: 5 * MiB });
    stream.write(Buffer.alloc(6 * MiB));
    await new Promise((r) => setImmediate(r));
    expect(await uploadsOf(store)).toHaveLength(1);
    stream.destroy(new SyncError('FILE_UNSTABLE', 'bad changed while it was read'));
    await expect(done).rejects.toMatchObject({ code: 'FILE_UNSTABLE', message: 'bad changed while it was read' });
    expect(await uploadsOf(store)).toEqual([]);
    expect(await store.head('bad')).toBeUndefined();
    const plain = new PassThrough();
    const failed = store.upload('bad', plain, { partSize: 5 * MiB });
    plain.destroy(new Error('disk on fire'));
    expect(await failure(failed)).toEqual({ code: 'S3_ERROR', status: undefined });
  });

  it('fails the rest of an upload someone aborted meanwhile', async () => {
    const store = createMemoryStore();
    const stream = new PassThrough();
    const done = store.upload('swept', stream, { partSize: 5 * MiB });
    stream.write(Buffer.alloc(5 * MiB + 1));
    await new Promise((r) => setImmediate(r));
    const [u] = await uploadsOf(store);
    await store.abortUpload('swept', u!.uploadId);
    stream.end(Buffer.alloc(10));
    expect(await failure(done)).toEqual({ code: 'OBJECT_NOT_FOUND', status: 404 });
    expect(await store.head('swept')).toBeUndefined();
  });

  it('honours If-None-Match on both the single PUT and the multipart complete, and refuses parts under 5 MiB as lib-storage does', async () => {
    const store = createMemoryStore();
    await store.put('taken', Buffer.from('first'));
    for (const size of [10, 6 * MiB]) {
      expect(await failure(store.upload('taken', Readable.from([Buffer.alloc(size)]), { partSize: 5 * MiB, ifNoneMatch: '*' })))
        .toEqual({ code: 'PRECONDITION_FAILED', status: 412 });
    }
    expect((await body(store, 'taken')).toString()).toBe('first');
    expect(await uploadsOf(store)).toEqual([]);
    expect(await failure(store.upload('x', Readable.from([Buffer.from('x')]), { partSize: 100 }))).toEqual({ code: 'S3_ERROR', status: undefined });
  });
});
