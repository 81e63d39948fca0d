/**
 * The mount's metadata: node types shared by every source, format-v1 snapshots (built whole from
 * a manifest or, for a prefix without one, from a listing), and the registry of workspaces under
 * the mount root, each with the view it serves (views.ts: a v1 snapshot or a lazy v2 commit).
 *
 * Concurrency rules: a snapshot is built on the side (yielding to the event loop now and then,
 * so FUSE calls keep being answered) and never mutated once built. `Tree.install` replaces a
 * workspace's snapshot with one assignment, so every FUSE call sees either the whole
 * old push or the whole new one; a reader holding a snapshot (or a node) keeps a consistent view.
 *
 * Stability: a path keeps its inode number for as long as it exists in consecutive snapshots,
 * sizes and mtimes come from the source, so tools that key on (ino, size, mtime) do not re-read
 * everything after a refresh.
 */
import {
  isSafeRelativePath, isValidWorkspaceName, packKey, stripEtag, type ListEntry, type Manifest, type TreeRef,
} from '@workspace-sync/shared';
import { inodeOf } from './inode.js';
import { listedNode, newListed, type View } from './views.js';

/** v1: a plain object, every read pinned to the ETag the manifest (or listing) names. */
export interface V1Content {
  format: 1;
  key: string;
  etag: string;
  /** From the manifest; lets downloads and cached copies be verified end to end. */
  sha256: string | undefined;
  /** Where a copy of the bytes sits in a pack object (manifest.ts), for bulk prefetching. */
  pack?: PackRef | undefined;
}

/** v2: immutable, content-addressed (docs/design.md); every byte is checked against a sha256. */
export interface V2Content {
  format: 2;
  sha256: string;
  /** The data pack holding the bytes at `offset`, or the blob named by sha256. */
  key: string;
  inPack: boolean;
  offset: number;
  /** sha256 of every CHUNK_SIZE piece (blobs larger than one chunk). */
  chunks: readonly string[] | undefined;
  /** The plain mirror object: a fallback when its body has the right sha256. */
  plainKey: string;
}

export interface FileNode {
  kind: 'file';
  ino: number;
  size: number;
  /** What the mount reports; equals srcMtimeMs unless nudged (see `carryMtime`). */
  mtimeMs: number;
  srcMtimeMs: number;
  /** Permission bits only (no setuid/setgid/sticky). */
  perm: number;
  content: V1Content | V2Content;
}

export interface PackRef {
  key: string;
  etag: string;
  /** Size of the whole pack object. */
  size: number;
  offset: number;
}

export interface SymlinkNode {
  kind: 'symlink';
  ino: number;
  mtimeMs: number;
  srcMtimeMs: number;
  target: string;
}

export interface DirNode {
  kind: 'dir';
  ino: number;
  mtimeMs: number;
  /** v1: entry names, sorted (v2 directories are loaded when listed). */
  names?: string[];
  /** Subdirectories, when known (nlink = 2 + subdirs; 1, "unknown", otherwise). */
  subdirs: number | undefined;
  /** v2: the directory's tree object. */
  ref?: TreeRef;
}

export type Node = FileNode | SymlinkNode | DirNode;

/** A v1 view: every node in memory, built in one go. */
export interface Snapshot extends View {
  workspace: string;
  source: 'manifest' | 'listing';
  /** Relative path → node; '' is the workspace directory itself. */
  nodes: ReadonlyMap<string, Node>;
}

export type Warn = (message: string, detail: Record<string, unknown>) => void;

type Item =
  | { rel: string; kind: 'file'; size: number; mtimeMs: number; perm: number; key: string; etag: string; sha256: string | undefined; pack?: PackRef | undefined }
  | { rel: string; kind: 'symlink'; target: string; mtimeMs: number }
  | { rel: string; kind: 'dir'; mtimeMs: number };

export interface BuildContext {
  /** Inode of the workspace directory. */
  rootIno: number;
  /** The view this one replaces (its nodes carry the mtimes reported so far). */
  previous: View | undefined;
  warn: Warn;
}

export function snapshotFromManifest(manifest: Manifest, manifestEtag: string, prefix: string, ctx: BuildContext, now = Date.now()): Promise<Snapshot> {
  const ws = manifest.workspace;
  const packs = (manifest.packs ?? []).map((p) => ({ key: packKey(prefix, ws, p.id), etag: stripEtag(p.etag), size: p.size }));
  const items: Item[] = manifest.entries.map((e) => e.type === 'file'
    ? {
      rel: e.path, kind: 'file', size: e.size, mtimeMs: e.mtimeMs, perm: e.mode & 0o777,
      key: `${prefix}${ws}/${e.path}`, etag: stripEtag(e.etag), sha256: e.sha256,
      pack: e.pack && packs[e.pack[0]] ? { ...packs[e.pack[0]]!, offset: e.pack[1] } : undefined,
    }
    : { rel: e.path, kind: 'symlink', target: e.target, mtimeMs: e.mtimeMs });
  const createdAt = Date.parse(manifest.createdAt);
  const meta = { generation: manifest.generation, createdAt: manifest.createdAt };
  return buildSnapshot(ws, 'manifest', manifestEtag, meta, items, Number.isFinite(createdAt) ? createdAt : 0, ctx, now);
}

