import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../packages/shared/src/config.js';
import {
  AWS_CREDENTIALS, COMPOSE_FILE, DOCKER, ENV_EXAMPLE, OPTIONS, REPO, commentedExamples, composeSeconds, envNames,
  flagNames, flagsIn, interpolate, interpolationNames, isDir, loadCompose, loadDockerfile, parseEnvFile, read,
  monitorVariables, serviceEnv, serviceVolumes, shellVariables, type ComposeService,
} from './helpers.js';

const compose = loadCompose();
const svc = (name: string): ComposeService => {
  const s = compose.services[name];
  if (!s) throw new Error(`no service ${name}`);
  return s;
};
const volume = (s: ComposeService, target: string) => {
  const v = serviceVolumes(s).find((x) => x.target === target);
  if (!v) throw new Error(`no volume at ${target}`);
  return v;
};
const envExample = parseEnvFile(read(ENV_EXAMPLE));
const composeVars = interpolationNames(read(COMPOSE_FILE));
// docker/ holds no workspace-sync.config.json: configs resolve from the environment alone.
const noConfigDir = DOCKER;

describe('docker-compose.yml', () => {
  it('defines the services of the design, and nothing depends on a missing one', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['create-bucket', 'fuse-mount', 'minio', 'monitor', 'sync-agent']);
    for (const [name, s] of Object.entries(compose.services)) {
      for (const dep of Object.keys(s.depends_on ?? {})) expect(compose.services, `${name} depends on ${dep}`).toHaveProperty(dep);
    }
  });

  it('fails with a clear message instead of running without credentials', () => {
    const env = { ...envExample };
    delete env.AWS_SECRET_ACCESS_KEY;
    expect(() => interpolate(read(COMPOSE_FILE), env)).toThrow(/AWS_SECRET_ACCESS_KEY.*docker\/\.env/);
  });

  it('runs MinIO with API 9000, console 9001, a persistent volume and a healthcheck', () => {
    const minio = svc('minio');
    expect(minio.image).toMatch(/^minio\/minio:RELEASE\./);
    expect(minio.ports!.map((p) => p.split(':').at(-1))).toEqual(['9000', '9001']);
    expect(minio.command).toEqual(['server', '/data', '--console-address', ':9001']);
    const data = volume(minio, '/data');
    expect(data.type).toBe('volume');
    expect(compose.volumes).toHaveProperty(data.source);
    expect(minio.healthcheck!.test).toEqual(['CMD', 'mc', 'ready', 'local']);
  });

  it('creates the bucket once, after MinIO is healthy, with the same variables the CLIs use', () => {
    const job = svc('create-bucket');
    expect(job.image).toMatch(/^minio\/mc:RELEASE\./);
    expect(job.depends_on).toEqual({ minio: { condition: 'service_healthy' } });
    expect(job.restart).toBe('no');
    const script = volume(job, '/usr/local/bin/create-bucket.sh');
    expect(existsSync(path.join(DOCKER, script.source))).toBe(true);
    expect(job.entrypoint).toEqual(['/bin/sh', '/usr/local/bin/create-bucket.sh']);
    const env = serviceEnv(job);
    const used = shellVariables(read(path.join(DOCKER, script.source)));
    for (const name of used) expect(env[name], `${name} is set for create-bucket`).toBeTruthy();
    expect([...used].filter((n) => !AWS_CREDENTIALS.includes(n)).every((n) => envNames().has(n))).toBe(true);
  });

  it('MinIO takes its root credentials from the same .env pair as the CLIs; nothing secret is written in the file', () => {
    const raw = read(COMPOSE_FILE);
    expect(raw).toMatch(/MINIO_ROOT_USER: \$\{AWS_ACCESS_KEY_ID:\?/);
    expect(raw).toMatch(/MINIO_ROOT_PASSWORD: \$\{AWS_SECRET_ACCESS_KEY:\?/);
    expect(raw).not.toContain(envExample.AWS_SECRET_ACCESS_KEY!);
    for (const s of Object.values(compose.services)) {
      for (const key of Object.keys(s.environment ?? {})) expect(AWS_CREDENTIALS).not.toContain(key);
    }
    expect(svc('minio').environment!.MINIO_ROOT_PASSWORD).toBe(envExample.AWS_SECRET_ACCESS_KEY);
    expect(read(path.join(DOCKER, '.gitignore')).split('\n')).toContain('/.env');
  });

  it('builds every image from docker/Dockerfile at the repository root, with targets that exist', () => {
    const stages = loadDockerfile().stages.map((s) => s.name);
    for (const name of ['sync-agent', 'fuse-mount', 'monitor']) {
      const b = svc(name).build!;
      expect(path.resolve(DOCKER, b.context)).toBe(REPO);
      expect(existsSync(path.join(REPO, b.dockerfile))).toBe(true);
      expect(stages).toContain(b.target);
    }
    expect(svc('sync-agent').image).toBe('workspace-sync/sync-agent:local');
    expect(svc('fuse-mount').image).toBe('workspace-sync/fuse-mount:local');
    expect(svc('monitor').image).toBe('workspace-sync/monitor-example:local');
  });

  describe('sync-agent', () => {
    const agent = svc('sync-agent');
    const env = serviceEnv(agent);

    it('runs `watch` after the bucket exists', () => {
      expect(agent.command).toEqual(['watch']);
      expect(agent.depends_on).toEqual({ 'create-bucket': { condition: 'service_completed_successfully' } });
    });

    it('watches ./workspaces, bind-mounted read-only where WORKSPACES_DIR points', () => {
      const ws = volume(agent, env.WORKSPACES_DIR!);
      expect(ws).toMatchObject({ type: 'bind', source: './workspaces', read_only: true });
      expect(isDir(path.join(DOCKER, ws.source, 'demo'))).toBe(true);
    });

    it('resolves a valid agent config from its environment, with state in a named volume', () => {
      const cfg = resolveConfig('agent', { env, cwd: noConfigDir });
      expect(cfg.root).toBe('/workspaces');
      expect(cfg.endpoint).toBe('http://minio:9000');
      expect(cfg.bucket).toBe(envExample.S3_BUCKET);
      expect(cfg.healthPort).toBe(9464);
      const state = volume(agent, cfg.stateDir);
      expect(state.type).toBe('volume');
      expect(compose.volumes).toHaveProperty(state.source);
      for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) expect(env[name]).toBeTruthy();
    });

    it('runs unprivileged with a read-only root filesystem and a healthcheck on /healthz', () => {
      expect(agent.read_only).toBe(true);
      expect(agent.cap_drop).toEqual(['ALL']);
      expect(agent.security_opt).toContain('no-new-privileges:true');
      expect(agent.healthcheck!.test).toEqual(['CMD', 'node', '/app/healthcheck.mjs']);
      expect(agent.init).toBe(true);
    });
  });

  describe('fuse-mount', () => {
    const mount = svc('fuse-mount');
    const env = serviceEnv(mount);
    const mountpoint = mount.command![0]!;

    it('gets /dev/fuse, SYS_ADMIN and an unconfined AppArmor profile', () => {
      expect(mount.devices).toContain('/dev/fuse:/dev/fuse');
      expect(mount.cap_add).toEqual(['SYS_ADMIN']);
      expect(mount.security_opt).toContain('apparmor:unconfined');
      expect(mount.platform).toBe('linux/amd64');
    });

    it('mounts one level inside a bind mount with rshared propagation, so the host and the monitor see it', () => {
      // Not on the bind mount itself: fuse-native refuses a mount point whose parent is another device.
      expect(() => volume(mount, mountpoint)).toThrow();
      const m = volume(mount, path.posix.dirname(mountpoint));
      expect(m.type).toBe('bind');
      expect(m.bind).toEqual({ propagation: 'rshared' });
      expect(m.read_only).toBeFalsy();
      // Short syntax, so Compose creates the host directory when it is missing.
      expect(mount.volumes).toContain(`${m.source}:${m.target}:rshared`);
    });

    it('stops with SIGTERM and a grace period long enough to unmount cleanly on `docker compose down`', () => {
      expect(mount.stop_signal).toBe('SIGTERM');
      expect(composeSeconds(mount.stop_grace_period!)).toBeGreaterThanOrEqual(10);
      expect(mount.init).toBe(true);
    });

    it('resolves a valid mount config, with the cache in a named volume and access for other users', () => {
      const cfg = resolveConfig('mount', { env, cwd: noConfigDir });
      expect(cfg.endpoint).toBe('http://minio:9000');
      expect(cfg.allowOther).toBe(true);
      expect(cfg.healthPort).toBe(9464);
      const cache = volume(mount, cfg.cacheDir);
      expect(cache.type).toBe('volume');
      expect(compose.volumes).toHaveProperty(cache.source);
    });

    it('is healthy only when /healthz answers and the mount point is a FUSE mount', () => {
      expect(mount.healthcheck!.test).toEqual(['CMD', 'node', '/app/healthcheck.mjs', mountpoint]);
      expect(mount.depends_on).toEqual({ 'create-bucket': { condition: 'service_completed_successfully' } });
    });
  });

  describe('monitor', () => {
    const monitor = svc('monitor');
    const mount = svc('fuse-mount');
    const mountpoint = mount.command![0]!;
    const shared = volume(mount, path.posix.dirname(mountpoint));
    const env = monitor.environment!;
    const ws = volume(monitor, path.posix.dirname(env.SOURCE_DIR!));

    it('sees the sidecar mount read-only with rslave propagation through the same host directory, at the same path', () => {
      expect(ws).toMatchObject({ type: 'bind', source: shared.source, read_only: true });
      expect(ws.bind!.propagation).toBe('rslave');
      expect(path.posix.relative(ws.target, env.SOURCE_DIR!)).toBe(path.posix.relative(shared.target, mountpoint));
      expect(read(COMPOSE_FILE).match(/\$\{MOUNT_HOST_DIR:-\.\/mnt\}/g)).toHaveLength(2);
    });

    it('starts once the mount is healthy', () => {
      expect(monitor.depends_on).toEqual({ 'fuse-mount': { condition: 'service_healthy' } });
      expect(mount.healthcheck).toBeDefined();
    });

    it('runs the seed flow on a workspace that exists: copy out, npm install, start the app', () => {
      const [workspace, ...app] = monitor.command!;
      expect(isDir(path.join(DOCKER, 'workspaces', workspace!))).toBe(true);
      expect(app).toEqual(['npm', 'start']);
      expect(env.NPM_INSTALL).toBe('1');
    });

    it('sets only variables that run-workspace.sh, its watcher or the app read', () => {
      const scriptVars = monitorVariables(DOCKER);
      const server = read(path.join(DOCKER, 'workspaces/demo/server.js'));
      for (const key of Object.keys(env)) {
        expect(scriptVars.has(key) || server.includes(`process.env.${key}`), key).toBe(true);
      }
      expect(monitor.ports!.map((p) => p.split(':').at(-1))).toEqual([env.PORT]);
    });
  });

  it('passes the CLIs only variables and flags that exist in their option table', () => {
    for (const [name, scope] of [['sync-agent', 'agent'], ['fuse-mount', 'mount']] as const) {
      const s = svc(name);
      const allowed = envNames(scope);
      for (const key of Object.keys(s.environment ?? {})) expect(allowed.has(key), `${name}: ${key}`).toBe(true);
      const flags = flagNames(scope);
      for (const f of flagsIn([...(s.command ?? []), ...(s.entrypoint ?? [])])) expect(flags.has(f), `${name}: ${f}`).toBe(true);
    }
  });
});

