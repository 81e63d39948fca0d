/**
 * Format v2 on a real FUSE mount (the CLI, the embedded S3 server or Ceph RGW): lazy directory
 * loading counted on the wire and in the metrics, snapshots of older generations, a damaged cache
 * blob after a restart, pre-1970 times, and the end of the process when the mount is removed from
 * outside. Everything on the mount is touched from child processes (sh), never from this process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '@workspace-sync/shared';
import { startCountingProxy, startTestS3, writeCommitFixture, type CommitFixtureEntry, type EmbeddedS3 } from '@workspace-sync/testkit';
import {
  eventually, forceUnmount, healthPortOf, isMounted, releaseS3, removeDir, sh, spawnMount, storeFor, tempDir, type MountProcess,
} from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
const mounts: MountProcess[] = [];
const dirs: string[] = [];
let n = 0;

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
});

afterAll(async () => {
  for (const m of mounts) {
    if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
    forceUnmount(m.mountpoint);
  }
  await releaseS3(s3);
  for (const d of dirs) removeDir(d);
});

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function mount(prefix: string, extra: string[] = [], env: Record<string, string> = {}, cache = tempDir('cache')) {
  const mnt = tempDir('mnt');
  dirs.push(mnt, cache);
  const m = await spawnMount(mnt, ['--prefix', prefix, '--cache-dir', cache, '--poll-interval', '500ms', '--log-level', 'info', ...extra], { ...s3.env, ...env });
  mounts.push(m);
  return { mnt, cache, m };
}

async function metric(m: MountProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${healthPortOf(m)}/metrics`)).text();
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

describe('format v2 on a real mount', () => {
  it('answers a stat in a 10,000-file workspace from a handful of directories, not the whole tree', async () => {
    const prefix = `p${++n}/`;
    const files: CommitFixtureEntry[] = [];
    for (let d = 0; d < 100; d++) for (let f = 0; f < 100; f++) files.push({ path: `src/d${d}/f${f}.ts`, content: `export const v = ${d * 100 + f};\n` });
    await writeCommitFixture(store, prefix, 'big', files);
    const proxy = await startCountingProxy(s3.endpoint);
    try {
      const { mnt, m } = await mount(prefix, ['--health-port', '0', '--prefetch-concurrency', '0'], { S3_ENDPOINT: proxy.endpoint });
      const atStart = await metric(m, 'fuse_mount_tree_loads_total');
      proxy.reset();
      const r = await sh(`stat -c '%s %F' ${mnt}/big/src/d42/f7.ts`);
      expect(r.stdout).toBe('23 regular file\n');
      // src and src/d42 (the root came with the commit): 102 directories in the workspace.
      expect(await metric(m, 'fuse_mount_tree_loads_total') - atStart).toBeLessThanOrEqual(3);
      // The tree pack was fetched with the root; no data was read for a stat.
      expect(proxy.count('GET', '/.sync/big/packs/')).toBe(0);
      expect(proxy.count('GET', '/.sync/big/trees/')).toBe(0);
      // find walks it all and sees every file.
      const found = await sh(`find ${mnt}/big -type f | wc -l`, 60_000);
      expect(found.stdout.trim()).toBe('10000');
      const cat = await sh(`cat ${mnt}/big/src/d99/f99.ts`);
      expect(cat.stdout).toBe('export const v = 9999;\n');
    } finally {
      await proxy.close();
    }
  });

  it('serves older generations under .snapshots, hidden from the root listing, for diff -r', async () => {
    const prefix = `p${++n}/`;
    await writeCommitFixture(store, prefix, 'app', [{ path: 'a.txt', content: 'one\n' }, { path: 'same.txt', content: 'same\n' }]);
    await writeCommitFixture(store, prefix, 'app', [{ path: 'a.txt', content: 'two\n' }, { path: 'same.txt', content: 'same\n' }, { path: 'b.txt', content: 'b\n' }]);
    const { mnt } = await mount(prefix);
    expect((await sh(`ls -A ${mnt}`)).stdout).toBe('app\n');
    expect((await sh(`ls ${mnt}/.snapshots/app`)).stdout).toBe('1\n2\n');
    const diff = await sh(`diff -r ${mnt}/.snapshots/app/1 ${mnt}/.snapshots/app/2`);
    expect(diff.code).toBe(1);
    expect(diff.stdout).toContain('Only in');
    expect(diff.stdout).toContain('< one');
    expect(diff.stdout).not.toContain('same.txt');
    // The current view and the newest generation are the same tree.
    expect((await sh(`diff -r ${mnt}/app ${mnt}/.snapshots/app/2 && echo same`)).stdout).toBe('same\n');
  });

  it('shows a file dated before 1970 at the epoch, not in the year 584556009', async () => {
    const prefix = `p${++n}/`;
    await writeCommitFixture(store, prefix, 'old', [{ path: 'ancient.txt', content: 'x', mtimeMs: -86_400_000 }]);
    const { mnt } = await mount(prefix);
    expect((await sh(`stat -c %Y ${mnt}/old/ancient.txt`)).stdout).toBe('0\n');
  });

  it('never serves a damaged cache blob of the same size: after a restart it is fetched again', async () => {
    const prefix = `p${++n}/`;
    const body = randomBytes(200_000);
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'data.bin', content: body }]);
    const cache = tempDir('cache');
    const first = await mount(prefix, ['--prefetch-concurrency', '0'], {}, cache);
    expect((await sh(`sha256sum < ${first.mnt}/ws/data.bin`)).stdout).toContain(sha(body));
    const file = path.join(cache, 'v1', 'blobs', sha(body).slice(0, 2), sha(body));
    // The blob reaches the disk cache just after the read is answered: wait for it rather than race the shutdown.
    for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
    first.m.proc.kill('SIGTERM');
    expect(await first.m.exited).toBe(0);
    expect(statSync(file).size).toBe(body.length);
    const damaged = readFileSync(file);
    for (let i = 0; i < damaged.length; i += 4096) damaged[i] ^= 0x5a;
    writeFileSync(file, damaged);

    const second = await mount(prefix, ['--prefetch-concurrency', '0'], {}, cache);
    expect((await sh(`sha256sum < ${second.mnt}/ws/data.bin`)).stdout).toContain(sha(body));
    expect(second.m.stderr()).toContain('does not match its sha256');
    // The refetched copy replaces the damaged one on disk (written just after the read is answered).
    for (let i = 0; i < 100 && !(existsSync(file) && sha(readFileSync(file)) === sha(body)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(sha(readFileSync(file))).toBe(sha(body));
    expect(readdirSync(path.join(cache, 'v1', 'blobs', sha(body).slice(0, 2)))).toContain(sha(body));
  });

  it('ends with exit 0 when the mount is removed from outside (fusermount -u)', async () => {
    const prefix = `p${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'f.txt', content: 'hi\n' }]);
    const { mnt, m } = await mount(prefix);
    expect((await sh(`cat ${mnt}/ws/f.txt`)).stdout).toBe('hi\n');
    const u = await sh(`fusermount -u ${mnt}`);
    expect(u.code).toBe(0);
    const code = await Promise.race([m.exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
    expect(code).toBe(0);
    expect(m.stderr()).toContain('the mount was removed from outside');
    expect(isMounted(mnt)).toBe(false);
  });

  it('shows a new commit within the poll interval, switching the whole workspace at once', async () => {
    const prefix = `p${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'a.txt', content: 'gen 1\n' }, { path: 'b.txt', content: 'gen 1\n' }]);
    const { mnt } = await mount(prefix);
    const before = (await sh(`stat -c %Y ${mnt}/ws`)).stdout;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'a.txt', content: 'gen 2\n' }, { path: 'b.txt', content: 'gen 2\n' }], {
      createdAt: new Date(Date.now() + 5_000),
    });
    const seen = await eventually(async () => (await sh(`cat ${mnt}/ws/a.txt ${mnt}/ws/b.txt`)).stdout === 'gen 2\ngen 2\n', 15_000, 50);
    expect(seen).toBe(true);
    // The workspace directory's mtime is the commit's time: a watcher notices a push from one stat
    // (once the kernel's attribute lifetime has passed).
    expect(await eventually(async () => (await sh(`stat -c %Y ${mnt}/ws`)).stdout !== before, 5_000, 50)).toBe(true);
  });
});
