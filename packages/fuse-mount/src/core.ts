/**
 * The read-only file system without FUSE: paths in, metadata and bytes out. fuse-ops.ts adapts it
 * to fuse-native callbacks; unit tests call it directly.
 *
 * Conventions: expected outcomes (no such entry, not a symlink, read-only) come back as a negative
 * errno from errno.ts; remote failures are thrown as SyncError and mapped by `errnoFor`.
 *
 * Layout: `/<workspace>/…` is each workspace's current view (views.ts); `/.snapshots/<ws>/<gen>/…`
 * its older generations (history.ts), hidden from the listing of `/`.
 *
 * Metadata is answered from the views (v2 directories are loaded on first use). The first file
 * opened in a workspace starts a parallel prefetch of its small files (metadata-only walks such as
 * `find` or `git status` do not: they would pay for thousands of GETs they never use); a new view
 * of a workspace in use prefetches what changed.
 *
 * Attributes and content agree (v2): the kernel caches what getattr answers (size, mtime) and
 * clamps reads to that size, and fuse-native cannot invalidate it. So the core remembers, per
 * path, the version whose attributes it last reported; a handle's first read serves that version
 * (immutable, so still readable) rather than a newer one the kernel has not been told about, and
 * the handle keeps it from then on. When a push changes a file's content but neither its size nor
 * its mtime, the reported mtime moves by 1 ms so that auto_cache drops the kernel's cached pages.
 *
 * Open files (v1): a handle is pinned to the file's ETag. When that version is gone from S3 before
 * the handle served a byte, the manifest is re-read (waiting briefly for a push in flight to
 * publish it) and the handle moves to the new version; after the first byte it fails with ESTALE.
 */
import { LRUCache } from 'lru-cache';
import { SyncError, diffTrees, isSyncError, type Logger } from '@workspace-sync/shared';
import { EACCES, EBADF, EINVAL, EISDIR, ENOENT, ENOTDIR, EROFS } from './errno.js';
import type { Fetcher } from './fetcher.js';
import { History, SNAPSHOTS_DIR } from './history.js';
import { ROOT_INO, inodeOf } from './inode.js';
import type { Poller } from './poller.js';
import type { FileNode, Node, Tree, WorkspaceState } from './tree.js';
import type { TreeStore } from './tree-store.js';
import { CommitView, listedNode, newListed, type Listed, type View } from './views.js';
import { warmCommit } from './warm-up.js';

export interface Stat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  ino: number;
  nlink: number;
  mtime: number;
  atime: number;
  ctime: number;
  blocks: number;
  blksize: number;
}

export interface DirListing {
  names: string[];
  /** One per name, for the d_type and d_ino `find` and `ls` use without a lookup each. */
  stats: Stat[];
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

export interface CoreOptions {
  tree: Tree;
  poller: Poller;
  fetcher: Fetcher;
  trees: TreeStore;
  history: History;
  uid: number;
  gid: number;
  logger: Logger;
  /** Waits between manifest re-reads after a version mismatch (ms). */
  reresolveDelays?: readonly number[];
  now?: () => number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
const W_OK = 2;
const X_OK = 1;
const ST_RDONLY = 1;
const BLKSIZE = 128 * 1024;
const SEQUENTIAL_SLACK = 1024 * 1024;
const DEFAULT_RERESOLVE_DELAYS = [0, 250, 500, 1000, 2000];
/** Paths whose last reported attributes are remembered (bounded; see the header). */
const REPORTS_MAX = 100_000;
/** A report older than this is not trusted to be what the kernel holds (the kernel has long asked again). */
const REPORT_TRUST_MS = 10 * 60_000;

interface Found {
  /** The workspace whose current view this is; undefined under .snapshots. */
  state: WorkspaceState | undefined;
  view: View;
  rel: string;
  node: Node;
}

interface Handle {
  path: string;
  state: WorkspaceState | undefined;
  rel: string;
  node: FileNode;
  served: boolean;
  nextOffset: number;
  aheadFrom: number;
}

interface Report {
  node: FileNode;
  /** The mtime reported for it (nudged when only the content changed). */
  mtimeMs: number;
  at: number;
  /** Arrival order of the getattr that made it: the kernel keeps the answer to its latest request. */
  seq: number;
}

export class MountCore {
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private readonly reports = new LRUCache<string, Report>({ max: REPORTS_MAX });
  /** Filled and read at once by `statOf` (synchronous), never kept. */
  private readonly scratch = newListed();
  private readonly startedAt: number;
  /** The mount root's mtime: the mount's clock at the last change it made visible (see `rootChanged`). */
  private rootMtimeMs: number;
  private readonly now: () => number;
  private getattrSeq = 0;

