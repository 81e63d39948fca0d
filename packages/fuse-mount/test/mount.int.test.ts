/**
 * The real CLI, a real FUSE mount and the embedded S3 server: what a container sees under the mount.
 * Everything on the mount is touched from child processes (sh), never from this process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '@workspace-sync/shared';
import { startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import {
  eventually, forceUnmount, isMounted, publish, releaseS3, removeDir, sh, spawnMount, storeFor, tempDir, type FixtureEntry, type MountProcess,
} from './helpers.js';

const PREFIX = 'team/';
const POLL_MS = 500;

let s3: EmbeddedS3;
let store: ObjectStore;
let mnt: string;
let cacheDir: string;
let mount: MountProcess;

function fixture(): FixtureEntry[] {
  const files: FixtureEntry[] = [
    { path: 'README.md', content: '# project\n', mtimeMs: 1_690_000_000_000 },
    { path: 'empty.txt', content: '' },
    { path: 'bin/build.sh', content: '#!/bin/sh\necho built\n', mode: 0o755 },
    { path: 'bin/private.sh', content: '#!/bin/sh\necho private\n', mode: 0o700 },
    { path: 'assets/blob.bin', content: randomBytes(9 * 1024 * 1024 + 17) },
    { path: 'name with spaces.txt', content: 'spaces\n' },
    { path: 'ünïcødé/ファイル.txt', content: 'unicode\n' },
    { path: 'link-to-readme', symlink: 'README.md' },
    { path: 'src/link-up', symlink: '../bin/build.sh' },
    { path: 'dangling', symlink: 'does/not/exist' },
  ];
  for (let i = 0; i < 40; i++) files.push({ path: `src/pkg${i % 5}/mod${i}.ts`, content: randomBytes(100 + i * 37).toString('base64') });
  return files;
}

let files: FixtureEntry[];

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
  files = fixture();
  await publish(store, PREFIX, 'proj', files);
  await publish(store, PREFIX, 'other', [{ path: 'x.txt', content: 'other workspace\n' }]);
  mnt = tempDir('mnt');
  cacheDir = tempDir('cache');
  mount = await spawnMount(mnt, ['--prefix', PREFIX, '--cache-dir', cacheDir, '--poll-interval', `${POLL_MS}ms`], s3.env);
});

afterAll(async () => {
  if (mount?.proc.exitCode === null) mount.proc.kill('SIGKILL');
  forceUnmount(mnt);
  await releaseS3(s3);
  for (const d of [mnt, cacheDir]) if (d) removeDir(d);
});

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('fuse-mount over a real mount', () => {
  it('shows the workspaces, and not the control prefix', async () => {
    const r = await sh(`ls -A ${mnt}`);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['other', 'proj']);
    expect((await sh(`grep " ${mnt} " /proc/self/mountinfo`)).stdout).toContain(' ro,');
  });

  it('has exactly the pushed tree, with the same bytes in every file', async () => {
    const r = await sh(`cd ${mnt}/proj && find . -mindepth 1 \\( -type f -o -type l \\) -printf '%y %P\\n' | LC_ALL=C sort`);
    expect(r.code).toBe(0);
    const expected = files.map((f) => `${'symlink' in f ? 'l' : 'f'} ${f.path}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(expected);

    const sums = await sh(`cd ${mnt}/proj && find . -type f -print0 | xargs -0 sha256sum`, 60_000);
    expect(sums.code).toBe(0);
    const got = new Map(sums.stdout.split('\n').filter(Boolean).map((l) => [l.slice(66).replace(/^\.\//, ''), l.slice(0, 64)]));
    for (const f of files) if (!('symlink' in f)) expect([f.path, got.get(f.path)]).toEqual([f.path, sha(f.content)]);
  });

  it('keeps sizes, mtimes, exec bits and symlink targets', async () => {
    const r = await sh(`cd ${mnt}/proj && stat -c '%s %Y %a %F' README.md empty.txt bin/build.sh bin/private.sh && readlink link-to-readme src/link-up dangling`
      + ` && cat link-to-readme && ./bin/build.sh && src/link-up && test -x bin/build.sh && ! test -x README.md && echo ok`);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual([
      '10 1690000000 644 regular file',
      '0 1700000000 644 regular empty file',
      '21 1700000000 755 regular file',
      '23 1700000000 700 regular file',
      'README.md', '../bin/build.sh', 'does/not/exist',
      '# project', 'built', 'built', 'ok', '',
    ]);
  });

  it('answers EROFS to every kind of write', async () => {
    const attempts = [
      `echo x > ${mnt}/proj/README.md`, `echo x >> ${mnt}/proj/README.md`, `touch ${mnt}/proj/new-file`, `touch ${mnt}/proj/README.md`,
      `rm ${mnt}/proj/README.md`, `mv ${mnt}/proj/README.md ${mnt}/proj/moved`, `mkdir ${mnt}/proj/newdir`, `rmdir ${mnt}/proj/src/pkg0`,
      `chmod 777 ${mnt}/proj/README.md`, `truncate -s 0 ${mnt}/proj/README.md`, `ln -s x ${mnt}/proj/newlink`, `mkdir ${mnt}/new-workspace`,
    ];
    for (const cmd of attempts) {
      const r = await sh(cmd);
      expect([cmd, r.code === 0 ? 'succeeded' : /Read-only file system/.test(r.stderr) ? 'EROFS' : r.stderr]).toEqual([cmd, 'EROFS']);
    }
    expect((await sh(`cat ${mnt}/proj/README.md`)).stdout).toBe('# project\n');
  });

  it('shows a new push within the poll interval', async () => {
    const next = files.filter((f) => f.path !== 'empty.txt').map((f) => (f.path === 'README.md' ? { ...f, content: '# project v2, longer\n' } : f));
    next.push({ path: 'added/new.txt', content: 'brand new\n' });
    const pushedAt = Date.now();
    await publish(store, PREFIX, 'proj', next, 2);
    const script = `cd ${mnt}/proj && cat README.md && cat added/new.txt && ! test -e empty.txt && echo whole`;
    // Poll interval plus the kernel's attribute lifetime; the generous bound only guards against hanging.
    const seen = await eventually(async () => (await sh(script)).stdout === '# project v2, longer\nbrand new\nwhole\n', 15_000, 50);
    expect(seen).toBe(true);
    console.log(`push visible after ${Date.now() - pushedAt} ms (poll interval ${POLL_MS} ms)`);
    const sums = await sh(`cd ${mnt}/proj && sha256sum README.md assets/blob.bin`);
    expect(sums.stdout).toContain(sha('# project v2, longer\n'));
    expect(sums.stdout).toContain(sha((files.find((f) => f.path === 'assets/blob.bin') as { content: Buffer }).content));
  });

  it('unmounts cleanly on SIGTERM and exits 0', async () => {
    expect(isMounted(mnt)).toBe(true);
    mount.proc.kill('SIGTERM');
    expect(await mount.exited).toBe(0);
    expect(isMounted(mnt)).toBe(false);
  });
});
