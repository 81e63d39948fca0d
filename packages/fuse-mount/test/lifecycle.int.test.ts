/**
 * Starting and stopping the real CLI: clear failures before mounting, a busy mount point, and a
 * stale mount left by a killed process cleared at the next start.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess, startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import {
  CLI, forceUnmount, isMounted, publish, releaseS3, removeDir, sh, spawnMount, storeFor, tempDir, type MountProcess,
} from './helpers.js';

let s3: EmbeddedS3;
const mounts: MountProcess[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  s3 = await startTestS3();
  await publish(storeFor(s3), '', 'ws', [{ path: 'hello.txt', content: 'hello\n' }]);
});

afterAll(async () => {
  for (const m of mounts) {
    if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
    forceUnmount(m.mountpoint);
  }
  await releaseS3(s3);
  for (const d of dirs) removeDir(d);
});

function dir(label: string): string {
  const d = tempDir(label);
  dirs.push(d);
  return d;
}

/** Runs the CLI to completion (for start-up failures). */
function runCli(args: string[], env: Record<string, string> = s3.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
}

async function mountAt(mnt: string, cache = dir('cache')): Promise<MountProcess> {
  const m = await spawnMount(mnt, ['--cache-dir', cache, '--poll-interval', '1s'], s3.env);
  mounts.push(m);
  return m;
}

describe('fuse-mount start and stop', () => {
  it('fails with one clear error when the mount point is missing or not empty', async () => {
    const missing = path.join(dir('parent'), 'nope');
    const r1 = await runCli([missing, '--cache-dir', dir('cache')]);
    expect(r1.code).toBe(3);
    expect(r1.stdout).toBe('');
    expect(r1.stderr).toBe(`error: mount point ${missing} does not exist\n  hint: create it first: mkdir -p ${missing}\n`);

    const full = dir('full');
    writeFileSync(path.join(full, 'file'), 'x');
    const r2 = await runCli([full, '--cache-dir', dir('cache')]);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(/^error: mount point .* is not empty\n {2}hint: /);
  });

  it('fails clearly on bad options and when S3 cannot be reached', async () => {
    const bad = await runCli([dir('mnt'), '--cache-max-size', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid value "lots" for cacheMaxSize (from flag --cache-max-size)');

    const mnt = dir('mnt');
    const down = await runCli([mnt, '--cache-dir', dir('cache')], { ...s3.env, S3_ENDPOINT: 'http://127.0.0.1:9' });
    expect(down.code).toBe(3);
    expect(down.stderr).toContain('cannot reach S3 endpoint http://127.0.0.1:9');
    // Nothing was left mounted.
    expect(isMounted(mnt)).toBe(false);
  });

  it('refuses a mount point that is already mounted, leaving that mount alone', async () => {
    const mnt = dir('mnt');
    const first = await mountAt(mnt);
    const second = await runCli([mnt, '--cache-dir', dir('cache')]);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain(`mount point ${mnt} is busy`);
    expect((await sh(`cat ${mnt}/ws/hello.txt`)).stdout).toBe('hello\n');
    first.proc.kill('SIGINT');
    expect(await first.exited).toBe(0);
    expect(isMounted(mnt)).toBe(false);
  });

  it('clears a stale mount left by a killed process and mounts again, reusing its cache', async () => {
    const mnt = dir('mnt');
    const cache = dir('cache');
    const killed = await mountAt(mnt, cache);
    expect((await sh(`cat ${mnt}/ws/hello.txt`)).stdout).toBe('hello\n');
    killed.proc.kill('SIGKILL');
    await killed.exited;
    expect(isMounted(mnt)).toBe(true);
    const stale = await sh(`ls ${mnt}`);
    expect(stale.stderr).toContain('Transport endpoint is not connected');

    // Same cache directory: the dead process's lock is taken over.
    const again = await mountAt(mnt, cache);
    expect(again.stderr()).toContain('clearing a stale FUSE mount');
    expect((await sh(`cat ${mnt}/ws/hello.txt`)).stdout).toBe('hello\n');
    again.proc.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    expect(isMounted(mnt)).toBe(false);
  });
});
