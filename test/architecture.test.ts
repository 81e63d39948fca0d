/**
 * The import rules of docs/architecture.md, checked on the sources: which package may import which,
 * where fuse-native may be imported, that the filter stands apart in shared, and that the pure
 * decision modules do no I/O.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers.js';

/** Every .ts file under `dir` (relative to the repository), with the module specifiers it imports (dynamic ones too). */
function imports(dir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(REPO, rel), { withFileTypes: true })) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const text = readFileSync(path.join(REPO, p), 'utf8');
        const statics = [...text.matchAll(/^(?:import|export)[^'"]*?from\s+'([^']+)'|^import\s+'([^']+)'/gm)].map((m) => (m[1] ?? m[2])!);
        const dynamics = [...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]!);
        out.set(p, [...statics, ...dynamics]);
      }
    }
  };
  walk(dir);
  return out;
}

const PACKAGES = ['shared', 'sync-agent', 'fuse-mount', 'testkit'] as const;
/** Which workspace packages each package's sources may import: the two processes meet only in shared. */
const ALLOWED: Record<(typeof PACKAGES)[number], string[]> = {
  shared: [],
  'sync-agent': ['@workspace-sync/shared'],
  'fuse-mount': ['@workspace-sync/shared'],
  testkit: ['@workspace-sync/shared'],
};

describe('import rules', () => {
  it('packages import only the packages below them, through their public index', () => {
    const bad: string[] = [];
    for (const pkg of PACKAGES) {
      for (const [file, specs] of imports(`packages/${pkg}/src`)) {
        for (const s of specs) {
          if (s.startsWith('@workspace-sync/') && !ALLOWED[pkg].includes(s)) bad.push(`${file}: ${s}`);
          if (s.includes('/packages/') || /^\.\.\/\.\.\//.test(s)) bad.push(`${file}: ${s} (a deep import across packages)`);
        }
      }
    }
    expect(bad).toEqual([]);
  });

  it('only fuse-mount\'s mount.ts imports fuse-native: the core and the handlers are testable without FUSE', () => {
    const users = [...imports('packages')].filter(([, specs]) => specs.includes('fuse-native')).map(([f]) => f);
    expect(users).toEqual(['packages/fuse-mount/src/mount.ts']);
  });

  it('the filter in shared/src/filter imports nothing of shared but the error type', () => {
    const bad: string[] = [];
    for (const [file, specs] of imports('packages/shared/src/filter')) {
      for (const s of specs) if (s.startsWith('.') && !s.startsWith('./') && s !== '../errors.js') bad.push(`${file}: ${s}`);
    }
    expect(bad).toEqual([]);
    // And the rest of shared does not reach into it other than through its index.
    const inside = [...imports('packages/shared/src')].filter(([f]) => !f.includes('/filter/'))
      .flatMap(([f, specs]) => specs.filter((s) => s.startsWith('./filter/') && s !== './filter/index.js').map((s) => `${f}: ${s}`));
    expect(inside).toEqual([]);
  });

  it('the decision modules are pure: no file system, network, process or timers', () => {
    const pure = [
      'packages/sync-agent/src/watch-loop.ts', 'packages/sync-agent/src/planner.ts', 'packages/sync-agent/src/outcome.ts',
      'packages/sync-agent/src/batcher.ts', 'packages/sync-agent/src/coalesce.ts', 'packages/sync-agent/src/trees.ts',
    ];
    const all = imports('packages/sync-agent/src');
    for (const file of pure) {
      const specs = all.get(file)!;
      expect(specs.filter((s) => s.startsWith('node:')), file).toEqual([]);
      expect(readFileSync(path.join(REPO, file), 'utf8'), file).not.toMatch(/\b(setTimeout|setInterval|Date\.now|performance\.now)\(/);
    }
  });
});
