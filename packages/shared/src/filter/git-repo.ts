/**
 * Finding a git work tree the way git's setup.c does, without the git binary: walk up from a directory
 * to the first `.git` that is a repository (a directory, or a `gitdir:` file as worktrees and submodules
 * have), stopping at a filesystem boundary like git without GIT_DISCOVERY_ACROSS_FILESYSTEM.
 *
 * Not modelled: GIT_DIR / GIT_WORK_TREE / GIT_CEILING_DIRECTORIES (a daemon's environment is not the
 * developer's shell), `core.worktree` (the directory holding `.git` is the work tree, as in every
 * ordinary checkout, worktree and submodule), and safe.directory ownership checks. A `.git` that is not
 * a repository is passed over, as git passes over such a directory; git stops with an error at a broken
 * `.git` file (a worktree whose repository is gone), where the walk goes on upwards instead.
 */
import { closeSync, fstatSync, lstatSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';

export interface GitRepo {
  /** Absolute, symlink-free path of the work tree's top directory. */
  workTree: string;
  /** The repository directory: `<workTree>/.git`, or where a `.git` file points. */
  gitDir: string;
  /** Where shared parts live (`info/exclude`, `objects`, `config`): gitDir unless it has a `commondir` file. */
  commonDir: string;
  indexFile: string;
  /** 20 for SHA-1 repositories, 32 for SHA-256 ones (`extensions.objectFormat`). */
  hashSize: number;
}

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** A small file's text, or undefined (git reads gitfiles and HEAD the same way: at most a few KiB matter). */
function readSmall(file: string, max = 1 << 16): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(max);
    return buf.toString('utf8', 0, readSync(fd, buf, 0, max, 0));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** git's validate_headref(): HEAD is a symlink into refs/, a `ref:` line, or an object id. */
function validHead(gitDir: string): boolean {
  const head = path.join(gitDir, 'HEAD');
  try {
    if (lstatSync(head).isSymbolicLink()) return true;
  } catch {
    return false;
  }
  const text = readSmall(head, 256);
  if (text === undefined) return false;
  return /^ref:\s*refs\//.test(text) || /^[0-9a-f]{40}(?:[0-9a-f]{24})?\s*$/.test(text);
}

function commonDirOf(gitDir: string): string {
  const common = readSmall(path.join(gitDir, 'commondir'))?.trim();
  return common ? path.resolve(gitDir, common) : gitDir;
}

/** git's is_git_directory(): a valid HEAD, and `objects/` and `refs/` in the common directory. */
export function isGitDirectory(dir: string): boolean {
  if (!validHead(dir)) return false;
  const common = commonDirOf(dir);
  return isDir(path.join(common, 'objects')) && isDir(path.join(common, 'refs'));
}

/** The repository a `.git` entry names: the directory itself, or a gitfile's `gitdir:`; undefined if not a repository. */
export function gitDirOf(dotGit: string): string | undefined {
  let st;
  try {
    st = statSync(dotGit);
  } catch {
    return undefined;
  }
  if (st.isDirectory()) return isGitDirectory(dotGit) ? dotGit : undefined;
  if (!st.isFile()) return undefined;
  const m = /^gitdir: (.+?)\s*$/.exec(readSmall(dotGit) ?? '');
  if (!m) return undefined;
  const dir = path.resolve(path.dirname(dotGit), m[1]!);
  return isGitDirectory(dir) ? dir : undefined;
}

function hashSizeOf(commonDir: string): number {
  const config = readSmall(path.join(commonDir, 'config'), 1 << 20) ?? '';
  let section = '';
  for (const raw of config.split('\n')) {
    const line = raw.trim();
    const header = /^\[\s*([A-Za-z0-9.-]+)/.exec(line);
    if (header) section = header[1]!.toLowerCase();
    else if (section === 'extensions' && /^objectformat\s*=\s*"?sha256"?\s*(?:[#;].*)?$/i.test(line)) return 32;
  }
  return 20;
}

/** The repository whose work tree top is exactly `dir` (a nested repository or submodule), if any. */
export function repoAt(dir: string): GitRepo | undefined {
  const gitDir = gitDirOf(path.join(dir, '.git'));
  if (!gitDir) return undefined;
  const commonDir = commonDirOf(gitDir);
  return { workTree: dir, gitDir, commonDir, indexFile: path.join(gitDir, 'index'), hashSize: hashSizeOf(commonDir) };
}

/** The work tree holding `dir` (an absolute, symlink-free path), found by walking up; undefined outside any. */
export function findWorkTree(dir: string): GitRepo | undefined {
  let dev: number;
  try {
    dev = statSync(dir).dev;
  } catch {
    return undefined;
  }
  for (let d = dir; ;) {
    const repo = repoAt(d);
    if (repo) return repo;
    const parent = path.dirname(d);
    if (parent === d) return undefined;
    try {
      if (statSync(parent).dev !== dev) return undefined;
    } catch {
      return undefined;
    }
    d = parent;
  }
}
