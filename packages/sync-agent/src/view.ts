/**
 * What the agent knows of a workspace's committed tree (format v2, docs/design.md): every file and
 * symlink with where its content is stored, every directory with its tree ref, and, per path,
 * whether the plain mirror object is known to hold exactly that entry (its ETag) or not.
 *
 * The view changes only when a commit succeeds (`applyCommit`), so a failed push leaves it as it was.
 */
import type { TreeRef } from '@workspace-sync/shared';

export interface ViewFile {
  type: 'file';
  size: number;
  mtimeMs: number;
  /** Permission bits only. */
  mode: number;
  sha256: string;
  /** Data pack holding the bytes at `offset`; undefined: the blob named by sha256 (nothing, when empty). */
  pack: string | undefined;
  offset: number;
  chunks: readonly string[] | undefined;
  /** ETag of the plain object when it is known to hold exactly this content and mode; else undefined. */
  etag: string | undefined;
}

export interface ViewLink {
  type: 'symlink';
  target: string;
  mtimeMs: number;
  etag: string | undefined;
}

export type ViewEntry = ViewFile | ViewLink;

export interface DirInfo {
  ref: TreeRef;
  /** Refs of its parts when the directory is split (the next commit reuses those it does not change). */
  parts?: readonly TreeRef[] | undefined;
  changedAtMs: number;
  files: number;
  bytes: number;
}

export interface HeadInfo {
  /** ETag of the head object (the next commit is conditional on it). */
  etag: string;
  stem: string;
  generation: number;
}

export interface View {
  /** Undefined before the first v2 commit. */
  head: HeadInfo | undefined;
  /** Generation of the v1 manifest a migration starts from (0 when none). */
  v1Generation: number;
  entries: Map<string, ViewEntry>;
  /** Directory path ('' is the workspace) → its tree. */
  dirs: Map<string, DirInfo>;
  /**
   * Directory path → names of what it holds (files, symlinks and directories), derived from
   * `entries`; undefined until first needed (`childrenOf`): a push that changes nothing never is.
   */
  names: Map<string, Set<string>> | undefined;
  /** Content sha256 → a path whose entry says where those bytes are stored. */
  bySha: Map<string, string>;
}

export function emptyView(): View {
  return { head: undefined, v1Generation: 0, entries: new Map(), dirs: new Map(), names: new Map([['', new Set()]]), bySha: new Map() };
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

export function nameOf(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Where the committed store already holds content with this sha256, if it does. */
export function contentAt(view: View, sha256: string): Pick<ViewFile, 'pack' | 'offset' | 'chunks'> | undefined {
  const p = view.bySha.get(sha256);
  const e = p === undefined ? undefined : view.entries.get(p);
  return e?.type === 'file' && e.sha256 === sha256 ? { pack: e.pack, offset: e.offset, chunks: e.chunks } : undefined;
}

/** Adds one entry to a view being built from a complete listing (a commit's trees, a v1 manifest). */
export function addEntry(view: View, path: string, entry: ViewEntry): void {
  view.entries.set(path, entry);
  indexEntry(view, path, entry);
}

/** Records an entry already in `view.entries` in the content index and, when built, the name sets. */
function indexEntry(view: View, path: string, entry: ViewEntry): void {
  if (entry.type === 'file' && entry.size > 0) view.bySha.set(entry.sha256, path);
  if (view.names) addName(view.names, path);
}

/** The content index of every entry; the name sets are dropped, to be built when first needed. */
export function reindex(view: View): void {
  for (const [p, e] of view.entries) if (e.type === 'file' && e.size > 0) view.bySha.set(e.sha256, p);
  view.names = undefined;
}

/** The view's name sets, built from its entries on first use. The workspace root is always there (as in `emptyView`). */
export function childrenOf(view: View): Map<string, Set<string>> {
  if (!view.names) {
    const names = new Map<string, Set<string>>([['', new Set()]]);
    for (const p of view.entries.keys()) addName(names, p);
    view.names = names;
  }
  return view.names;
}

function addName(names: Map<string, Set<string>>, path: string): void {
  let child = path;
  for (;;) {
    const dir = parentOf(child);
    let set = names.get(dir);
    const fresh = !set;
    if (!set) { set = new Set(); names.set(dir, set); }
    set.add(nameOf(child));
    if (!fresh || dir === '') break;
    child = dir;
  }
}

/** The changes a commit makes to the view: the tree builder's output plus the entries. */
export interface ViewChange {
  upserts: ReadonlyMap<string, ViewEntry>;
  removes: ReadonlySet<string>;
  dirs: ReadonlyMap<string, DirInfo | null>;
  children: ReadonlyMap<string, Set<string> | null>;
  head: HeadInfo;
}

export function applyCommit(view: View, change: ViewChange): void {
  for (const p of change.removes) {
    const old = view.entries.get(p);
    view.entries.delete(p);
    if (old?.type === 'file' && view.bySha.get(old.sha256) === p) view.bySha.delete(old.sha256);
  }
  for (const [p, e] of change.upserts) {
    view.entries.set(p, e);
    if (e.type === 'file' && e.size > 0) view.bySha.set(e.sha256, p);
  }
  for (const [d, info] of change.dirs) {
    if (info) view.dirs.set(d, info);
    else view.dirs.delete(d);
  }
  // Name sets not built yet are built later from the entries, which now include this change.
  if (view.names) {
    for (const [d, set] of change.children) {
      if (set) view.names.set(d, set);
      else view.names.delete(d);
    }
  }
  view.head = change.head;
  view.v1Generation = 0;
}