  constructor(private readonly opts: CoreOptions) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.rootMtimeMs = this.startedAt;
    opts.tree.onInstall((state, previous, next) => {
      if (!previous || previous.version !== next.version || previous.root.mtimeMs !== next.root.mtimeMs
        || previous.files !== next.files || previous.bytes !== next.bytes) this.rootChanged();
      if (!state.touched || !previous) return;
      void this.warmChanges(state, previous, next);
    });
    opts.tree.onMembership(() => this.rootChanged());
  }

  /**
   * One `stat` of the mount root tells a watcher that something changed somewhere: its mtime moves
   * (the mount's clock, strictly increasing) whenever a workspace shows a new version, appears or
   * goes away; each workspace directory's own mtime then says which.
   */
  private rootChanged(): void {
    this.rootMtimeMs = Math.max(this.rootMtimeMs + 1, this.now());
  }

  /**
   * Attributes, or an errno: at once (no promise) when everything on the way is in memory, as it
   * nearly always is during a walk, where each promise would cost more than the answer.
   */
  getattr(path: string): Stat | number | Promise<Stat | number> {
    // Taken on arrival, with the view (see `resolve`): answers computed out of order still record
    // the version of the request the kernel sent last.
    const seq = ++this.getattrSeq;
    if (path === '/') return this.rootStat();
    const { name, rel } = splitPath(path);
    if (name === SNAPSHOTS_DIR) return this.snapshotsGetattr(path, rel);
    const state = this.opts.tree.get(name);
    if (!state) return ENOENT;
    // `ls -l` of the mount root must not list every plain prefix: answer from what is known.
    if (rel === '' && state.view) return this.statOf(path, state.view.root);
    if (rel === '' && state.kind === 'plain') return this.placeholderStat(state.ino);
    const now = this.resolveNow(path);
    if (now !== undefined) return typeof now === 'number' ? now : this.statOf(path, now.node, seq);
    return this.resolve(path).then((found) => (typeof found === 'number' ? found : this.statOf(path, found.node, seq)));
  }

  async readdir(path: string): Promise<DirListing | number> {
    if (path === '/') {
      const root = this.rootStat();
      const names = ['.', '..'];
      const stats = [root, root];
      for (const name of this.opts.tree.names()) {
        const state = this.opts.tree.get(name)!;
        names.push(name);
        stats.push(state.view ? this.statOf(`/${name}`, state.view.root) : this.placeholderStat(state.ino));
      }
      return { names, stats };
    }
    const { name, rel } = splitPath(path);
    if (name === SNAPSHOTS_DIR && !rel.includes('/')) return this.snapshotsReaddir(rel);
    const found = await this.resolve(path);
    if (typeof found === 'number') return found;
    if (found.node.kind !== 'dir') return ENOTDIR;
    const parentPath = path.slice(0, path.lastIndexOf('/')) || '/';
    const parent = await this.getattr(parentPath);
    const names = ['.', '..'];
    const stats = [this.statOf(path, found.node), typeof parent === 'number' ? this.rootStat() : parent];
    await found.view.list(found.rel, found.node, (e) => {
      names.push(e.name);
      stats.push(this.listedStat(e));
    });
    return { names, stats };
  }

