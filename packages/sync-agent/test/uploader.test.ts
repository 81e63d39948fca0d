/**
 * Large files go to blobs named by their sha256 and are completed only if what streamed hashes to
 * that name: a file rewritten during its upload never completes torn bytes at any key.
 */
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { blobsPrefix, createLogger, objectKey, resolveConfig, sha256Hex, type ObjectStore } from '@workspace-sync/shared';
import { createMemoryStore, readCommitted, readCommittedFile } from '@workspace-sync/testkit';
import { pushWorkspace } from '../src/push.js';
import { PackWriter } from '../src/packer.js';
import { hashedFile, readAs } from '../src/scan.js';
import { hashRecord } from '../src/state.js';
import { executeTransfers, type TransferContext } from '../src/uploader.js';

const log = createLogger({ level: 'silent', name: 'test' });

/** The store, with a hook run once after the first chunk of an upload's body has been read. */
function midUpload(inner: ObjectStore, hook: () => void): ObjectStore & { uploads: number } {
  let fired = false;
  return {
    uploads: 0,
    ...inner,
    list: inner.list.bind(inner),
    listUploads: inner.listUploads.bind(inner),
    upload(key, body: Readable, opts) {
      this.uploads++;
      const relay = new PassThrough();
      body.on('data', (chunk: Buffer) => {
        relay.write(chunk);
        if (!fired) { fired = true; hook(); }
      });
      body.on('end', () => relay.end());
      body.on('error', (err) => relay.destroy(err));
      return inner.upload(key, relay, opts);
    },
  };
}

describe('large files', () => {
  it('a file rewritten during its multipart upload is never completed torn: the upload is aborted and the new bytes land', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wsync-torn-'));
    const root = path.join(dir, 'root');
    mkdirSync(path.join(root, 'w'), { recursive: true });
    const file = path.join(root, 'w/data.bin');
    const before = Buffer.alloc(20 * 1024 * 1024, 1);
    const after = Buffer.alloc(20 * 1024 * 1024, 2);
    writeFileSync(file, before);
    const inner = createMemoryStore({ bucket: 'b' });
    const store = midUpload(inner, () => writeFileSync(file, after));
    const config = resolveConfig('agent', { env: {}, cwd: dir, flags: { root, stateDir: path.join(dir, 'state'), prefix: 'p/', multipartThreshold: '5M', gcEvery: 0 } });

    const r = await pushWorkspace({ config, store, log, workspace: 'w' });
    expect(r.skipped).toEqual([]);
    // The first upload saw the rewrite and was aborted; the second sent the new bytes.
    expect(store.uploads).toBe(2);
    const c = await readCommitted(inner, 'p/', 'w');
    const e = c!.entries.get('data.bin')!;
    expect(e).toMatchObject({ kind: 'file', sha256: sha256Hex(after) });
    expect((await readCommittedFile(inner, 'p/', 'w', e)).equals(after)).toBe(true);
    // No blob holds bytes other than those its name says, and no upload was left behind.
    for await (const item of inner.list(blobsPrefix('p/', 'w'))) {
      if (!('key' in item)) continue;
      const res = await inner.get(item.key);
      expect(!res.notModified && sha256Hex(res.body)).toBe(item.key.slice(item.key.lastIndexOf('/') + 1));
    }
    const uploads = [];
    for await (const u of inner.listUploads('')) uploads.push(u);
    expect(uploads).toEqual([]);
  });
});

