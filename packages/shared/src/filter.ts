/**
 * Which paths of a workspace are synced, with git's exact semantics (the reference is
 * `git ls-files -o --exclude-standard`), layered as git layers its exclude sources:
 *
 *   1. `--exclude` flags and the config list  (like `git ls-files -x`: highest precedence)
 *   2. every `.gitignore` from the workspaces root down to the path's directory (deepest first)
 *   3. `<workspace>/.git/info/exclude`
 *   4. the default excludes                   (like `core.excludesFile`: lowest, `!` can undo them)
 *
 * The first layer with a matching pattern decides; within a layer the last matching line wins.
 * A path under an excluded directory is excluded whatever later layers say (git never descends),
 * so callers must not descend into a directory for which `excludes(dir, true)` is true.
 *
 * On top, a `.dockerignore` at the workspace root excludes with Docker's rules (patterns relative
 * to that root, `**`, `!` exceptions that can re-include below an excluded directory).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ignore, { type Ignore } from 'ignore';
import { createRequire } from 'node:module';

// The package's types declare an ES default export but it ships `module.exports = factory`.
const dockerignore = createRequire(import.meta.url)('@balena/dockerignore') as () => DockerIgnore;

interface DockerIgnore {
  add(patterns: string[]): DockerIgnore;
  ignores(path: string): boolean;
}

export const DEFAULT_EXCLUDES: readonly string[] = [
  'node_modules/', '.git/', '*.log', '.env*', 'dist/', 'build/', '__pycache__/', 'vendor/', '*.pyc', '.DS_Store', 'Thumbs.db',
];

export interface FilterOptions {
  /** Workspaces root; `.gitignore` files from here down apply. */
  root: string;
  /** Workspace directory name under root; paths given to the filter are relative to it. */
  workspace: string;
  /** Highest-precedence patterns, relative to the workspace. */
  excludes?: readonly string[];
  /** Lowest-precedence patterns; DEFAULT_EXCLUDES unless given. */
  defaults?: readonly string[];
}

export interface Filter {
  /** `rel` is a posix path relative to the workspace; true when it must not be synced. */
  excludes(rel: string, isDir: boolean): boolean;
  /** True when a change to `rel` changes the filter itself (then call `invalidate`). */
  isIgnoreFile(rel: string): boolean;
  /** Forgets what was read or decided for the directory `relDir` ('' = workspace) and below. */
  invalidate(relDir: string): void;
}

interface Layer {
  ig: Ignore;
  /** Prefix that turns a workspace-relative path into one relative to the file's directory. */
  strip: string;
  /** Prepended instead (the root .gitignore sees `<workspace>/<rel>`). */
  add: string;
}

type Verdict = 'ignored' | 'unignored' | undefined;

function parsePatterns(text: string): string[] {
  // git skips a UTF-8 BOM and strips a trailing CR from each line.
  return text.replace(/^\uFEFF/, '').split('\n').map((l) => l.replace(/\r$/, ''));
}

function readPatterns(file: string): string[] | undefined {
  try {
    return parsePatterns(readFileSync(file, 'utf8'));
  } catch {
    return undefined; // missing or unreadable ignore files count as empty, as in git
  }
}

function check(layer: Layer, rel: string, isDir: boolean): Verdict {
  const local = layer.add + rel.slice(layer.strip.length);
  const r = layer.ig.checkIgnore(isDir ? `${local}/` : local);
  return r.ignored ? 'ignored' : r.unignored ? 'unignored' : undefined;
}

