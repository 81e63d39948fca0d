/**
 * One compose stack of the test: docker/docker-compose.yml as shipped, merged with the test overrides
 * (docker-compose.test.yml and the tier's S3 stand-in) by docker-compose itself, run on the private
 * engine that scripts/compose-test.sh starts (DOCKER_HOST).
 *
 * Why a merged copy: Compose v1 refuses `ports` together with `network_mode: host` and an override
 * cannot remove a list entry, so the test takes `docker-compose config` (Compose's own reading of the
 * three files) and drops `ports`, which host networking ignores anyway. The shipped docker/ directory
 * is copied first, so the test's .env never touches a user's docker/.env.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Every directory the stacks bind-mount and every mount they make live here (the script clears it). */
export const ROOT = '/tmp/workspace-sync-compose';
export const BASE_IMAGE = 'node:20-bookworm-slim';
export const IMAGES = {
  'sync-agent': 'workspace-sync/sync-agent:local',
  'fuse-mount': 'workspace-sync/fuse-mount:local',
  monitor: 'workspace-sync/monitor-example:local',
} as const;

export type Tier = 'embedded' | 'rgw';

export interface S3Target {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Port of the embedded server's container (tier "embedded" only). */
  port?: number;
}

export interface Result { code: number | null; stdout: string; stderr: string }

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    }).on('error', reject);
  });
}

export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Runs a command without blocking the event loop; output is also appended to `log`. */
export function run(cmd: string, args: string[], opts: { cwd?: string; log?: string; env?: Record<string, string> } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; if (opts.log) appendFileSync(opts.log, d); });
    child.stderr.on('data', (d: Buffer) => { stderr += d; if (opts.log) appendFileSync(opts.log, d); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function docker(...args: string[]): Result {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** `docker inspect -f FORMAT` of a container or image; throws with Docker's message on failure. */
export function inspect(target: string, format: string): string {
  const r = docker('inspect', '-f', format, target);
  if (r.code !== 0) throw new Error(`docker inspect ${target}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** Mount points and filesystem types in this (the host's) mount namespace. */
export function hostMounts(): Array<{ point: string; fstype: string }> {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((line) => {
    const [left, right] = line.split(' - ');
    return { point: unescape(left!.split(' ')[4]!), fstype: right!.split(' ')[0]! };
  });
}

export const fuseMountedAt = (p: string) => hostMounts().some((m) => m.point === p && m.fstype.startsWith('fuse'));

export interface Stack {
  tier: Tier;
  project: string;
  dir: string;
  /** Host directory synced by the agent (WORKSPACES_HOST_DIR). */
  workspaces: string;
  /** Host directory the mount appears in (MOUNT_HOST_DIR); the bucket shows at `${shared}/workspaces`. */
  shared: string;
  s3: S3Target;
  ports: { agentHealth: number; mountHealth: number; monitor: number };
  log: string;
  compose(...args: string[]): Promise<Result>;
  /** The container of a service (the first one Compose knows), running or not. */
  container(service: string): string;
  exec(service: string, ...cmd: string[]): Result;
  /** Releases what the stack made on the host: containers, volumes, mounts and directories. */
  destroy(): Promise<void>;
}

/** Copies docker/ beside a test .env, lets Compose merge the overrides, and prepares the host directories. */
export async function prepareStack(tier: Tier, s3: S3Target, workspacesSource: (dir: string) => void): Promise<Stack> {
  const dir = path.join(ROOT, tier);
  rmSync(dir, { recursive: true, force: true });
  const workspaces = path.join(dir, 'workspaces');
  const shared = path.join(dir, 'shared');
  mkdirSync(workspaces, { recursive: true });
  mkdirSync(shared);
  // The agent reads the workspaces as uid 1000 inside its container.
  for (const d of [ROOT, dir, workspaces]) chmodSync(d, 0o755);
  workspacesSource(workspaces);
  // The mount propagates from the fuse-mount container (rshared) only through a shared mount; this
  // bind makes the directory one without changing the propagation of the rest of the host.
  for (const args of [['--bind', shared, shared], ['--make-rshared', shared]]) {
    const r = spawnSync('mount', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount ${args.join(' ')}: ${r.stderr}`);
  }

  const ports = { agentHealth: await freePort(), mountHealth: await freePort(), monitor: await freePort() };
  const copy = path.join(dir, 'docker');
  cpSync(path.join(REPO, 'docker'), copy, { recursive: true, filter: (src) => !/\/docker\/(\.env|mnt)$/.test(src) });
  const env: Record<string, string | number> = {
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    AWS_REGION: 'us-east-1',
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: s3.bucket,
    LOG_LEVEL: 'info',
    POLL_INTERVAL: '1s',
    WORKSPACES_HOST_DIR: workspaces,
    MOUNT_HOST_DIR: shared,
    MONITOR_WORKSPACE: 'demo',
    MONITOR_PORT: ports.monitor,
    // Only read by the test overrides:
    COMPOSE_TEST_REPO: REPO,
    NODE_IMAGE: BASE_IMAGE,
    S3_PORT: s3.port ?? '',
    AGENT_HEALTH_PORT: ports.agentHealth,
    MOUNT_HEALTH_PORT: ports.mountHealth,
  };
  writeFileSync(path.join(copy, '.env'), Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');

  const log = path.join(dir, 'compose.log');
  const merged = await run('docker-compose', [
    '-f', path.join(copy, 'docker-compose.yml'),
    '-f', path.join(REPO, 'test/compose/docker-compose.test.yml'),
    '-f', path.join(REPO, `test/compose/docker-compose.${tier}.yml`),
    'config',
  ], { cwd: copy });
  if (merged.code !== 0) throw new Error(`docker-compose config failed: ${merged.stderr}`);
  const config = parse(merged.stdout) as { version?: string; services: Record<string, { ports?: unknown; network_mode?: string }> };
  // Written back without `version` it is read as the Compose specification again (depends_on conditions).
  delete config.version;
  for (const [name, s] of Object.entries(config.services)) {
    if (s.network_mode !== 'host') throw new Error(`service ${name} must use the host network in tests`);
    delete s.ports;
  }
  const file = path.join(dir, 'compose.yml');
  // YAML 1.1, as Compose v1 reads it: `restart: "no"` must stay a string.
  writeFileSync(file, stringify(config, { version: '1.1' }));

  const project = `workspace-sync-test-${tier}`;
  const compose = (...args: string[]) => run('docker-compose', ['-p', project, '-f', file, ...args], {
    cwd: dir, log, env: { COMPOSE_DOCKER_CLI_BUILD: '1', DOCKER_BUILDKIT: '1' },
  });
  const container = (service: string) => {
    const r = docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`);
    const id = r.stdout.trim().split('\n')[0];
    if (!id) throw new Error(`no container for service ${service}`);
    return id;
  };
  return {
    tier, project, dir, workspaces, shared, s3, ports, log, compose, container,
    exec: (service, ...cmd) => docker('exec', container(service), ...cmd),
    async destroy() {
      await compose('down', '-v', '--remove-orphans', '-t', '30');
      for (const m of hostMounts().map((x) => x.point).filter((p) => p.startsWith(`${dir}/`)).reverse()) {
        spawnSync('fusermount', ['-uz', m]);
        spawnSync('umount', ['-l', m]);
      }
    },
  };
}

/** The last lines of the stack's compose log, for failure messages. */
export function logTail(stack: Stack, lines = 40): string {
  try {
    return readFileSync(stack.log, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