const cliBuilt = ['sync-agent', 'fuse-mount'].every((p) => existsSync(path.join(REPO, 'packages', p, 'dist/cli.js')));
const cliHelp = (bin: string, ...args: string[]) => {
  const r = spawnSync('node', [path.join(REPO, 'packages', bin, 'bin', `${bin}.js`), ...args, '--help'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
};

describe.skipIf(!cliBuilt)('the built CLIs accept what docker-compose.yml gives them', () => {
  it('sync-agent has the command and flags the compose file and README use', () => {
    const agent = svc('sync-agent');
    expect(cliHelp('sync-agent')).toMatch(new RegExp(`^  ${agent.command![0]} \\[options\\]`, 'm'));
    const watchHelp = cliHelp('sync-agent', agent.command![0]!);
    const readme = read(path.join(REPO, 'README.md'));
    for (const f of [...flagsIn(agent.command!), ...[...readme.matchAll(/"watch", "(--[a-z-]+)"/g)].map((m) => m[1]!)]) {
      expect(watchHelp, f).toContain(`  ${f} `);
    }
    for (const key of Object.keys(serviceEnv(agent)).filter((k) => envNames('agent').has(k))) {
      expect(watchHelp.replace(/\s+/g, ' '), key).toMatch(new RegExp(`\\[env: [^\\]]*\\b${key}\\b`));
    }
  });

  it('fuse-mount takes the mount point first and reads the variables compose sets', () => {
    const help = cliHelp('fuse-mount');
    expect(help).toContain('Usage: fuse-mount [options] <mountpoint>');
    for (const key of Object.keys(serviceEnv(svc('fuse-mount'))).filter((k) => envNames('mount').has(k))) {
      expect(help.replace(/\s+/g, ' '), key).toMatch(new RegExp(`\\[env: [^\\]]*\\b${key}\\b`));
    }
  });
});

describe('.env.example', () => {
  const text = read(ENV_EXAMPLE);
  // COMPOSE_PROJECT_NAME is read by Compose itself.
  const known = new Set([...envNames(), ...AWS_CREDENTIALS, ...composeVars, 'COMPOSE_PROJECT_NAME']);

  it('sets only variables the CLIs or docker-compose.yml read', () => {
    for (const key of Object.keys(envExample)) expect(known.has(key), key).toBe(true);
    for (const key of Object.keys(commentedExamples(text))) expect(known.has(key), key).toBe(true);
  });

  it('documents every variable docker-compose.yml substitutes', () => {
    for (const name of composeVars) expect(envExample, name).toHaveProperty(name);
  });

  it('mentions every option of both CLIs by its environment name', () => {
    for (const o of OPTIONS) expect(text, o.key).toContain(o.env[0]);
  });

  it('gives example values the CLIs accept', () => {
    const all = { ...envExample, ...commentedExamples(text) };
    for (const o of OPTIONS) {
      const value = all[o.env[0]!];
      if (value === undefined || value === '') continue;
      expect(() => o.parse(value), `${o.env[0]}=${value}`).not.toThrow();
    }
  });

  it('keeps placeholder credentials that MinIO accepts (secret of 8+ characters)', () => {
    expect(envExample.AWS_ACCESS_KEY_ID!.length).toBeGreaterThanOrEqual(3);
    expect(envExample.AWS_SECRET_ACCESS_KEY).toMatch(/^replace-/);
    expect(envExample.AWS_SECRET_ACCESS_KEY!.length).toBeGreaterThanOrEqual(8);
  });
});