/**
 * A prefix filled by another tool: every key under `<prefix><ws>/` is a file (a key ending in "/"
 * is a directory marker). Keys that are not safe relative paths are skipped with a warning.
 */
export function snapshotFromListing(workspace: string, entries: readonly ListEntry[], prefix: string, ctx: BuildContext, now = Date.now()): Promise<Snapshot> {
  const head = `${prefix}${workspace}/`;
  const items: Item[] = [];
  for (const o of entries) {
    if (!o.key.startsWith(head) || o.key === head) continue;
    const isMarker = o.key.endsWith('/');
    const rel = o.key.slice(head.length, isMarker ? -1 : undefined);
    if (!isSafeRelativePath(rel)) {
      ctx.warn('skipping a key that is not a safe path', { key: o.key });
      continue;
    }
    const mtimeMs = o.lastModified?.getTime() ?? 0;
    items.push(isMarker
      ? { rel, kind: 'dir', mtimeMs }
      : { rel, kind: 'file', size: o.size, mtimeMs, perm: 0o644, key: o.key, etag: stripEtag(o.etag), sha256: undefined });
  }
  return buildSnapshot(workspace, 'listing', '', { generation: undefined, createdAt: undefined }, items, 0, ctx, now);
}

/** Entries processed between yields to the event loop, which must keep answering FUSE calls. */
const YIELD_EVERY = 4096;

