import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry, startHealthServer, type HealthServer, type HealthStatus } from '../../packages/shared/src/health.js';
import { DOCKER, REPO } from './helpers.js';

const RUN_WORKSPACE = path.join(DOCKER, 'monitor/run-workspace.sh');
const ENTRYPOINT = path.join(DOCKER, 'fuse-mount/entrypoint.sh');
const CREATE_BUCKET = path.join(DOCKER, 'minio/create-bucket.sh');
const HEALTHCHECK = path.join(DOCKER, 'healthcheck.mjs');

interface Result { code: number | null; stdout: string; stderr: string }

/** Runs a command without blocking this process's event loop (the health server lives in it). */
function run(cmd: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const temps: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'deploy-test-'));
  temps.push(d);
  return d;
}
afterAll(() => { for (const d of temps) rmSync(d, { recursive: true, force: true }); });

function writeTree(root: string, files: Record<string, string>) {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), content);
  }
}

/** A directory of fake commands that log their argv to `calls.log`, put first on PATH. */
function fakeCommands(names: Record<string, string>): { path: string; calls: () => string[] } {
  const bin = tempDir();
  const log = path.join(bin, 'calls.log');
  for (const [name, exitCode] of Object.entries(names)) {
    writeFileSync(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${log}'\nexit ${exitCode}\n`);
    chmodSync(path.join(bin, name), 0o755);
  }
  return {
    path: `${bin}:${process.env.PATH}`,
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []),
  };
}

