/**
 * fuse-native wiring and the mount point's life cycle: checks before mounting (FUSE available,
 * mount point present, empty and not in use; a stale FUSE mount left by a crash is cleared),
 * the mount options, and unmounting. The only module that loads fuse-native, and lazily, so
 * `--help` and config errors work on machines without libfuse.
 *
 * Kernel caching, deliberately: entries and attributes are cached for `kernelTimeoutSec` (so
 * `find` and `ls -l` hit the kernel, not JS, while a new push still shows within about
 * poll interval + that), missing names likewise (negative_timeout), and file pages are kept
 * across opens while size and mtime are unchanged (auto_cache; the tree nudges mtime when only
 * the content changed). `use_ino` makes the tree's stable inode numbers visible. fuse-native
 * passes neither `ro`, `use_ino` nor `negative_timeout`; libfuse splits `-o` on commas, so they
 * ride along in the subtype option. `ac_attr_timeout` is long so that libfuse never asks for
 * attributes on its own at open (it would see a version the kernel has not been told about, see
 * core.ts); auto_cache then keeps pages exactly while the attributes the kernel got are unchanged.
 *
 * The end of the mount is watched: an unmount from outside (`fusermount -u`) is noticed within a
 * second (/proc/self/mountinfo) and ends the process; unmounting what is already gone is a no-op.
 */
import { execFile, execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readdir, readFile, stat, statfs } from 'node:fs/promises';
import { promisify } from 'node:util';
import { SyncError, type Logger } from '@workspace-sync/shared';
import type { FuseHandlers } from './fuse-ops.js';

const run = promisify(execFile);

/** fuse-native answers ETIMEDOUT itself after this; the adapter answers well before (EIO at 4 s). */
const OP_TIMEOUT_MS = 10_000;
/** How often the mount table is checked for an unmount from outside. */
const WATCH_INTERVAL_MS = 1_000;
const MAX_READ = 128 * 1024;
const STAT_TIMEOUT_MS = 2_000;
const FUSERMOUNT_TIMEOUT_MS = 10_000;

export interface MountSettings {
  mountpoint: string;
  fsname: string;
  allowOther: boolean;
  /** The kernel checks each file's mode bits, uid and gid against the caller (libfuse default_permissions). */
  defaultPermissions: boolean;
  /** Seconds the kernel trusts entries, attributes and missing names. */
  kernelTimeoutSec: number;
  logger: Logger;
}

export interface MountedFs {
  readonly mountpoint: string;
  /** Resolves when the mount was removed from outside (fusermount -u, umount). */
  readonly gone: Promise<void>;
  unmount(): Promise<void>;
}

function mountFailed(message: string, hint: string, cause?: unknown): SyncError {
  return new SyncError('MOUNT_FAILED', message, { hint, cause });
}

/** Fails with one MOUNT_FAILED error unless `mountpoint` can be mounted on now; clears a stale mount. */
export async function prepareMountpoint(mountpoint: string, logger: Logger): Promise<void> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch (err) {
    throw mountFailed(`/dev/fuse is not available (${(err as NodeJS.ErrnoException).code})`,
      'install FUSE (apt-get install fuse libfuse2); in a container run with --device /dev/fuse --cap-add SYS_ADMIN', err);
  }
  let mounted = await findMount(mountpoint);
  let st = await statWithTimeout(mountpoint);
  // For the attribute timeout after its server died, a FUSE mount's root still stats fine from the
  // kernel's cache; statfs always asks the server.
  if (typeof st !== 'string' && mounted?.startsWith('fuse') && (await statfsWithTimeout(mountpoint)) === 'stale') st = 'stale';
  if (st === 'stale' || (st === 'timeout' && mounted?.startsWith('fuse'))) {
    logger.warn({ mountpoint, fstype: mounted }, 'clearing a stale FUSE mount left by an earlier run');
    await fusermountUnmount(mountpoint);
    mounted = await findMount(mountpoint);
    st = await statWithTimeout(mountpoint);
  }
  if (st === 'missing') throw mountFailed(`mount point ${mountpoint} does not exist`, `create it first: mkdir -p ${mountpoint}`);
  if (st === 'timeout' || st === 'stale') {
    throw mountFailed(`mount point ${mountpoint} does not respond`, `unmount what hangs there: fusermount -uz ${mountpoint}`);
  }
  if (mounted) {
    throw mountFailed(`mount point ${mountpoint} is busy: something (${mounted}) is already mounted there`,
      `unmount it first (fusermount -u ${mountpoint} or umount ${mountpoint}) or choose another mount point`);
  }
  if (!st.isDirectory()) throw mountFailed(`mount point ${mountpoint} is not a directory`, 'mount on an empty directory');
  if ((await readdir(mountpoint)).length > 0) {
    throw mountFailed(`mount point ${mountpoint} is not empty`, 'mount on an empty directory so nothing is hidden under the mount');
  }
}