async function buildSnapshot(
  workspace: string, source: Snapshot['source'], version: string, meta: Pick<Snapshot, 'generation' | 'createdAt'>,
  items: Item[], emptyMtime: number, ctx: BuildContext, now: number,
): Promise<Snapshot> {
  const prev = ctx.previous && 'nodes' in ctx.previous ? (ctx.previous as Snapshot).nodes : undefined;
  const nodes = new Map<string, Node>();
  const dirs = new Map<string, { names: string[]; subdirs: number; mtimeMs: number; explicit: boolean }>();
  dirs.set('', { names: [], subdirs: 0, mtimeMs: emptyMtime, explicit: true });
  const inoFor = (rel: string, kind: Node['kind']): number => inodeOf(workspace, rel, kind);
  /** Creates the parents of `rel`; false when one of them is already a file or symlink. */
  const ensureParents = (rel: string): boolean => {
    const segs = rel.split('/');
    let dir = '';
    for (let i = 0; i < segs.length - 1; i++) {
      const child = dir === '' ? segs[i]! : `${dir}/${segs[i]}`;
      if (nodes.has(child)) return false;
      if (!dirs.has(child)) {
        dirs.set(child, { names: [], subdirs: 0, mtimeMs: 0, explicit: false });
        const parent = dirs.get(dir)!;
        parent.names.push(segs[i]!);
        parent.subdirs++;
      }
      dir = child;
    }
    return true;
  };
  let files = 0;
  let bytes = 0;
  let done = 0;
  for (const item of items) {
    if (++done % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
    const conflict = nodes.has(item.rel) || (dirs.has(item.rel) && (item.kind !== 'dir' || dirs.get(item.rel)!.explicit));
    if (conflict || !ensureParents(item.rel)) {
      ctx.warn('skipping an entry that collides with another path', { workspace, path: item.rel });
      continue;
    }
    const slash = item.rel.lastIndexOf('/');
    const parentRel = slash < 0 ? '' : item.rel.slice(0, slash);
    const name = item.rel.slice(slash + 1);
    if (item.kind === 'dir') {
      const existing = dirs.get(item.rel);
      if (existing) {
        existing.explicit = true;
        existing.mtimeMs = Math.max(existing.mtimeMs, item.mtimeMs);
      } else {
        dirs.set(item.rel, { names: [], subdirs: 0, mtimeMs: item.mtimeMs, explicit: true });
        dirs.get(parentRel)!.names.push(name);
        dirs.get(parentRel)!.subdirs++;
      }
      continue;
    }
    dirs.get(parentRel)!.names.push(name);
    const old = prev?.get(item.rel);
    if (item.kind === 'file') {
      files++;
      bytes += item.size;
      nodes.set(item.rel, {
        kind: 'file', ino: inoFor(item.rel, 'file'), size: item.size,
        mtimeMs: carryMtime(old, item.size, item.mtimeMs, item.etag), srcMtimeMs: item.mtimeMs,
        perm: item.perm, content: { format: 1, key: item.key, etag: item.etag, sha256: item.sha256, pack: item.pack },
      });
    } else {
      nodes.set(item.rel, {
        kind: 'symlink', ino: inoFor(item.rel, 'symlink'), mtimeMs: item.mtimeMs, srcMtimeMs: item.mtimeMs, target: item.target,
      });
    }
    // A directory's mtime is the newest thing under it: it moves when its content does.
    for (let p = parentRel; ; p = p.slice(0, Math.max(0, p.lastIndexOf('/')))) {
      const d = dirs.get(p)!;
      if (d.mtimeMs < item.mtimeMs) d.mtimeMs = item.mtimeMs;
      if (p === '') break;
    }
  }
  for (const [rel, d] of dirs) {
    if (++done % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
    d.names.sort();
    nodes.set(rel, {
      kind: 'dir', ino: rel === '' ? ctx.rootIno : inoFor(rel, 'dir'), mtimeMs: d.mtimeMs, names: d.names, subdirs: d.subdirs,
    });
  }
  const root = nodes.get('') as DirNode;
  return {
    workspace, source, version, ...meta, builtAt: now, nodes, files, bytes, root,
    async lookup(rel) { return nodes.get(rel); },
    peek(rel) { return nodes.get(rel) ?? null; },
    async list(rel, dir, each) {
      const e = newListed();
      for (const name of dir.names ?? []) each(listedNode(e, name, nodes.get(rel === '' ? name : `${rel}/${name}`)!));
    },
  };
}

/**
 * The kernel keeps a file's cached pages while its size and mtime are unchanged (auto_cache).
 * When the content changed but both stayed the same, report the mtime 1 ms later so the stale
 * pages are dropped; while the content stays the same, keep whatever was reported before.
 */
function carryMtime(old: Node | undefined, size: number, srcMtimeMs: number, etag: string): number {
  if (!old || old.kind !== 'file' || old.content.format !== 1 || old.size !== size || old.srcMtimeMs !== srcMtimeMs) return srcMtimeMs;
  return old.content.etag === etag ? old.mtimeMs : old.mtimeMs + 1;
}

export type WorkspaceKind = 'commit' | 'manifest' | 'plain';

export interface WorkspaceState {
  readonly name: string;
  readonly ino: number;
  /**
   * Where its metadata comes from: a v2 head (`commit`), a v1 manifest (`manifest`), or a listing of
   * its plain objects (`plain`).
   */
  kind: WorkspaceKind;
  /** ETag of the head or manifest the view came from (for conditional GETs and change detection). */
  etag: string | undefined;
  view: View | undefined;
  /** A file in it was opened: its small files were handed to the prefetcher, and new pushes are warmed too. */
  touched: boolean;
}

export type InstallListener = (state: WorkspaceState, previous: View | undefined, next: View) => void;
/** Workspaces that appeared (with their kind) and vanished in one reconcile. */
export type MembershipListener = (added: ReadonlyArray<{ name: string; kind: WorkspaceKind }>, removed: readonly string[]) => void;

/** The mount root: workspace name → its state. Names are validated before they get here. */
export class Tree {
  private readonly workspaces = new Map<string, WorkspaceState>();
  private sortedNames: string[] = [];
  private readonly listeners: InstallListener[] = [];
  private readonly membershipListeners: MembershipListener[] = [];

  names(): readonly string[] {
    return this.sortedNames;
  }

  get(name: string): WorkspaceState | undefined {
    return this.workspaces.get(name);
  }

  all(): IterableIterator<WorkspaceState> {
    return this.workspaces.values();
  }

  /**
   * Makes the set of workspaces exactly `present` (name → kind). New names get a state, names that
   * vanished are dropped, the rest keep their view (a kind change is picked up by the next refresh).
   */
  reconcile(present: ReadonlyMap<string, WorkspaceKind>): void {
    const removed: string[] = [];
    const added: Array<{ name: string; kind: WorkspaceKind }> = [];
    for (const name of [...this.workspaces.keys()]) {
      if (present.has(name)) continue;
      this.workspaces.delete(name);
      removed.push(name);
    }
    for (const [name, kind] of present) {
      if (!isValidWorkspaceName(name)) throw new Error(`invalid workspace name reached the tree: ${JSON.stringify(name)}`);
      const state = this.workspaces.get(name);
      if (state) {
        if (state.kind !== kind) state.etag = undefined;
        state.kind = kind;
      } else {
        this.workspaces.set(name, { name, ino: inodeOf(name, '', 'dir'), kind, etag: undefined, view: undefined, touched: false });
        added.push({ name, kind });
      }
    }
    if (added.length === 0 && removed.length === 0) return;
    this.sortedNames = [...this.workspaces.keys()].sort();
    for (const fn of this.membershipListeners) fn(added, removed);
  }

  /** The atomic switch: one assignment replaces the whole view of a workspace. */
  install(name: string, view: View, etag: string | undefined): void {
    const state = this.workspaces.get(name);
    if (!state) return;
    const previous = state.view;
    state.view = view;
    state.etag = etag;
    for (const fn of this.listeners) fn(state, previous, view);
  }

  onInstall(fn: InstallListener): void {
    this.listeners.push(fn);
  }

  onMembership(fn: MembershipListener): void {
    this.membershipListeners.push(fn);
  }

  buildContext(state: WorkspaceState, warn: Warn): BuildContext {
    return { rootIno: state.ino, previous: state.view, warn };
  }
}
