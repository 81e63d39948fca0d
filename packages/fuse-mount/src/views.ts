/**
 * What the core serves for one workspace (or one generation of it): a `View`. Format v1 views are
 * snapshots built whole in memory (tree.ts); a format v2 view is a `CommitView`, which holds only
 * its commit and loads each directory's tree object the first time it is looked up or listed
 * (tree-store.ts keeps the decoded trees, shared by sha256 between generations and workspaces).
 *
 * A view never changes once made; a new push is a new view, installed in one step (tree.ts).
 */
import { blobKey, objectKey, packKey, type Commit, type TreeEntry, type TreeRef } from '@workspace-sync/shared';
import { inodeOf, inodeOfChild } from './inode.js';
import type { DecodedTree, TreeStore } from './tree-store.js';
import type { DirNode, FileNode, Node } from './tree.js';

export interface View {
  readonly source: 'commit' | 'manifest' | 'listing';
  /** Commit stem, manifest ETag, or '' for a listing. */
  readonly version: string;
  /** The commit's or manifest's generation; undefined for a listing. */
  readonly generation: number | undefined;
  /** When the commit or manifest was made (ISO 8601, the writer's clock); undefined for a listing. */
  readonly createdAt: string | undefined;
  /** When it was made (ms since epoch); listings are trusted for --dir-cache-time from here. */
  readonly builtAt: number;
  readonly files: number;
  readonly bytes: number;
  /** The workspace directory itself. */
  readonly root: DirNode;
  /** The node at `rel` ('' is the root), loading the directories on the way; undefined: no such path. */
  lookup(rel: string): Promise<Node | undefined>;
  /** `lookup` from memory alone: the node, null when there is no such path, undefined when a directory on the way is not loaded. */
  peek(rel: string): Node | null | undefined;
  /**
   * Calls `each` for every entry of directory `dir` (at `rel`), in name order, with what a listing
   * says of it: no node per entry (a `find` lists every name of the workspace).
   */
  list(rel: string, dir: DirNode, each: (e: Readonly<Listed>) => void): Promise<void>;
}

/** One entry of a listing. `list` passes the same object for every entry: read it, do not keep it. */
export interface Listed {
  name: string;
  kind: Node['kind'];
  ino: number;
  /** A file's permission bits. */
  perm: number;
  /** A file's size, a symlink's target length in bytes. */
  size: number;
  mtimeMs: number;
  /** A directory's subdirectories, when known. */
  subdirs: number | undefined;
}

export function newListed(): Listed {
  return { name: '', kind: 'file', ino: 0, perm: 0, size: 0, mtimeMs: 0, subdirs: undefined };
}

/** Fills `e` from a node (views built whole, which have one per entry anyway). */
export function listedNode(e: Listed, name: string, node: Node): Listed {
  e.name = name;
  e.kind = node.kind;
  e.ino = node.ino;
  e.mtimeMs = node.mtimeMs;
  e.perm = node.kind === 'file' ? node.perm : 0;
  e.size = node.kind === 'file' ? node.size : node.kind === 'symlink' ? Buffer.byteLength(node.target) : 0;
  e.subdirs = node.kind === 'dir' ? node.subdirs : undefined;
  return e;
}

export interface CommitViewOptions {
  prefix: string;
  workspace: string;
  commit: Commit;
  /** Inode namespace: the workspace for its current view, its own for each generation under .snapshots. */
  namespace: string;
  trees: TreeStore;
  now?: number;
}

export class CommitView implements View {
  readonly source = 'commit';
  readonly version: string;
  readonly generation: number;
  readonly createdAt: string;
  readonly builtAt: number;
  readonly files: number;
  readonly bytes: number;
  readonly root: DirNode;
  readonly commit: Commit;
  readonly workspace: string;