export async function mountFuse(handlers: FuseHandlers, settings: MountSettings): Promise<MountedFs> {
  const { mountpoint } = settings;
  let Fuse: typeof import('fuse-native').default;
  try {
    Fuse = (await import('fuse-native')).default;
  } catch (err) {
    throw mountFailed(`cannot load FUSE support: ${(err as Error).message}`, 'install libfuse 2 and fusermount: apt-get install libfuse2 fuse', err);
  }
  // fuse-native drops numeric zeros; strings always reach libfuse.
  const t = String(settings.kernelTimeoutSec);
  const fuse = new Fuse(mountpoint, handlers, {
    fsname: settings.fsname,
    subtype: `workspace-sync,ro,use_ino,negative_timeout=${t}`,
    entryTimeout: t,
    attrTimeout: t,
    acAttrTimeout: '86400',
    autoCache: true,
    maxRead: MAX_READ,
    allowOther: settings.allowOther,
    defaultPermissions: settings.defaultPermissions,
    timeout: OP_TIMEOUT_MS,
  });
  try {
    await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
  } catch (err) {
    const busy = /in use/i.test((err as Error).message);
    throw mountFailed(busy ? `mount point ${mountpoint} is busy` : `mounting ${mountpoint} failed: ${(err as Error).message}`,
      busy ? `unmount it first: fusermount -u ${mountpoint}`
        : 'check that /dev/fuse is usable; --allow-other needs root or user_allow_other in /etc/fuse.conf', err);
  }
  // The mount answers once the kernel has our root (inode 1 with use_ino).
  const root = await statWithTimeout(mountpoint);
  if (typeof root === 'string' || root.ino !== 1) {
    await fusermountUnmount(mountpoint).catch(() => undefined);
    throw mountFailed(`mounted ${mountpoint} but it does not answer`, 'check the log above and dmesg for FUSE errors');
  }
  let unmounted: Promise<void> | undefined;
  let watch: NodeJS.Timeout | undefined;
  const gone = new Promise<void>((resolve) => {
    watch = setInterval(() => {
      void findMount(mountpoint).then((type) => {
        if (type?.startsWith('fuse') || unmounted) return;
        clearInterval(watch);
        settings.logger.info({ mountpoint }, 'the mount was removed from outside (fusermount -u or umount)');
        resolve();
      });
    }, WATCH_INTERVAL_MS);
    watch.unref();
  });
  return {
    mountpoint,
    gone,
    unmount() {
      clearInterval(watch);
      unmounted ??= findMount(mountpoint).then((type) => {
        // Already unmounted from outside: fusermount would fail ("Invalid argument").
        if (!type?.startsWith('fuse')) return undefined;
        return new Promise<void>((resolve, reject) => fuse.unmount((err) => {
          if (!err) return resolve();
          reject(mountFailed(`unmounting ${mountpoint} failed: ${err.message}`, `unmount it by hand: fusermount -uz ${mountpoint}`, err));
        }));
      });
      return unmounted;
    },
  };
}

/** Last resort on a crash: lazy unmount, so no stale mount outlives the process. */
export function unmountNow(mountpoint: string): void {
  try {
    execFileSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore', timeout: FUSERMOUNT_TIMEOUT_MS });
  } catch {
    // Nothing more can be done from a dying process; the next start clears it.
  }
}

async function fusermountUnmount(mountpoint: string): Promise<void> {
  try {
    await run('fusermount', ['-uz', mountpoint], { timeout: FUSERMOUNT_TIMEOUT_MS });
  } catch (err) {
    throw mountFailed(`cannot clear the stale mount at ${mountpoint}: ${(err as Error).message.trim()}`,
      `unmount it by hand (fusermount -uz ${mountpoint}); fusermount comes with apt-get install fuse`, err);
  }
}

type StatResult = Awaited<ReturnType<typeof stat>> | 'missing' | 'stale' | 'timeout';

/** A hung FUSE mount blocks stat forever: give up after a while instead. */
function statWithTimeout(file: string): Promise<StatResult> {
  return withTimeout(stat(file).then((st): StatResult => st, (err: unknown) => inspectFailure(file, err)));
}

function statfsWithTimeout(file: string): Promise<'ok' | 'missing' | 'stale' | 'timeout'> {
  return withTimeout(statfs(file).then(() => 'ok' as const, (err: unknown) => inspectFailure(file, err)));
}

function inspectFailure(file: string, err: unknown): 'missing' | 'stale' {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'missing';
  // ENOTCONN: "transport endpoint is not connected", the FUSE server is gone.
  if (code === 'ENOTCONN' || code === 'ECONNABORTED') return 'stale';
  throw mountFailed(`cannot inspect mount point ${file}: ${(err as Error).message}`, 'check the path and its permissions', err);
}

async function withTimeout<T>(result: Promise<T>): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), STAT_TIMEOUT_MS); });
  try {
    return await Promise.race([result, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The file-system type mounted exactly at `mountpoint`, from /proc/self/mountinfo. */
async function findMount(mountpoint: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  let found: string | undefined;
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (fields.length < 5 || sep < 0) continue;
    const point = fields[4]!.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    // The last line for a path is the mount on top.
    if (point === mountpoint) found = fields[sep + 1];
  }
  return found;
}
