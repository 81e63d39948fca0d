import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Needs a Docker engine: run by `make compose-test` (test/compose/vitest.config.ts).
    exclude: ['test/compose/**', '**/node_modules/**'],
    // Integration tests start servers, spawn CLIs and mount FUSE: give them room, never wall-clock asserts.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
