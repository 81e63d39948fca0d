import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { commitKey, objectKey, sha256Hex, type ObjectStore } from '@workspace-sync/shared';
import { unreachable, withFaults, writeCommitFixture, type EmbeddedS3 } from '@workspace-sync/testkit';
import { ContentCache } from '../src/content-cache.js';
import { MountCore, type Stat } from '../src/core.js';
import { EACCES, EBADF, EINVAL, EIO, EISDIR, ENOENT, ENOTDIR, EROFS, ESTALE } from '../src/errno.js';
import { Fetcher } from '../src/fetcher.js';
import { createFuseHandlers, type FuseHandlers } from '../src/fuse-ops.js';
import { Poller } from '../src/poller.js';
import { RemoteStatus } from '../src/remote-status.js';
import { Tree } from '../src/tree.js';
import { TreeStore } from '../src/tree-store.js';
import { History } from '../src/history.js';
import { publish, quietLogger, removeDir, settingsFor, tempDir, useTestS3, type FixtureEntry } from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
let n = 0;
const cleanups: Array<() => Promise<void> | void> = [];

useTestS3((server, onServer) => { s3 = server; store = onServer; });
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const FIXTURE: FixtureEntry[] = [
  { path: 'README.md', content: '# hello\n', mtimeMs: 1_700_000_000_000 },
  { path: 'bin/run.sh', content: '#!/bin/sh\necho run\n', mode: 0o755 },
  { path: 'src/deep/mod.ts', content: 'export {};\n' },
  { path: 'docs', symlink: 'README.md' },
];

interface CoreSetup { prefetch?: boolean; chunkSize?: number; format?: 1 | 2; deadlineMs?: number; now?: () => number }

async function mountCore(files: FixtureEntry[] = FIXTURE, opts: CoreSetup = {}) {
  const prefix = `c${++n}/`;
  if (opts.format === 2) await writeCommitFixture(store, prefix, 'ws', files, { createdAt: new Date(1_750_000_000_000) });
  else await publish(store, prefix, 'ws', files);
  const faulty = withFaults(store);
  const dir = tempDir('core-cache');
  const cache = await ContentCache.open({ dir, maxSize: 16 * 1024 * 1024, maxAge: 0, memSize: 1024 * 1024, logger: quietLogger });
  const status = new RemoteStatus();
  const tree = new Tree();
  const trees = new TreeStore({ store: faulty, prefix, cache, status, logger: quietLogger });
  const poller = new Poller({ store: faulty, tree, trees, prefix, pollInterval: 1_000, dirCacheTime: 60_000, status, logger: quietLogger });
  await poller.pollOnce();
  const fetcher = new Fetcher({
    store: faulty, cache, status, logger: quietLogger, chunkSize: opts.chunkSize, readAheadChunks: 0,
    prefetch: opts.prefetch ? { settings: settingsFor(s3), concurrency: 4, budget: 1e9 } : undefined,
  });
  const history = new History({ store: faulty, prefix, trees, status, logger: quietLogger, dirCacheTime: 60_000 });
  const core = new MountCore({
    tree, poller, fetcher, trees, history, uid: 1234, gid: 5678, logger: quietLogger, reresolveDelays: [0, 100, 200, 400, 800], now: opts.now,
  });
  const handlers = createFuseHandlers(core, { logger: quietLogger, deadlineMs: opts.deadlineMs });
  cleanups.push(async () => { await fetcher.stop(); await cache.close(); removeDir(dir); });
  return { prefix, core, handlers, faulty, cache, fetcher, status, poller, trees, tree };
}

/** Calls a handler the way fuse-native does and returns [code, ...values]. */
function call(h: FuseHandlers, op: keyof FuseHandlers, ...args: unknown[]): Promise<[number, ...unknown[]]> {
  return new Promise((resolve) => (h[op] as (...a: unknown[]) => void)(...args, (...res: unknown[]) => resolve(res as [number, ...unknown[]])));
}

async function readFile(h: FuseHandlers, path: string, size = 1 << 20): Promise<Buffer> {
  const [code, fh] = await call(h, 'open', path, constants.O_RDONLY);
  expect(code).toBe(0);
  const buf = Buffer.alloc(size);
  const [n] = await call(h, 'read', path, fh, buf, size, 0);
  await call(h, 'release', path, fh);
  expect(n).toBeGreaterThanOrEqual(0);
  return buf.subarray(0, n);
}

