/**
 * Which paths of a workspace are synced, with git's exact semantics (the reference is
 * `git ls-files -o --exclude-standard` run at the workspaces root), layered as git layers its
 * exclude sources; the first source with a matching pattern decides, and within a source the last
 * matching line wins:
 *
 *   1. `--exclude` flags and the config list  (like `git ls-files -x`: highest precedence)
 *   2. every `.gitignore` from the workspace's directories, deepest first, then the one at the
 *      workspaces root (its patterns see `<workspace>/<path>`)
 *   3. `<workspace>/.git/info/exclude`
 *   4. the default excludes                   (like `core.excludesFile`: lowest, `!` can undo them)
 *
 * Patterns of 1, 3 and 4 are relative to the workspace. A path under an excluded directory is
 * excluded whatever the sources say (git never descends), and callers must not descend into a
 * directory for which `excludes(dir, true)` is true. The workspace directory itself is never excluded.
 * Matching is git's own code ported (gitignore.ts), on UTF-8 bytes, so there is no known difference
 * with git for valid UTF-8 names; a name that is not valid UTF-8 reaches us already altered by Node.
 *
 * On top, a `.dockerignore` at the workspace root excludes with Docker's rules (dockerignore.ts):
 * patterns relative to that root, `**`, `!` exceptions that can re-include below a directory the
 * .dockerignore excluded (never below one git excluded).
 *
 * Cost: each directory is decided once (its verdict, the .gitignore lists that apply below it and
 * its .dockerignore match state are cached); a file costs one map lookup plus a scan of the patterns.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type DockerIgnore, dockerMatch, dockerPrunes, parseDockerignore, rootMatchInfo } from './dockerignore.js';
import { type GitPattern, isNegative, lastMatch, parseIgnoreFile, parsePattern, toBytes } from './gitignore.js';

export const DEFAULT_EXCLUDES: readonly string[] = [
  'node_modules/', '.git/', '*.log', '.env*', 'dist/', 'build/', '__pycache__/', 'vendor/', '*.pyc', '.DS_Store', 'Thumbs.db',
];

export interface FilterOptions {
  /** Workspaces root; `.gitignore` files from here down apply. */
  root: string;
  /** Workspace directory name under root; paths given to the filter are relative to it. */
  workspace: string;
  /** Highest-precedence patterns, relative to the workspace (taken as is, like `git ls-files -x`). */
  excludes?: readonly string[];
  /** Lowest-precedence patterns; DEFAULT_EXCLUDES unless given. */
  defaults?: readonly string[];
}

export interface Filter {
  /** `rel` is a posix path relative to the workspace; true when it must not be synced. */
  excludes(rel: string, isDir: boolean): boolean;
  /** True when a change to `rel` changes the filter itself (then call `invalidate(dirname(rel))`). */
  isIgnoreFile(rel: string): boolean;
  /**
   * Forgets what was read or decided for the directory `relDir` ('' = workspace) and below.
   * '' and anything under `.git` also re-read the workspaces-root .gitignore, info/exclude and .dockerignore.
   */
  invalidate(relDir: string): void;
}

type PatternList = readonly GitPattern[];

interface DirState {
  excluded: boolean;
  /** The .gitignore lists that apply to this directory's children, deepest first. */
  lists: readonly PatternList[];
  /** Which .dockerignore patterns matched this directory (BuildKit's MatchInfo). */
  docker: readonly boolean[];
}

const EXCLUDED: DirState = { excluded: true, lists: [], docker: [] };