describe('small files', () => {
  it('each lands with its own bytes in its pack and its plain object (read buffers are reused between files)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wsync-small-'));
    const root = path.join(dir, 'root');
    mkdirSync(path.join(root, 'w/d'), { recursive: true });
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 300; i++) {
      // Sizes that go up and down, so a shorter file read after a longer one would show the longer one's tail.
      const body = Buffer.alloc((i * 7919) % 5000, `${i};`);
      bodies.set(`d/f${i}.txt`, body);
      writeFileSync(path.join(root, 'w', `d/f${i}.txt`), body);
    }
    const store = createMemoryStore({ bucket: 'b' });
    const config = resolveConfig('agent', { env: {}, cwd: dir, flags: { root, stateDir: path.join(dir, 'state'), prefix: 'p/', concurrency: '8', gcEvery: 0 } });

    const r = await pushWorkspace({ config, store, log, workspace: 'w' });
    expect(r.uploaded).toBe(300);
    const c = await readCommitted(store, 'p/', 'w');
    for (const [rel, body] of bodies) {
      const e = c!.entries.get(rel)!;
      expect(e).toMatchObject({ kind: 'file', sha256: sha256Hex(body), size: body.length });
      expect((await readCommittedFile(store, 'p/', 'w', e)).equals(body)).toBe(true);
      const plain = await store.get(objectKey('p/', 'w', rel));
      expect(!plain.notModified && plain.body.equals(body)).toBe(true);
    }
  });
});

describe('readAs', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsync-readas-'));
  const file = path.join(dir, 'f');
  writeFileSync(file, 'x');
  const st = statSync(file);
  const planned = hashedFile('f', st, sha256Hex('x'));

  it('is the planned entry itself when the read found the same file', () => {
    expect(readAs(planned, st, sha256Hex('x'))).toBe(planned);
  });

  it('is a new entry, as read, when the content, size, mtime or mode differ', () => {
    const other = readAs(planned, st, sha256Hex('y'));
    expect(other).not.toBe(planned);
    expect(other).toEqual({ ...planned, sha256: sha256Hex('y') });
    expect(readAs({ ...planned, mtimeMs: planned.mtimeMs - 1000 }, st, planned.sha256)).toEqual(planned);
    expect(readAs({ ...planned, mode: planned.mode ^ 0o100 }, st, planned.sha256).mode).toBe(st.mode & 0o7777);
    expect(readAs({ ...planned, size: 2 }, st, planned.sha256).size).toBe(1);
  });
});

describe('stat records of the files read', () => {
  it('keep the record the file was hashed under when the read finds that file, and make a new one when it changed', async () => {
    const wsDir = mkdtempSync(path.join(tmpdir(), 'wsync-records-'));
    writeFileSync(path.join(wsDir, 'same.txt'), 'same');
    writeFileSync(path.join(wsDir, 'edited.txt'), 'before');
    const hashedAt = Date.now() - 60_000;
    const planned = ['same.txt', 'edited.txt'].map((p) => hashedFile(p, statSync(path.join(wsDir, p)), sha256Hex(p === 'same.txt' ? 'same' : 'before')));
    const records = new Map(planned.map((e) => [e.path, hashRecord(statSync(path.join(wsDir, e.path)), e.sha256, hashedAt)]));
    writeFileSync(path.join(wsDir, 'edited.txt'), 'after, longer');
    const store = createMemoryStore({ bucket: 'b' });
    const target = { store, prefix: 'p/', workspace: 'w' };
    const ctx: TransferContext = {
      ...target, wsDir, concurrency: 2, multipartThreshold: 8 * 1024 * 1024, packs: new PackWriter({ ...target, landed: () => {} }),
      contentOf: () => undefined, journal: { intent: () => {}, plain: () => {}, content: () => {} }, log, recordOf: (p) => records.get(p),
    };
    const r = await executeTransfers({ changed: planned, newContent: planned, plainWrites: planned }, ctx);
    expect(r.landed.get('same.txt')!.record).toBe(records.get('same.txt'));
    expect(r.landed.get('same.txt')!.entry).toBe(planned[0]);
    const edited = r.landed.get('edited.txt')!;
    expect(edited.record).not.toBe(records.get('edited.txt'));
    expect(edited.record).toMatchObject({ sha256: sha256Hex('after, longer'), size: 13 });
    expect(edited.record!.hashedAtMs).toBeGreaterThan(hashedAt);
    expect(edited.entry).toMatchObject({ sha256: sha256Hex('after, longer'), size: 13 });
  });
});
