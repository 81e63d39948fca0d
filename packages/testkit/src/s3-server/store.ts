/**
 * Buckets, objects and multipart uploads on disk, with an in-memory index rebuilt on start.
 *
 * Layout under the server's directory (nothing in it depends on key length or characters):
 *   buckets/<bucket>/bucket.json                  creation date
 *   buckets/<bucket>/objects/<h[0:2]>/<h>         h = sha256 of the key; see object-file.ts
 *   buckets/<bucket>/uploads/<uploadId>/upload.json, <partNumber>
 *   buckets/<bucket>/tmp/                          files being written; emptied on start
 *
 * Concurrency rules (one process; writes are whole files renamed into place):
 * - A write streams its body into tmp/ without any lock, then `commit` takes the key's lock to check
 *   its preconditions against the current object, rename, and update the index, in that order: two
 *   writes of one key land in the order of their commits, and a conditional write can never lose a
 *   race it should have won. Deletes take the same lock.
 * - Readers take no lock: they open the file and serve the header and body read from it; a rename
 *   replaces the name, never the bytes of a file someone has open.
 * - An upload's lock serializes its part writes (the rename into its directory), completion and
 *   abort; completion takes the key's lock inside it (always in that order).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { S3Error, noSuchBucket, noSuchUpload } from './errors.js';
import { SortedKeys } from './key-order.js';
import { keyedLock } from './locks.js';
import { closeBodyFile, openBodyFile, readBody, readHeader, writeBodyFile, type FileHeader, type OpenFile, type WriteOptions, type Written } from './object-file.js';

export interface ObjectAttributes {
  contentType?: string;
  contentEncoding?: string;
  cacheControl?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  expires?: string;
  /** User metadata, names lowercased, without the `x-amz-meta-` prefix. */
  metadata: Record<string, string>;
}

export interface ObjectHeader extends FileHeader, ObjectAttributes { key: string }

export interface PartHeader extends FileHeader { partNumber: number }

export interface Upload {
  uploadId: string;
  key: string;
  initiated: number;
  attributes: ObjectAttributes;
  parts: Map<number, PartHeader>;
}

/** Checks a write against the object it replaces (undefined: none); throws to refuse it. */
export type WriteCheck = (current: ObjectHeader | undefined) => void;

let tmpSeq = 0;
let uploadSeq = 0;

export class Bucket {
  readonly keys = new SortedKeys();
  readonly objects = new Map<string, ObjectHeader>();
  readonly uploads = new Map<string, Upload>();
  removed = false;
  private readonly lock = keyedLock();

  constructor(readonly name: string, readonly created: number, private readonly dir: string) {}

  // ---- objects

  /** Streams a body into a temporary file; `commit` publishes it, `discard` drops it. */
  async write(key: string, attributes: ObjectAttributes, body: AsyncIterable<Buffer> | Buffer, opts: WriteOptions = {}): Promise<Written<ObjectHeader>> {
    return this.writeTemp<ObjectHeader>({ key, ...attributes }, body, opts);
  }

  /** Makes a written object the current one at its key, if `check` allows. Consumes `written` either way. */
  async commit(written: Written<ObjectHeader>, check?: WriteCheck): Promise<ObjectHeader> {
    const { key } = written.header;
    try {
      return await this.lock(`key:${key}`, async () => {
        this.assertAlive();
        check?.(this.objects.get(key));
        await rename(written.path, this.objectPath(key));
        this.objects.set(key, written.header);
        this.keys.add(key);
        return written.header;
      });
    } catch (err) {
      await this.discard(written);
      throw this.translate(err);
    }
  }

  async discard(written: { path: string }): Promise<void> {
    await rm(written.path, { force: true });
  }

  async delete(key: string): Promise<void> {
    await this.lock(`key:${key}`, async () => {
      if (!this.objects.has(key)) return;
      await rm(this.objectPath(key), { force: true });
      this.objects.delete(key);
      this.keys.delete(key);
    });
  }

