import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeCommit, headKey, isSyncError, type Commit, type ObjectStore } from '@workspace-sync/shared';
import { startTestS3, withFaults, writeCommitFixture, type EmbeddedS3 } from '@workspace-sync/testkit';
import { ContentCache } from '../src/content-cache.js';
import { RemoteStatus } from '../src/remote-status.js';
import { TreeStore, packCacheName } from '../src/tree-store.js';
import { captureLogger, quietLogger, releaseS3, removeDir, storeFor, tempDir } from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
let n = 0;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
});
afterAll(async () => {
  await releaseS3(s3);
});
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function head(prefix: string, ws: string): Promise<Commit> {
  const res = await store.get(headKey(prefix, ws));
  if (res.notModified) throw new Error('304');
  return decodeCommit(res.body, 'head');
}

async function open(prefix: string, dir = tempDir('trees'), logger = quietLogger) {
  const cache = await ContentCache.open({ dir, maxSize: 1 << 24, maxAge: 0, memSize: 0, logger });
  const faulty = withFaults(store);
  const trees = new TreeStore({ store: faulty, prefix, cache, status: new RemoteStatus(), logger });
  cleanups.push(() => cache.close());
  return { trees, cache, faulty, dir };
}

describe('TreeStore', () => {
  it('decodes each directory once, by sha256: a later generation or a snapshot holding the same ref shares it', async () => {
    const prefix = `ts${++n}/`;
    const files = [{ path: 'lib/a.js', content: 'a' }, { path: 'lib/b.js', content: 'b' }];
    await writeCommitFixture(store, prefix, 'one', files);
    const c1 = await head(prefix, 'one');
    const { trees, faulty, dir } = await open(prefix);
    cleanups.push(() => removeDir(dir));
    const root1 = await trees.load('one', c1.root);
    const lib = root1.entries.find((e) => e.name === 'lib')!;
    expect(lib.kind).toBe('dir');
    await trees.load('one', (lib as { ref: Commit['root'] }).ref);
    expect(trees.size).toBe(2);
    // The same ref again (an unchanged directory of the next commit, a snapshot): nothing fetched or decoded.
    const gets = faulty.calls.length;
    expect(await trees.load('one', [...c1.root])).toBe(root1);
    expect(faulty.calls.length).toBe(gets);
  });

  it('fetches a pack again when the cached copy is damaged, and refuses a damaged pack in the bucket', async () => {
    const prefix = `ts${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'x/y.txt', content: 'y' }]);
    const commit = await head(prefix, 'ws');
    const dir = tempDir('trees');
    cleanups.push(() => removeDir(dir));
    const first = await open(prefix, dir);
    await first.trees.load('ws', commit.root);
    await first.cache.flush();
    // Damage the copy on disk (same size), as a failing disk would.
    const key = `${prefix}.sync/ws/trees/${commit.root[0]}.pack`;
    const file = first.cache.blobPath(packCacheName(store.bucket, key));
    const bytes = readFileSync(file);
    bytes[commit.root[1] + 5] ^= 0xff;
    writeFileSync(file, bytes);

    const { logger, lines } = captureLogger();
    const second = await open(prefix, dir, logger);
    const root = await second.trees.load('ws', commit.root);
    expect(root.entries.map((e) => e.name)).toEqual(['x']);
    expect(second.faulty.calls.filter((c) => c.op === 'get').map((c) => c.key)).toEqual([key]);
    expect(lines().some((l) => l.msg.includes('cached tree pack does not match'))).toBe(true);

    // Now the bucket's copy is damaged: an error naming the object, never a decoded directory.
    const res = await store.get(key);
    if (res.notModified) throw new Error('304');
    const bad = Buffer.from(res.body);
    bad[commit.root[1] + 5] ^= 0xff;
    await store.put(key, bad);
    const third = await open(prefix);
    cleanups.push(() => removeDir(third.dir));
    const err = await third.trees.load('ws', commit.root).catch((e: unknown) => e);
    expect(isSyncError(err, 'MANIFEST_INVALID')).toBe(true);
    expect((err as Error).message).toContain(key);
  });
});
