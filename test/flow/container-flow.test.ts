/**
 * The docker-compose flow without Docker: the same commands and environment the compose file gives
 * the sync-agent, fuse-mount and monitor services (read from docker/docker-compose.yml, with container
 * paths mapped to temp dirs), on the embedded S3 server and a real FUSE mount.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import { listKeys, REPO, storeFor, tempDir, writeTree } from '../helpers.js';

interface Service { command?: string[]; environment?: Record<string, string> }
const compose = parse(readFileSync(path.join(REPO, 'docker/docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };

let s3: EmbeddedS3;
const children: ChildProcess[] = [];
let base: string;
let mnt: string;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A tiny app that answers its version; the monitor runs it from its copy. */
const app = (version: string) => `require('node:http').createServer((q, r) => r.end('hello ${version}\\n')).listen(Number(process.env.PORT));\n`;

const isMounted = (p: string) => readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === p);

/** A compose service's environment with container paths replaced by this test's directories. */
function envOf(service: string, paths: Record<string, string>, port: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(compose.services[service]!.environment ?? {})) env[k] = paths[v] ?? v;
  env.HEALTH_PORT = String(port);
  return env;
}

beforeAll(async () => {
  s3 = await startTestS3();
  base = tempDir('flow');
  mnt = path.join(base, 'mnt');
  mkdirSync(mnt);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (mnt && isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt]);
  await s3?.stop();
});