const isMounted = (mountpoint: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountpoint.replaceAll(' ', '\\040')} `);

/** An empty FUSE filesystem served by a child process (fuse-native, as the mount uses). */
async function mountEmptyFuse(mountpoint: string): Promise<{ unmount(): Promise<void> }> {
  const fuseNative = createRequire(path.join(REPO, 'packages/fuse-mount/package.json')).resolve('fuse-native');
  const server = `
    const Fuse = require(${JSON.stringify(fuseNative)});
    const dir = { mtime: new Date(), atime: new Date(), ctime: new Date(), size: 4096, mode: 0o40755, uid: 0, gid: 0, nlink: 2 };
    const fuse = new Fuse(process.argv[1], {
      readdir: (p, cb) => cb(0, []),
      getattr: (p, cb) => (p === '/' ? cb(0, dir) : cb(Fuse.ENOENT)),
    }, { mkdir: true });
    fuse.mount((err) => { if (err) { console.error(err.message); process.exit(1); } });
    process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));`;
  const child = spawn('node', ['-e', server, mountpoint], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  for (let i = 0; i < 100 && !isMounted(mountpoint); i++) await new Promise((r) => setTimeout(r, 100));
  const unmount = async () => {
    child.kill('SIGTERM');
    await exited;
    if (isMounted(mountpoint)) spawnSync('fusermount', ['-uz', mountpoint]);
  };
  if (!isMounted(mountpoint)) {
    await unmount();
    throw new Error(`FUSE mount at ${mountpoint} did not appear`);
  }
  return { unmount };
}

describe('shell scripts', () => {
  const scripts = [RUN_WORKSPACE, ENTRYPOINT, CREATE_BUCKET];

  it('every script under docker/ passes shellcheck', () => {
    const found = readdirSync(DOCKER, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.sh') && !f.startsWith('workspaces/')).map((f) => path.join(DOCKER, f));
    expect(found.sort()).toEqual([...scripts].sort());
    const r = spawnSync('shellcheck', ['--shell=sh', ...found], { encoding: 'utf8' });
    expect(r.error, 'shellcheck is not installed: apt-get install -y shellcheck').toBeUndefined();
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('are POSIX sh scripts with the executable bit', () => {
    for (const s of scripts) {
      expect(readFileSync(s, 'utf8').startsWith('#!/bin/sh\n'), s).toBe(true);
      expect(statSync(s).mode & 0o111, s).toBe(0o111);
    }
  });
});

describe('docker/healthcheck.mjs', () => {
  let status: HealthStatus = 'ok';
  let server: HealthServer;
  beforeAll(async () => {
    server = await startHealthServer({
      port: 0, host: '127.0.0.1', registry: createRegistry('deploy_test_'), health: () => ({ status, reasons: status === 'ok' ? [] : ['s3 unreachable'] }),
    });
  });
  afterAll(async () => { await server.close(); });

  it('is healthy while /healthz answers ok or degraded', async () => {
    for (const s of ['ok', 'degraded'] as const) {
      status = s;
      const r = await run('node', [HEALTHCHECK], { HEALTH_PORT: String(server.port) });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: s });
    }
  });

  it('is unhealthy when /healthz answers 503 (down)', async () => {
    status = 'down';
    const r = await run('node', [HEALTHCHECK], { HEALTH_PORT: String(server.port) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unhealthy: \/healthz answered 503: .*s3 unreachable/);
  });

  it('is unhealthy when nothing listens, and says so when HEALTH_PORT is unset', async () => {
    const closed = await startHealthServer({ port: 0, host: '127.0.0.1', registry: createRegistry('deploy_closed_'), health: () => ({ status: 'ok', reasons: [] }) });
    const port = closed.port;
    await closed.close();
    const r = await run('node', [HEALTHCHECK], { HEALTH_PORT: String(port) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`GET http://127.0.0.1:${port}/healthz failed`);
    const unset = await run('node', [HEALTHCHECK], { HEALTH_PORT: undefined });
    expect(unset.code).toBe(1);
    expect(unset.stderr).toContain('HEALTH_PORT is ""');
  });

  it('with a path, is healthy when that path is a FUSE mount point (escaped names included)', async () => {
    status = 'ok';
    const mountpoint = path.join(tempDir(), 'mount point');
    const fuse = await mountEmptyFuse(mountpoint);
    try {
      const r = await run('node', [HEALTHCHECK, mountpoint], { HEALTH_PORT: String(server.port) });
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await fuse.unmount();
    }
    const after = await run('node', [HEALTHCHECK, mountpoint], { HEALTH_PORT: String(server.port) });
    expect(after.code).toBe(1);
  });

  it('with a path, is unhealthy unless that path is a FUSE mount point', async () => {
    status = 'ok';
    const notMounted = tempDir();
    for (const p of [notMounted, '/']) {
      const r = await run('node', [HEALTHCHECK, p], { HEALTH_PORT: String(server.port) });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${p} is not a FUSE mount point`);
    }
  });
});

describe('docker/monitor/run-workspace.sh', () => {
  let source: string;
  let scratch: string;
  beforeAll(() => {
    source = tempDir();
    scratch = tempDir();
    writeTree(source, {
      'api/package.json': '{"name":"api","version":"1.0.0","private":true}\n',
      'api/app.js': 'console.log("api")\n',
      'api/src/lib/util.js': 'module.exports = 1\n',
      'api/.env.example': 'PORT=3000\n',
    });
  });
  const SYNC_AGENT = path.join(REPO, 'node_modules/.bin/sync-agent');
  const runScript = (args: string[], env: Record<string, string> = {}) =>
    run(RUN_WORKSPACE, args, { SOURCE_DIR: source, SCRATCH_DIR: scratch, NPM_INSTALL: '0', WAIT_SECONDS: '0', SYNC_AGENT, ...env });

  it('copies the workspace into SCRATCH_DIR/WORKSPACE, writable, and leaves the source alone', async () => {
    chmodSync(path.join(source, 'api/src/lib'), 0o555);
    const r = await runScript(['api']);
    chmodSync(path.join(source, 'api/src/lib'), 0o755);
    expect(r.code, r.stderr).toBe(0);
    const dest = path.join(scratch, 'api');
    expect(r.stdout).toContain(`copied 4 files from ${source}/api to ${dest}`);
    expect(r.stdout).toContain('no node_modules, .git or .env in the synced copy');
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`run-workspace: ready in ${dest}`);
    expect(readFileSync(path.join(dest, 'src/lib/util.js'), 'utf8')).toBe('module.exports = 1\n');
    expect(statSync(path.join(dest, 'src/lib')).mode & 0o200).toBe(0o200);
    expect(readdirSync(path.join(source, 'api')).sort()).toEqual(['.env.example', 'app.js', 'package.json', 'src']);
  });

  it('replaces an older copy instead of merging into it', async () => {
    writeTree(scratch, { 'api/stale.txt': 'old\n' });
    const r = await runScript(['api']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(path.join(scratch, 'api/stale.txt'))).toBe(false);
  });

  it('runs npm install in the copy only', async () => {
    const r = await runScript(['api'], { NPM_INSTALL: '1' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`npm install in ${path.join(scratch, 'api')}`);
    expect(existsSync(path.join(scratch, 'api/package-lock.json'))).toBe(true);
    expect(existsSync(path.join(source, 'api/package-lock.json'))).toBe(false);
  });

  it('runs COMMAND inside the copy', async () => {
    const r = await runScript(['api', 'sh', '-c', 'pwd; ls']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain(path.join(scratch, 'api'));
    expect(lines).toContain('app.js');
    expect(r.stdout).toContain('run-workspace: running sh -c pwd; ls in');
  });

  for (const [forbidden, why] of [
    ['node_modules/left-pad/index.js', 'web/node_modules/: excluded by node_modules/ (defaults)'],
    ['.env', 'web/.env: excluded by .env* (defaults)'],
    ['packages/web/node_modules/x.js', 'web/packages/web/node_modules/: excluded by node_modules/ (defaults)'],
  ]) {
    it(`refuses a copy holding ${forbidden}, which the sync filter excludes, with its answer`, async () => {
      const root = tempDir();
      writeTree(root, { 'web/index.js': '1\n', [`web/${forbidden!}`]: 'x\n' });
      const r = await runScript(['web'], { SOURCE_DIR: root });
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`the copy at ${path.join(scratch, 'web')} holds what the sync filter excludes`);
      expect(r.stderr.split('\n')).toContain(why);
      expect(r.stderr).toContain('FILTER_CHECK=0');
    });
  }

  it('refuses git data whatever the rules say (git data is never synced)', async () => {
    const root = tempDir();
    writeTree(root, { 'web/index.js': '1\n', 'web/.gitignore': '!.git/\n', 'web/.git/HEAD': 'x\n' });
    const r = await runScript(['web'], { SOURCE_DIR: root });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`the copy at ${path.join(scratch, 'web')} holds git data, which is never synced`);
    expect(r.stderr.split('\n')).toContain('web/.git');
  });

  it('runs a real repo whose own .gitignore re-includes a fixture .env and node_modules', async () => {
    const root = tempDir();
    writeTree(root, {
      'web/index.js': '1\n', 'web/.gitignore': '!.env\n!/node_modules/\n', 'web/.env': 'FIXTURE=1\n', 'web/node_modules/fixture/index.js': 'x\n',
    });
    const r = await runScript(['web'], { SOURCE_DIR: root });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("run-workspace: kept by the workspace's own rules:\nweb/.env: included by !.env (web/.gitignore:1)\nweb/node_modules/: included by !/node_modules/ (web/.gitignore:2)\n");
    expect(existsSync(path.join(scratch, 'web/node_modules/fixture/index.js'))).toBe(true);
  });

  it('without a sync-agent command only warns; FILTER_CHECK=0 skips the check', async () => {
    const root = tempDir();
    writeTree(root, { 'web/index.js': '1\n', 'web/.env': 'x\n' });
    const noCli = await runScript(['web'], { SOURCE_DIR: root, SYNC_AGENT: path.join(root, 'no-such-command') });
    expect(noCli.code, noCli.stderr).toBe(0);
    expect(noCli.stdout).toContain(`warning: no ${path.join(root, 'no-such-command')} command to ask the sync filter (set SYNC_AGENT); not checked: web/.env\n`);
    const skipped = await runScript(['web'], { SOURCE_DIR: root, FILTER_CHECK: '0' });
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stdout).toContain("FILTER_CHECK=0: not checking the synced copy's web/.env\n");
  });

  it('waits for the workspace to appear, then gives up after WAIT_SECONDS', async () => {
    const late = runScript(['late'], { WAIT_SECONDS: '30' });
    setTimeout(() => writeTree(source, { 'late/index.js': '1\n' }), 1500);
    const r = await late;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`waiting for ${source}/late`);

    const missing = await runScript(['missing']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain(`workspace 'missing' did not appear under ${source} within 0s`);
  });

  it('rejects bad usage with status 2', async () => {
    for (const [args, env, message] of [
      [[], {}, 'usage: run-workspace.sh WORKSPACE'],
      [['../etc'], {}, "invalid workspace name '../etc'"],
      [['.sync'], {}, "invalid workspace name '.sync'"],
      [['api'], { NPM_INSTALL: 'yes' }, "NPM_INSTALL must be 0 or 1, not 'yes'"],
      [['api'], { WAIT_SECONDS: '1m' }, "WAIT_SECONDS must be a whole number of seconds, not '1m'"],
      [['api'], { FILTER_CHECK: 'no' }, "FILTER_CHECK must be 0 or 1, not 'no'"],
    ] as const) {
      const r = await runScript([...args], env);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });

  it('runs the demo workspace of docker-compose.yml', async () => {
    const r = await runScript(['demo'], { SOURCE_DIR: path.join(DOCKER, 'workspaces') });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(path.join(scratch, 'demo/server.js'))).toBe(true);
  });
});

describe('docker/fuse-mount/entrypoint.sh', () => {
  it('creates the mount point and execs the CLI with all arguments', async () => {
    const fake = fakeCommands({ node: '0', fusermount: '1' });
    const mountpoint = path.join(tempDir(), 'mnt/workspaces');
    const r = await run(ENTRYPOINT, [mountpoint, '--allow-other'], { PATH: fake.path });
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(mountpoint).isDirectory()).toBe(true);
    // A missing mount point makes `stat` fail too; fusermount then finds nothing to clear.
    expect(fake.calls()).toEqual([`fusermount -uz ${mountpoint}`, `node /app/bin/fuse-mount.js ${mountpoint} --allow-other`]);
    expect(r.stderr).toBe('');
  });

  it('clears a dead mount left at the mount point before mounting', async () => {
    // `stat` failing is what a dead FUSE mount looks like (ENOTCONN).
    const fake = fakeCommands({ node: '0', fusermount: '0', stat: '1' });
    const mountpoint = tempDir();
    const r = await run(ENTRYPOINT, [mountpoint], { PATH: fake.path });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`cleared a dead mount at ${mountpoint}`);
    expect(fake.calls()).toEqual([`stat -- ${mountpoint}`, `fusermount -uz ${mountpoint}`, `node /app/bin/fuse-mount.js ${mountpoint}`]);
  });

  it('passes --help and no arguments straight to the CLI', async () => {
    const fake = fakeCommands({ node: '0', fusermount: '0' });
    expect((await run(ENTRYPOINT, ['--help'], { PATH: fake.path })).code).toBe(0);
    expect((await run(ENTRYPOINT, [], { PATH: fake.path })).code).toBe(0);
    expect(fake.calls()).toEqual(['node /app/bin/fuse-mount.js --help', 'node /app/bin/fuse-mount.js']);
  });
});

describe('docker/minio/create-bucket.sh', () => {
  const env = { S3_ENDPOINT: 'http://minio:9000', S3_BUCKET: 'workspaces', AWS_ACCESS_KEY_ID: 'key', AWS_SECRET_ACCESS_KEY: 'secret-value' };

  it('points mc at S3_ENDPOINT with the CLI credentials and creates S3_BUCKET if missing', async () => {
    const fake = fakeCommands({ mc: '0' });
    const r = await run(CREATE_BUCKET, [], { ...env, PATH: fake.path });
    expect(r.code, r.stderr).toBe(0);
    expect(fake.calls()).toEqual(['mc alias set workspaces http://minio:9000 key secret-value', 'mc mb --ignore-existing workspaces/workspaces']);
  });

  it('fails naming the missing variable', async () => {
    const fake = fakeCommands({ mc: '0' });
    const r = await run(CREATE_BUCKET, [], { ...env, S3_BUCKET: '', PATH: fake.path });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('set S3_BUCKET in docker/.env');
    expect(fake.calls()).toEqual([]);
  });

  it('fails when mc cannot create the bucket', async () => {
    const fake = fakeCommands({ mc: '1' });
    const r = await run(CREATE_BUCKET, [], { ...env, PATH: fake.path });
    expect(r.code).toBe(1);
  });
});
