/**
 * Differential tests of the filter against the real `git`: the workspaces root is a git repository
 * (no .git inside workspaces), the default excludes are its core.excludesFile, `--exclude` patterns
 * are `git ls-files -x` patterns, and `git ls-files -o --exclude-standard -z` is the reference; with
 * tracked files, `git ls-files --cached --others --exclude-standard -z` minus the tracked paths that
 * are missing from the work tree (deleted, or below a path that is no longer a directory).
 *
 * Two modelling choices keep the comparison exact:
 * - `-x` patterns are relative to the repository root while ours are relative to the workspace, so an
 *   anchored one is given to git once per workspace with the workspace prefixed (equivalent: a
 *   prefixed pattern can only match in its own workspace).
 * - workspace directories themselves are never filtered (sync-agent decides which exist), so git gets
 *   a last `-x !/<ws>/` per workspace, which matches those directories and nothing below them.
 *
 * The random part is seeded: FILTER_FUZZ_SEED (default below) and FILTER_FUZZ_REPOS (repositories of
 * 20 workspaces each). A mismatch prints the seed, the tree and every ignore file involved.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_EXCLUDES, createFilter } from '../../src/filter/filter.js';
import { GIT_CASES, WS } from './filter-cases.js';
import { type TreeSpec, tempDir, walkIncluded, writeTree } from './walk-helper.js';

const scratch = tempDir('git');
afterAll(() => scratch.remove());

const defaultsFile = path.join(scratch.dir, 'default-excludes');
writeFileSync(defaultsFile, `${DEFAULT_EXCLUDES.join('\n')}\n`);

const gitEnv = {
  ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: scratch.dir, LC_ALL: 'C',
  GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com',
  // Submodules from local paths (refused by default since git 2.38.1).
  GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.file.allow', GIT_CONFIG_VALUE_0: 'always',
};
const git = (cwd: string, args: string[], input?: string): Buffer =>
  execFileSync('git', args, { cwd, env: gitEnv, input, maxBuffer: 256 << 20, stdio: ['pipe', 'pipe', 'ignore'] });

/** `-x` arguments equivalent to each workspace's `excludes`, plus the guards for the workspace dirs. */
function gitExcludeArgs(excludes: readonly string[], workspaces: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of excludes) {
    const neg = p.startsWith('!') ? '!' : '';
    const body = neg ? p.slice(1) : p;
    const anchored = (body.endsWith('/') ? body.slice(0, -1) : body).includes('/');
    if (!anchored) out.push(p);
    else for (const ws of workspaces) out.push(`${neg}${ws}/${body.startsWith('/') ? body.slice(1) : body}`);
  }
  for (const ws of workspaces) out.push(`!/${ws}/`);
  return out.map((p) => `--exclude=${p}`);
}

/** Whether a path git lists as tracked exists in the work tree as git sees it: real directories down to a non-directory. */
function inWorkTree(top: string, rel: string): boolean {
  const parts = rel.split('/');
  try {
    for (let i = 1; i < parts.length; i++) if (!lstatSync(path.join(top, ...parts.slice(0, i))).isDirectory()) return false;
    return !lstatSync(path.join(top, rel)).isDirectory();
  } catch {
    return false;
  }
}

/** Files git lists, per workspace, workspace-relative and sorted; with `cached`, tracked ones that exist too. */
function gitLists(repo: string, workspaces: readonly string[], excludes: readonly string[], cached = false): Map<string, string[]> {
  if (!existsSync(path.join(repo, '.git'))) git(repo, ['init', '-q']);
  const out = git(repo, [
    '-c', `core.excludesFile=${defaultsFile}`, 'ls-files', ...(cached ? ['--cached'] : []), '-o', '--exclude-standard', '-z',
    ...gitExcludeArgs(excludes, workspaces),
  ]);
  const lists = new Map<string, string[]>(workspaces.map((ws) => [ws, []]));
  for (const p of new Set(out.toString('utf8').split('\0'))) {
    const slash = p.indexOf('/');
    if (slash > 0 && (!cached || inWorkTree(repo, p))) lists.get(p.slice(0, slash))?.push(p.slice(slash + 1));
  }
  for (const l of lists.values()) l.sort();
  return lists;
}