describe('the docker-compose flow, run without Docker', () => {
  it('sync-agent watch → fuse-mount sidecar → monitor copies a workspace out with no node_modules, .git or .env', async () => {
    const workspaces = path.join(base, 'workspaces');
    cpSync(path.join(REPO, 'docker/workspaces'), workspaces, { recursive: true });
    writeTree(workspaces, {
      'demo/node_modules/ms/index.js': 'module.exports = () => 0;',
      'demo/.git/HEAD': 'ref: refs/heads/main',
      'demo/.env': 'SECRET=do-not-ship',
      'demo/dist/bundle.js': 'built',
    });
    const common = { ...process.env, ...s3.env, LOG_FORMAT: 'json' };

    // sync-agent service: `sync-agent watch` with the compose environment
    const agentPort = await freePort();
    const agentEnv = envOf('sync-agent', { '/workspaces': workspaces, '/var/lib/workspace-sync/state': path.join(base, 'state') }, agentPort);
    const agent = spawn(process.execPath, [path.join(REPO, 'packages/sync-agent/bin/sync-agent.js'), ...compose.services['sync-agent']!.command!], {
      env: { ...common, ...agentEnv }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(agent);
    const store = storeFor(s3);
    await until('the first push of demo', async () => (await listKeys(store, '.sync/demo/')).length > 0, 60_000);

    // fuse-mount service: the image's entrypoint with the compose command and environment
    const mountPort = await freePort();
    const mountEnv = envOf('fuse-mount', { '/var/cache/workspace-sync': path.join(base, 'cache') }, mountPort);
    const command = compose.services['fuse-mount']!.command!.map((a) => (a === '/mnt/workspaces' ? mnt : a));
    const mount = spawn(path.join(REPO, 'docker/fuse-mount/entrypoint.sh'), command, {
      env: { ...common, ...mountEnv, FUSE_MOUNT_BIN: path.join(REPO, 'packages/fuse-mount/bin/fuse-mount.js') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(mount);
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: mount.stdout! }).once('line', () => resolve());
      mount.once('exit', (code) => reject(new Error(`fuse-mount exited with ${code}`)));
    });

    // both health checks pass as the compose healthchecks run them
    const health = (port: number, ...args: string[]) =>
      spawnSync(process.execPath, [path.join(REPO, 'docker/healthcheck.mjs'), ...args], { env: { ...process.env, HEALTH_PORT: String(port) }, encoding: 'utf8' });
    expect(health(agentPort).status).toBe(0);
    expect(health(mountPort, mnt).status).toBe(0);

    // monitor service: run-workspace.sh copies the workspace out of the read-only mount
    const scratch = path.join(base, 'scratch');
    const monitor = spawnSync(path.join(REPO, 'docker/monitor/run-workspace.sh'), ['demo'], {
      env: { ...process.env, SOURCE_DIR: mnt, SCRATCH_DIR: scratch, WAIT_SECONDS: '30', NPM_INSTALL: '0' }, encoding: 'utf8',
    });
    expect(monitor.status, monitor.stderr).toBe(0);
    expect(monitor.stdout).toMatch(/no node_modules, \.git or \.env in the synced copy/);
    const copy = path.join(scratch, 'demo');
    expect(existsSync(path.join(copy, 'package.json'))).toBe(true);
    for (const gone of ['node_modules', '.git', '.env', 'dist']) expect(existsSync(path.join(copy, gone)), gone).toBe(false);
    expect(readFileSync(path.join(copy, 'package.json'), 'utf8')).toBe(readFileSync(path.join(workspaces, 'demo/package.json'), 'utf8'));

    // dependencies installed in the copy never reach the mount or the bucket; the mount refuses writes
    mkdirSync(path.join(copy, 'node_modules/ms'), { recursive: true });
    writeFileSync(path.join(copy, 'node_modules/ms/index.js'), '');
    const write = spawnSync('sh', ['-c', `echo x > '${mnt}/demo/new-file'`], { encoding: 'utf8' });
    expect(write.status).not.toBe(0);
    expect(write.stderr).toMatch(/Read-only file system/);
    expect((await listKeys(store, 'demo/')).some((k) => k.includes('node_modules'))).toBe(false);

    // an edit on the developer side shows up in the monitor's view
    const edited = `// edited ${Date.now()}\n`;
    writeFileSync(path.join(workspaces, 'demo/edited.js'), edited);
    await until('the edit in the mount', () => {
      const r = spawnSync('cat', [path.join(mnt, 'demo/edited.js')], { encoding: 'utf8' });
      return r.status === 0 && r.stdout === edited;
    }, 30_000);

    // monitor service with WATCH=1 (as compose runs it): the app restarts with every push, npm install
    // only when package.json changed. `hello` has no dependencies, so npm install needs no registry.
    writeTree(workspaces, {
      'hello/package.json': '{"name":"hello","version":"1.0.0","private":true,"scripts":{"start":"node server.js"}}\n',
      'hello/server.js': app('v1'),
      'hello/lib/old.js': 'module.exports = 1;\n',
    });
    // Written while the agent watches: it may land in more than one push; start from all of it.
    await until('hello complete in the mount', () => ['package.json', 'server.js', 'lib/old.js'].every((f) => existsSync(path.join(mnt, 'hello', f))), 30_000);
    const appPort = await freePort();
    const monitorEnv = compose.services.monitor!.environment!;
    expect(monitorEnv).toMatchObject({ WATCH: '1', EVENTS_URL: expect.stringMatching(/\/events$/) });
    const watcher = spawn(path.join(REPO, 'docker/monitor/run-workspace.sh'), ['hello', 'node', 'server.js'], {
      env: {
        ...process.env, ...monitorEnv, SOURCE_DIR: mnt, SCRATCH_DIR: path.join(base, 'watch'), WAIT_SECONDS: '30', PORT: String(appPort),
        EVENTS_URL: `http://127.0.0.1:${mountPort}/events`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(watcher);
    let log = '';
    watcher.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
    watcher.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    const answer = async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${appPort}/`, { signal: AbortSignal.timeout(1000) });
        return await res.text();
      } catch {
        return '';
      }
    };
    await until('the app to answer v1', async () => (await answer()) === 'hello v1\n', 60_000);
    // The app starts while the monitor connects to the mount's events: either may come first.
    await until('the monitor to follow the mount\'s events', () => /following http:\/\/127\.0\.0\.1:\d+\/events\?workspace=hello/.test(log), 30_000);
    const installs = () => log.split('\n').filter((l) => l.startsWith('watch-workspace: npm install')).length;
    const watched = path.join(base, 'watch/hello');
    // The copy's own node_modules (npm install's) survives every update.
    mkdirSync(path.join(watched, 'node_modules/kept'), { recursive: true });

    // A code change: pushed by the agent, an event from the mount, the file copied, the app restarted.
    let t0 = Date.now();
    writeFileSync(path.join(workspaces, 'hello/server.js'), app('v2'));
    rmSync(path.join(workspaces, 'hello/lib/old.js'));
    await until('the app to answer v2', async () => (await answer()) === 'hello v2\n', 30_000);
    console.log(`[flow] save → app restarted with the new code: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    // The edit and the delete may land as two pushes that one restart covers ("generations 2-3").
    expect(log).toMatch(/restarted after generations? [\d-]+ \(\d+ changed paths?\)/);
    expect(installs(), log).toBe(0);
    // The delete is a commit of its own: watch holds deletes until the workspace has been quiet for 2 s.
    await until('the deleted file to leave the copy', () => !existsSync(path.join(watched, 'lib/old.js')), 30_000);
    expect(existsSync(path.join(watched, 'node_modules/kept'))).toBe(true);

    // A dependency change: npm install runs again before the restart.
    t0 = Date.now();
    writeFileSync(path.join(workspaces, 'hello/package.json'), '{"name":"hello","version":"1.0.1","private":true,"scripts":{"start":"node server.js"}}\n');
    writeFileSync(path.join(workspaces, 'hello/server.js'), app('v3'));
    await until('the app to answer v3', async () => (await answer()) === 'hello v3\n', 30_000);
    console.log(`[flow] save of package.json → npm install and restart: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    expect(installs()).toBe(1);
    expect(readFileSync(path.join(watched, 'package.json'), 'utf8')).toContain('1.0.1');
    watcher.kill('SIGTERM');
    expect(await new Promise((r) => (watcher.exitCode !== null ? r(watcher.exitCode) : watcher.once('exit', r)))).toBe(0);
    expect(await answer()).toBe('');

    // `docker compose down`: SIGTERM to both; the mount goes away cleanly
    const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));
    mount.kill('SIGTERM');
    agent.kill('SIGTERM');
    expect(await exited(mount)).toBe(0);
    expect(await exited(agent)).toBe(0);
    expect(isMounted(mnt)).toBe(false);
  });
});
