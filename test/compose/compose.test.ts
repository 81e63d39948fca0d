/**
 * The docker-compose deployment, run for real (make compose-test): the three images built from
 * docker/Dockerfile, the stack started with docker-compose, and the design's flow checked from the
 * host and from inside the containers, once per S3 tier (the embedded server in a container, then Ceph
 * RGW on the host). The steps of a tier share one stack and run in order.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createObjectStore, type ObjectStore } from '@workspace-sync/shared';
import { EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY } from '@workspace-sync/testkit';
import {
  BASE_IMAGE, IMAGES, REPO, docker, freePort, fuseMountedAt, hostMounts, inspect, logTail, prepareStack, until,
  type S3Target, type Stack, type Tier,
} from './stack.js';

const TIERS = (process.env.COMPOSE_TEST_TIERS ?? 'embedded rgw').split(/\s+/).filter(Boolean) as Tier[];
const RGW_ENV = process.env.RGW_ENV_FILE ?? '/tmp/workspace-sync-rgw/env';

async function s3For(tier: Tier): Promise<S3Target> {
  if (tier === 'embedded') {
    const port = await freePort();
    return { endpoint: `http://127.0.0.1:${port}`, port, bucket: 'workspaces', accessKeyId: EMBEDDED_ACCESS_KEY, secretAccessKey: EMBEDDED_SECRET_KEY };
  }
  // The machine's RGW (scripts/compose-test.sh starts it); a bucket of this run's own.
  const env = Object.fromEntries(readFileSync(RGW_ENV, 'utf8').split('\n').filter(Boolean).map((l) => l.split('=') as [string, string]));
  return {
    endpoint: env.S3_ENDPOINT!, bucket: `compose-test-${Date.now()}`, accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
  };
}

/** The demo workspace as a developer's checkout has it: with dependencies, git data, secrets and logs. */
function demoCheckout(workspaces: string) {
  cpSync(path.join(REPO, 'docker/workspaces/demo'), path.join(workspaces, 'demo'), { recursive: true });
  const clutter: Record<string, string> = {
    'node_modules/ms/index.js': 'module.exports = () => "from the host";\n',
    '.git/HEAD': 'ref: refs/heads/main\n',
    '.env': 'SECRET=never-synced\n',
    'npm-debug.log': 'noise\n',
  };
  for (const [rel, content] of Object.entries(clutter)) {
    const file = path.join(workspaces, 'demo', rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}

const CLUTTER = /(^|\/)(node_modules|\.git|\.env|[^/]*\.log)(\/|$)/;

async function listKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of store.list(prefix)) if ('key' in item) keys.push(item.key);
  return keys.sort();
}

const health = (id: string) => inspect(id, '{{if .State.Health}}{{.State.Health.Status}}{{end}}');
const started = (id: string) => new Date(inspect(id, '{{.State.StartedAt}}')).getTime();