export function createFilter(opts: FilterOptions): Filter {
  const wsDir = path.join(opts.root, opts.workspace);
  const make = (patterns: readonly string[]): Ignore => ignore({ ignorecase: false }).add([...patterns]);
  const cmdline = make(opts.excludes ?? []);
  const defaults = make(opts.defaults ?? DEFAULT_EXCLUDES);
  const rootPatterns = opts.workspace ? readPatterns(path.join(opts.root, '.gitignore')) : undefined;
  const rootLayer: Layer | undefined = rootPatterns ? { ig: make(rootPatterns), strip: '', add: `${opts.workspace}/` } : undefined;

  let infoExclude: Ignore | undefined | null = null;
  let docker: DockerIgnore | undefined | null = null;
  let dockerHasExceptions = false;
  /** .gitignore per workspace-relative directory ('' = workspace root); undefined = none there. */
  const dirLayers = new Map<string, Layer | undefined>();
  /** Directory verdicts (excluded or not), so each ancestor is decided once. */
  const dirVerdicts = new Map<string, boolean>();

  const dirLayer = (relDir: string): Layer | undefined => {
    if (dirLayers.has(relDir)) return dirLayers.get(relDir);
    const patterns = readPatterns(path.join(wsDir, relDir, '.gitignore'));
    const layer = patterns ? { ig: make(patterns), strip: relDir ? `${relDir}/` : '', add: '' } : undefined;
    dirLayers.set(relDir, layer);
    return layer;
  };

  const loadInfo = (): Ignore | undefined => {
    if (infoExclude === null) {
      const p = readPatterns(path.join(wsDir, '.git', 'info', 'exclude'));
      infoExclude = p ? make(p) : undefined;
    }
    return infoExclude;
  };

  const loadDocker = () => {
    if (docker === null) {
      const p = readPatterns(path.join(wsDir, '.dockerignore'));
      docker = p ? dockerignore().add(p) : undefined;
      dockerHasExceptions = !!p?.some((l) => l.trim().startsWith('!'));
    }
    return docker;
  };

  /** git's decision for `rel` alone, assuming its parent directory is not excluded. */
  const gitExcludes = (rel: string, isDir: boolean): boolean => {
    let v = check({ ig: cmdline, strip: '', add: '' }, rel, isDir);
    if (v) return v === 'ignored';
    const slash = rel.lastIndexOf('/');
    let dir = slash < 0 ? '' : rel.slice(0, slash);
    for (;;) {
      const layer = dirLayer(dir);
      if (layer) {
        v = check(layer, rel, isDir);
        if (v) return v === 'ignored';
      }
      if (dir === '') break;
      const s = dir.lastIndexOf('/');
      dir = s < 0 ? '' : dir.slice(0, s);
    }
    if (rootLayer) {
      v = check(rootLayer, rel, isDir);
      if (v) return v === 'ignored';
    }
    const info = loadInfo();
    if (info) {
      v = check({ ig: info, strip: '', add: '' }, rel, isDir);
      if (v) return v === 'ignored';
    }
    return check({ ig: defaults, strip: '', add: '' }, rel, isDir) === 'ignored';
  };

  const dirExcluded = (relDir: string): boolean => {
    if (relDir === '') return false;
    const cached = dirVerdicts.get(relDir);
    if (cached !== undefined) return cached;
    const slash = relDir.lastIndexOf('/');
    const parent = slash < 0 ? '' : relDir.slice(0, slash);
    const d = loadDocker();
    const verdict = dirExcluded(parent) || gitExcludes(relDir, true)
      // Docker may re-include below an excluded directory, so only prune when it cannot.
      || (!!d && !dockerHasExceptions && d.ignores(relDir));
    dirVerdicts.set(relDir, verdict);
    return verdict;
  };

  return {
    excludes(rel, isDir) {
      if (isDir) return dirExcluded(rel);
      const slash = rel.lastIndexOf('/');
      if (dirExcluded(slash < 0 ? '' : rel.slice(0, slash))) return true;
      if (gitExcludes(rel, false)) return true;
      const d = loadDocker();
      return !!d && d.ignores(rel);
    },
    isIgnoreFile(rel) {
      return rel === '.gitignore' || rel.endsWith('/.gitignore') || rel === '.dockerignore' || rel === '.git/info/exclude';
    },
    invalidate(relDir) {
      const under = (p: string) => relDir === '' || p === relDir || p.startsWith(`${relDir}/`);
      for (const k of [...dirLayers.keys()]) if (under(k)) dirLayers.delete(k);
      for (const k of [...dirVerdicts.keys()]) if (under(k)) dirVerdicts.delete(k);
      if (relDir === '') { docker = null; infoExclude = null; }
    },
  };
}
