import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFilter, DEFAULT_EXCLUDES, trackedChanges, type FilterOptions } from '../../src/filter/filter.js';
import { DOCKER_CASES, type FilterCase, GIT_CASES, WS } from './filter-cases.js';
import { gitRunner } from './git-helper.js';
import { type TreeSpec, tempDir, walkIncluded, writeTree } from './walk-helper.js';

const scratch = tempDir('unit');
afterAll(() => scratch.remove());

let n = 0;
/** Writes `tree` under a fresh workspaces root; returns the root. */
function root(tree: TreeSpec): string {
  const dir = path.join(scratch.dir, `r${n++}`);
  writeTree(dir, { [WS]: null, ...tree });
  return dir;
}

function walk(dir: string, opts: Partial<FilterOptions> = {}): string[] {
  return walkIncluded(path.join(dir, WS), createFilter({ root: dir, workspace: WS, ...opts }));
}

const run = (c: FilterCase) => () => expect(walk(root(c.tree), { excludes: c.excludes ?? [] })).toEqual(c.expected);

describe('gitignore rules (expectations checked against git in filter-git.test.ts)', () => {
  for (const c of GIT_CASES) it(c.name, run(c));
});

describe('.dockerignore (Docker rules)', () => {
  for (const c of DOCKER_CASES) it(c.name, run(c));

  it('! with a wildcard re-includes below an excluded directory (BuildKit walks it)', () => {
    const dir = root({ 'ws/.dockerignore': 'docs\n!**/*.md\n', 'ws/docs/a.txt': '', 'ws/docs/x/keep.md': '', 'ws/b.md': '' });
    expect(walk(dir)).toEqual(['.dockerignore', 'b.md', 'docs/x/keep.md']);
  });

  it('a directory excluded without exceptions is pruned, one with a matching exception is walked', () => {
    const dir = root({ 'ws/.dockerignore': 'docs\n', 'ws/docs/a': '' });
    const f = createFilter({ root: dir, workspace: WS });
    expect(f.excludes('docs', true)).toBe(true);
    const dir2 = root({ 'ws/.dockerignore': 'docs\n!docs/keep\n', 'ws/docs/keep': '' });
    const g = createFilter({ root: dir2, workspace: WS });
    expect(g.excludes('docs', true)).toBe(false);
    expect(g.excludes('docs/other', false)).toBe(true);
    expect(g.excludes('docs/keep', false)).toBe(false);
  });

  it('invalid patterns are dropped, the rest still applies', () => {
    const dir = root({ 'ws/.dockerignore': '!\n[a-\nx\\\n*.tmp\n', 'ws/a.tmp': '', 'ws/x': '', 'ws/[a-': '' });
    expect(walk(dir)).toEqual(['.dockerignore', '[a-', 'x']);
  });
});

describe('layers', () => {
  it('.git/info/exclude sits between the .gitignore files and the defaults', () => {
    const dir = root({
      '.gitignore': 'secret\n',
      'ws/.git/info/exclude': '*.tmp\n!.env.local\n!secret\n',
      'ws/.gitignore': '!keep.tmp\n',
      'ws/a.tmp': '', 'ws/keep.tmp': '', 'ws/.env.local': '', 'ws/.env': '', 'ws/secret': '',
    });
    expect(walk(dir)).toEqual(['.env.local', '.gitignore', 'keep.tmp']);
  });

  it('defaults can be replaced', () => {
    const dir = root({ 'ws/node_modules/x': '', 'ws/a.log': '', 'ws/a.bak': '' });
    expect(walk(dir, { defaults: ['*.bak'] })).toEqual(['a.log', 'node_modules/x']);
    expect(walk(dir)).toEqual(['a.bak']);
    expect(DEFAULT_EXCLUDES).toContain('node_modules/');
  });

  it('paths below an excluded directory are excluded even when asked directly', () => {
    const dir = root({ 'ws/.gitignore': 'out/\n!keep\n', 'ws/out/keep': '' });
    const f = createFilter({ root: dir, workspace: WS });
    expect(f.excludes('out/keep', false)).toBe(true);
    expect(f.excludes('out/sub', true)).toBe(true);
    expect(f.excludes('node_modules/a/b/c.js', false)).toBe(true);
    expect(f.excludes('keep', false)).toBe(false);
  });

  it('an --exclude with a slash is anchored at the workspace, not at the workspaces root', () => {
    const dir = root({ 'ws/ws/a': '', 'ws/a': '' });
    expect(walk(dir, { excludes: ['/a'] })).toEqual(['ws/a']);
    expect(walk(dir, { excludes: ['ws/a'] })).toEqual(['a']);
  });

  it('a .gitignore that is a directory or a FIFO counts as empty, without hanging', () => {
    const dir = root({ 'ws/.gitignore/x': '', 'ws/sub/a': '' });
    execFileSync('mkfifo', [path.join(dir, 'ws/sub/.gitignore')]);
    expect(walk(dir)).toEqual(['.gitignore/x', 'sub/.gitignore', 'sub/a']);
  });

  it('an empty workspace name makes the root the workspace', () => {
    const dir = root({ 'ws/.gitignore': '*.txt\n', 'ws/a.txt': '', 'ws/b': '' });
    const f = createFilter({ root: path.join(dir, WS), workspace: '' });
    expect(walkIncluded(path.join(dir, WS), f)).toEqual(['.gitignore', 'b']);
  });
});