describe.each(TIERS)('docker-compose stack on %s S3', (tier) => {
  let stack: Stack;
  let store: ObjectStore;
  const source = () => path.join(stack.workspaces, 'demo');
  const inMount = () => path.join(stack.shared, 'workspaces', 'demo');
  const appUrl = () => `http://127.0.0.1:${stack.ports.monitor}/`;
  const step = (what: string, t0: number) => console.log(`[${tier}] ${what} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);

  beforeAll(async () => {
    const s3 = await s3For(tier);
    stack = await prepareStack(tier, s3, demoCheckout);
    store = createObjectStore({
      endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
  });

  afterAll(async () => {
    if (!stack) return;
    await stack.destroy();
    if (tier === 'rgw') await store.deleteMany(await listKeys(store, '')).catch(() => undefined);
  });

  it('docker-compose up --build builds the three images from docker/Dockerfile and starts every service', async () => {
    const t0 = Date.now();
    const up = await stack.compose('up', '-d', '--build');
    step('docker-compose up --build', t0);
    expect(up.code, logTail(stack)).toBe(0);
    for (const image of Object.values(IMAGES)) expect(docker('image', 'inspect', image).code, image).toBe(0);
    for (const service of ['minio', 'sync-agent', 'fuse-mount', 'monitor']) {
      expect(inspect(stack.container(service), '{{.State.Status}}'), service).toBe('running');
    }
  });

  it('starts in order: the S3 server healthy, then the bucket job done, then the CLIs, the monitor after a healthy mount', async () => {
    const job = stack.container('create-bucket');
    expect(inspect(job, '{{.State.ExitCode}}')).toBe('0');
    const jobFinished = new Date(inspect(job, '{{.State.FinishedAt}}')).getTime();
    expect(started(job)).toBeGreaterThanOrEqual(started(stack.container('minio')));
    for (const service of ['sync-agent', 'fuse-mount']) expect(started(stack.container(service)), service).toBeGreaterThanOrEqual(jobFinished);
    const mount = stack.container('fuse-mount');
    const firstPass = JSON.parse(inspect(mount, '{{json .State.Health.Log}}')) as Array<{ ExitCode: number; End: string }>;
    const healthyAt = firstPass.find((e) => e.ExitCode === 0);
    expect(healthyAt, 'fuse-mount passed a health check').toBeDefined();
    expect(started(stack.container('monitor'))).toBeGreaterThanOrEqual(new Date(healthyAt!.End).getTime());
  });

  it('health checks of sync-agent and fuse-mount turn healthy', async () => {
    const t0 = Date.now();
    for (const service of ['sync-agent', 'fuse-mount']) {
      await until(`${service} to be healthy`, () => health(stack.container(service)) === 'healthy', 120_000);
    }
    step('healthy', t0);
  });

  it('sync-agent mirrors the bind-mounted workspace: its sources reach the bucket, the clutter does not', async () => {
    const keys = await until('demo in the bucket', async () => {
      const k = await listKeys(store, 'demo/');
      return k.includes('demo/server.js') && k.includes('demo/package.json') && k;
    }, 60_000);
    expect(keys.filter((k) => CLUTTER.test(k))).toEqual([]);
  });

  it('the mount propagates to the host directory and into the monitor container, read-only', async () => {
    const expected = readFileSync(path.join(source(), 'server.js'), 'utf8');
    expect(fuseMountedAt(path.join(stack.shared, 'workspaces'))).toBe(true);
    await until('server.js in the mount on the host', () => readFileSync(path.join(inMount(), 'server.js'), 'utf8') === expected, 30_000);
    const seen = stack.exec('monitor', 'cat', '/mnt/workspaces/demo/server.js');
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.stdout).toBe(expected);
    const write = stack.exec('monitor', 'sh', '-c', 'echo x > /mnt/workspaces/demo/new-file');
    expect(write.code).not.toBe(0);
    expect(() => writeFileSync(path.join(inMount(), 'new-file'), 'x')).toThrow(/EROFS|read-only/i);
  });

  it('the monitor copies the workspace out of the mount, installs its dependencies in the copy and serves it', async () => {
    const t0 = Date.now();
    const body = await until('the demo app to answer', async () => {
      const res = await fetch(appUrl(), { signal: AbortSignal.timeout(2000) });
      return res.status === 200 && res.text();
    }, 180_000);
    step('monitor app answering', t0);
    expect(body).toContain('demo workspace running from /home/node/run/demo');
    // `ms` was installed in the copy by npm; it never existed in the mount or the bucket.
    expect(stack.exec('monitor', 'test', '-f', '/home/node/run/demo/node_modules/ms/package.json').code).toBe(0);
    expect(stack.exec('monitor', 'test', '-e', '/mnt/workspaces/demo/node_modules').code).not.toBe(0);
    const logs = await stack.compose('logs', '--no-color', 'monitor');
    expect(logs.stdout).toContain('no node_modules, .git or .env in the synced copy');
  });

  // The edit the next step makes; a check that the running app restarts with it reads `edited`.
  const edited = `// edited on the host at ${new Date().toISOString()}\n`;

  it('a change on the host reaches the mount, as seen from the host and from inside the monitor', async () => {
    const t0 = Date.now();
    const file = path.join(source(), 'server.js');
    const content = readFileSync(file, 'utf8') + edited;
    writeFileSync(file, content);
    await until('the edit in the mount on the host', () => readFileSync(path.join(inMount(), 'server.js'), 'utf8') === content, 60_000);
    step('host edit visible in the mount', t0);
    await until('the edit inside the monitor', () => stack.exec('monitor', 'cat', '/mnt/workspaces/demo/server.js').stdout === content, 30_000);
  });

  it('the monitor follows the mount\'s events: a pushed change restarts the app with the new code, without npm install', async () => {
    const t0 = Date.now();
    const file = path.join(source(), 'server.js');
    writeFileSync(file, readFileSync(file, 'utf8').replace('demo workspace running from', 'demo workspace (edited) running from'));
    const body = await until('the app to answer with the edit', async () => {
      const res = await fetch(appUrl(), { signal: AbortSignal.timeout(2000) });
      const text = await res.text();
      return text.includes('(edited)') && text;
    }, 60_000);
    step('host edit → app restarted with it', t0);
    expect(body).toContain('demo workspace (edited) running from /home/node/run/demo');
    const logs = (await stack.compose('logs', '--no-color', 'monitor')).stdout;
    expect(logs).toMatch(/following http:\/\/127\.0\.0\.1:\d+\/events\?workspace=demo/);
    expect(logs).toMatch(/restarted after generations? [\d-]+ \(1 changed path\)/);
    // Dependencies were installed once, by run-workspace.sh; code changes do not reinstall them.
    expect(logs).not.toContain('watch-workspace: npm install');
  });

  it('a fuse-mount killed without unmounting is restarted, clears the dead mount and mounts again for the host and the monitor', async () => {
    const mount = stack.container('fuse-mount');
    const restarts = Number(inspect(mount, '{{.RestartCount}}'));
    const t0 = Date.now();
    // A crash, as the OOM killer would do it: SIGKILL to the CLI from outside. (`docker kill` would
    // also cancel the restart policy, as a stop by hand does.)
    const init = inspect(mount, '{{.State.Pid}}');
    const cli = readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim().split(/\s+/)[0];
    expect(Number(cli)).toBeGreaterThan(0);
    process.kill(Number(cli), 'SIGKILL');
    await until('fuse-mount to be restarted', () => Number(inspect(mount, '{{.RestartCount}}')) > restarts && inspect(mount, '{{.State.Running}}') === 'true', 60_000);
    await until('fuse-mount healthy again', () => health(mount) === 'healthy', 120_000);
    step('fuse-mount recovered after SIGKILL', t0);
    const logs = await stack.compose('logs', '--no-color', 'fuse-mount');
    expect(logs.stdout + logs.stderr).toContain('cleared a dead mount at /mnt/workspaces');
    const expected = readFileSync(path.join(source(), 'server.js'), 'utf8');
    expect(readFileSync(path.join(inMount(), 'server.js'), 'utf8')).toBe(expected);
    await until('the new mount inside the monitor', () => stack.exec('monitor', 'cat', '/mnt/workspaces/demo/server.js').stdout === expected, 30_000);
    // One FUSE mount on the host, not a dead one under a live one.
    expect(hostMounts().filter((m) => m.point === path.join(stack.shared, 'workspaces') && m.fstype.startsWith('fuse'))).toHaveLength(1);
  });

  it('docker-compose down stops the stack and unmounts cleanly: no mount is left on the host', async () => {
    const t0 = Date.now();
    const down = await stack.compose('down', '-v');
    step('docker-compose down', t0);
    expect(down.code, logTail(stack)).toBe(0);
    expect(docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${stack.project}`).stdout.trim()).toBe('');
    expect(hostMounts().filter((m) => m.point.startsWith(`${stack.shared}/`))).toEqual([]);
    const logs = readFileSync(stack.log, 'utf8');
    expect(logs).not.toMatch(/Transport endpoint is not connected/);
  });
});

describe('the images', () => {
  const user = (image: string) => docker('run', '--rm', '--network', 'host', '--entrypoint', 'id', image, '-u');

  it('sync-agent and monitor run as the unprivileged node user, fuse-mount as root (mounting needs it)', () => {
    expect(user(IMAGES['sync-agent']).stdout.trim()).toBe('1000');
    expect(user(IMAGES.monitor).stdout.trim()).toBe('1000');
    expect(user(IMAGES['fuse-mount']).stdout.trim()).toBe('0');
    expect(inspect(IMAGES['sync-agent'], '{{.Config.User}}')).toBe('node');
  });

  it('stay small: their sizes are reported, and what each adds to the base image is within budget', () => {
    const size = (image: string) => Number(inspect(image, '{{.Size}}'));
    const base = size(BASE_IMAGE);
    const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
    const lines = [`${BASE_IMAGE} (base, built here): ${mb(base)}`];
    // Budgets for what each image adds to the base: the CLI's production tree (56 MB for the agent
    // when this was written), plus libfuse and fusermount for the mount (140 MB); development
    // dependencies leaking into a deploy would break them.
    const budget = { 'sync-agent': 100e6, 'fuse-mount': 200e6, monitor: 5e6 };
    for (const [name, image] of Object.entries(IMAGES)) {
      const added = size(image) - base;
      lines.push(`${image}: ${mb(size(image))} (adds ${mb(added)})`);
      expect(added, `${image} adds ${mb(added)}`).toBeLessThan(budget[name as keyof typeof budget]);
    }
    console.log(`image sizes:\n  ${lines.join('\n  ')}`);
    writeFileSync(path.join(REPO, '.tmp/compose-image-sizes.txt'), `${lines.join('\n')}\n`);
  });
});
