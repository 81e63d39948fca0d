// Config of `make compose-test` (scripts/compose-test.sh), which starts the Docker engine these tests
// drive; the default config leaves test/compose out.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/compose/**/*.test.ts'],
    // Image builds and container start-ups: give them room; one file at a time, the engine is shared.
    testTimeout: 600_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
  },
});
