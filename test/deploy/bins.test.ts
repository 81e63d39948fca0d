// The installed commands run the bundled CLIs (scripts/bundle.mjs), not the tsc output file by file.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers.js';

describe.each(['sync-agent', 'fuse-mount'])('%s command', (name) => {
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'packages', name, 'package.json'), 'utf8')) as { version: string };

  it('is linked at the repository root and prints its package version', () => {
    const r = spawnSync(path.join(REPO, 'node_modules/.bin', name), ['--version'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('starts from the bundle', () => {
    const launcher = readFileSync(path.join(REPO, 'packages', name, 'bin', `${name}.js`), 'utf8');
    expect(launcher).toMatch(/from "\.\.\/bundle\/cli\.js"/);
    // Dependencies are inside the bundles rather than loaded from node_modules at start: each entry
    // (the CLI, and fuse-mount's worker threads) imports only Node's built-ins and its own chunks.
    const entries = name === 'fuse-mount' ? ['cli.js', 'manifest-worker.js', 'prefetch-worker.js'] : ['cli.js'];
    for (const entry of entries) {
      const bundle = readFileSync(path.join(REPO, 'packages', name, 'bundle', entry), 'utf8');
      const specifiers = [...bundle.matchAll(/^(?:import|} from) .*?["']([^"']+)["'];?$/gm)].map((m) => m[1]!);
      expect(specifiers.length, entry).toBeGreaterThan(0);
      expect(specifiers.filter((s) => !isBuiltin(s) && !s.startsWith('./')), entry).toEqual([]);
    }
  });
});
