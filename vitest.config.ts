import { configDefaults, defineConfig } from 'vitest/config';

const ALL = ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'];
/** Needs a Docker engine: run by `make compose-test` (test/compose/vitest.config.ts). */
const COMPOSE = ['test/compose/**'];
/**
 * Test files that start a server, spawn a process (a CLI, git, docker, kubectl, a shell script) or
 * mount FUSE. Name new ones `*.int.test.ts`; the others are listed by name, not renamed. A one-off
 * coreutils call that makes a fixture (filter.test.ts's mkfifo) does not make a file `int`.
 */
const INT = [
  'packages/*/test/**/*.int.test.ts',
  'test/**/*.int.test.ts',
  'test/{flow,mount,push}/**/*.test.ts',
  'test/deploy/{bins,compose,k8s,scripts}.test.ts',
  'packages/fuse-mount/test/{fetcher,fuse-ops,poller}.test.ts',
  'packages/shared/test/{dockerignore-docker,filter-git}.test.ts',
  'packages/sync-agent/test/{watch,watch-resilience}.test.ts',
  'packages/testkit/test/{object-store,rgw}.test.ts',
];

export default defineConfig({
  test: {
    // Integration tests start servers, spawn CLIs and mount FUSE: give them room, never wall-clock asserts.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    // `vitest run` runs both; `--project unit` the in-process tests alone (no server, no FUSE).
    projects: [
      { extends: true, test: { name: 'unit', include: ALL, exclude: [...configDefaults.exclude, ...INT, ...COMPOSE] } },
      { extends: true, test: { name: 'int', include: INT, exclude: [...configDefaults.exclude, ...COMPOSE] } },
    ],
  },
});
