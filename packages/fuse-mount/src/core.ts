/**
 * The read-only file system without FUSE: paths in, metadata and bytes out. fuse-ops.ts adapts it
 * to fuse-native callbacks; unit tests call it directly.
 *
 * Conventions: expected outcomes (no such entry, not a symlink, read-only) come back as a negative
 * errno from errno.ts; remote failures are thrown as SyncError and mapped by `errnoFor`.
 *
 * Metadata is answered from memory (the workspace snapshots). The first file opened in a workspace
 * starts a parallel prefetch of its small files (metadata-only walks such as `find` or `git status`
 * do not: they would pay for thousands of GETs they never use); a new snapshot of a workspace in
 * use prefetches what changed.
 *
 * Open files: `open` pins the file's node (and so its ETag) to a handle, so all reads through one
 * handle see one version even if a push lands meanwhile. When the pinned version is gone from S3
 * before the handle served a byte, the manifest is re-read (waiting briefly for a push in flight to
 * publish it) and the handle moves to the new version; after the first byte it fails with ESTALE.
 */
import { SyncError, isSyncError, type Logger } from '@workspace-sync/shared';
import { EACCES, EBADF, EINVAL, EISDIR, ENOENT, ENOTDIR, EROFS } from './errno.js';
import type { Fetcher } from './fetcher.js';
import type { Poller } from './poller.js';
import type { FileNode, Node, Snapshot, Tree, WorkspaceState } from './tree.js';

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
const ROOT_INO = 1;
const SEQUENTIAL_SLACK = 1024 * 1024;
const DEFAULT_RERESOLVE_DELAYS = [0, 250, 500, 1000, 2000];

interface Found {
  state: WorkspaceState;
  snapshot: Snapshot;
  rel: string;
  node: Node;
}

interface Handle {
  state: WorkspaceState;
  rel: string;
  node: FileNode;
  served: boolean;
  nextOffset: number;
  aheadFrom: number;
}

export class MountCore {
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;
  private readonly stats = new WeakMap<Node, Stat>();
  private readonly startedAt: number;

  constructor(private readonly opts: CoreOptions) {
    this.startedAt = (opts.now ?? Date.now)();
    opts.tree.onInstall((state, previous, next) => {
      if (!state.touched || !previous) return;
      opts.fetcher.warm(changedFiles(previous, next));
    });
  }

  async getattr(path: string): Promise<Stat | number> {
    if (path === '/') return this.rootStat();
    const ws = splitPath(path);
    const state = this.opts.tree.get(ws.name);
    if (!state) return ENOENT;
    // `ls -l` of the mount root must not list every prefix without a manifest: answer from what is known.
    if (ws.rel === '' && state.snapshot) return this.statOf(state.snapshot.nodes.get('')!);
    if (ws.rel === '' && !state.hasManifest) return this.placeholderStat(state);
    const found = await this.resolve(path);
    return typeof found === 'number' ? found : this.statOf(found.node);
  }

  async readdir(path: string): Promise<DirListing | number> {
    if (path === '/') {
      const root = this.rootStat();
      const names = ['.', '..'];
      const stats = [root, root];
      for (const name of this.opts.tree.names()) {
        const state = this.opts.tree.get(name)!;
        names.push(name);
        stats.push(state.snapshot ? this.statOf(state.snapshot.nodes.get('')!) : this.placeholderStat(state));
      }
      return { names, stats };
    }
    const found = await this.resolve(path);
    if (typeof found === 'number') return found;
    if (found.node.kind !== 'dir') return ENOTDIR;
    const { rel, snapshot } = found;
    const parentRel = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
    const parent = rel === '' ? this.rootStat() : this.statOf(snapshot.nodes.get(parentRel)!);
    const names = ['.', '..', ...found.node.names];
    const stats = [this.statOf(found.node), parent];
    for (const name of found.node.names) stats.push(this.statOf(snapshot.nodes.get(rel === '' ? name : `${rel}/${name}`)!));
    return { names, stats };
  }

  async readlink(path: string): Promise<string | number> {
    const found = await this.resolve(path);
    if (typeof found === 'number') return found;
    return found.node.kind === 'symlink' ? found.node.target : EINVAL;
  }