/** An ignore file's content, or undefined when missing, unreadable or not a regular file (git: as if empty). */
function readIgnoreFile(file: string, followSymlink: boolean): Buffer | undefined {
  let fd: number;
  try {
    // git does not follow a symlinked in-tree .gitignore (since 2.32). O_NONBLOCK: a FIFO must not hang us.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | (followSymlink ? 0 : constants.O_NOFOLLOW));
  } catch {
    return undefined;
  }
  try {
    return fstatSync(fd).isFile() ? readFileSync(fd) : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export function createFilter(opts: FilterOptions): Filter {
  const wsDir = path.join(opts.root, opts.workspace);
  // Paths are matched as git sees them from the workspaces root: `<workspace>/<rel>`, in bytes.
  const top = opts.workspace ? `${toBytes(opts.workspace)}/` : '';
  const fromStrings = (patterns: readonly string[]): PatternList =>
    patterns.flatMap((p) => parsePattern(toBytes(p), top) ?? []);
  const cmdline = fromStrings(opts.excludes ?? []);
  const defaults = fromStrings(opts.defaults ?? DEFAULT_EXCLUDES);

  let rootList: PatternList = [];
  let infoList: PatternList = [];
  let docker: DockerIgnore | undefined;
  const states = new Map<string, DirState>();

  const readList = (file: string, base: string, followSymlink: boolean): PatternList => {
    const content = readIgnoreFile(file, followSymlink);
    return content ? parseIgnoreFile(content.toString('latin1'), base) : [];
  };

  const loadWorkspaceFiles = (): void => {
    rootList = opts.workspace ? readList(path.join(opts.root, '.gitignore'), '', false) : [];
    infoList = readList(path.join(wsDir, '.git', 'info', 'exclude'), top, true);
    const content = readIgnoreFile(path.join(wsDir, '.dockerignore'), true);
    docker = content && parseDockerignore(content.toString('utf8'));
  };
  loadWorkspaceFiles();

  /** git's verdict for `full` (bytes, from the workspaces root), given the .gitignore lists above it. */
  const gitExcludes = (full: string, isDir: boolean, lists: readonly PatternList[]): boolean => {
    const baseOff = full.lastIndexOf('/') + 1;
    let m = lastMatch(cmdline, full, baseOff, isDir);
    for (let i = 0; !m && i < lists.length; i++) m = lastMatch(lists[i]!, full, baseOff, isDir);
    m ??= lastMatch(rootList, full, baseOff, isDir) ?? lastMatch(infoList, full, baseOff, isDir) ?? lastMatch(defaults, full, baseOff, isDir);
    return m !== undefined && !isNegative(m);
  };

  const withOwnList = (relDir: string, inherited: readonly PatternList[]): readonly PatternList[] => {
    const base = relDir ? `${top}${toBytes(relDir)}/` : top;
    const own = readList(path.join(wsDir, relDir, '.gitignore'), base, false);
    return own.length > 0 ? [own, ...inherited] : inherited;
  };

  const dirState = (rel: string): DirState => {
    let s = states.get(rel);
    if (s) return s;
    if (rel === '') {
      s = { excluded: false, lists: withOwnList('', []), docker: docker ? rootMatchInfo(docker) : [] };
    } else {
      const slash = rel.lastIndexOf('/');
      const parent = dirState(slash < 0 ? '' : rel.slice(0, slash));
      s = EXCLUDED;
      if (!parent.excluded && !gitExcludes(top + toBytes(rel), true, parent.lists)) {
        const d = docker && dockerMatch(docker, rel, parent.docker);
        if (!d || !d.excluded || !dockerPrunes(docker!, rel)) {
          s = { excluded: false, lists: withOwnList(rel, parent.lists), docker: d ? d.info : [] };
        }
      }
    }
    states.set(rel, s);
    return s;
  };

  return {
    excludes(rel, isDir) {
      if (isDir) return dirState(rel).excluded;
      const slash = rel.lastIndexOf('/');
      const parent = dirState(slash < 0 ? '' : rel.slice(0, slash));
      if (parent.excluded || gitExcludes(top + toBytes(rel), false, parent.lists)) return true;
      return !!docker && dockerMatch(docker, rel, parent.docker).excluded;
    },
    isIgnoreFile(rel) {
      return rel === '.gitignore' || rel.endsWith('/.gitignore') || rel === '.dockerignore' || rel === '.git/info/exclude';
    },
    invalidate(relDir) {
      if (relDir === '' || relDir === '.git' || relDir.startsWith('.git/')) {
        states.clear();
        loadWorkspaceFiles();
        return;
      }
      for (const k of states.keys()) if (k === relDir || k.startsWith(`${relDir}/`)) states.delete(k);
    },
  };
}
