import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFilter, DEFAULT_EXCLUDES, type FilterOptions } from '../src/filter.js';
import { DOCKER_CASES, type FilterCase, GIT_CASES, WS } from './filter-cases.js';
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
