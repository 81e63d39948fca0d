/**
 * The FUSE adapter: fuse-native callbacks → core call → errno. No file-system logic lives here, and
 * nothing here imports fuse-native, so tests call these handlers directly without a mount.
 *
 * Every operation answers within `deadlineMs` (EIO after that, whatever S3 is doing; the work goes
 * on, so a download still lands in the cache): FUSE has few worker threads, and the kernel would
 * otherwise keep a reader blocked. A read answered by the deadline never writes its buffer later
 * (fuse-native reuses it).
 *
 * Times: fuse-native passes times as unsigned milliseconds (its C side divides a uint64), so a time
 * before 1970 would reach the kernel as the year 584556009. Such times are reported as the epoch:
 * the closest time it can carry.
 *
 * Every call that would change the tree answers EROFS (the mount is also mounted `ro`, so the
 * kernel usually answers first). `open`/`release` are implemented because a handle pins the
 * version a reader sees; xattrs are not, so the kernel stops asking after the first ENOSYS.
 */
import { isSyncError, type Logger } from '@workspace-sync/shared';
import type { DirListing, MountCore, Stat, StatFs } from './core.js';
import { EIO, EROFS, errnoFor, isErrno } from './errno.js';
import type { MountMetrics } from './metrics.js';

type Done = (code: number) => void;
type With<T> = (code: number, value?: T) => void;

export interface FuseHandlers {
  init(cb: Done): void;
  getattr(path: string, cb: With<Stat>): void;
  readdir(path: string, cb: (code: number, names?: string[], stats?: Stat[]) => void): void;
  readlink(path: string, cb: With<string>): void;
  open(path: string, flags: number, cb: With<number>): void;
  read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Done): void;
  release(path: string, fd: number, cb: Done): void;
  statfs(path: string, cb: With<StatFs>): void;
  access(path: string, mode: number, cb: Done): void;
  write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Done): void;
  create(path: string, mode: number, cb: With<number>): void;
  unlink(path: string, cb: Done): void;
  rename(src: string, dest: string, cb: Done): void;
  link(src: string, dest: string, cb: Done): void;
  symlink(src: string, dest: string, cb: Done): void;
  mkdir(path: string, mode: number, cb: Done): void;
  rmdir(path: string, cb: Done): void;
  mknod(path: string, mode: number, dev: number, cb: Done): void;
  chmod(path: string, mode: number, cb: Done): void;
  chown(path: string, uid: number, gid: number, cb: Done): void;
  truncate(path: string, size: number, cb: Done): void;
  ftruncate(path: string, fd: number, size: number, cb: Done): void;
  utimens(path: string, atime: number, mtime: number, cb: Done): void;
  setxattr(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void;
  removexattr(path: string, name: string, cb: Done): void;
}

export interface HandlerOptions {
  logger: Logger;
  metrics?: MountMetrics | undefined;
  /** Longest any operation may take before it answers EIO (default 4 s). */
  deadlineMs?: number;
}

const DEFAULT_DEADLINE_MS = 4_000;

export function createFuseHandlers(core: MountCore, opts: HandlerOptions): FuseHandlers {
  const { logger, metrics } = opts;
  const deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
  let lateLogged = false;

  /**
   * Runs a core call; a negative number is an errno, a throw is mapped by errnoFor; EIO at the
   * deadline. A call that answers without a promise is answered at once.
   */
  function run<T>(op: string, path: string, work: (live: () => boolean) => T | number | Promise<T | number>, ok: (value: T) => void, fail: Done): void {
    let answered = false;
    const live = () => !answered;
    let result: T | number | Promise<T | number>;
    try {
      result = work(live);
    } catch (err) {
      result = Promise.reject(err);
    }
    if (!(result instanceof Promise)) {
      answered = true;
      if (isErrno(result)) fail(result);
      else ok(result as T);
      return;
    }
    const timer = setTimeout(() => {
      answered = true;
      metrics?.errors.inc({ op: `${op}_deadline` });
      // One line per burst of late answers, not one per call.
      if (!lateLogged) logger.warn({ op, path, deadlineMs }, 'operation did not finish in time; answering EIO');
      lateLogged = true;
      fail(EIO);
    }, deadlineMs);
    result.then((value) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      lateLogged = false;
      if (isErrno(value)) fail(value);
      else ok(value as T);
    }, (err: unknown) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      metrics?.errors.inc({ op });
      if (isSyncError(err)) logger.debug({ op, path, code: err.code, err: err.message }, 'operation failed');
      else logger.error({ op, path, err }, 'unexpected failure in a file-system operation');
      fail(errnoFor(err));
    });
  }

  const readOnly = (cb: Done) => cb(EROFS);

  return {
    init: (cb) => cb(0),
    getattr: (path, cb) => run('getattr', path, () => core.getattr(path), (st) => cb(0, kernelStat(st)), cb),
    readdir: (path, cb) => run('readdir', path, () => core.readdir(path), (l: DirListing) => cb(0, l.names, l.stats.map(kernelStat)), cb),
    readlink: (path, cb) => run('readlink', path, () => core.readlink(path), (target) => cb(0, target), cb),
    open: (path, flags, cb) => run<number>('open', path, () => core.open(path, flags), (fh) => cb(0, fh), cb),
    read: (path, fd, buf, len, pos, cb) => run('read', path, (live) => core.read(path, fd, buf, len, pos, live), (n) => cb(n), cb),
    release: (_path, fd, cb) => {
      core.release(fd);
      cb(0);
    },
    statfs: (_path, cb) => cb(0, core.statfs()),
    access: (path, mode, cb) => run('access', path, () => core.access(path, mode), () => cb(0), cb),
    write: (_path, _fd, _buf, _len, _pos, cb) => readOnly(cb),
    create: (_path, _mode, cb) => readOnly(cb),
    unlink: (_path, cb) => readOnly(cb),
    rename: (_src, _dest, cb) => readOnly(cb),
    link: (_src, _dest, cb) => readOnly(cb),
    symlink: (_src, _dest, cb) => readOnly(cb),
    mkdir: (_path, _mode, cb) => readOnly(cb),
    rmdir: (_path, cb) => readOnly(cb),
    mknod: (_path, _mode, _dev, cb) => readOnly(cb),
    chmod: (_path, _mode, cb) => readOnly(cb),
    chown: (_path, _uid, _gid, cb) => readOnly(cb),
    truncate: (_path, _size, cb) => readOnly(cb),
    ftruncate: (_path, _fd, _size, cb) => readOnly(cb),
    utimens: (_path, _atime, _mtime, cb) => readOnly(cb),
    setxattr: (_path, _name, _value, _position, _flags, cb) => readOnly(cb),
    removexattr: (_path, _name, cb) => readOnly(cb),
  };
}

/** The stat fuse-native can carry: times before 1970 become the epoch (see the header). */
function kernelStat(st: Stat): Stat {
  if (st.mtime >= 0 && st.atime >= 0 && st.ctime >= 0) return st;
  return { ...st, mtime: Math.max(0, st.mtime), atime: Math.max(0, st.atime), ctime: Math.max(0, st.ctime) };
}