  async readlink(path: string): Promise<string | number> {
    const found = await this.resolve(path);
    if (typeof found === 'number') return found;
    return found.node.kind === 'symlink' ? found.node.target : EINVAL;
  }

  /** A handle on the file's current version (see the header for which version its reads serve), or an errno. */
  open(path: string, flags: number): number | Promise<number> {
    if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0) return EROFS;
    const now = this.resolveNow(path);
    if (now !== undefined) return this.openFound(path, now);
    return this.resolve(path).then((found) => this.openFound(path, found));
  }

  private openFound(path: string, found: Found | number): number {
    if (typeof found === 'number') return found;
    if (found.node.kind === 'dir') return EISDIR;
    if (found.node.kind !== 'file') return EINVAL;
    if (found.state) this.touch(found.state, found.view);
    const fh = this.allocateHandle();
    this.handles.set(fh, { path, state: found.state, rel: found.rel, node: found.node, served: false, nextOffset: 0, aheadFrom: -1 });
    return fh;
  }

  release(fh: number): void {
    this.handles.delete(fh);
  }

  /**
   * Reads into `target`; returns the byte count (0 at end of file) or an errno. Once `live()` says
   * no (the adapter answered already), `target` is not written any more.
   */
  async read(_path: string, fh: number, target: Buffer, length: number, offset: number, live?: () => boolean): Promise<number> {
    const handle = this.handles.get(fh);
    // Every open goes through `open`, so an unknown handle is a caller's bug.
    if (!handle) return EBADF;
    if (!handle.served) this.settleVersion(handle);
    if (offset >= handle.node.size) return 0;
    // Ahead of this read, not after it: the first chunks of a cold sequential read download in parallel.
    this.readAhead(handle, offset, Math.min(length, handle.node.size - offset));
    let n: number;
    try {
      n = await this.opts.fetcher.readInto(handle.node, target, offset, length, live);
    } catch (err) {
      if (!isSyncError(err, 'PRECONDITION_FAILED') || handle.served || !handle.state) throw err;
      handle.node = await this.reresolve(handle.state, handle.rel, handle.node, err);
      if (offset >= handle.node.size) return 0;
      n = await this.opts.fetcher.readInto(handle.node, target, offset, length, live);
    }
    handle.served = true;
    return n;
  }

  /**
   * The kernel checks no permissions itself (no default_permissions: containers of any uid read
   * the mount), so access() answers: never writable, executable only with an exec bit.
   */
  async access(path: string, mode: number): Promise<number> {
    if (mode & W_OK) {
      const st = await this.getattr(path);
      return typeof st === 'number' ? st : EROFS;
    }
    if (path === '/' || splitPath(path).name === SNAPSHOTS_DIR) {
      const st = await this.getattr(path);
      if (typeof st === 'number') return st;
      return mode & X_OK && (st.mode & 0o111) === 0 ? EACCES : 0;
    }
    const found = await this.resolve(path);
    if (typeof found === 'number') return found;
    if (mode & X_OK && found.node.kind === 'file' && (found.node.perm & 0o111) === 0) return EACCES;
    return 0;
  }

  statfs(): StatFs {
    let bytes = 0;
    let files = 1;
    for (const state of this.opts.tree.all()) {
      files += 1 + (state.view?.files ?? 0);
      bytes += state.view?.bytes ?? 0;
    }
    const blocks = Math.min(0xffff_ffff, Math.ceil(bytes / 4096));
    return {
      bsize: 4096, frsize: 4096, blocks, bfree: 0, bavail: 0, files: Math.min(0xffff_ffff, files), ffree: 0, favail: 0,
      fsid: 0, flag: ST_RDONLY, namemax: 255,
    };
  }

  /** Open handles (for tests and metrics). */
  get openHandles(): number {
    return this.handles.size;
  }

