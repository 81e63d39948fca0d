import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerignoreMatcher } from '@workspace-sync/shared';
import {
  REPO, copyArgs, envNames, execForm, instructions, keyValues, loadDockerfile, read, shellVariables, stage,
} from './helpers.js';

const df = loadDockerfile();
const rootPkg = JSON.parse(read(path.join(REPO, 'package.json'))) as {
  packageManager: string; pnpm?: { patchedDependencies?: Record<string, string> };
};
const workspacePackages = readdirSync(path.join(REPO, 'packages')).filter((d) => existsSync(path.join(REPO, 'packages', d, 'package.json')));
const pkgJson = (dir: string) =>
  JSON.parse(read(path.join(REPO, 'packages', dir, 'package.json'))) as {
    name: string; version: string; bin: Record<string, string>; files: string[];
  };

// .dockerignore semantics exactly as Docker applies them (the same matcher the sync filter uses).
const ignoredByDocker = dockerignoreMatcher(read(path.join(REPO, '.dockerignore')));

/** The images the compose file and the Kubernetes manifests run, by Dockerfile target. */
const CLI_IMAGES = [
  { target: 'sync-agent', dir: 'sync-agent', scope: 'agent' },
  { target: 'fuse-mount', dir: 'fuse-mount', scope: 'mount' },
] as const;