describe('FUSE handlers over the core', () => {
  it('lists the mount root and a workspace with stats for every entry', async () => {
    const { handlers } = await mountCore();
    const [c1, rootNames, rootStats] = await call(handlers, 'readdir', '/');
    expect(c1).toBe(0);
    expect(rootNames).toEqual(['.', '..', 'ws']);
    expect((rootStats as Stat[])[2]!.mode & 0o170000).toBe(0o040000);
    const [c2, names, stats] = await call(handlers, 'readdir', '/ws');
    expect(c2).toBe(0);
    expect(names).toEqual(['.', '..', 'README.md', 'bin', 'docs', 'src']);
    expect((stats as Stat[]).map((s) => (s.mode & 0o170000).toString(8))).toEqual(['40000', '40000', '100000', '40000', '120000', '40000']);
    expect(await call(handlers, 'readdir', '/ws/README.md')).toEqual([ENOTDIR]);
    expect(await call(handlers, 'readdir', '/nope')).toEqual([ENOENT]);
  });

  it('answers getattr from the manifest: sizes, mtimes, modes, owner, stable inodes', async () => {
    const { handlers } = await mountCore();
    const [code, st] = await call(handlers, 'getattr', '/ws/README.md');
    expect(code).toBe(0);
    expect(st).toMatchObject({ mode: 0o100644, size: 8, mtime: 1_700_000_000_000, uid: 1234, gid: 5678, nlink: 1 });
    const [, exec] = await call(handlers, 'getattr', '/ws/bin/run.sh');
    expect((exec as Stat).mode).toBe(0o100755);
    const [, link] = await call(handlers, 'getattr', '/ws/docs');
    expect(link).toMatchObject({ mode: 0o120777, size: 'README.md'.length });
    const [, dir] = await call(handlers, 'getattr', '/ws/src');
    expect(dir).toMatchObject({ mode: 0o040755, nlink: 3 });
    const [, again] = await call(handlers, 'getattr', '/ws/README.md');
    expect((again as Stat).ino).toBe((st as Stat).ino);
    expect(await call(handlers, 'getattr', '/ws/missing')).toEqual([ENOENT]);
    expect(await call(handlers, 'getattr', '/ws/README.md/below')).toEqual([ENOENT]);
    expect(await call(handlers, 'getattr', '/missing-ws')).toEqual([ENOENT]);
  });

  it('answers getattr and open at once from loaded directories, and after loading them otherwise (format v2)', async () => {
    const { handlers } = await mountCore(FIXTURE, { format: 2 });
    const now = (path: string) => {
      let answer: unknown[] | undefined;
      handlers.getattr(path, (...res: unknown[]) => { answer = res; });
      return answer;
    };
    // Nothing below the root is loaded yet: the answer comes later, and right.
    expect(now('/ws/src/deep/mod.ts')).toBeUndefined();
    const [code, st] = await call(handlers, 'getattr', '/ws/src/deep/mod.ts');
    expect(code).toBe(0);
    // Loaded now: answered before the handler returns, the same attributes, and ENOENT likewise.
    expect(now('/ws/src/deep/mod.ts')).toEqual([0, st]);
    expect(now('/ws/src/deep/missing.ts')).toEqual([ENOENT]);
    expect(now('/ws/README.md/below')).toEqual([ENOENT]);
    // So is open, with a handle that reads.
    let opened: unknown[] | undefined;
    handlers.open('/ws/src/deep/mod.ts', constants.O_RDONLY, (...res: unknown[]) => { opened = res; });
    expect(opened?.[0]).toBe(0);
    const buf = Buffer.alloc(64);
    expect(await call(handlers, 'read', '/ws/src/deep/mod.ts', opened![1], buf, 64, 0)).toEqual([11]);
    expect(buf.subarray(0, 11).toString()).toBe('export {};\n');
    await call(handlers, 'release', '/ws/src/deep/mod.ts', opened![1]);
  });

  it('reads files and symlinks', async () => {
    const { handlers } = await mountCore();
    expect((await readFile(handlers, '/ws/src/deep/mod.ts')).toString()).toBe('export {};\n');
    expect(await call(handlers, 'readlink', '/ws/docs')).toEqual([0, 'README.md']);
    expect(await call(handlers, 'readlink', '/ws/README.md')).toEqual([EINVAL]);
    expect(await call(handlers, 'open', '/ws/src', constants.O_RDONLY)).toEqual([EISDIR]);
    // Reads past the end return 0 bytes; a read at an offset returns the rest.
    const [, fh] = await call(handlers, 'open', '/ws/README.md', constants.O_RDONLY);
    const buf = Buffer.alloc(100);
    expect(await call(handlers, 'read', '/ws/README.md', fh, buf, 100, 2)).toEqual([6]);
    expect(buf.subarray(0, 6).toString()).toBe('hello\n');
    expect(await call(handlers, 'read', '/ws/README.md', fh, buf, 100, 8)).toEqual([0]);
    await call(handlers, 'release', '/ws/README.md', fh);
    expect(await call(handlers, 'read', '/ws/README.md', fh, buf, 100, 0)).toEqual([EBADF]);
  });

  it('answers EROFS to everything that would write', async () => {
    const { handlers, core } = await mountCore();
    const f = '/ws/README.md';
    const buf = Buffer.from('x');
    const attempts: Array<[keyof FuseHandlers, ...unknown[]]> = [
      ['write', f, 1, buf, 1, 0], ['create', '/ws/new', 0o644], ['unlink', f], ['rename', f, '/ws/moved'], ['link', f, '/ws/hard'],
      ['symlink', 'README.md', '/ws/sym'], ['mkdir', '/ws/dir', 0o755], ['rmdir', '/ws/src'], ['mknod', '/ws/dev', 0o644, 0],
      ['chmod', f, 0o777], ['chown', f, 0, 0], ['truncate', f, 0], ['ftruncate', f, 1, 0], ['utimens', f, 0, 0],
      ['setxattr', f, 'user.x', buf, 0, 0], ['removexattr', f, 'user.x'],
      ['open', f, constants.O_WRONLY], ['open', f, constants.O_RDWR], ['open', f, constants.O_RDONLY | constants.O_TRUNC],
      ['access', f, constants.W_OK],
    ];
    for (const [op, ...args] of attempts) expect([op, ...(await call(handlers, op, ...args))]).toEqual([op, EROFS]);
    expect(await call(handlers, 'access', f, constants.R_OK)).toEqual([0]);
    expect(await call(handlers, 'access', f, constants.X_OK)).toEqual([EACCES]);
    expect(await call(handlers, 'access', '/ws/bin/run.sh', constants.X_OK)).toEqual([0]);
    expect(await call(handlers, 'access', '/ws/bin', constants.X_OK)).toEqual([0]);
    expect(await call(handlers, 'access', '/ws/none', constants.R_OK)).toEqual([ENOENT]);
    expect(core.openHandles).toBe(0);
    const [, statfs] = await call(handlers, 'statfs', '/');
    expect(statfs).toMatchObject({ flag: 1, namemax: 255 });
  });

  it('keeps serving metadata and cached content while S3 is down; uncached reads get EIO', async () => {
    const { handlers, faulty, status } = await mountCore();
    expect((await readFile(handlers, '/ws/README.md')).toString()).toBe('# hello\n');
    faulty.plan.fail = (op) => (op === 'get' || op === 'list' ? unreachable() : undefined);
    expect((await readFile(handlers, '/ws/README.md')).toString()).toBe('# hello\n');
    expect((await call(handlers, 'readdir', '/ws'))[0]).toBe(0);
    const [, fh] = await call(handlers, 'open', '/ws/bin/run.sh', constants.O_RDONLY);
    expect(await call(handlers, 'read', '/ws/bin/run.sh', fh, Buffer.alloc(100), 100, 0)).toEqual([EIO]);
    expect(status.down).toBe(true);
    faulty.plan.fail = undefined;
    status.ok();
    expect((await readFile(handlers, '/ws/bin/run.sh')).toString()).toContain('echo run');
  });

  it('moves an open handle to the new version when the object changed before it served a byte', async () => {
    const chunk = 64 * 1024;
    const g1 = randomBytes(3 * chunk);
    const { handlers, prefix } = await mountCore([{ path: 'f.txt', content: 'version 1' }, { path: 'g.bin', content: g1 }], { chunkSize: chunk });
    const [, fresh] = await call(handlers, 'open', '/ws/f.txt', constants.O_RDONLY);
    const [, served] = await call(handlers, 'open', '/ws/g.bin', constants.O_RDONLY);
    const buf = Buffer.alloc(64);
    expect(await call(handlers, 'read', '/ws/g.bin', served, buf, 2, 0)).toEqual([2]);
    // A push: objects first, the manifest a moment later.
    const g2 = randomBytes(3 * chunk);
    await store.put(objectKey(prefix, 'ws', 'f.txt'), Buffer.from('version 2!'));
    await store.put(objectKey(prefix, 'ws', 'g.bin'), g2);
    const publishing = new Promise((r) => setTimeout(r, 250)).then(() => publish(store, prefix, 'ws',
      [{ path: 'f.txt', content: 'version 2!' }, { path: 'g.bin', content: g2 }], 2));
    const [n] = await call(handlers, 'read', '/ws/f.txt', fresh, buf, 64, 0);
    expect(buf.subarray(0, n as number).toString()).toBe('version 2!');
    await publishing;
    // The handle that served version 1 keeps serving it from the cache...
    expect(await call(handlers, 'read', '/ws/g.bin', served, buf, 64, 100)).toEqual([64]);
    expect(buf.equals(g1.subarray(100, 164))).toBe(true);
    // ...and never continues with version 2's bytes where version 1 is gone.
    expect(await call(handlers, 'read', '/ws/g.bin', served, buf, 64, chunk + 5)).toEqual([ESTALE]);
    // A new open sees version 2.
    const [, again] = await call(handlers, 'open', '/ws/g.bin', constants.O_RDONLY);
    expect(await call(handlers, 'read', '/ws/g.bin', again, buf, 64, chunk + 5)).toEqual([64]);
    expect(buf.equals(g2.subarray(chunk + 5, chunk + 69))).toBe(true);
  });

  it('prefetches the small files of a workspace when its first file is opened', async () => {
    const files: FixtureEntry[] = Array.from({ length: 12 }, (_, i) => ({ path: `p/f${i}`, content: randomBytes(500) }));
    const { handlers, faulty, fetcher } = await mountCore(files, { prefetch: true });
    await call(handlers, 'readdir', '/ws/p');
    await fetcher.idle();
    const getsBefore = faulty.calls.filter((c) => c.op === 'get').length;
    await readFile(handlers, '/ws/p/f0');
    await fetcher.idle();
    for (const f of files.slice(1)) {
      const body = await readFile(handlers, `/ws/${f.path}`);
      expect(sha256Hex(body)).toBe(sha256Hex((f as { content: Buffer }).content));
    }
    // One demand GET for f0 (plus manifest checks); the other eleven came from the prefetch worker.
    const objectGets = faulty.calls.filter((c) => c.op === 'get' && !c.key.includes('.sync/')).length;
    expect(objectGets - getsBefore).toBeLessThanOrEqual(1);
  });
});