  /** `resolve` from memory alone; undefined when that would mean waiting (a directory to load, a view to build). */
  private resolveNow(path: string): Found | number | undefined {
    const { name, rel } = splitPath(path);
    if (name === SNAPSHOTS_DIR) return undefined;
    const state = this.opts.tree.get(name);
    if (!state) return ENOENT;
    if (state.kind !== 'commit' || !state.view) return undefined;
    const node = state.view.peek(rel);
    if (node === null) return ENOENT;
    return node ? { state, view: state.view, rel, node } : undefined;
  }

  private async resolve(path: string): Promise<Found | number> {
    const { name, rel } = splitPath(path);
    if (name === SNAPSHOTS_DIR) return this.resolveSnapshot(rel);
    const state = this.opts.tree.get(name);
    if (!state) return ENOENT;
    // A v2 workspace's view is taken now, before anything waits: a switch meanwhile does not change
    // which version this call answers with.
    const view = state.kind === 'commit' && state.view ? state.view : await this.opts.poller.ensureView(state);
    if (!view) {
      throw new SyncError('VIEW_UNAVAILABLE', `workspace ${name} is not available yet: its metadata could not be loaded`, {
        hint: 'the log says why (S3 unreachable, or an invalid head or manifest); it appears once it can be read',
      });
    }
    const node = await view.lookup(rel);
    return node ? { state, view, rel, node } : ENOENT;
  }

  /** `<ws>/<generation>/<rel>` under .snapshots (the first two levels are answered elsewhere). */
  private async resolveSnapshot(rel: string): Promise<Found | number> {
    const [ws, gen, ...rest] = rel.split('/');
    if (!ws || !gen || this.opts.tree.get(ws)?.kind !== 'commit') return ENOENT;
    const view = await this.opts.history.view(ws, gen, this.opts.tree.get(ws)?.view?.builtAt);
    if (!view) return ENOENT;
    const inner = rest.join('/');
    const node = await view.lookup(inner);
    return node ? { state: undefined, view, rel: inner, node } : ENOENT;
  }

  private async snapshotsGetattr(path: string, rel: string): Promise<Stat | number> {
    if (rel === '') return this.placeholderStat(inodeOf(SNAPSHOTS_DIR, '', 'dir'));
    if (!rel.includes('/')) {
      const state = this.opts.tree.get(rel);
      if (state?.kind !== 'commit') return ENOENT;
      const root = state.view?.root;
      return this.makeStat(S_IFDIR | 0o755, inodeOf(SNAPSHOTS_DIR, rel, 'dir'), 4096, 1, root?.mtimeMs ?? this.startedAt);
    }
    const found = await this.resolveSnapshot(rel);
    return typeof found === 'number' ? found : this.statOf(path, found.node);
  }

  private async snapshotsReaddir(ws: string): Promise<DirListing | number> {
    const self = await this.snapshotsGetattr(`/${SNAPSHOTS_DIR}${ws ? `/${ws}` : ''}`, ws);
    if (typeof self === 'number') return self;
    const names = ['.', '..'];
    const stats = [self, ws ? await this.snapshotsGetattr(`/${SNAPSHOTS_DIR}`, '') as Stat : this.rootStat()];
    if (ws === '') {
      for (const name of this.opts.tree.names()) {
        if (this.opts.tree.get(name)?.kind !== 'commit') continue;
        names.push(name);
        stats.push(this.makeStat(S_IFDIR | 0o755, inodeOf(SNAPSHOTS_DIR, name, 'dir'), 4096, 1, this.startedAt));
      }
      return { names, stats };
    }
    for (const [gen, stem] of await this.opts.history.generations(ws)) {
      names.push(gen);
      stats.push(this.makeStat(S_IFDIR | 0o755, inodeOf(`${SNAPSHOTS_DIR}/${ws}/${stem}`, '', 'dir'), 4096, 1, this.startedAt));
    }
    return { names, stats };
  }

  private touch(state: WorkspaceState, view: View): void {
    if (state.touched) return;
    state.touched = true;
    void this.warm(state, view);
  }