describe('docker/Dockerfile', () => {
  it('has a build stage, a deploy stage per CLI and one stage per image, on node:20-bookworm-slim', () => {
    expect(df.stages.map((s) => s.name)).toEqual(['build', 'deploy-sync-agent', 'deploy-fuse-mount', 'sync-agent', 'fuse-mount', 'monitor']);
    expect(df.globalArgs.NODE_IMAGE).toBe('node:20-bookworm-slim');
    for (const s of df.stages) expect(s.image).toBe(s.name!.startsWith('deploy-') ? 'build' : '${NODE_IMAGE}');
  });

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    let checked = 0;
    for (const s of df.stages) {
      for (const i of [...instructions(s, 'COPY'), ...instructions(s, 'ADD')]) {
        if (i.flags.from) continue;
        for (const src of copyArgs(i).sources) {
          expect(existsSync(path.join(REPO, src)), `${s.name}: COPY ${src}`).toBe(true);
          expect(ignoredByDocker(src.replace(/\/$/, '')), `${src} is excluded by .dockerignore`).toBe(false);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(8);
  });

  it('keeps dependencies, build output, git data and local secrets out of the build context', () => {
    for (const p of ['node_modules/x', 'packages/shared/node_modules/x', 'packages/shared/dist/index.js',
      'packages/shared/tsconfig.tsbuildinfo', 'packages/sync-agent/bundle/cli.js', 'scripts/demo.mjs', '.git/config', 'docker/.env', 'docker/mnt/demo', 'docker/workspaces/demo/server.js']) {
      expect(ignoredByDocker(p), p).toBe(true);
    }
    for (const p of ['packages/shared/src/index.ts', 'packages/sync-agent/bin/sync-agent.js', 'pnpm-lock.yaml']) {
      expect(ignoredByDocker(p), p).toBe(false);
    }
  });

  describe('build stage', () => {
    const build = stage(df, 'build');
    const runs = instructions(build, 'RUN').map((i) => i.text);

    it('installs the pnpm version pinned in package.json', () => {
      const arg = instructions(build, 'ARG').find((i) => i.text.startsWith('PNPM_VERSION='))!;
      expect(`pnpm@${arg.text.split('=')[1]}`).toBe(rootPkg.packageManager);
      expect(runs[0]).toContain('npm install -g pnpm@${PNPM_VERSION}');
    });

    it('copies every workspace manifest before a frozen-lockfile install', () => {
      const copied = instructions(build, 'COPY').flatMap((i) => copyArgs(i).sources);
      for (const dir of workspacePackages) expect(copied, dir).toContain(`packages/${dir}/package.json`);
      for (const f of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', '.npmrc', 'tsconfig.base.json']) expect(copied).toContain(f);
      const installAt = build.instructions.findIndex((i) => i.text.startsWith('pnpm install --frozen-lockfile'));
      const sourcesAt = build.instructions.findIndex((i) => i.keyword === 'COPY' && i.text === 'packages/ packages/');
      expect(installAt).toBeGreaterThan(0);
      expect(sourcesAt).toBeGreaterThan(installAt);
      // The install applies pnpm's patches, so they must be in the image by then.
      const beforeInstall = build.instructions.slice(0, installAt).filter((i) => i.keyword === 'COPY').flatMap((i) => copyArgs(i).sources);
      for (const patch of Object.values(rootPkg.pnpm?.patchedDependencies ?? {})) {
        expect(beforeInstall.some((src) => patch === src || patch.startsWith(src.endsWith('/') ? src : `${src}/`)), patch).toBe(true);
      }
    });

    it('installs without install scripts, then compiles and bundles both CLIs', () => {
      expect(runs).toContain('pnpm install --frozen-lockfile --ignore-scripts');
      expect(runs.at(-1)).toBe('pnpm exec tsc -b packages/sync-agent packages/fuse-mount && node scripts/bundle.mjs');
      // The launchers in bin/ import the bundle, so the image must build it from a script it copied.
      expect(instructions(build, 'COPY').flatMap((i) => copyArgs(i).sources)).toContain('scripts/bundle.mjs');
    });

    it('deploys each CLI with production dependencies only, where its image copies from', () => {
      for (const { target, dir } of CLI_IMAGES) {
        const deploy = instructions(stage(df, `deploy-${dir}`), 'RUN').map((i) => i.text);
        // No install scripts: fuse-native's would need libfuse2 in the build stage; its prebuilt binary ships in the package.
        expect(deploy).toEqual([`pnpm --filter ${pkgJson(dir).name} --prod deploy --legacy --ignore-scripts /out/${dir}`]);
        const from = instructions(stage(df, target), 'COPY').find((i) => i.flags.from)!;
        expect(from.flags.from).toBe(`deploy-${dir}`);
        expect(copyArgs(from)).toEqual({ sources: [`/out/${dir}`], dest: '/app' });
      }
    });
  });

  for (const { target, dir, scope } of CLI_IMAGES) {
    describe(`${target} image`, () => {
      const s = stage(df, target);
      const pkg = pkgJson(dir);
      const env = keyValues(instructions(s, 'ENV'));

      it('starts the package bin that the deploy tree contains', () => {
        const bin = pkg.bin[target]!;
        expect(existsSync(path.join(REPO, 'packages', dir, bin))).toBe(true);
        expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'bundle', 'bin']));
        const appBin = `/app/${path.posix.normalize(bin)}`;
        const entry = execForm(instructions(s, 'ENTRYPOINT')[0]!);
        if (target === 'sync-agent') {
          expect(entry).toEqual(['node', appBin]);
          expect(execForm(instructions(s, 'CMD')[0]!)).toEqual(['watch']);
        } else {
          const script = read(path.join(REPO, 'docker/fuse-mount/entrypoint.sh'));
          expect(entry).toEqual(['/usr/local/bin/fuse-mount-entrypoint']);
          expect(script).toContain(`bin=\${FUSE_MOUNT_BIN:-${appBin}}`);
          expect(script).toContain('exec node "$bin" "$@"');
          expect(execForm(instructions(s, 'CMD')[0]!)).toEqual(['/mnt/workspaces']);
        }
        expect(instructions(s, 'RUN').some((i) => i.text.includes(`ln -s ${appBin} /usr/local/bin/${target}`))).toBe(true);
      });

      it('sets only environment variables of its CLI', () => {
        const allowed = envNames(scope);
        for (const key of Object.keys(env)) expect(key === 'NODE_ENV' || allowed.has(key), key).toBe(true);
        expect(env.NODE_ENV).toBe('production');
      });

      it('checks health on /healthz at HEALTH_PORT with node, and exposes that port', () => {
        const hc = instructions(s, 'HEALTHCHECK')[0]!;
        expect(execForm(hc)).toEqual(['node', '/app/healthcheck.mjs']);
        const copy = instructions(s, 'COPY').map(copyArgs).find((c) => c.dest === '/app/healthcheck.mjs');
        expect(copy?.sources).toEqual(['docker/healthcheck.mjs']);
        expect(instructions(s, 'EXPOSE')[0]!.text).toBe(env.HEALTH_PORT);
      });

      it('carries OCI labels with the package version', () => {
        const labels = keyValues(instructions(s, 'LABEL'));
        expect(labels['org.opencontainers.image.title']).toBe(target);
        expect(labels['org.opencontainers.image.description']).toBeTruthy();
        expect(labels['org.opencontainers.image.version']).toBe('${VERSION}');
        expect(instructions(s, 'ARG').map((i) => i.text)).toContain(`VERSION=${pkg.version}`);
      });
    });
  }

  it('runs sync-agent as the unprivileged node user, owning its state directory', () => {
    const s = stage(df, 'sync-agent');
    expect(instructions(s, 'USER').map((i) => i.text)).toEqual(['node']);
    const env = keyValues(instructions(s, 'ENV'));
    expect(instructions(s, 'RUN')[0]!.text).toContain('chown -R node:node /var/lib/workspace-sync');
    expect(env.SYNC_STATE_DIR!.startsWith('/var/lib/workspace-sync/')).toBe(true);
  });

  it('gives fuse-mount libfuse2 and fusermount, and keeps it root (mounting needs SYS_ADMIN)', () => {
    const s = stage(df, 'fuse-mount');
    expect(instructions(s, 'RUN')[0]!.text).toMatch(/apt-get install -y --no-install-recommends fuse libfuse2 && rm -rf \/var\/lib\/apt\/lists\/\*/);
    expect(instructions(s, 'USER')).toEqual([]);
    expect(instructions(s, 'STOPSIGNAL')[0]!.text).toBe('SIGTERM');
    const entry = instructions(s, 'COPY').find((i) => i.text.startsWith('docker/fuse-mount/entrypoint.sh'))!;
    expect(entry.flags.chmod).toBe('0755');
  });

  it('builds the monitor example from run-workspace.sh and its watcher, as a non-root user with a scratch directory', () => {
    const s = stage(df, 'monitor');
    const [copy, watcher] = instructions(s, 'COPY');
    expect(copyArgs(copy!)).toEqual({ sources: ['docker/monitor/run-workspace.sh'], dest: '/usr/local/bin/run-workspace' });
    expect(copy!.flags.chmod).toBe('0755');
    // run-workspace.sh runs the watcher from its own directory.
    expect(copyArgs(watcher!)).toEqual({ sources: ['docker/monitor/watch-workspace.mjs'], dest: '/usr/local/bin/watch-workspace.mjs' });
    expect(execForm(instructions(s, 'ENTRYPOINT')[0]!)).toEqual(['run-workspace']);
    expect(instructions(s, 'USER').map((i) => i.text)).toEqual(['node']);
    const env = keyValues(instructions(s, 'ENV'));
    const scriptVars = shellVariables(read(path.join(REPO, 'docker/monitor/run-workspace.sh')));
    for (const key of Object.keys(env)) expect(scriptVars.has(key), key).toBe(true);
    expect(instructions(s, 'RUN')[0]!.text).toContain(`chown node:node ${env.SCRATCH_DIR}`);
  });
});