function ourList(root: string, workspace: string, excludes: readonly string[]): string[] {
  return walkIncluded(path.join(root, workspace), createFilter({ root, workspace, excludes }));
}

let repoCount = 0;
function newRepo(): string {
  const dir = path.join(scratch.dir, `repo${repoCount++}`);
  writeTree(dir, { '.keep': '' });
  return dir;
}

function diff(expected: string[], actual: string[]): string {
  const e = new Set(expected);
  const a = new Set(actual);
  return [
    `only git: ${JSON.stringify(expected.filter((x) => !a.has(x)))}`,
    `only ours: ${JSON.stringify(actual.filter((x) => !e.has(x)))}`,
  ].join('\n');
}

describe('hand-written cases agree with git', () => {
  for (const c of GIT_CASES) {
    it(c.name, () => {
      const repo = newRepo();
      writeTree(repo, c.tree);
      const fromGit = gitLists(repo, [WS], c.excludes ?? []).get(WS)!;
      expect(fromGit, 'git disagrees with the expectation').toEqual(c.expected);
      expect(ourList(repo, WS, c.excludes ?? [])).toEqual(fromGit);
    });
  }
});

/** Every name is also a file (or dir) in each zoo workspace, so each pattern has things to hit and miss. */
const NAMES = [
  'node_modules', 'dist', 'build', 'vendor', '__pycache__', '.env', '.env.example', '.env.local', 'a.log', 'foo', 'Foo',
  'FOO', 'foo.txt', 'bar', 'x y', 'x y ', '#hash', '!bang', 'bang', 'é', 'ée', 'e', 'a', 'b', 'ab', 'abc', 'a.txt', 'b.txt',
  'keep.txt', 'src', 'lib', 'docs', 'x', 'y', 'm.pyc', '.DS_Store', 'Thumbs.db', 'sub', 'deep', '[x]', 'q?', 'star*', 'back\\slash',
  'a.b.c', '.hidden', 'README.md', 'c.md', 'ws0', 'tab\t', '日本', 'a\\', '-dash', 'ab]',
];

/** Pattern classes where a regex translation is easy to get wrong; each runs in its own workspace. */
const ZOO = [
  '?', '??', '?e', 'é', '[é]', '[é][é]', '?\n!é', '*', '**', '***', 'a**', '**b', 'a**b', '*/**', '**/', '/**', '**/**', 'x/**/',
  'sub/**/', '**/sub/**', 'sub/**/x', 'sub/***/x', '[]x]', 'ab[]]', '[a-]', '[!a]*', '[^a]*', '[!]a]*', '[z-a]*', '[a-c-e]*',
  '[[:alpha:]]*', '[[:upper:]]*', '[[:punct:]]*', '[[:space:]]*', '[[:nope:]]*', '[[:alpha:]', '[x', 'star\\*', 'q\\?', '\\[x]',
  'back\\\\slash', 'a\\', 'a\\\\', 'x\\ y', 'x y \\ ', 'x y\\ ', 'tab\t', '!', '/', '//', '!/', '\\#hash', '#hash', '\\!bang',
  '!bang', '*\n!*/', '*\n!*.txt', 'sub\n!sub/x', 'sub/*\n!sub/x', '*.txt\n!keep.txt', 'FOO\nfoo', '.*', '.env*\n!.env.example',
  '!node_modules/\n!__pycache__', '!dist/\ndist/*\n!dist/x', 'x/', 'x', '/x', 'deep/x', 'deep/*/x', '*/x', '-dash', '日*',
  'foo\0bar', 'a\\b', '\\a\\b', 'ab\\]', '\uFEFF*.md', ' x', '  ', '\\', 'sub/', 'sub/.', './sub', 'sub/../x',
];