  constructor(private readonly opts: CommitViewOptions) {
    const { commit } = opts;
    this.commit = commit;
    this.workspace = opts.workspace;
    this.version = `${String(commit.generation).padStart(12, '0')}-${commit.id}`;
    this.generation = commit.generation;
    this.createdAt = commit.createdAt;
    this.builtAt = opts.now ?? Date.now();
    this.files = commit.stats.files;
    this.bytes = commit.stats.bytes;
    const created = Date.parse(commit.createdAt);
    this.root = { kind: 'dir', ino: inodeOf(opts.namespace, '', 'dir'), mtimeMs: created, subdirs: undefined, ref: commit.root };
  }

  async lookup(rel: string): Promise<Node | undefined> {
    // Trees loaded here are used even if the cache let them go again at once (a tiny budget).
    const loaded = new Map<string, DecodedTree>();
    for (;;) {
      const found = this.walk(rel, (ref) => loaded.get(ref[3]) ?? this.opts.trees.peek(ref));
      if (found === null || !('missing' in found)) return found ?? undefined;
      loaded.set(found.missing[3], await this.opts.trees.load(this.workspace, found.missing));
    }
  }

  peek(rel: string): Node | null | undefined {
    const found = this.walk(rel, (ref) => this.opts.trees.peek(ref));
    return found === null || !('missing' in found) ? found : undefined;
  }

  /** Follows `rel` through the trees `treeOf` has: the node, null (no such path), or the ref of the first tree it lacks. */
  private walk(rel: string, treeOf: (ref: TreeRef) => DecodedTree | undefined): Node | null | { missing: TreeRef } {
    if (rel === '') return this.root;
    let dir: DirNode = this.root;
    let at = '';
    const segs = rel.split('/');
    for (let i = 0; ; i++) {
      const tree = treeOf(dir.ref!);
      if (!tree) return { missing: dir.ref! };
      const entry = tree.find(segs[i]!);
      if (!entry) return null;
      at = at === '' ? entry.name : `${at}/${entry.name}`;
      const node = this.nodeOf(at, entry);
      if (i === segs.length - 1) return node;
      if (node.kind !== 'dir') return null;
      dir = node;
    }
  }

  async list(rel: string, dir: DirNode, each: (e: Readonly<Listed>) => void): Promise<void> {
    const tree = await this.opts.trees.load(this.workspace, dir.ref!);
    const e = newListed();
    for (let i = 0; i < tree.length; i++) {
      const kind = tree.kindAt(i);
      e.name = tree.nameAt(i);
      e.kind = kind;
      e.ino = inodeOfChild(this.opts.namespace, rel, e.name, kind);
      e.perm = tree.modeAt(i) & 0o777;
      e.size = tree.sizeAt(i);
      e.mtimeMs = tree.mtimeAt(i);
      // A walk (find, ls -R, cp -r) lists the subdirectories next: load them meanwhile, in parallel.
      if (kind === 'dir') this.opts.trees.preload(this.workspace, (tree.at(i) as Extract<TreeEntry, { kind: 'dir' }>).ref);
      each(e);
    }
  }

  /** The node of entry `e` at `path` (inode number, content keys). */
  nodeOf(path: string, e: TreeEntry): Node {
    const { namespace, prefix } = this.opts;
    switch (e.kind) {
      case 'dir':
        return { kind: 'dir', ino: inodeOf(namespace, path, 'dir'), mtimeMs: e.changedAtMs, subdirs: undefined, ref: e.ref };
      case 'symlink':
        return { kind: 'symlink', ino: inodeOf(namespace, path, 'symlink'), mtimeMs: e.mtimeMs, srcMtimeMs: e.mtimeMs, target: e.target };
      case 'file': {
        const ws = this.workspace;
        const node: FileNode = {
          kind: 'file', ino: inodeOf(namespace, path, 'file'), size: e.size, mtimeMs: e.mtimeMs, srcMtimeMs: e.mtimeMs, perm: e.mode & 0o777,
          content: {
            format: 2, sha256: e.sha256, inPack: e.pack !== undefined, offset: e.offset, chunks: e.chunks,
            key: e.pack !== undefined ? packKey(prefix, ws, e.pack) : blobKey(prefix, ws, e.sha256),
            plainKey: objectKey(prefix, ws, path),
          },
        };
        return node;
      }
    }
  }
}
