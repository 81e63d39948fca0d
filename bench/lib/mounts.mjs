// Mounting the same bucket prefix with fuse-mount, rclone mount and s3fs, for side-by-side runs.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { rcloneEnv } from './rclone.mjs';

export function isMounted(mnt) {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt);
}

async function waitFor(cond, timeoutMs, what) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function unmount(mnt) {
  spawnSync('fusermount', ['-uz', mnt], { stdio: 'ignore' });
}

/** Each returns { mnt, pid, stop() }; `stop` unmounts and ends the process. */
export async function mountOurs({ repo, s3, prefix, mnt, cacheDir, extraArgs = [] }) {
  unmount(mnt);
  mkdirSync(mnt, { recursive: true });
  rmSync(cacheDir, { recursive: true, force: true });
  const bin = path.join(repo, 'packages/fuse-mount/bin/fuse-mount.js');
  const child = spawn(process.execPath, [bin, mnt, '--prefix', prefix, '--cache-dir', cacheDir, ...extraArgs], {
    env: { ...process.env, ...s3.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fuse-mount exited with ${code}`)));
  });
  return { mnt, pid: child.pid, stop: () => stopChild(child, mnt) };
}

export async function mountRclone({ s3, prefix, mnt, cacheDir }) {
  unmount(mnt);
  mkdirSync(mnt, { recursive: true });
  rmSync(cacheDir, { recursive: true, force: true });
  const child = spawn('rclone', ['mount', `bench:${s3.bucket}/${prefix.replace(/\/$/, '')}`, mnt, '--read-only',
    '--vfs-cache-mode', 'full', '--vfs-cache-max-size', '1G', '--vfs-cache-max-age', '1h', '--dir-cache-time', '5m',
    '--cache-dir', cacheDir], { env: rcloneEnv(s3), stdio: 'ignore' });
  await waitFor(() => isMounted(mnt), 20_000, 'rclone mount');
  return { mnt, pid: child.pid, stop: () => stopChild(child, mnt) };
}

export async function mountS3fs({ s3, prefix, mnt, cacheDir, work }) {
  unmount(mnt);
  mkdirSync(mnt, { recursive: true });
  rmSync(cacheDir, { recursive: true, force: true });
  mkdirSync(cacheDir, { recursive: true });
  const passwd = path.join(work, 's3fs-passwd');
  writeFileSync(passwd, `${s3.env.AWS_ACCESS_KEY_ID}:${s3.env.AWS_SECRET_ACCESS_KEY}\n`, { mode: 0o600 });
  const child = spawn('s3fs', [`${s3.bucket}:/${prefix.replace(/\/$/, '')}`, mnt, '-f', '-o',
    [`url=${s3.endpoint}`, 'use_path_request_style', `passwd_file=${passwd}`, 'ro', `use_cache=${cacheDir}`, 'allow_other'].join(',')],
  { stdio: 'ignore' });
  await waitFor(() => isMounted(mnt), 20_000, 's3fs mount');
  return { mnt, pid: child.pid, stop: () => stopChild(child, mnt) };
}

async function stopChild(child, mnt) {
  if (child.exitCode === null) {
    child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]);
  }
  if (isMounted(mnt)) unmount(mnt);
  if (child.exitCode === null) child.kill('SIGKILL');
}