  /** A handle pinned to the file's current version, or an errno. */
  async open(path: string, flags: number): Promise<number> {
    if ((flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0) return EROFS;
    const found = await this.resolve(path);
    if (typeof found === 'number') return found;
    if (found.node.kind === 'dir') return EISDIR;
    if (found.node.kind !== 'file') return EINVAL;
    this.touch(found.state, found.snapshot);
    const fh = this.allocateHandle();
    this.handles.set(fh, { state: found.state, rel: found.rel, node: found.node, served: false, nextOffset: 0, aheadFrom: -1 });
    return fh;
  }

  release(fh: number): void {
    this.handles.delete(fh);
  }

  /** Reads into `target`; returns the byte count (0 at end of file) or an errno. */
  async read(_path: string, fh: number, target: Buffer, length: number, offset: number): Promise<number> {
    const handle = this.handles.get(fh);
    // Every open goes through `open`, so an unknown handle is a caller's bug.
    if (!handle) return EBADF;
    if (offset >= handle.node.size) return 0;
    // Ahead of this read, not after it: the first chunks of a cold sequential read download in parallel.
    this.readAhead(handle, offset, Math.min(length, handle.node.size - offset));
    let n: number;
    try {
      n = await this.opts.fetcher.readInto(handle.node, target, offset, length);
    } catch (err) {
      if (!isSyncError(err, 'PRECONDITION_FAILED') || handle.served) throw err;
      handle.node = await this.reresolve(handle.state, handle.rel, handle.node, err);
      if (offset >= handle.node.size) return 0;
      n = await this.opts.fetcher.readInto(handle.node, target, offset, length);
    }
    handle.served = true;
    return n;
  }

  /**
   * The kernel checks no permissions itself (no default_permissions: containers of any uid read
   * the mount), so access() answers: never writable, executable only with an exec bit.
   */
  async access(path: string, mode: number): Promise<number> {
    const found = path === '/' ? undefined : await this.resolve(path);
    if (typeof found === 'number') return found;
    if (mode & W_OK) return EROFS;
    if (mode & X_OK && found?.node.kind === 'file' && (found.node.perm & 0o111) === 0) return EACCES;
    return 0;
  }

  statfs(): StatFs {
    let bytes = 0;
    let files = 1;
    for (const state of this.opts.tree.all()) {
      files += 1 + (state.snapshot?.nodes.size ?? 0);
      bytes += state.snapshot?.bytes ?? 0;
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

  private async resolve(path: string): Promise<Found | number> {
    const { name, rel } = splitPath(path);
    const state = this.opts.tree.get(name);
    if (!state) return ENOENT;
    const snapshot = await this.opts.poller.ensureSnapshot(state);
    if (!snapshot) {
      throw new SyncError('S3_ERROR', `workspace ${name} is not available yet: its manifest could not be loaded`, {
        hint: 'the log says why (S3 unreachable or an invalid manifest); it appears once a good manifest can be read',
      });
    }
    const node = snapshot.nodes.get(rel);
    return node ? { state, snapshot, rel, node } : ENOENT;
  }

  private touch(state: WorkspaceState, snapshot: Snapshot): void {
    if (state.touched) return;
    // While S3 is down the warm-up is refused; the next use tries again.
    state.touched = this.opts.fetcher.warm(filesOf(snapshot)) >= 0;
  }

  private async reresolve(state: WorkspaceState, rel: string, stale: FileNode, cause: SyncError): Promise<FileNode> {
    for (const delay of this.opts.reresolveDelays ?? DEFAULT_RERESOLVE_DELAYS) {
      if (delay) await new Promise((r) => setTimeout(r, delay));
      await this.opts.poller.recheck(state);
      const node = state.snapshot?.nodes.get(rel);
      if (!node || node.kind !== 'file') {
        throw new SyncError('PRECONDITION_FAILED', `${state.name}/${rel} was removed by a newer push while it was open`, { cause });
      }
      if (node.etag !== stale.etag) {
        this.opts.logger.debug({ workspace: state.name, path: rel, from: stale.etag, to: node.etag }, 'open file moved to the new version');
        return node;
      }
    }
    throw cause;
  }

  private readAhead(handle: Handle, offset: number, n: number): void {
    const { fetcher } = this.opts;
    const sequential = Math.abs(offset - handle.nextOffset) <= SEQUENTIAL_SLACK;
    handle.nextOffset = offset + n;
    if (!sequential || n === 0 || handle.node.size <= fetcher.chunkSize) return;
    const index = Math.floor((offset + n - 1) / fetcher.chunkSize);
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
    return this.makeStat(S_IFDIR | 0o755, ROOT_INO, 4096, 2 + n, this.startedAt);
  }

  private placeholderStat(state: WorkspaceState): Stat {
    return this.makeStat(S_IFDIR | 0o755, state.ino, 4096, 2, this.startedAt);
  }

  private statOf(node: Node): Stat {
    let st = this.stats.get(node);
    if (st) return st;
    switch (node.kind) {
      case 'file':
        st = this.makeStat(S_IFREG | node.perm, node.ino, node.size, 1, node.mtimeMs);
        break;
      case 'dir':
        st = this.makeStat(S_IFDIR | 0o755, node.ino, 4096, 2 + node.subdirs, node.mtimeMs);
        break;
      case 'symlink':
        st = this.makeStat(S_IFLNK | 0o777, node.ino, Buffer.byteLength(node.target), 1, node.mtimeMs);
        break;
    }
    this.stats.set(node, st);
    return st;
  }

  private makeStat(mode: number, ino: number, size: number, nlink: number, mtime: number): Stat {
    return {
      mode, uid: this.opts.uid, gid: this.opts.gid, size, ino, nlink, mtime, atime: mtime, ctime: mtime,
      blocks: Math.ceil(size / 512), blksize: BLKSIZE,
    };
  }
}

/** `/ws/a/b` → { name: 'ws', rel: 'a/b' }; `/ws` → { name: 'ws', rel: '' }. */
function splitPath(path: string): { name: string; rel: string } {
  const slash = path.indexOf('/', 1);
  return slash < 0 ? { name: path.slice(1), rel: '' } : { name: path.slice(1, slash), rel: path.slice(slash + 1) };
}

function* filesOf(snapshot: Snapshot): Generator<FileNode> {
  for (const node of snapshot.nodes.values()) if (node.kind === 'file') yield node;
}

function* changedFiles(previous: Snapshot, next: Snapshot): Generator<FileNode> {
  for (const [rel, node] of next.nodes) {
    if (node.kind !== 'file') continue;
    const old = previous.nodes.get(rel);
    if (!old || old.kind !== 'file' || old.etag !== node.etag) yield node;
  }
}

