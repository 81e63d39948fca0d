/**
 * The whole contract, end to end: `sync-agent push` publishes a real directory, `fuse-mount` shows
 * exactly what the agent says it syncs, byte for byte, and a second push shows up by itself.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess, startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const AGENT = path.join(REPO, 'packages', 'sync-agent', 'bin', 'sync-agent.js');
const MOUNT = path.join(REPO, 'packages', 'fuse-mount', 'bin', 'fuse-mount.js');

let s3: EmbeddedS3;
let work: string;
let root: string;
let mnt: string;
let mount: ReturnType<typeof spawn> | undefined;
let mountExit: Promise<number | null>;

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(cmd, args, { env: { ...process.env, ...s3.env, LOG_LEVEL: 'warn', ...env }, timeoutMs: 110_000 });
}

// Files from 5 MiB up go in parts: their ETags are the multipart kind, which Ceph RGW leaves out of its
// answer to the completing request.
const push = () => run(process.execPath, [AGENT, 'push', '--root', root, '--state-dir', path.join(work, 'state'), 'app'], {
  SYNC_MULTIPART_THRESHOLD: '5M',
});
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function write(rel: string, content: string | Buffer, mode?: number): void {
  const file = path.join(root, 'app', rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  if (mode !== undefined) chmodSync(file, mode);
}

/** Path → sha256 of every file in a tree, from a child process (the mount is served by another process). */
async function hashes(dir: string): Promise<Map<string, string>> {
  const r = await run('sh', ['-c', `cd '${dir}' && find . -type f -print0 | xargs -0 -r sha256sum`]);
  expect(r.code).toBe(0);
  return new Map(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(66).replace(/^\.\//, ''), l.slice(0, 64)]));
}

beforeAll(async () => {
  s3 = await startTestS3();
  work = mkdtempSync(path.join(tmpdir(), 'wsync-e2e-'));
  root = path.join(work, 'workspaces');
  mnt = path.join(work, 'mnt');
  mkdirSync(mnt, { recursive: true });
  write('README.md', '# app\n');
  write('src/index.ts', 'export const x = 1;\n');
  write('src/deep/er/mod.ts', randomBytes(3000).toString('hex'));
  write('bin/run.sh', '#!/bin/sh\necho ran\n', 0o755);
  write('assets/data.bin', randomBytes(2 * 1024 * 1024 + 5));
  write('assets/parts.bin', randomBytes(9 * 1024 * 1024 + 3));
  write('.gitignore', '*.tmp\n');
  write('scratch.tmp', 'ignored by .gitignore\n');
  write('node_modules/dep/index.js', 'ignored by default\n');
  symlinkSync('README.md', path.join(root, 'app', 'readme-link'));
  // More than 256 entries: a split directory (an index over parts).
  for (let i = 0; i < 400; i++) write(`gen/f${String(i).padStart(4, '0')}.ts`, `export const v${i} = ${i};\n`);
  const pushed = await push();
  expect(pushed.stderr).toBe('');
  expect(pushed.code).toBe(0);

  const proc = spawn(process.execPath, [MOUNT, mnt, '--cache-dir', path.join(work, 'cache'), '--poll-interval', '500ms'], {
    env: { ...process.env, ...s3.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  mount = proc;
  mountExit = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    void mountExit.then((code) => reject(new Error(`fuse-mount exited with ${code}`)));
  });
  expect(line).toBe(`ready ${mnt}`);
});

afterAll(async () => {
  if (mount && mount.exitCode === null) mount.kill('SIGKILL');
  if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `)) await run('fusermount', ['-uz', mnt]);
  await s3?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
  // The embedded server's directory is this file's; with S3_BACKEND=rgw it is the Ceph cluster the whole run shares.
  if (s3 && (process.env.S3_BACKEND ?? 'embedded') === 'embedded') rmSync(s3.dir, { recursive: true, force: true });
});

describe('sync-agent push → fuse-mount', () => {
  it('mounts exactly the files the agent syncs, with the same bytes, modes and links', async () => {
    const listed = await run(process.execPath, [AGENT, 'files', path.join(root, 'app')]);
    expect(listed.code).toBe(0);
    const expected = listed.stdout.split('\n').filter(Boolean);
    expect(expected).not.toContain('scratch.tmp');
    const found = await run('sh', ['-c', `cd '${mnt}/app' && find . -mindepth 1 \\( -type f -o -type l \\) -printf '%P\\n' | LC_ALL=C sort`]);
    expect(found.stdout.split('\n').filter(Boolean)).toEqual(expected);

    const local = await hashes(path.join(root, 'app'));
    const mounted = await hashes(path.join(mnt, 'app'));
    for (const [rel, sum] of mounted) expect([rel, sum]).toEqual([rel, local.get(rel)]);
    const modes = await run('sh', ['-c', `cd '${mnt}/app' && stat -c '%a %n' bin/run.sh README.md && readlink readme-link`]);
    expect(modes.stdout).toBe('755 bin/run.sh\n644 README.md\nREADME.md\n');
  });

  it('shows the next push by itself', async () => {
    write('README.md', '# app, second edition\n');
    write('src/new.ts', 'export const y = 2;\n');
    unlinkSync(path.join(root, 'app', 'src', 'index.ts'));
    write('gen/f0123.ts', 'edited in its part\n');
    unlinkSync(path.join(root, 'app', 'gen', 'f0300.ts'));
    const pushed = await push();
    expect(pushed.code).toBe(0);
    const deadline = Date.now() + 15_000;
    let seen = '';
    const want = '# app, second edition\nexport const y = 2;\nedited in its part\ngone\n';
    while (Date.now() < deadline) {
      seen = (await run('sh', ['-c', `cd '${mnt}/app' && cat README.md src/new.ts gen/f0123.ts && ! test -e src/index.ts && ! test -e gen/f0300.ts && echo gone`])).stdout;
      if (seen === want) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toBe(want);
    const mounted = await hashes(path.join(mnt, 'app'));
    const local = await hashes(path.join(root, 'app'));
    for (const ignored of ['scratch.tmp', 'node_modules/dep/index.js']) local.delete(ignored);
    expect(mounted).toEqual(local);
    expect(mounted.get('README.md')).toBe(sha('# app, second edition\n'));
  });

  it('unmounts on SIGTERM', async () => {
    mount!.kill('SIGTERM');
    expect(await mountExit).toBe(0);
    expect(readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `)).toBe(false);
  });
});