  /** Hands the workspace's small files to the prefetcher (v2: walking its trees as it goes, warm-up.ts). */
  private async warm(state: WorkspaceState, view: View): Promise<void> {
    try {
      let accepted: number;
      if (view instanceof CommitView) {
        accepted = await warmCommit(view, this.opts.trees, this.opts.fetcher);
      } else {
        accepted = this.opts.fetcher.warm(filesOf(view));
      }
      // While S3 is down the warm-up is refused; the next use tries again.
      if (accepted < 0) state.touched = false;
    } catch (err) {
      state.touched = false;
      this.opts.logger.debug({ workspace: state.name, err: (err as Error).message }, 'prefetch walk failed');
    }
  }

  /** A new push of a workspace in use: prefetch what changed (v2 descends only into changed directories). */
  private async warmChanges(state: WorkspaceState, previous: View, next: View): Promise<void> {
    try {
      if (next instanceof CommitView) {
        const changed: string[] = [];
        if (previous instanceof CommitView) {
          const diff = await diffTrees(this.opts.trees.reader(next.workspace), previous.commit.root, next.commit.root);
          for (const e of diff.added) if (e.kind === 'file') changed.push(e.path);
          for (const m of diff.modified) if (m.after.kind === 'file') changed.push(m.after.path);
        }
        const nodes: FileNode[] = [];
        for (const rel of changed) {
          const node = await next.lookup(rel);
          if (node?.kind === 'file') nodes.push(node);
        }
        this.opts.fetcher.warm(nodes);
        return;
      }
      if ('nodes' in previous && 'nodes' in next) this.opts.fetcher.warm(changedFiles(previous as SnapshotLike, next as SnapshotLike));
    } catch (err) {
      this.opts.logger.debug({ workspace: state.name, err: (err as Error).message }, 'prefetch of a new push failed');
    }
  }

  /**
   * Which version a handle serves, decided at its first read: the one whose attributes the kernel
   * was last given for this path (see the header), if it differs from the handle's.
   */
  private settleVersion(handle: Handle): void {
    const c = handle.node.content;
    if (c.format !== 2) return;
    const report = this.reports.get(handle.path);
    if (!report || this.now() - report.at > REPORT_TRUST_MS) return;
    const r = report.node.content;
    if (r.format === 2 && r.sha256 !== c.sha256) handle.node = report.node;
  }

  private async reresolve(state: WorkspaceState, rel: string, stale: FileNode, cause: SyncError): Promise<FileNode> {
    for (const delay of this.opts.reresolveDelays ?? DEFAULT_RERESOLVE_DELAYS) {
      if (delay) await new Promise((r) => setTimeout(r, delay));
      await this.opts.poller.recheck(state);
      const node = await state.view?.lookup(rel);
      if (!node || node.kind !== 'file') {
        throw new SyncError('PRECONDITION_FAILED', `${state.name}/${rel} was removed by a newer push while it was open`, { cause });
      }
      if (identity(node) !== identity(stale)) {
        this.opts.logger.debug({ workspace: state.name, path: rel, from: identity(stale), to: identity(node) }, 'open file moved to the new version');
        return node;
      }
    }
    throw cause;
  }

  private readAhead(handle: Handle, offset: number, n: number): void {
    const { fetcher } = this.opts;
    const sequential = Math.abs(offset - handle.nextOffset) <= SEQUENTIAL_SLACK;
    handle.nextOffset = offset + n;
    const pieceSize = fetcher.pieceSize(handle.node);
    if (!sequential || n === 0 || handle.node.size <= pieceSize) return;
    const index = Math.floor((offset + n - 1) / pieceSize);
    if (index === handle.aheadFrom) return;
    handle.aheadFrom = index;
    fetcher.readAhead(handle.node, index);
  }

  private allocateHandle(): number {
    do {
      this.nextHandle = this.nextHandle >= 0xffff_fffe ? 1 : this.nextHandle + 1;
    } while (this.handles.has(this.nextHandle));
    return this.nextHandle;
  }