  /** The current object at `key`, open, or undefined. The caller closes it (closeBodyFile). */
  open(key: string): OpenFile<ObjectHeader> | undefined {
    // ENOENT: deleted between the index lookup and the open; the index has the final word.
    for (let attempt = 0; attempt < 3 && this.objects.has(key); attempt++) {
      try {
        const f = openBodyFile<ObjectHeader>(this.objectPath(key), this.objects.get(key)!.size);
        if (f.header.key === key) return f;
        void closeBodyFile(f);
        throw new Error(`object file for ${JSON.stringify(key)} holds ${JSON.stringify(f.header.key)}`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return undefined;
  }

  // ---- multipart uploads

  async createUpload(key: string, attributes: ObjectAttributes): Promise<Upload> {
    this.assertAlive();
    // Time first, so upload ids sort in the order uploads were started (ListMultipartUploads' order).
    const uploadId = `${Date.now().toString(16).padStart(12, '0')}${(uploadSeq++ % 0x10000).toString(16).padStart(4, '0')}${randomBytes(8).toString('hex')}`;
    const upload: Upload = { uploadId, key, initiated: Date.now(), attributes, parts: new Map() };
    const dir = this.uploadDir(uploadId);
    try {
      await mkdir(dir, { recursive: true });
      const tmp = this.tmpPath();
      await writeFile(tmp, JSON.stringify({ uploadId, key, initiated: upload.initiated, attributes }));
      await rename(tmp, path.join(dir, 'upload.json'));
    } catch (err) {
      throw this.translate(err);
    }
    this.uploads.set(uploadId, upload);
    return upload;
  }

  /** The upload `uploadId` of `key`, or NoSuchUpload. */
  upload(uploadId: string, key: string): Upload {
    const u = this.uploads.get(uploadId);
    if (!u || u.key !== key) throw noSuchUpload(uploadId);
    return u;
  }

  /** Streams a part's body into a temporary file; `commitPart` adds it to the upload. */
  writePart(partNumber: number, body: AsyncIterable<Buffer> | Buffer, opts: WriteOptions = {}): Promise<Written<PartHeader>> {
    return this.writeTemp<PartHeader>({ partNumber }, body, opts);
  }

  async commitPart(upload: Upload, written: Written<PartHeader>): Promise<PartHeader> {
    try {
      return await this.lock(`upload:${upload.uploadId}`, async () => {
        this.assertAlive();
        if (this.uploads.get(upload.uploadId) !== upload) throw noSuchUpload(upload.uploadId);
        await rename(written.path, path.join(this.uploadDir(upload.uploadId), String(written.header.partNumber)));
        upload.parts.set(written.header.partNumber, written.header);
        return written.header;
      });
    } catch (err) {
      await this.discard(written);
      throw this.translate(err);
    }
  }

  openPart(upload: Upload, partNumber: number): OpenFile<PartHeader> {
    return openBodyFile<PartHeader>(path.join(this.uploadDir(upload.uploadId), String(partNumber)));
  }

  /**
   * Completes `uploadId`: `select` (run under the upload's lock) validates the request against the
   * upload and returns the parts in order and the ETag; their bodies become the object at the key.
   */
  async completeUpload(
    uploadId: string, key: string, select: (u: Upload) => { parts: PartHeader[]; etag: string }, check?: WriteCheck,
  ): Promise<ObjectHeader> {
    return this.lock(`upload:${uploadId}`, async () => {
      const upload = this.upload(uploadId, key);
      const { parts, etag } = select(upload);
      const self = this;
      async function* body(): AsyncGenerator<Buffer> {
        for (const p of parts) {
          const f = self.openPart(upload, p.partNumber);
          try {
            yield* readBody(f);
          } finally {
            await closeBodyFile(f);
          }
        }
      }
      const written = await this.write(key, upload.attributes, body(), { etag: () => etag });
      const header = await this.commit(written, check);
      this.uploads.delete(uploadId);
      await rm(this.uploadDir(uploadId), { recursive: true, force: true });
      return header;
    });
  }

  async abortUpload(uploadId: string, key: string): Promise<void> {
    await this.lock(`upload:${uploadId}`, async () => {
      this.upload(uploadId, key);
      this.uploads.delete(uploadId);
      await rm(this.uploadDir(uploadId), { recursive: true, force: true });
    });
  }

  // ---- internals

  private async writeTemp<H extends FileHeader>(base: Omit<H, keyof FileHeader>, body: AsyncIterable<Buffer> | Buffer, opts: WriteOptions): Promise<Written<H>> {
    this.assertAlive();
    const tmp = this.tmpPath();
    try {
      return await writeBodyFile<H>(tmp, base, body, opts);
    } catch (err) {
      await rm(tmp, { force: true });
      throw this.translate(err);
    }
  }

  private assertAlive(): void {
    if (this.removed) throw noSuchBucket(this.name);
  }

  /** File system errors of a bucket removed meanwhile are NoSuchBucket; the rest pass through. */
  private translate(err: unknown): unknown {
    if (this.removed && !(err instanceof S3Error)) return noSuchBucket(this.name);
    return err;
  }

  private tmpPath(): string {
    return path.join(this.dir, 'tmp', `${process.pid}-${++tmpSeq}`);
  }

  objectPath(key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return path.join(this.dir, 'objects', h.slice(0, 2), h);
  }

  private uploadDir(uploadId: string): string {
    return path.join(this.dir, 'uploads', uploadId);
  }

  /** Reads the bucket's objects and uploads from disk (start-up). */
  async load(): Promise<void> {
    await rm(path.join(this.dir, 'tmp'), { recursive: true, force: true });
    await mkdir(path.join(this.dir, 'tmp'), { recursive: true });
    await this.makeShards();
    const files: string[] = [];
    for (const shard of await readdir(path.join(this.dir, 'objects'))) {
      for (const name of await readdir(path.join(this.dir, 'objects', shard))) files.push(path.join(this.dir, 'objects', shard, name));
    }
    for (const file of files) {
      let header: ObjectHeader;
      try {
        header = readHeader<ObjectHeader>(file);
      } catch (err) {
        process.stderr.write(`embedded-s3: ignoring ${file}, not an object file: ${(err as Error).message}\n`);
        continue;
      }
      // A file that is not at its key's name is not an object of this store.
      if (this.objectPath(header.key) === file) this.objects.set(header.key, header);
    }
    const sorted = SortedKeys.of(this.objects.keys());
    for (let i = 0; i < sorted.size; i++) this.keys.add(sorted.at(i)!);

    const uploadsDir = path.join(this.dir, 'uploads');
    await mkdir(uploadsDir, { recursive: true });
    for (const id of await readdir(uploadsDir)) {
      let rec: Omit<Upload, 'parts'>;
      try {
        rec = JSON.parse(await readFile(path.join(uploadsDir, id, 'upload.json'), 'utf8')) as Omit<Upload, 'parts'>;
      } catch {
        // Created but never recorded (the process died in between): nothing refers to it.
        await rm(path.join(uploadsDir, id), { recursive: true, force: true });
        continue;
      }
      const upload: Upload = { ...rec, parts: new Map() };
      for (const name of await readdir(path.join(uploadsDir, id))) {
        if (!/^\d+$/.test(name)) continue;
        const part = readHeader<PartHeader>(path.join(uploadsDir, id, name));
        upload.parts.set(part.partNumber, part);
      }
      this.uploads.set(id, upload);
    }
  }

  async makeShards(): Promise<void> {
    await eachLimited(Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0')), 32,
      (shard) => mkdir(path.join(this.dir, 'objects', shard), { recursive: true }));
  }
}

export class Store {
  private readonly creating = new Map<string, Promise<void>>();

  private constructor(private readonly root: string, private readonly buckets: Map<string, Bucket>) {}

  static async open(dir: string): Promise<Store> {
    const root = path.join(dir, 'buckets');
    await mkdir(root, { recursive: true });
    const buckets = new Map<string, Bucket>();
    for (const name of await readdir(root)) {
      let created: number;
      try {
        created = (JSON.parse(await readFile(path.join(root, name, 'bucket.json'), 'utf8')) as { created: number }).created;
      } catch {
        continue;
      }
      const b = new Bucket(name, created, path.join(root, name));
      await b.load();
      buckets.set(name, b);
    }
    return new Store(root, buckets);
  }

  list(): Bucket[] {
    return [...this.buckets.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  get(name: string): Bucket | undefined {
    return this.buckets.get(name);
  }

  need(name: string): Bucket {
    const b = this.buckets.get(name);
    if (!b) throw noSuchBucket(name);
    return b;
  }

  /** Creates a bucket unless it exists. The name must be valid (see buckets.ts). */
  async create(name: string): Promise<void> {
    if (this.buckets.has(name)) return;
    // Concurrent creates of one name share one creation; the bucket is visible once it is whole.
    let pending = this.creating.get(name);
    if (!pending) {
      pending = this.build(name).finally(() => this.creating.delete(name));
      this.creating.set(name, pending);
    }
    await pending;
  }

  private async build(name: string): Promise<void> {
    const dir = path.join(this.root, name);
    const b = new Bucket(name, Date.now(), dir);
    // Whatever a bucket of this name left behind (a removal cut short) is not part of the new one.
    await rm(dir, { recursive: true, force: true });
    await mkdir(path.join(dir, 'tmp'), { recursive: true });
    await mkdir(path.join(dir, 'uploads'), { recursive: true });
    await b.makeShards();
    const tmp = path.join(dir, 'tmp', 'bucket.json');
    await writeFile(tmp, JSON.stringify({ created: b.created }));
    await rename(tmp, path.join(dir, 'bucket.json'));
    this.buckets.set(name, b);
  }

  /** Removes an empty bucket (its unfinished uploads go with it). */
  async remove(name: string): Promise<void> {
    const b = this.need(name);
    if (b.objects.size > 0) throw new S3Error('BucketNotEmpty', 409, 'The bucket you tried to delete is not empty', { BucketName: name });
    b.removed = true;
    this.buckets.delete(name);
    // bucket.json goes first: a crash halfway leaves a directory that is no bucket.
    await unlink(path.join(this.root, name, 'bucket.json')).catch(() => {});
    await rm(path.join(this.root, name), { recursive: true, force: true });
  }
}

async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
