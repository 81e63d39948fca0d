/**
 * Large files go to blobs named by their sha256 and are completed only if what streamed hashes to
 * that name: a file rewritten during its upload never completes torn bytes at any key.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { blobsPrefix, createLogger, resolveConfig, sha256Hex, type ObjectStore } from '@workspace-sync/shared';
import { createMemoryStore, readCommitted, readCommittedFile } from '@workspace-sync/testkit';
import { pushWorkspace } from '../src/push.js';

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
