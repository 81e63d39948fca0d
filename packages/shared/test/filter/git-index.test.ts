/**
 * The index reader against real git: every format variant git writes (v2, v3, v4, split, sparse,
 * SHA-256) is read and compared with `git ls-files --stage -t`, and the work tree discovery with git's.
 */
import { mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexFormatError, parseIndex, readEwah, readIndexFile } from '../../src/filter/git-index.js';
import { findWorkTree, repoAt } from '../../src/filter/git-repo.js';
import { gitRunner, lsFilesStage } from './git-helper.js';
import { tempDir, writeTree } from './walk-helper.js';

const scratch = tempDir('index');
afterAll(() => scratch.remove());
const git = gitRunner(scratch.dir);
/** Longer than the 12-bit name length of an entry (4095 bytes): git then stores 0xFFF and a NUL-terminated name. */
const LONG = `long/${Array.from({ length: 21 }, (_, i) => `${i}`.padEnd(200, 'n')).join('/')}.txt`;

let n = 0;
function repo(init: string[] = []): string {
  const dir = path.join(scratch.dir, `r${n++}`);
  mkdirSync(dir);
  git(dir, ['init', '-q', ...init]);
  writeTree(dir, {
    'a.txt': 'a', 'b/c.txt': 'c', 'b/d/e.txt': 'e', 'b/d/f.txt': 'f', 'zz/é ü.txt': 'u', 'x/y/z/w.txt': 'w',
  });
  symlinkSync('a.txt', path.join(dir, 'link'));
  git(dir, ['add', '-A']);
  git(dir, ['commit', '-qm', 'one']);
  // Too long for a path on disk (PATH_MAX), so never checked out: straight into the index.
  const blob = git(dir, ['hash-object', '-w', 'a.txt']).toString().trim();
  git(dir, ['update-index', '--add', '--cacheinfo', `100644,${blob},${LONG}`]);
  return dir;
}

function ours(dir: string) {
  const r = repoAt(dir)!;
  return readIndexFile(r.indexFile, r.gitDir, r.hashSize)
    .map(({ path: p, mode, stage, skipWorktree }) => ({ path: p, mode, stage, skipWorktree }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.stage - b.stage));
}

const theirs = (dir: string) => lsFilesStage(git, dir).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.stage - b.stage));

describe('index versions agree with git ls-files --stage', () => {
  it('version 2 (and an added, a removed and an intent-to-add path)', () => {
    const dir = repo();
    writeFileSync(path.join(dir, 'new.txt'), 'n');
    writeFileSync(path.join(dir, 'ita.txt'), 'i');
    git(dir, ['add', 'new.txt']);
    git(dir, ['add', '-N', 'ita.txt']);
    git(dir, ['rm', '-q', '--cached', 'b/c.txt']);
    expect(ours(dir)).toEqual(theirs(dir));
    const r = repoAt(dir)!;
    const ita = readIndexFile(r.indexFile, r.gitDir).find((e) => e.path === 'ita.txt');
    expect(ita?.intentToAdd).toBe(true);
    expect(ours(dir).map((e) => e.path)).toContain(LONG);
  });

  it('version 3 (skip-worktree entries)', () => {
    const dir = repo();
    git(dir, ['update-index', '--skip-worktree', 'b/d/e.txt', 'a.txt']);
    const r = repoAt(dir)!;
    expect(parseIndex(readFileSync(r.indexFile)).version).toBe(3);
    expect(ours(dir)).toEqual(theirs(dir));
    expect(ours(dir).filter((e) => e.skipWorktree).map((e) => e.path)).toEqual(['a.txt', 'b/d/e.txt']);
  });

  it('version 4 (path prefix compression)', () => {
    const dir = repo();
    git(dir, ['update-index', '--index-version', '4']);
    const r = repoAt(dir)!;
    expect(parseIndex(readFileSync(r.indexFile)).version).toBe(4);
    expect(ours(dir)).toEqual(theirs(dir));
  });

  it('a split index, after additions, deletions and replacements', () => {
    const dir = repo();
    git(dir, ['update-index', '--split-index']);
    writeFileSync(path.join(dir, 'b/c.txt'), 'changed');
    writeFileSync(path.join(dir, 'b/new.txt'), 'new');
    git(dir, ['add', 'b/c.txt', 'b/new.txt']);
    git(dir, ['rm', '-q', '--cached', 'b/d/f.txt']);
    git(dir, ['update-index', '--skip-worktree', 'x/y/z/w.txt']);
    const r = repoAt(dir)!;
    const own = parseIndex(readFileSync(r.indexFile));
    expect(own.split?.base).toMatch(/^[0-9a-f]{40}$/);
    expect(own.split!.deleted.length + own.split!.replaced.length).toBeGreaterThan(0);
    expect(ours(dir)).toEqual(theirs(dir));
  });

  it('a split index in version 4', () => {
    const dir = repo();
    git(dir, ['update-index', '--index-version', '4', '--split-index']);
    writeFileSync(path.join(dir, 'a.txt'), 'changed');
    git(dir, ['add', 'a.txt']);
    git(dir, ['rm', '-q', '--cached', 'b/c.txt']);
    expect(ours(dir)).toEqual(theirs(dir));
  });

  it('a sparse index (cone mode): out-of-cone directories are single entries', () => {
    const dir = repo();
    git(dir, ['sparse-checkout', 'set', '--cone', '--sparse-index', 'b']);
    const entries = ours(dir);
    expect(entries).toEqual(theirs(dir));
    expect(entries.filter((e) => e.mode === 0o040000).map((e) => e.path)).toEqual(['x/', 'zz/']);
  });

  it('conflict stages', () => {
    const dir = repo();
    git(dir, ['rm', '-q', '--cached', LONG]);
    git(dir, ['checkout', '-qb', 'other']);
    writeFileSync(path.join(dir, 'a.txt'), 'other');
    git(dir, ['commit', '-qam', 'other']);
    git(dir, ['checkout', '-q', '-']);
    writeFileSync(path.join(dir, 'a.txt'), 'main');
    git(dir, ['commit', '-qam', 'main']);
    try { git(dir, ['merge', '-q', 'other']); } catch { /* the conflict is the point */ }
    const entries = ours(dir);
    expect(entries).toEqual(theirs(dir));
    expect(entries.filter((e) => e.path === 'a.txt').map((e) => e.stage)).toEqual([1, 2, 3]);
  });

  it('a SHA-256 repository', () => {
    const dir = repo(['--object-format=sha256']);
    expect(repoAt(dir)!.hashSize).toBe(32);
    expect(ours(dir)).toEqual(theirs(dir));
  });

  it('a repository without an index yet is empty', () => {
    const dir = path.join(scratch.dir, `r${n++}`);
    mkdirSync(dir);
    git(dir, ['init', '-q']);
    const r = repoAt(dir)!;
    expect(readIndexFile(r.indexFile, r.gitDir)).toEqual([]);
  });
});

