/**
 * Which paths of a workspace are synced. In a git work tree: exactly what
 * `git ls-files --cached --others --exclude-standard` lists there, with the default excludes as
 * `core.excludesFile` and `--exclude` patterns as `-x` patterns. Tracked files are kept whatever the
 * ignore rules say; the ignore rules decide untracked paths only, layered as git layers its exclude
 * sources (the first source with a matching pattern decides, within a source the last matching line wins):
 *
 *   1. `--exclude` flags and the config list  (like `git ls-files -x`: highest precedence)
 *   2. every `.gitignore` from the work tree's top down to the path's directory, deepest first
 *   3. the repository's `info/exclude`
 *   4. the default excludes                   (like `core.excludesFile`: lowest, `!` can undo them)
 *
 * The work tree is found by walking up from the workspace like git (git-repo.ts), so a workspace may be
 * a repository, or a directory inside one (then only the index entries under it count). A submodule
 * (gitlink) or an untracked directory holding a repository is synced with its own rules: its own index,
 * `.gitignore` files and info/exclude. `.git` itself is never synced. The directories from the work
 * tree's top down to the workspace are never excluded: sync-agent decides which workspaces exist.
 * Nothing below a sparse-directory entry of a sparse index is synced (git lists none of it from the
 * work tree). Known difference: git reads a skip-worktree `.gitignore` missing from the work tree
 * (sparse checkout) from the object store; here it counts as empty.
 *
 * Outside a work tree, or with `gitIndex: false`, the workspaces root plays git's top: its `.gitignore`
 * and the workspace's apply, `<workspace>/.git/info/exclude` is layer 3, and nothing is tracked.
 *
 * Patterns of 1 and 4 are relative to the workspace. A path under an ignored directory is ignored (git
 * never descends); tracked paths below one are found through the index alone (`trackedOnly`), so an
 * ignored directory is never listed. Matching is git's own code ported (gitignore.ts), on UTF-8 bytes.
 *
 * On top, a `.dockerignore` at the workspace root excludes with Docker's rules (dockerignore.ts),
 * tracked files included: patterns relative to that root, `**`, `!` exceptions that can re-include
 * below a directory the .dockerignore excluded (never below one git ignored).
 *
 * Cost: each directory is decided once (its verdict, the .gitignore lists that apply below it, its
 * repository and its .dockerignore match state are cached); a file costs one map lookup plus a scan of
 * the patterns, and an index lookup only when the ignore rules exclude it.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { type DockerIgnore, dockerMatch, dockerPrunes, parseDockerignore, rootMatchInfo } from './dockerignore.js';
import { SyncError } from '../errors.js';
import { IndexFormatError, readIndexFile } from './git-index.js';
import { findWorkTree, type GitRepo, repoAt } from './git-repo.js';
import { type GitPattern, isNegative, lastMatch, parseIgnoreFile, parsePattern, type PatternOrigin, toBytes } from './gitignore.js';
import { NO_TRACKED, trackedPaths, type TrackedPaths } from './tracked.js';

export const DEFAULT_EXCLUDES: readonly string[] = [
  'node_modules/', '.git/', '*.log', '.env*', 'dist/', 'build/', '__pycache__/', 'vendor/', '*.pyc', '.DS_Store', 'Thumbs.db',
];

export interface FilterOptions {
  /** Workspaces root; outside a git work tree, `.gitignore` files from here down apply. */
  root: string;
  /** Workspace directory name under root; paths given to the filter are relative to it. */
  workspace: string;
  /** Highest-precedence patterns, relative to the workspace (taken as is, like `git ls-files -x`). */
  excludes?: readonly string[];
  /** Lowest-precedence patterns; DEFAULT_EXCLUDES unless given. */
  defaults?: readonly string[];
  /** Read git's index (the default): tracked files are kept whatever the ignore rules say. */
  gitIndex?: boolean;
}

/** The rule behind a verdict, for `sync-agent files --why`. */
export interface Rule {
  source: PatternOrigin['source'] | 'dockerignore' | 'git';
  /** The file holding the pattern (absolute), for .gitignore, info/exclude and .dockerignore. */
  file?: string;
  line?: number;
  /** The pattern as written, or for source `git` what git itself decides. */
  pattern: string;
  /** The workspace-relative directory the rule matched, when the path lies below it. */
  dir?: string;
}

export interface Verdict {
  excluded: boolean;
  /** In a git index (then kept unless a .dockerignore excludes it). */
  tracked: boolean;
  /**
   * What decides: the excluding rule, a `!` rule that re-includes, or, for a tracked path, the
   * ignore rule that would exclude it if it were untracked. Undefined when no rule matches.
   */
  rule: Rule | undefined;
}

