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
    const bundle = readFileSync(path.join(REPO, 'packages', name, 'bundle', 'cli.js'), 'utf8');
    // Dependencies are inside the bundle rather than loaded from node_modules at start: the entry
    // imports only Node's built-ins and its own chunks.
    const specifiers = [...bundle.matchAll(/^(?:import|} from) .*?["']([^"']+)["'];?$/gm)].map((m) => m[1]!);
    expect(specifiers.length).toBeGreaterThan(3);
    expect(specifiers.filter((s) => !isBuiltin(s) && !s.startsWith('./'))).toEqual([]);
  });
});