describe('listings', () => {
  for (const format of [1, 2] as const) {
    it(`v${format}: a listing numbers and types every entry as getattr does`, async () => {
      const { handlers } = await mountCore(FIXTURE, { format });
      for (const dir of ['/ws', '/ws/src', '/ws/src/deep', '/ws/bin']) {
        const [code, names, stats] = await call(handlers, 'readdir', dir);
        expect(code).toBe(0);
        const listed = (names as string[]).map((name, i) => ({ name, ino: (stats as Stat[])[i]!.ino, mode: (stats as Stat[])[i]!.mode, size: (stats as Stat[])[i]!.size }));
        const fromGetattr = [];
        for (const { name } of listed.slice(2)) {
          const [c, st] = await call(handlers, 'getattr', `${dir}/${name}`);
          expect(c).toBe(0);
          fromGetattr.push({ name, ino: (st as Stat).ino, mode: (st as Stat).mode, size: (st as Stat).size });
        }
        expect(listed.slice(2)).toEqual(fromGetattr);
        expect(listed.length).toBeGreaterThan(2);
      }
    });
  }
});

describe('the core over a format-v2 workspace', () => {
  it('lists, stats and reads it; directories carry the time of their last change', async () => {
    const { handlers } = await mountCore(FIXTURE, { format: 2 });
    const [c1, names, stats] = await call(handlers, 'readdir', '/ws');
    expect(c1).toBe(0);
    expect(names).toEqual(['.', '..', 'README.md', 'bin', 'docs', 'src']);
    expect((stats as Stat[]).map((s) => (s.mode & 0o170000).toString(8))).toEqual(['40000', '40000', '100000', '40000', '120000', '40000']);
    const [, root] = await call(handlers, 'getattr', '/ws');
    expect((root as Stat).mtime).toBe(1_750_000_000_000);
    const [, src] = await call(handlers, 'getattr', '/ws/src');
    expect(src).toMatchObject({ mode: 0o040755, mtime: 1_750_000_000_000 });
    const [, st] = await call(handlers, 'getattr', '/ws/README.md');
    expect(st).toMatchObject({ mode: 0o100644, size: 8, mtime: 1_700_000_000_000 });
    const [, exec] = await call(handlers, 'getattr', '/ws/bin/run.sh');
    expect((exec as Stat).mode).toBe(0o100755);
    expect((await readFile(handlers, '/ws/src/deep/mod.ts')).toString()).toBe('export {};\n');
    expect(await call(handlers, 'readlink', '/ws/docs')).toEqual([0, 'README.md']);
    expect(await call(handlers, 'getattr', '/ws/src/missing')).toEqual([ENOENT]);
    expect(await call(handlers, 'getattr', '/ws/README.md/below')).toEqual([ENOENT]);
    expect(await call(handlers, 'readdir', '/ws/README.md')).toEqual([ENOTDIR]);
  });

  it('loads only the directories on the way to what is looked up', async () => {
    const files: FixtureEntry[] = [];
    for (let d = 0; d < 50; d++) for (let f = 0; f < 4; f++) files.push({ path: `d${d}/sub/f${f}.txt`, content: `${d}/${f}` });
    const { handlers, trees } = await mountCore(files, { format: 2 });
    const before = trees.size;
    const [code, st] = await call(handlers, 'getattr', '/ws/d7/sub/f2.txt');
    expect(code).toBe(0);
    expect((st as Stat).size).toBe(3);
    // The root (loaded at install), d7 and d7/sub: not the 101 directories of the workspace.
    expect(trees.size - before).toBe(2);
  });

  it('gives a path the same inode in every generation, and a snapshot its own', async () => {
    const { handlers, poller, prefix } = await mountCore(FIXTURE, { format: 2 });
    const [, a] = await call(handlers, 'getattr', '/ws/README.md');
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'README.md', content: '# changed content\n' }]);
    await poller.pollOnce();
    const [, b] = await call(handlers, 'getattr', '/ws/README.md');
    expect((b as Stat).size).toBe(18);
    expect((b as Stat).ino).toBe((a as Stat).ino);
    const [, old] = await call(handlers, 'getattr', '/.snapshots/ws/1/README.md');
    expect(old).toMatchObject({ size: 8 });
    expect((old as Stat).ino).not.toBe((a as Stat).ino);
  });

  it('serves older generations under a hidden .snapshots directory, lazily; a vanished one is ENOENT', async () => {
    const { handlers, poller, prefix, faulty } = await mountCore([{ path: 'app.txt', content: 'one' }], { format: 2 });
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'app.txt', content: 'two' }, { path: 'new.txt', content: 'new' }]);
    await poller.pollOnce();
    const [, rootNames] = await call(handlers, 'readdir', '/');
    expect(rootNames).toEqual(['.', '..', 'ws']);
    expect((await call(handlers, 'getattr', '/.snapshots'))[0]).toBe(0);
    expect((await call(handlers, 'readdir', '/.snapshots'))[1]).toEqual(['.', '..', 'ws']);
    faulty.calls.length = 0;
    expect((await call(handlers, 'readdir', '/.snapshots/ws'))[1]).toEqual(['.', '..', '1', '2']);
    expect(faulty.calls.map(({ op, key }) => ({ op, key }))).toEqual([{ op: 'list', key: `${prefix}.sync/ws/commits/` }]);
    expect((await readFile(handlers, '/.snapshots/ws/2/app.txt')).toString()).toBe('two');
    expect((await readFile(handlers, '/ws/app.txt')).toString()).toBe('two');
    expect(await call(handlers, 'getattr', '/.snapshots/ws/2/nothing')).toEqual([ENOENT]);
    expect(await call(handlers, 'getattr', '/.snapshots/ws/9')).toEqual([ENOENT]);
    expect(await call(handlers, 'getattr', '/.snapshots/nope')).toEqual([ENOENT]);
    expect(await call(handlers, 'open', '/.snapshots/ws/2/app.txt', constants.O_WRONLY)).toEqual([EROFS]);
    // Garbage collection removed generation 1 after it was listed: ENOENT, not EIO.
    const stems: string[] = [];
    for await (const e of store.list(`${prefix}.sync/ws/commits/`)) if ('key' in e) stems.push(e.key.split('/').pop()!.replace('.json', ''));
    await store.deleteMany([commitKey(prefix, 'ws', stems.sort()[0]!)]);
    expect(await call(handlers, 'getattr', '/.snapshots/ws/1/app.txt')).toEqual([ENOENT]);
    expect((await call(handlers, 'readdir', '/.snapshots/ws'))[1]).toEqual(['.', '..', '2']);
  });

  it('pairs content with the attributes the kernel was given: a handle serves the version last reported', async () => {
    let now = 1_000_000;
    const { handlers, poller, prefix } = await mountCore([{ path: 'f.txt', content: 'v1: 12345' }], { format: 2, now: () => now });
    const [, st1] = await call(handlers, 'getattr', '/ws/f.txt');
    expect((st1 as Stat).size).toBe(9);
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'f.txt', content: 'v2: a longer body' }]);
    await poller.pollOnce();
    // Opened after the switch, but the kernel holds version 1's size: version 1 it is.
    now += 100;
    expect((await readFile(handlers, '/ws/f.txt')).toString()).toBe('v1: 12345');
    // Once the kernel asks again, the new version.
    const [, st2] = await call(handlers, 'getattr', '/ws/f.txt');
    expect((st2 as Stat).size).toBe(17);
    expect((await readFile(handlers, '/ws/f.txt')).toString()).toBe('v2: a longer body');
  });

  it('moves the reported mtime when only the content changed (so cached pages are dropped)', async () => {
    const { handlers, poller, prefix } = await mountCore([{ path: 'f.txt', content: 'aaaa', mtimeMs: 5_000 }], { format: 2 });
    const [, a] = await call(handlers, 'getattr', '/ws/f.txt');
    expect((a as Stat).mtime).toBe(5_000);
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'f.txt', content: 'bbbb', mtimeMs: 5_000 }]);
    await poller.pollOnce();
    const [, b] = await call(handlers, 'getattr', '/ws/f.txt');
    expect((b as Stat).mtime).toBe(5_001);
    const [, again] = await call(handlers, 'getattr', '/ws/f.txt');
    expect((again as Stat).mtime).toBe(5_001);
  });

  it('reports a time before 1970 as the epoch, never as a time far in the future', async () => {
    const { handlers, core } = await mountCore([{ path: 'old.txt', content: 'x', mtimeMs: -86_400_000 }], { format: 2 });
    expect(await core.getattr('/ws/old.txt')).toMatchObject({ mtime: -86_400_000 });
    const [, st] = await call(handlers, 'getattr', '/ws/old.txt');
    expect(st).toMatchObject({ mtime: 0, atime: 0, ctime: 0 });
  });

  it('answers EIO by the deadline when S3 does not answer, and never writes the buffer afterwards', async () => {
    const { handlers, faulty } = await mountCore([{ path: 'f.txt', content: 'slow content' }], { format: 2, deadlineMs: 300 });
    const [, fh] = await call(handlers, 'open', '/ws/f.txt', constants.O_RDONLY);
    faulty.plan.latencyMs = 1_000;
    const buf = Buffer.alloc(64);
    const t0 = Date.now();
    expect(await call(handlers, 'read', '/ws/f.txt', fh, buf, 64, 0)).toEqual([EIO]);
    expect(Date.now() - t0).toBeLessThan(1_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(buf.equals(Buffer.alloc(64))).toBe(true);
    faulty.plan.latencyMs = 0;
    expect((await readFile(handlers, '/ws/f.txt')).toString()).toBe('slow content');
  });
});