export interface Filter {
  /**
   * `rel` is a posix path relative to the workspace; true when it must not be synced. For a directory:
   * true when nothing below it can be synced (callers must not descend into it).
   */
  excludes(rel: string, isDir: boolean): boolean;
  /**
   * For a directory callers descend into: when git ignores it but the index names paths below it,
   * the names directly under it that the index has (only those can be synced; the directory is not
   * to be listed); undefined when the directory is to be read as usual.
   */
  trackedOnly(relDir: string): readonly string[] | undefined;
  /** The verdict on `rel` and the rule behind it. */
  why(rel: string, isDir: boolean): Verdict;
  /** True when a change to `rel` changes the filter itself (then call `invalidate(dirname(rel))`). */
  isIgnoreFile(rel: string): boolean;
  /**
   * Forgets what was read or decided for the directory `relDir` ('' = workspace) and below.
   * '' and anything under `.git` also re-read the ignore files above the workspace, info/exclude,
   * .dockerignore and the git index.
   */
  invalidate(relDir: string): void;
  /** The repositories met so far: the enclosing work tree ('') and each nested one (its directory). */
  repositories(): ReadonlyArray<{ dir: string; indexFile: string }>;
  /** Workspace-relative paths the indexes of `repositories()` track, sorted; sparse directories end in `/`. */
  trackedPaths(): string[];
}

interface PatternList {
  patterns: readonly GitPattern[];
}

interface Scope {
  /** Workspace-relative top of this repository's part ('' for the workspace's own). */
  dir: string;
  repo: GitRepo | undefined;
  tracked: TrackedPaths;
  info: PatternList;
}

interface DirState {
  /** Nothing below can be synced: never descend. */
  pruned: boolean;
  /** git ignores it (or an ancestor): only tracked paths below it count. */
  ignored: boolean;
  /** The .gitignore lists that apply to its children, deepest first. */
  lists: readonly PatternList[];
  /** Which .dockerignore patterns matched this directory (BuildKit's MatchInfo). */
  docker: readonly boolean[];
  scope: Scope;
  /** Why it is ignored or pruned. */
  rule: Rule | undefined;
}

const EMPTY: PatternList = { patterns: [] };
const NO_SCOPE: Scope = { dir: '', repo: undefined, tracked: NO_TRACKED, info: EMPTY };
const GIT_RULE: Rule = { source: 'git', pattern: '.git is never synced' };
const pruned = (rule: Rule | undefined): DirState => ({ pruned: true, ignored: true, lists: [], docker: [], scope: NO_SCOPE, rule });

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

const fromBytes = (s: string): string => Buffer.from(s, 'latin1').toString('utf8');

function ruleOf(p: GitPattern, dir?: string): Rule {
  const origin = p.origin ?? { source: 'exclude' };
  return {
    source: origin.source, pattern: fromBytes(p.text),
    ...(origin.file === undefined ? {} : { file: origin.file, line: p.line }), ...(dir === undefined ? {} : { dir }),
  };
}

function readTracked(repo: GitRepo, strip: string, prefix: string): TrackedPaths {
  try {
    return trackedPaths(readIndexFile(repo.indexFile, repo.gitDir, repo.hashSize), strip, prefix);
  } catch (err) {
    const why = err instanceof IndexFormatError ? err.message : (err as NodeJS.ErrnoException).code ?? String(err);
    throw new SyncError('WORKSPACE_UNREADABLE', `cannot read the git index ${repo.indexFile} (${why})`, {
      hint: 'check the repository with `git status`, or sync without the index: --git-index false (SYNC_GIT_INDEX=false); nothing was changed in the bucket',
      cause: err,
    });
  }
}

const realpathOr = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