describe('invalidate', () => {
  it('re-reads a rewritten .gitignore in a subdirectory and below', () => {
    const dir = root({ 'ws/sub/.gitignore': '*.txt\n', 'ws/sub/a.txt': '', 'ws/sub/deep/b.txt': '', 'ws/c.txt': '' });
    const f = createFilter({ root: dir, workspace: WS });
    const ws = path.join(dir, WS);
    expect(walkIncluded(ws, f)).toEqual(['c.txt', 'sub/.gitignore']);
    writeFileSync(path.join(ws, 'sub/.gitignore'), 'deep/\n');
    expect(walkIncluded(ws, f), 'cached until invalidated').toEqual(['c.txt', 'sub/.gitignore']);
    f.invalidate('sub');
    expect(walkIncluded(ws, f)).toEqual(['c.txt', 'sub/.gitignore', 'sub/a.txt']);
  });

  it("invalidate('') re-reads the workspace, workspaces-root and .dockerignore files", () => {
    const dir = root({ 'ws/a.txt': '', 'ws/b.md': '', 'ws/c.bak': '' });
    const f = createFilter({ root: dir, workspace: WS });
    const ws = path.join(dir, WS);
    expect(walkIncluded(ws, f)).toEqual(['a.txt', 'b.md', 'c.bak']);
    writeFileSync(path.join(ws, '.gitignore'), '*.txt\n');
    writeFileSync(path.join(ws, '.dockerignore'), '*.md\n');
    writeFileSync(path.join(dir, '.gitignore'), '*.bak\n');
    f.invalidate('');
    expect(walkIncluded(ws, f)).toEqual(['.dockerignore', '.gitignore']);
  });

  it('a change under .git re-reads info/exclude', () => {
    const dir = root({ 'ws/.git/info/exclude': '', 'ws/a.tmp': '' });
    const f = createFilter({ root: dir, workspace: WS });
    expect(f.excludes('a.tmp', false)).toBe(false);
    writeFileSync(path.join(dir, WS, '.git/info/exclude'), '*.tmp\n');
    f.invalidate('.git/info');
    expect(f.excludes('a.tmp', false)).toBe(true);
  });
});

describe('isIgnoreFile', () => {
  it('names the files that change the filter', () => {
    const f = createFilter({ root: scratch.dir, workspace: WS });
    for (const p of ['.gitignore', 'a/b/.gitignore', '.dockerignore', '.git/info/exclude']) expect(f.isIgnoreFile(p), p).toBe(true);
    for (const p of ['gitignore', 'a/.gitignore.bak', 'a/.dockerignore', 'x.gitignore']) expect(f.isIgnoreFile(p), p).toBe(false);
  });
});