describe('bad index files are errors, never a silently empty list', () => {
  it('truncated, wrong signature, unknown version, missing shared index', () => {
    const dir = repo();
    const r = repoAt(dir)!;
    const good = readFileSync(r.indexFile);
    expect(() => parseIndex(good.subarray(0, 200))).toThrow(IndexFormatError);
    expect(() => parseIndex(Buffer.concat([Buffer.from('XXXX'), good.subarray(4)]))).toThrow(/DIRC/);
    const v9 = Buffer.from(good);
    v9.writeUInt32BE(9, 4);
    expect(() => parseIndex(v9)).toThrow(/version 9/);
    const huge = Buffer.from(good);
    huge.writeUInt32BE(1_000_000, 8);
    expect(() => parseIndex(huge)).toThrow(IndexFormatError);
    git(dir, ['update-index', '--split-index']);
    const shared = git(dir, ['rev-parse', '--git-path', 'index']).toString().trim();
    const base = parseIndex(readFileSync(path.resolve(dir, shared))).split!.base;
    truncateSync(path.join(r.gitDir, `sharedindex.${base}`), 0);
    expect(() => readIndexFile(r.indexFile, r.gitDir)).toThrow(IndexFormatError);
  });

  it('EWAH bitmaps: runs of ones, literal words, bits past 32', () => {
    // bit size 200, 3 words: RLW (run of 1 word of ones, 1 literal), literal with bits 0, 33 and 63.
    const words = [
      { hi: 1 << 1, lo: (1 << 1) | 1 }, // run bit 1, run length 1, 1 literal word
      { hi: (1 << 1) | (1 << 31) >>> 0, lo: 1 },
    ];
    const buf = Buffer.alloc(8 + words.length * 8 + 4);
    buf.writeUInt32BE(200, 0);
    buf.writeUInt32BE(words.length, 4);
    words.forEach((w, i) => { buf.writeUInt32BE(w.hi >>> 0, 8 + i * 8); buf.writeUInt32BE(w.lo >>> 0, 12 + i * 8); });
    const { bits, next } = readEwah(buf, 0, (m) => { throw new Error(m); });
    expect(next).toBe(buf.length);
    expect(bits).toEqual([...Array.from({ length: 64 }, (_, i) => i), 64, 64 + 33, 64 + 63]);
  });
});

describe('work tree discovery agrees with git rev-parse --show-toplevel', () => {
  it('from the top, from a subdirectory, in a worktree, in a submodule, and outside any', () => {
    const main = repo();
    const sub = repo();
    git(main, ['submodule', 'add', '-q', sub, 'mods/sub']);
    git(main, ['worktree', 'add', '-q', path.join(scratch.dir, 'wt'), '-b', 'wt']);
    const dirs = [main, path.join(main, 'b/d'), path.join(scratch.dir, 'wt'), path.join(scratch.dir, 'wt/b'), path.join(main, 'mods/sub/b')];
    for (const d of dirs) {
      const top = git(d, ['rev-parse', '--show-toplevel']).toString().trim();
      const gitDir = path.resolve(d, git(d, ['rev-parse', '--git-dir']).toString().trim());
      const found = findWorkTree(d)!;
      expect(found.workTree, d).toBe(top);
      expect(found.gitDir, d).toBe(gitDir);
      expect(found.indexFile, d).toBe(path.resolve(d, git(d, ['rev-parse', '--git-path', 'index']).toString().trim()));
    }
    expect(findWorkTree(scratch.dir)).toBeUndefined();
  });

  it('a .git that is not a repository is passed over, as git does', () => {
    const outer = repo();
    writeTree(outer, { 'inner/.git/info/exclude': '', 'inner/x': '', 'gitfile/.git': 'gitdir: /nowhere\n' });
    expect(findWorkTree(path.join(outer, 'inner'))?.workTree).toBe(outer);
    expect(findWorkTree(path.join(outer, 'gitfile'))?.workTree).toBe(outer);
  });
});