export function createFilter(opts: FilterOptions): Filter {
  const wsDir = path.join(opts.root, opts.workspace);
  const useGit = opts.gitIndex !== false;
  // git works on real paths: the work tree is found, and nested repositories read, from the real directory.
  const realWs = useGit ? realpathOr(wsDir) : wsDir;
  const topRepo = useGit ? findWorkTree(realWs) : undefined;
  // Paths are matched as git sees them from its top, in bytes: `<prefix><rel>`, where the prefix is the
  // workspace's path from the work tree's top (or, outside one, from the workspaces root).
  const wsFromTop = topRepo ? path.relative(topRepo.workTree, realWs).split(path.sep).join('/') : opts.workspace;
  const prefix = wsFromTop ? `${toBytes(wsFromTop)}/` : '';
  const withOrigin = (patterns: GitPattern[], origin: PatternOrigin): PatternList => {
    for (const p of patterns) p.origin = origin;
    return { patterns };
  };
  const fromStrings = (patterns: readonly string[], origin: PatternOrigin): PatternList =>
    withOrigin(patterns.flatMap((p, i) => {
      const parsed = parsePattern(toBytes(p), prefix);
      if (parsed) parsed.line = i + 1;
      return parsed ?? [];
    }), origin);
  const cmdline = fromStrings(opts.excludes ?? [], { source: 'exclude' });
  const defaults = fromStrings(opts.defaults ?? DEFAULT_EXCLUDES, { source: 'defaults' });

  const readList = (file: string, base: string, source: PatternOrigin['source'], followSymlink: boolean): PatternList => {
    const content = readIgnoreFile(file, followSymlink);
    return content ? withOrigin(parseIgnoreFile(content.toString('latin1'), base), { source, file }) : EMPTY;
  };

  /** The .gitignore lists above the workspace, deepest first. */
  let above: PatternList[] = [];
  let top: Scope = NO_SCOPE;
  let docker: DockerIgnore | undefined;
  const states = new Map<string, DirState>();
  const nested = new Map<string, Scope>();

  const loadWorkspaceFiles = (): void => {
    above = [];
    nested.clear();
    if (topRepo) {
      const rel = wsFromTop ? wsFromTop.split('/') : [];
      for (let i = 0; i < rel.length; i++) {
        const dirFromTop = rel.slice(0, i).join('/');
        const base = dirFromTop ? `${toBytes(dirFromTop)}/` : '';
        above.unshift(readList(path.join(topRepo.workTree, dirFromTop, '.gitignore'), base, 'gitignore', false));
      }
      top = {
        dir: '', repo: topRepo, tracked: readTracked(topRepo, wsFromTop ? `${wsFromTop}/` : '', ''),
        info: readList(path.join(topRepo.commonDir, 'info', 'exclude'), '', 'info-exclude', true),
      };
    } else {
      if (opts.workspace) above.push(readList(path.join(opts.root, '.gitignore'), '', 'gitignore', false));
      top = { ...NO_SCOPE, info: readList(path.join(wsDir, '.git', 'info', 'exclude'), prefix, 'info-exclude', true) };
    }
    const content = readIgnoreFile(path.join(wsDir, '.dockerignore'), true);
    docker = content && parseDockerignore(content.toString('utf8'));
  };
  loadWorkspaceFiles();

  /** git's deciding pattern for `full` (bytes, from the top), given the .gitignore lists above it. */
  const gitMatch = (full: string, isDir: boolean, lists: readonly PatternList[], scope: Scope): GitPattern | undefined => {
    const baseOff = full.lastIndexOf('/') + 1;
    let m = lastMatch(cmdline.patterns, full, baseOff, isDir);
    for (let i = 0; !m && i < lists.length; i++) m = lastMatch(lists[i]!.patterns, full, baseOff, isDir);
    return m ?? lastMatch(scope.info.patterns, full, baseOff, isDir) ?? lastMatch(defaults.patterns, full, baseOff, isDir);
  };

  const withOwnList = (relDir: string, inherited: readonly PatternList[]): readonly PatternList[] => {
    const base = `${prefix}${relDir ? `${toBytes(relDir)}/` : ''}`;
    const own = readList(path.join(wsDir, relDir, '.gitignore'), base, 'gitignore', false);
    return own.patterns.length > 0 ? [own, ...inherited] : inherited;
  };

  /** A repository nested in the workspace at `rel`, with its own index and info/exclude. */
  const nestedScope = (rel: string, repo: GitRepo): Scope => {
    const s: Scope = {
      dir: rel, repo, tracked: readTracked(repo, '', `${rel}/`),
      info: readList(path.join(repo.commonDir, 'info', 'exclude'), `${prefix}${toBytes(rel)}/`, 'info-exclude', true),
    };
    nested.set(rel, s);
    return s;
  };

  const childState = (rel: string, parent: DirState): DirState => {
    if (parent.pruned) return parent;
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    if (name === '.git') return pruned({ ...GIT_RULE, dir: rel });
    const { scope } = parent;
    if (scope.tracked.isSparseDir(rel)) return pruned({ source: 'git', pattern: 'outside the sparse checkout', dir: rel });
    let { ignored, rule } = parent;
    if (!ignored) {
      const m = gitMatch(prefix + toBytes(rel), true, parent.lists, scope);
      if (m && !isNegative(m)) {
        ignored = true;
        rule = ruleOf(m, rel);
      }
    }
    const d = docker && dockerMatch(docker, rel, parent.docker);
    if (d?.excluded && dockerPrunes(docker!, rel)) return pruned(dockerRule(d.decidedBy, rel));
    const dockerInfo = d ? d.info : [];
    if (useGit) {
      // A gitlink, or an untracked directory git would list as `dir/` (it holds a repository), is a
      // work tree of its own. Like git, a directory with tracked paths is never taken for one.
      const gitlink = scope.tracked.isGitlink(rel);
      if (gitlink || (!ignored && !scope.tracked.hasBelow(rel))) {
        const repo = repoAt(path.join(realWs, rel));
        if (repo) return { pruned: false, ignored: false, lists: withOwnList(rel, []), docker: dockerInfo, scope: nestedScope(rel, repo), rule: undefined };
        if (gitlink) return pruned({ source: 'git', pattern: 'submodule that is not checked out', dir: rel });
      }
    }
    if (ignored && !scope.tracked.hasBelow(rel)) return { ...pruned(rule), scope };
    return { pruned: false, ignored, lists: ignored ? [] : withOwnList(rel, parent.lists), docker: dockerInfo, scope, rule: ignored ? rule : undefined };
  };

  const dockerRule = (i: number, dir?: string): Rule => {
    const p = docker!.patterns[i]!;
    return {
      source: 'dockerignore', file: path.join(wsDir, '.dockerignore'), line: p.line, pattern: `${p.exclusion ? '!' : ''}${p.text}`,
      ...(dir === undefined ? {} : { dir }),
    };
  };

  const dirState = (rel: string): DirState => {
    let s = states.get(rel);
    if (s) return s;
    if (rel === '') {
      s = { pruned: false, ignored: false, lists: withOwnList('', above), docker: docker ? rootMatchInfo(docker) : [], scope: top, rule: undefined };
    } else {
      const slash = rel.lastIndexOf('/');
      s = childState(rel, dirState(slash < 0 ? '' : rel.slice(0, slash)));
    }
    states.set(rel, s);
    return s;
  };

  const parentOf = (rel: string): DirState => {
    const slash = rel.lastIndexOf('/');
    return dirState(slash < 0 ? '' : rel.slice(0, slash));
  };

  const allScopes = (): Scope[] => [...(top.repo ? [top] : []), ...nested.values()];

  return {
    excludes(rel, isDir) {
      if (isDir) return dirState(rel).pruned;
      if (rel === '.git' || rel.endsWith('/.git')) return true;
      const parent = parentOf(rel);
      if (parent.pruned) return true;
      if (docker && dockerMatch(docker, rel, parent.docker).excluded) return true;
      if (!parent.ignored) {
        const m = gitMatch(prefix + toBytes(rel), false, parent.lists, parent.scope);
        if (!m || isNegative(m)) return false;
      }
      return !parent.scope.tracked.isFile(rel);
    },
    trackedOnly(relDir) {
      const s = dirState(relDir);
      if (s.pruned || !s.ignored) return undefined;
      return [...s.scope.tracked.children(relDir).keys()];
    },
    why(rel, isDir) {
      if (rel.split('/').includes('.git')) return { excluded: true, tracked: false, rule: GIT_RULE };
      const parent = parentOf(rel);
      if (parent.pruned) return { excluded: true, tracked: false, rule: parent.rule };
      const m = parent.ignored ? undefined : gitMatch(prefix + toBytes(rel), isDir, parent.lists, parent.scope);
      const ignoredBy = parent.ignored ? parent.rule : m && !isNegative(m) ? ruleOf(m) : undefined;
      const rule = ignoredBy ?? (m && ruleOf(m));
      if (docker) {
        const d = dockerMatch(docker, rel, parent.docker);
        if (d.excluded && (!isDir || dirState(rel).pruned)) return { excluded: true, tracked: false, rule: dockerRule(d.decidedBy) };
      }
      if (isDir) {
        const s = dirState(rel);
        if (s.pruned) return { excluded: true, tracked: false, rule: s.rule?.source === 'git' ? s.rule : rule };
        return { excluded: false, tracked: s.ignored && ignoredBy !== undefined, rule };
      }
      const tracked = parent.scope.tracked.isFile(rel);
      return { excluded: ignoredBy !== undefined && !tracked, tracked, rule };
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
      for (const k of nested.keys()) if (k === relDir || k.startsWith(`${relDir}/`)) nested.delete(k);
    },
    repositories() {
      return allScopes().map((s) => ({ dir: s.dir, indexFile: s.repo!.indexFile }));
    },
    trackedPaths() {
      return allScopes().flatMap((s) => s.tracked.all()).sort();
    },
  };
}

/**
 * The workspace-relative paths whose tracked state differs between two filters of one workspace (an
 * index read before and after a `git add`, `git rm` or checkout): what must be decided again.
 */
export function trackedChanges(before: Filter, after: Filter): string[] {
  // Nested repositories are met during a walk: meet the ones `before` knows in `after` too.
  for (const r of before.repositories()) if (r.dir) after.excludes(r.dir, true);
  const a = before.trackedPaths();
  const b = after.trackedPaths();
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!);
    else if (i >= a.length || b[j]! < a[i]!) out.push(b[j++]!);
    else { i++; j++; }
  }
  return out;
}
