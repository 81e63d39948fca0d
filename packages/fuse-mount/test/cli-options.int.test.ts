/**
 * The CLI options scripts and fstab-style users reach for first: `-o` as mount(8) takes it, and
 * `--daemon` returning once the mount answers, the mount living on in the background.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedS3, startTestS3 } from '@workspace-sync/testkit';
import {
  eventually, forceUnmount, isMounted, publish, releaseS3, removeDir, runMountCli, sh, spawnMount, storeFor, tempDir, type MountProcess,
} from './helpers.js';

let s3: EmbeddedS3;
const mounts: MountProcess[] = [];
const mountpoints: string[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  s3 = await startTestS3();
  await publish(storeFor(s3), '', 'ws', [{ path: 'hello.txt', content: 'hello\n' }]);
});

afterAll(async () => {
  for (const m of mounts) if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
  for (const mnt of mountpoints) forceUnmount(mnt);
  await releaseS3(s3);
  for (const d of dirs) removeDir(d);
});

function dir(label: string): string {
  const d = tempDir(label);
  dirs.push(d);
  return d;
}

describe('fuse-mount -o', () => {
  it('applies uid=, gid= and allow_other given as -o options', async () => {
    const mnt = dir('mnt');
    mountpoints.push(mnt);
    const m = await spawnMount(mnt, ['--cache-dir', dir('cache'), '-o', 'ro,uid=1234', '-o', 'gid=4321,allow_other'], s3.env);
    mounts.push(m);
    const st = statSync(path.join(mnt, 'ws', 'hello.txt'));
    expect([st.uid, st.gid]).toEqual([1234, 4321]);
    const opts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mnt) ?? '';
    expect(opts).toMatch(/allow_other/);
    m.proc.kill('SIGTERM');
    expect(await m.exited).toBe(0);
  });

  it('refuses -o rw and unknown options before mounting, exit 2', async () => {
    const mnt = dir('mnt');
    for (const opt of ['rw', 'big_writes_please']) {
      const r = await runMountCli([mnt, '--cache-dir', dir('cache'), '-o', opt], s3.env);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`-o ${opt}: `);
      expect(isMounted(mnt)).toBe(false);
    }
  });
});

describe('fuse-mount --daemon', () => {
  it('returns 0 once the mount answers, keeps serving in the background, and ends on fusermount -u', async () => {
    const mnt = dir('mnt');
    mountpoints.push(mnt);
    const logFile = path.join(dir('logs'), 'mount.log');
    const r = await runMountCli([mnt, '--cache-dir', dir('cache'), '--daemon', '--log-file', logFile], s3.env);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`ready ${mnt}\n`);
    const pid = Number(/\(pid (\d+)\)/.exec(r.stderr)?.[1]);
    expect(pid).toBeGreaterThan(0);

    // The command has returned; the mount is still served.
    const read = await sh(`cat '${mnt}/ws/hello.txt'`);
    expect(read.stdout).toBe('hello\n');
    expect(readFileSync(logFile, 'utf8')).toContain('"msg":"mounted"');

    const un = await sh(`fusermount -u '${mnt}'`);
    expect(un.code).toBe(0);
    const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
    expect(await eventually(async () => !alive(), 10_000)).toBe(true);
    expect(isMounted(mnt)).toBe(false);
  });

  it('relays why the background mount did not start, with its exit code', async () => {
    const full = dir('full');
    const notEmpty = path.join(full, 'file');
    await sh(`echo x > '${notEmpty}'`);
    const r = await runMountCli([full, '--cache-dir', dir('cache'), '--daemon'], s3.env);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/is not empty/);
    expect(r.stderr).toMatch(/the background mount did not start \(exit 3\)/);
  });
});