function zooTree(ws: string): TreeSpec {
  const spec: TreeSpec = { [`${ws}/sub/x/y`]: '', [`${ws}/x/x/sub/x`]: '' };
  for (const n of NAMES) {
    if (!['sub', 'deep', 'x'].includes(n)) spec[`${ws}/${n}`] = '';
    if (n !== 'x') spec[`${ws}/sub/${n}`] = '';
    spec[`${ws}/deep/sub/${n}`] = '';
    spec[`${ws}/deep/x/${n}`] = '';
  }
  return spec;
}

describe('pattern zoo agrees with git', () => {
  it('each pattern class in its own workspace', () => {
    const repo = newRepo();
    const workspaces = ZOO.map((_, i) => `z${i}`);
    ZOO.forEach((pattern, i) => {
      const ws = workspaces[i]!;
      writeTree(repo, { ...zooTree(ws), [`${ws}/.gitignore`]: `${pattern}\n` });
    });
    const fromGit = gitLists(repo, workspaces, []);
    const failures: string[] = [];
    ZOO.forEach((pattern, i) => {
      const ws = workspaces[i]!;
      const ours = ourList(repo, ws, []);
      const theirs = fromGit.get(ws)!;
      if (JSON.stringify(ours) !== JSON.stringify(theirs)) failures.push(`pattern ${JSON.stringify(pattern)}:\n${diff(theirs, ours)}`);
    });
    expect(failures.join('\n\n')).toBe('');
  });

  it('each line as an --exclude pattern (git ls-files -x), one git run per pattern', () => {
    const patterns = [...new Set(ZOO.flatMap((z) => z.split('\n')))].filter((p) => !p.includes('\0'));
    const failures: string[] = [];
    const repo = newRepo();
    writeTree(repo, zooTree(WS));
    for (const p of patterns) {
      const theirs = gitLists(repo, [WS], [p]).get(WS)!;
      const ours = ourList(repo, WS, [p]);
      if (JSON.stringify(ours) !== JSON.stringify(theirs)) failures.push(`--exclude ${JSON.stringify(p)}:\n${diff(theirs, ours)}`);
    }
    expect(failures.join('\n\n')).toBe('');
  });
});

// ---------------------------------------------------------------- random trees and patterns

type Rng = () => number;

function mulberry32(seed: number): Rng {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));

const ATOMS = [
  '*', '**', '*.txt', '*.log', '*.md', 'a*', '*o*', '?', '??', 'fo?', 'Fo?', '[a-c]*', '[!a]*', '[^a]*', '[fF]oo', 'F[o]o',
  '.env*', '\\#hash', '\\!bang', 'x\\ y', '[]x]', '[a-]', '[[:alpha:]]*', '[[:upper:]]OO', '[é]', '?e', '\\*', 'star\\*', 'q\\?',
  '\\[x]', '[x', '***', 'a**', '**b', '.*', 'é', '?\u00e9', 'x y ',
];

