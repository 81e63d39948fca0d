/**
 * Differential tests of the filter against the real `git`: the workspaces root is a git repository
 * (no .git inside workspaces), the default excludes are its core.excludesFile, `--exclude` patterns
 * are `git ls-files -x` patterns, and `git ls-files -o --exclude-standard -z` is the reference.
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
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_EXCLUDES, createFilter } from '../src/filter.js';
import { GIT_CASES, WS } from './filter-cases.js';
import { type TreeSpec, tempDir, walkIncluded, writeTree } from './walk-helper.js';

const scratch = tempDir('git');
afterAll(() => scratch.remove());

const defaultsFile = path.join(scratch.dir, 'default-excludes');
writeFileSync(defaultsFile, `${DEFAULT_EXCLUDES.join('\n')}\n`);

const gitEnv = {
  ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: scratch.dir, LC_ALL: 'C',
};
const git = (cwd: string, args: string[]): Buffer =>
  execFileSync('git', args, { cwd, env: gitEnv, maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'ignore'] });

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

/** Files git lists, per workspace, workspace-relative and sorted. */
function gitLists(repo: string, workspaces: readonly string[], excludes: readonly string[]): Map<string, string[]> {
  if (!existsSync(path.join(repo, '.git'))) git(repo, ['init', '-q']);
  const out = git(repo, [
    '-c', `core.excludesFile=${defaultsFile}`, 'ls-files', '-o', '--exclude-standard', '-z', ...gitExcludeArgs(excludes, workspaces),
  ]);
  const lists = new Map<string, string[]>(workspaces.map((ws) => [ws, []]));
  for (const p of out.toString('utf8').split('\0')) {
    const slash = p.indexOf('/');
    if (slash > 0) lists.get(p.slice(0, slash))?.push(p.slice(slash + 1));
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