describe('git index: why() and trackedChanges()', () => {
  const git = gitRunner(scratch.dir);
  const repoRoot = (tree: TreeSpec, tracked: string[]): string => {
    const dir = root(tree);
    git(path.join(dir, WS), ['init', '-q']);
    if (tracked.length) git(path.join(dir, WS), ['add', '-f', '--', ...tracked]);
    return dir;
  };

  it('names the rule, the file and line, and the directory it matched', () => {
    const dir = repoRoot({
      'ws/.gitignore': '# c\n\nlogs/\n!keep.log\n', 'ws/logs/a': '', 'ws/keep.log': '', 'ws/x.log': '', 'ws/.dockerignore': 'secret.txt\n',
      'ws/secret.txt': '', 'ws/build/gen.js': '', 'ws/src/a.ts': '',
    }, ['build/gen.js', 'secret.txt']);
    const f = createFilter({ root: dir, workspace: WS, excludes: ['*.tmp'] });
    const ws = path.join(dir, WS);
    expect(f.why('logs/a', false)).toEqual({
      excluded: true, tracked: false, rule: { source: 'gitignore', file: path.join(ws, '.gitignore'), line: 3, pattern: 'logs/', dir: 'logs' },
    });
    expect(f.why('keep.log', false)).toEqual({
      excluded: false, tracked: false, rule: { source: 'gitignore', file: path.join(ws, '.gitignore'), line: 4, pattern: '!keep.log' },
    });
    expect(f.why('x.log', false)).toEqual({ excluded: true, tracked: false, rule: { source: 'defaults', pattern: '*.log' } });
    expect(f.why('a.tmp', false)).toEqual({ excluded: true, tracked: false, rule: { source: 'exclude', pattern: '*.tmp' } });
    expect(f.why('build/gen.js', false)).toEqual({ excluded: false, tracked: true, rule: { source: 'defaults', pattern: 'build/', dir: 'build' } });
    expect(f.why('build', true)).toMatchObject({ excluded: false, tracked: true });
    // A .dockerignore excludes tracked files too.
    expect(f.why('secret.txt', false)).toEqual({
      excluded: true, tracked: false, rule: { source: 'dockerignore', file: path.join(ws, '.dockerignore'), line: 1, pattern: 'secret.txt' },
    });
    expect(f.excludes('secret.txt', false)).toBe(true);
    expect(f.why('src/a.ts', false)).toEqual({ excluded: false, tracked: false, rule: undefined });
    expect(f.why('.git/HEAD', false)).toMatchObject({ excluded: true, rule: { source: 'git' } });
  });

  it('a gitlink whose submodule is not checked out syncs nothing below it', () => {
    const dir = repoRoot({ 'ws/a': '' }, ['a']);
    const ws = path.join(dir, WS);
    const blob = '0'.repeat(39) + '1';
    git(ws, ['update-index', '--add', '--cacheinfo', `160000,${blob},mod`]);
    writeTree(ws, { 'mod/leftover.txt': '' });
    const f = createFilter({ root: dir, workspace: WS });
    expect(f.excludes('mod', true)).toBe(true);
    expect(f.why('mod/leftover.txt', false)).toMatchObject({ excluded: true, rule: { source: 'git', pattern: 'submodule that is not checked out' } });
  });

  it('trackedChanges lists what git add and git rm changed, nothing for an index rewrite', () => {
    const dir = repoRoot({ 'ws/a': '', 'ws/dist/b.js': '', 'ws/c': '' }, ['a', 'c']);
    const ws = path.join(dir, WS);
    const before = createFilter({ root: dir, workspace: WS });
    git(ws, ['update-index', '--index-version', '4']);
    expect(trackedChanges(before, createFilter({ root: dir, workspace: WS }))).toEqual([]);
    git(ws, ['add', '-f', 'dist/b.js']);
    git(ws, ['rm', '-q', '--cached', 'c']);
    const after = createFilter({ root: dir, workspace: WS });
    expect(trackedChanges(before, after)).toEqual(['c', 'dist/b.js']);
    expect(before.excludes('dist', true)).toBe(true);
    expect(after.excludes('dist', true)).toBe(false);
  });

  it('an unreadable index is an error that names it, never an empty index', () => {
    const dir = repoRoot({ 'ws/a': '' }, ['a']);
    writeFileSync(path.join(dir, WS, '.git/index'), 'DIRC garbage');
    expect(() => createFilter({ root: dir, workspace: WS })).toThrow(/cannot read the git index .*index/);
    expect(createFilter({ root: dir, workspace: WS, gitIndex: false }).excludes('a', false)).toBe(false);
  });
});