function literal(rng: Rng, name: string): string {
  return rng() < 0.7 ? name.replace(/[*?[\\]/g, '\\$&') : name;
}

function genPattern(rng: Rng, prefixes: readonly string[]): string {
  const seg = () => (rng() < 0.55 ? literal(rng, pick(rng, NAMES)) : pick(rng, ATOMS));
  const segs = [seg()];
  while (segs.length < 3 && rng() < 0.35) segs.push(seg());
  if (prefixes.length && rng() < 0.5) segs.unshift(pick(rng, prefixes));
  let p = segs.join('/');
  const r = rng();
  if (r < 0.2) p = `/${p}`;
  else if (r < 0.3) p = `**/${p}`;
  if (rng() < 0.1) p += '/**';
  if (rng() < 0.25) p += '/';
  if (rng() < 0.25) p = `!${p}`;
  const t = rng();
  if (t < 0.08) p += '  ';
  else if (t < 0.12) p += '\\ ';
  else if (t < 0.14) p += '\t';
  else if (t < 0.15) p += '\\';
  return p;
}

function genIgnoreFile(rng: Rng, prefixes: readonly string[]): string {
  const eol = rng() < 0.2 ? '\r\n' : '\n';
  const lines: string[] = [];
  for (let n = int(rng, 1, 6); n > 0; n--) {
    const r = rng();
    if (r < 0.07) lines.push(`#${genPattern(rng, prefixes)}`);
    else if (r < 0.14) lines.push(pick(rng, ['', '  ', '\t']));
    else lines.push(genPattern(rng, prefixes));
  }
  const text = lines.join(eol) + (rng() < 0.8 ? eol : '');
  return rng() < 0.05 ? `\uFEFF${text}` : text;
}

function genDir(rng: Rng, dir: string, depth: number, spec: TreeSpec): void {
  const names = new Set<string>();
  for (let n = int(rng, depth === 0 ? 2 : 0, depth === 0 ? 8 : 5); n > 0; n--) names.add(pick(rng, NAMES));
  for (const name of names) {
    const p = `${dir}/${name}`;
    const r = rng();
    if (depth < 3 && r < 0.35) {
      spec[p] = null;
      genDir(rng, p, depth + 1, spec);
    } else if (r < 0.4) {
      spec[p] = { link: pick(rng, ['a', '../x', 'node_modules', 'missing']) };
    } else {
      spec[p] = '';
    }
  }
  if (rng() < 0.4) spec[`${dir}/.gitignore`] = genIgnoreFile(rng, []);
}

function describeTree(spec: TreeSpec): string {
  return Object.entries(spec)
    .map(([p, v]) => (v === null ? `  ${p}/` : typeof v === 'string' ? (p.endsWith('ignore') ? `  ${p}: ${JSON.stringify(v)}` : `  ${p}`) : `  ${p} -> ${v.link}`))
    .sort()
    .join('\n');
}

const BASE_SEED = Number(process.env.FILTER_FUZZ_SEED ?? 20250601);
const REPOS = Number(process.env.FILTER_FUZZ_REPOS ?? 25);
const WORKSPACES_PER_REPO = 20;

describe('random trees and .gitignore files agree with git', () => {
  it(`${REPOS * WORKSPACES_PER_REPO} seeded trees (seed ${BASE_SEED})`, () => {
    const failures: string[] = [];
    let compared = 0;
    for (let r = 0; r < REPOS; r++) {
      const seed = BASE_SEED + r;
      const rng = mulberry32(seed);
      const repo = newRepo();
      const workspaces = Array.from({ length: WORKSPACES_PER_REPO }, (_, i) => `ws${i}`);
      const spec: TreeSpec = {};
      if (rng() < 0.6) spec['.gitignore'] = genIgnoreFile(rng, [...workspaces.slice(0, 3), '*', 'ws?', 'ws1*']);
      for (const ws of workspaces) {
        spec[ws] = null;
        genDir(rng, ws, 0, spec);
      }
      const excludes: string[] = [];
      for (let n = rng() < 0.5 ? int(rng, 1, 2) : 0; n > 0; n--) excludes.push(genPattern(rng, []));
      writeTree(repo, spec);
      const fromGit = gitLists(repo, workspaces, excludes);
      for (const ws of workspaces) {
        compared++;
        const ours = ourList(repo, ws, excludes);
        const theirs = fromGit.get(ws)!;
        if (JSON.stringify(ours) === JSON.stringify(theirs)) continue;
        const involved = Object.fromEntries(Object.entries(spec).filter(([p]) => p === ws || p.startsWith(`${ws}/`) || p === '.gitignore'));
        failures.push([
          `seed ${seed} (FILTER_FUZZ_SEED=${seed} FILTER_FUZZ_REPOS=1), workspace ${ws}, --exclude ${JSON.stringify(excludes)}`,
          diff(theirs, ours),
          describeTree(involved),
        ].join('\n'));
      }
    }
    expect(compared).toBe(REPOS * WORKSPACES_PER_REPO);
    expect(failures.slice(0, 3).join('\n\n') + (failures.length > 3 ? `\n\n... and ${failures.length - 3} more` : '')).toBe('');
  });
});

// ---------------------------------------------------------------- tracked files

/** Names the defaults or typical .gitignore files exclude: tracked files there are what the index changes. */
const IGNORED_LOOKING = /(?:^|\/)(?:node_modules|dist|build|vendor|__pycache__|\.env[^/]*|[^/]*\.log|[^/]*\.pyc)(?:\/|$)/;

const INDEX_VARIANTS = ['v2/v3', 'v4', 'split', 'split v4'] as const;

describe('random trees with random tracked subsets agree with git ls-files --cached --others', () => {
  it(`${REPOS * WORKSPACES_PER_REPO} seeded trees (seed ${BASE_SEED}), index v2/v3, v4, split and split v4`, () => {
    const failures: string[] = [];
    let compared = 0;
    let trackedUnderIgnored = 0;
    for (let r = 0; r < REPOS; r++) {
      const seed = BASE_SEED + 1000 + r;
      const rng = mulberry32(seed);
      const repo = newRepo();
      const workspaces = Array.from({ length: WORKSPACES_PER_REPO }, (_, i) => `ws${i}`);
      const spec: TreeSpec = {};
      if (rng() < 0.6) spec['.gitignore'] = genIgnoreFile(rng, [...workspaces.slice(0, 3), '*', 'ws?', 'ws1*']);
      for (const ws of workspaces) {
        spec[ws] = null;
        genDir(rng, ws, 0, spec);
      }
      const excludes: string[] = [];
      for (let n = rng() < 0.5 ? int(rng, 1, 2) : 0; n > 0; n--) excludes.push(genPattern(rng, []));
      writeTree(repo, spec);
      git(repo, ['init', '-q']);

      // Track a random subset in two rounds (the second lands in the split index when there is one),
      // then untrack a few, mark a few skip-worktree and delete a few tracked files from the work tree.
      const leaves = Object.entries(spec).filter(([p, v]) => v !== null && p.includes('/')).map(([p]) => p);
      const tracked = leaves.filter((p) => rng() < (IGNORED_LOOKING.test(p) ? 0.5 : 0.25));
      const variant = INDEX_VARIANTS[r % INDEX_VARIANTS.length]!;
      const half = Math.ceil(tracked.length / 2);
      const feed = (args: string[], paths: string[]) => { if (paths.length) git(repo, ['update-index', ...args, '-z', '--stdin'], paths.join('\0')); };
      feed(['--add'], tracked.slice(0, half));
      if (variant.includes('v4')) git(repo, ['update-index', '--index-version', '4']);
      if (variant.includes('split')) git(repo, ['update-index', '--split-index']);
      feed(['--add'], tracked.slice(half));
      const removed = new Set(tracked.filter(() => rng() < 0.05));
      feed(['--force-remove'], [...removed]);
      feed(['--skip-worktree'], tracked.filter((p) => !removed.has(p) && rng() < 0.1));
      for (const p of tracked) if (rng() < 0.1) rmSync(path.join(repo, p), { force: true });

      const fromGit = gitLists(repo, workspaces, excludes, true);
      const ignoredOnly = gitLists(repo, workspaces, excludes);
      for (const ws of workspaces) {
        compared++;
        const ours = ourList(repo, ws, excludes);
        const theirs = fromGit.get(ws)!;
        const untracked = new Set(ignoredOnly.get(ws));
        trackedUnderIgnored += theirs.filter((p) => IGNORED_LOOKING.test(p) && !untracked.has(p)).length;
        if (JSON.stringify(ours) === JSON.stringify(theirs)) continue;
        const involved = Object.fromEntries(Object.entries(spec).filter(([p]) => p === ws || p.startsWith(`${ws}/`) || p === '.gitignore'));
        const trackedHere = git(repo, ['ls-files', '-t', '-z', '--', ws]).toString().split('\0').filter(Boolean);
        failures.push([
          `seed ${seed} (index ${variant}), workspace ${ws}, --exclude ${JSON.stringify(excludes)}`,
          diff(theirs, ours),
          `tracked: ${JSON.stringify(trackedHere)}`,
          describeTree(involved),
        ].join('\n'));
      }
    }
    expect(compared).toBe(REPOS * WORKSPACES_PER_REPO);
    // The point of the exercise: many kept files are tracked ones the ignore rules alone would drop.
    expect(trackedUnderIgnored).toBeGreaterThan(REPOS * 5);
    expect(failures.slice(0, 3).join('\n\n') + (failures.length > 3 ? `\n\n... and ${failures.length - 3} more` : '')).toBe('');
  });
});

// ---------------------------------------------------------------- real work trees

/**
 * git's own answer for a workspace directory: `git ls-files --cached --others --exclude-standard` run in
 * it, with each submodule and nested repository (a gitlink, or an untracked `dir/`) replaced by the same
 * listing run inside it, minus tracked paths missing from the work tree.
 */
function gitExact(dir: string): string[] {
  const out: string[] = [];
  const listed = git(dir, ['-c', `core.excludesFile=${defaultsFile}`, 'ls-files', '--cached', '--others', '--exclude-standard', '-z'])
    .toString('utf8').split('\0').filter(Boolean);
  for (const p of new Set(listed)) {
    const rel = p.replace(/\/$/, '');
    if (existsSync(path.join(dir, rel, '.git'))) out.push(...gitExact(path.join(dir, rel)).map((q) => `${rel}/${q}`));
    else if (!p.endsWith('/') && inWorkTree(dir, p)) out.push(p);
  }
  return out.sort();
}

const ourListOf = (wsDir: string, opts: { gitIndex?: boolean } = {}): string[] =>
  walkIncluded(wsDir, createFilter({ root: path.dirname(wsDir), workspace: path.basename(wsDir), ...opts }));

/** A monorepo-like checkout: tracked sources in build/ and vendor/ dirs, tracked files the defaults match, clutter. */
const MONOREPO: TreeSpec = {
  '.gitignore': 'node_modules/\ndist/\n*.tmp\ncoverage/\n',
  'package.json': '{}', '.env.example': 'A=1', 'README.md': '',
  'packages/kit/src/exports/vite/build/build_server.js': '', 'packages/kit/src/exports/vite/build/utils.js': '',
  'packages/kit/src/core/index.js': '', 'packages/kit/package.json': '{}',
  'packages/astro/src/assets/utils/vendor/image-size/index.ts': '', 'packages/astro/src/assets/utils/vendor/image-size/types/png.ts': '',
  'packages/astro/src/assets/build/generate.ts': '', 'packages/astro/.gitignore': 'scratch/\n',
  'packages/astro/test/fixtures/app/.env': 'TRACKED=1', 'packages/astro/test/fixtures/app/debug.log': 'tracked log',
  'tools/build.log': 'tracked', 'tools/__pycache__/keep.pyc': 'tracked',
};
const CLUTTER: TreeSpec = {
  'node_modules/react/index.js': '', 'node_modules/.pnpm/lock.yaml': '', 'packages/kit/node_modules/vite/index.js': '',
  'packages/kit/dist/index.js': '', 'packages/kit/build/out.js': 'untracked build output', 'npm-debug.log': '', '.env': 'SECRET=1',
  'packages/astro/scratch/x.ts': '', 'packages/astro/src/assets/build/new-untracked.ts': '', 'a.tmp': '', 'coverage/lcov.info': '',
  'packages/kit/src/exports/vite/build/stale.log': '',
};

function monorepo(dir: string): void {
  writeTree(dir, MONOREPO);
  git(dir, ['init', '-q']);
  git(dir, ['add', '-A']);
  // Tracked despite the rules: a vendored package in node_modules and a build.log, as real repositories have.
  writeTree(dir, { 'node_modules/patched/index.js': 'tracked', 'packages/kit/dist/keep.d.ts': 'tracked' });
  git(dir, ['add', '-f', 'node_modules/patched/index.js', 'packages/kit/dist/keep.d.ts']);
  git(dir, ['-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'init']);
  writeTree(dir, CLUTTER);
}

describe('git work trees agree with git ls-files --cached --others (workspace = the repository)', () => {
  it('a monorepo checkout: tracked build/, vendor/, .env, *.log and node_modules files are kept, clutter is not', () => {
    const ws = path.join(newRepo(), 'mono');
    monorepo(ws);
    const theirs = gitExact(ws);
    expect(theirs).toContain('packages/kit/src/exports/vite/build/build_server.js');
    expect(theirs).toContain('node_modules/patched/index.js');
    expect(theirs).not.toContain('packages/kit/build/out.js');
    expect(ourListOf(ws)).toEqual(theirs);
    // Without the index: the unanchored defaults drop tracked sources (the old behaviour, on request).
    const without = ourListOf(ws, { gitIndex: false });
    expect(without).not.toContain('packages/kit/src/exports/vite/build/build_server.js');
    expect(without).not.toContain('node_modules/patched/index.js');
  });

  it('deleted tracked files, skip-worktree entries, a tracked symlink and a tracked path below a symlink', () => {
    const ws = path.join(newRepo(), 'mono');
    monorepo(ws);
    rmSync(path.join(ws, 'packages/kit/src/exports/vite/build/utils.js'));
    git(ws, ['update-index', '--skip-worktree', 'tools/build.log', 'packages/kit/package.json']);
    rmSync(path.join(ws, 'packages/kit/package.json'));
    writeTree(ws, { 'dist/link': { link: '../README.md' } });
    git(ws, ['add', '-f', 'dist/link']);
    rmSync(path.join(ws, 'packages/astro/src/assets/build'), { recursive: true });
    writeTree(ws, { 'packages/astro/src/assets/build': { link: '../../../kit' } });
    expect(ourListOf(ws)).toEqual(gitExact(ws));
    expect(ourListOf(ws)).toContain('dist/link');
  });

  for (const variant of ['4', 'split'] as const) {
    it(`index ${variant === '4' ? 'version 4' : 'split'} after more changes`, () => {
      const ws = path.join(newRepo(), 'mono');
      monorepo(ws);
      git(ws, ['update-index', variant === '4' ? '--index-version=4' : '--split-index']);
      writeTree(ws, { 'vendor/lib/a.go': '', 'build/gen.ts': '' });
      git(ws, ['add', '-f', 'vendor/lib/a.go', 'build/gen.ts']);
      git(ws, ['rm', '-q', '--cached', 'tools/build.log']);
      expect(ourListOf(ws)).toEqual(gitExact(ws));
    });
  }

  for (const sparseIndex of [false, true]) {
    it(`sparse checkout (cone mode${sparseIndex ? ', sparse index' : ''})`, () => {
      const ws = path.join(newRepo(), 'mono');
      monorepo(ws);
      git(ws, ['sparse-checkout', 'set', '--cone', ...(sparseIndex ? ['--sparse-index'] : ['--no-sparse-index']), 'packages/kit']);
      expect(existsSync(path.join(ws, 'packages/astro/src/assets/build/generate.ts'))).toBe(false);
      // Known difference: git reads the .gitignore of a directory outside the sparse checkout from the
      // object store (it is not on disk); we cannot, so an untracked file it ignores is left out here.
      rmSync(path.join(ws, 'packages/astro/scratch'), { recursive: true });
      expect(ourListOf(ws)).toEqual(gitExact(ws));
    });
  }

  it('a worktree (a .git file pointing into the main repository)', () => {
    const main = path.join(newRepo(), 'main');
    monorepo(main);
    const wt = path.join(newRepo(), 'wt');
    git(main, ['worktree', 'add', '-q', '-b', 'wt', wt]);
    writeTree(wt, CLUTTER);
    writeFileSync(path.join(main, '.git/info/exclude'), 'README.md\n*.md\n');
    git(wt, ['rm', '-q', '--cached', 'README.md']);
    expect(ourListOf(wt)).toEqual(gitExact(wt));
    expect(ourListOf(wt)).not.toContain('README.md');
    expect(ourListOf(wt)).not.toContain('.git');
  });

  it('submodules (one under an ignored vendor/ dir) and nested repositories use their own index and .gitignore', () => {
    const base = newRepo();
    const lib = path.join(base, 'lib-src');
    writeTree(lib, { '.gitignore': '*.gen\n', 'src/a.ts': '', 'build/tracked.js': '', 'keep.gen': '' });
    git(lib, ['init', '-q']);
    git(lib, ['add', '-A']);
    git(lib, ['add', '-f', 'keep.gen']);
    git(lib, ['-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-qm', 'lib']);
    const ws = path.join(base, 'mono');
    monorepo(ws);
    git(ws, ['submodule', 'add', '-q', lib, 'libs/lib']);
    git(ws, ['submodule', 'add', '-q', lib, 'vendor/dep']);
    writeTree(ws, {
      'libs/lib/x.gen': '', 'libs/lib/node_modules/m.js': '', 'libs/lib/new.ts': '', 'vendor/dep/dist/out.js': '',
      'vendor/other.go': '', 'scratch/other/.gitignore': 'tmp/\n', 'scratch/other/a.txt': '', 'scratch/other/tmp/x': '',
      'node_modules/nested/package.json': '',
    });
    git(path.join(ws, 'scratch/other'), ['init', '-q']);
    git(path.join(ws, 'node_modules/nested'), ['init', '-q']);
    const ours = ourListOf(ws);
    expect(ours).toEqual(gitExact(ws));
    expect(ours).toEqual(expect.arrayContaining(['libs/lib/build/tracked.js', 'libs/lib/keep.gen', 'vendor/dep/src/a.ts', 'scratch/other/a.txt']));
    expect(ours.filter((p) => p.endsWith('.git') || p.includes('.git/'))).toEqual([]);
  });
});

describe('a workspace inside a larger repository', () => {
  it('the index entries under the workspace and every .gitignore from the top apply; outside them, nothing', () => {
    const top = newRepo();
    writeTree(top, {
      '.gitignore': '*.tmp\n', 'apps/.gitignore': 'secret/\n/workspaces/web/local.txt\n', 'other/x.js': '',
      'apps/workspaces/web/build/tracked.js': '', 'apps/workspaces/web/b.tmp': '', 'apps/workspaces/api/vendor/v.go': '',
    });
    git(top, ['init', '-q']);
    git(top, ['add', '-f', '.']);
    writeTree(top, {
      'apps/workspaces/web/src/a.ts': '', 'apps/workspaces/web/secret/k': '', 'apps/workspaces/web/local.txt': '',
      'apps/workspaces/web/c.tmp': '', 'apps/workspaces/web/dist/untracked.js': '', 'apps/workspaces/web/new.ts': '',
    });
    writeFileSync(path.join(top, '.git/info/exclude'), 'src/\n');
    for (const ws of ['web', 'api']) {
      const dir = path.join(top, 'apps/workspaces', ws);
      expect(ourListOf(dir), ws).toEqual(gitExact(dir));
    }
    expect(ourListOf(path.join(top, 'apps/workspaces/web'))).toEqual(['b.tmp', 'build/tracked.js', 'new.ts']);
  });
});