  private rootStat(): Stat {
    const n = this.opts.tree.names().length;
    return this.makeStat(S_IFDIR | 0o755, ROOT_INO, 4096, 2 + n, this.rootMtimeMs);
  }

  private placeholderStat(ino: number): Stat {
    return this.makeStat(S_IFDIR | 0o755, ino, 4096, 2, this.startedAt);
  }

  /**
   * `report` (the getattr's arrival number): this answer goes to the kernel's attribute cache, so
   * remember which version it describes (v2 files; see the header).
   */
  private statOf(path: string, node: Node, report?: number): Stat {
    if (node.kind === 'file') return this.makeStat(S_IFREG | node.perm, node.ino, node.size, 1, this.reportedMtime(path, node, report));
    // A directory or symlink has no reported version: its attributes are what a listing says.
    return this.listedStat(listedNode(this.scratch, '', node));
  }

  /**
   * An entry's attributes in a listing. libfuse 2 passes on only its type and inode (no
   * READDIRPLUS): the kernel's attributes come from getattr, which reports the nudged mtime.
   */
  private listedStat(e: Readonly<Listed>): Stat {
    switch (e.kind) {
      case 'file':
        return this.makeStat(S_IFREG | e.perm, e.ino, e.size, 1, e.mtimeMs);
      case 'dir':
        return this.makeStat(S_IFDIR | 0o755, e.ino, 4096, e.subdirs === undefined ? 1 : 2 + e.subdirs, e.mtimeMs);
      case 'symlink':
        return this.makeStat(S_IFLNK | 0o777, e.ino, e.size, 1, e.mtimeMs);
    }
  }

  /** v2: the file's mtime, moved 1 ms past the last one reported when only the content changed (auto_cache). */
  private reportedMtime(path: string, node: FileNode, report: number | undefined): number {
    const c = node.content;
    if (c.format !== 2) return node.mtimeMs;
    const last = this.reports.get(path);
    let mtimeMs = node.srcMtimeMs;
    if (last && last.node.size === node.size && last.node.srcMtimeMs === node.srcMtimeMs) {
      mtimeMs = identity(last.node) === identity(node) ? last.mtimeMs : last.mtimeMs + 1;
    }
    if (report !== undefined && (!last || last.seq < report)) this.reports.set(path, { node, mtimeMs, at: this.now(), seq: report });
    return mtimeMs;
  }

  private makeStat(mode: number, ino: number, size: number, nlink: number, mtime: number): Stat {
    return {
      mode, uid: this.opts.uid, gid: this.opts.gid, size, ino, nlink, mtime, atime: mtime, ctime: mtime,
      blocks: Math.ceil(size / 512), blksize: BLKSIZE,
    };
  }
}

type SnapshotLike = { nodes: ReadonlyMap<string, Node> };

/** `/ws/a/b` → { name: 'ws', rel: 'a/b' }; `/ws` → { name: 'ws', rel: '' }. */
function splitPath(path: string): { name: string; rel: string } {
  const slash = path.indexOf('/', 1);
  return slash < 0 ? { name: path.slice(1), rel: '' } : { name: path.slice(1, slash), rel: path.slice(slash + 1) };
}

/** What makes two versions of a file the same content. */
function identity(node: FileNode): string {
  const c = node.content;
  return c.format === 2 ? c.sha256 : c.etag;
}

function* filesOf(view: View): Generator<FileNode> {
  if (!('nodes' in view)) return;
  for (const node of (view as SnapshotLike).nodes.values()) if (node.kind === 'file') yield node;
}

function* changedFiles(previous: SnapshotLike, next: SnapshotLike): Generator<FileNode> {
  for (const [rel, node] of next.nodes) {
    if (node.kind !== 'file') continue;
    const old = previous.nodes.get(rel);
    if (!old || old.kind !== 'file' || identity(old) !== identity(node)) yield node;
  }
}
