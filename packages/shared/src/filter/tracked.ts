/**
 * The tracked paths of one repository that lie under a workspace, keyed by workspace-relative path:
 * what git ls-files --cached would list there. Lookups the filter needs are built on first use, since
 * most workspaces never ask (a path the ignore rules keep needs no index lookup).
 */
import { GITLINK_MODE, type IndexEntry, SPARSE_DIR_MODE } from './git-index.js';

export type TrackedKind = 'file' | 'dir' | 'gitlink';

export interface TrackedPaths {
  /** A tracked file or symlink. */
  isFile(rel: string): boolean;
  isGitlink(rel: string): boolean;
  /**
   * A sparse-directory entry of a sparse index (a directory outside the sparse checkout): git lists
   * neither its untracked files nor, from the work tree, its tracked ones (they live in tree objects).
   */
  isSparseDir(rel: string): boolean;
  /** The directory holds tracked paths below it, or is itself a gitlink. */
  hasBelow(relDir: string): boolean;
  /** The names the index has directly under `relDir`, with what each is. */
  children(relDir: string): ReadonlyMap<string, TrackedKind>;
  /** Every tracked workspace-relative path, sorted; sparse directories end in `/`. */
  all(): readonly string[];
}

interface Built {
  files: Set<string>;
  gitlinks: Set<string>;
  sparse: Set<string>;
  dirs: Map<string, Map<string, TrackedKind>>;
}

/**
 * `entries` as an index lists them (paths from the work tree top); `strip` is the workspace's path from
 * that top with a trailing slash ('' when the workspace is the top), `prefix` is prepended to what remains
 * (a submodule's path in the workspace, with a trailing slash).
 */
export function trackedPaths(entries: readonly IndexEntry[], strip = '', prefix = ''): TrackedPaths {
  const mine: IndexEntry[] = [];
  for (const e of entries) if (e.path.startsWith(strip) && e.path.length > strip.length) mine.push(e);
  let built: Built | undefined;
  const build = (): Built => {
    if (built) return built;
    const b: Built = { files: new Set(), gitlinks: new Set(), sparse: new Set(), dirs: new Map([['', new Map<string, TrackedKind>()]]) };
    for (const e of mine) {
      let rel = prefix + e.path.slice(strip.length);
      let kind: TrackedKind = 'file';
      if (e.mode === SPARSE_DIR_MODE && rel.endsWith('/')) {
        rel = rel.slice(0, -1);
        b.sparse.add(rel);
        kind = 'dir';
      } else if (e.mode === GITLINK_MODE) {
        b.gitlinks.add(rel);
        kind = 'gitlink';
      } else {
        b.files.add(rel);
      }
      // Register rel in its parent, then each ancestor in its own parent, until one is known.
      for (let child = rel; ;) {
        const slash = child.lastIndexOf('/');
        const parent = slash < 0 ? '' : child.slice(0, slash);
        let names = b.dirs.get(parent);
        const known = names !== undefined;
        if (!names) b.dirs.set(parent, (names = new Map<string, TrackedKind>()));
        const name = child.slice(slash + 1);
        if (names.get(name) !== 'dir') names.set(name, child === rel ? kind : 'dir');
        if (known || parent === '') break;
        child = parent;
      }
    }
    built = b;
    return b;
  };
  let sorted: string[] | undefined;
  return {
    isFile(rel) {
      return build().files.has(rel);
    },
    isGitlink(rel) {
      return build().gitlinks.has(rel);
    },
    isSparseDir(rel) {
      return build().sparse.has(rel);
    },
    hasBelow(relDir) {
      const b = build();
      return b.dirs.has(relDir) || b.gitlinks.has(relDir);
    },
    children(relDir) {
      return build().dirs.get(relDir) ?? new Map();
    },
    all() {
      if (sorted) return sorted;
      sorted = mine.map((e) => prefix + e.path.slice(strip.length));
      sorted = [...new Set(sorted)].sort();
      return sorted;
    },
  };
}

export const NO_TRACKED: TrackedPaths = trackedPaths([]);
