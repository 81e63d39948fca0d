/**
 * Tells the kernel that a workspace changed, so its cached entry is not trusted until the entry
 * timeout runs out: `stat <mount>/<ws>` shows a new push as soon as the mount has it.
 *
 * fuse-native uses libfuse 2.9's high-level API, which exposes none of libfuse's notify functions,
 * and whose node ids (what the kernel knows an inode by) are private to libfuse: only the root's
 * (1) is known. So this writes the two notifications it can address itself, exactly as libfuse's
 * `fuse_lowlevel_notify_inval_*` would, to the mount's /dev/fuse descriptor:
 * - FUSE_NOTIFY_INVAL_ENTRY for `<ws>` under the root with FUSE_EXPIRE_ONLY (Linux 6.2, protocol
 *   7.38): the entry is revalidated on its next use, which refreshes the directory's attributes.
 *   Never without that flag: a plain invalidation unhashes the dentry, and a process whose working
 *   directory is inside the workspace then gets ENOENT from getcwd() (measured, see the README).
 *   Older kernels ignore the flag (it was padding), so it is only sent on 6.2 or later.
 * - FUSE_NOTIFY_INVAL_INODE for the root, attributes only: the root's mtime (core.ts) is fresh.
 * Paths below a workspace keep the kernel's entry/attribute timeouts (core.ts keeps their
 * attributes and content in agreement meanwhile).
 *
 * Concurrency rules: the kernel takes the parent directory's lock to handle an entry
 * notification, and a lookup in that directory may hold it while it waits for this process's one
 * JS thread. So writes go through libuv's thread pool (fs.write), never the JS thread, one at a
 * time (a queue), leaving the pool's other threads to the reads that lookup may need.
 */
import { write } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { release } from 'node:os';
import type { Logger } from '@workspace-sync/shared';

const FUSE_NOTIFY_INVAL_INODE = 2;
const FUSE_NOTIFY_INVAL_ENTRY = 3;
const FUSE_EXPIRE_ONLY = 1;
const FUSE_ROOT_ID = 1n;
const OUT_HEADER = 16;
/** Pending notifications; past this the oldest are dropped (the timeouts still apply). */
const MAX_QUEUED = 10_000;

/** `struct fuse_out_header` (unique 0: a notification) followed by the notification's body. */
export function notification(code: number, body: Buffer): Buffer {
  const out = Buffer.alloc(OUT_HEADER + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(code, 4);
  out.writeBigUInt64LE(0n, 8);
  body.copy(out, OUT_HEADER);
  return out;
}

/** `struct fuse_notify_inval_entry_out` + the name, NUL-terminated. */
export function expireEntry(parent: bigint, name: string): Buffer {
  const bytes = Buffer.from(name);
  const body = Buffer.alloc(16 + bytes.length + 1);
  body.writeBigUInt64LE(parent, 0);
  body.writeUInt32LE(bytes.length, 8);
  body.writeUInt32LE(FUSE_EXPIRE_ONLY, 12);
  bytes.copy(body, 16);
  return notification(FUSE_NOTIFY_INVAL_ENTRY, body);
}

/** `struct fuse_notify_inval_inode_out` with offset -1: attributes only, no pages. */
export function invalidateAttributes(nodeId: bigint): Buffer {
  const body = Buffer.alloc(24);
  body.writeBigUInt64LE(nodeId, 0);
  body.writeBigInt64LE(-1n, 8);
  body.writeBigInt64LE(0n, 16);
  return notification(FUSE_NOTIFY_INVAL_INODE, body);
}

/** Whether this kernel knows FUSE_EXPIRE_ONLY (6.2 or later). */
export function supportsExpireOnly(kernelRelease: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 6 || (major === 6 && minor >= 2);
}

export interface KernelNotifier {
  /** The kernel should look `<ws>` up again (and the root's attributes) at its next use. */
  workspaceChanged(name: string): void;
  /** Notifications written so far (tests, metrics). */
  readonly sent: number;
  /**
   * Stops, once the write in flight is done. Must run before unmounting: the descriptor is closed
   * then, and its number may be reused by another file.
   */
  close(): Promise<void>;
}

/**
 * The notifier of this process's FUSE mount, or undefined (with the reason logged) when the
 * kernel is too old or the descriptor cannot be told apart. Call right after mounting.
 */
export async function openKernelNotifier(logger: Logger, kernelRelease = release()): Promise<KernelNotifier | undefined> {
  if (!supportsExpireOnly(kernelRelease)) {
    logger.info({ kernel: kernelRelease }, 'kernel notifications off: FUSE_EXPIRE_ONLY needs Linux 6.2 or later; directory attributes refresh after their timeout');
    return undefined;
  }
  const fds: number[] = [];
  for (const name of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${name}`).catch(() => '');
    if (target === '/dev/fuse') fds.push(Number(name));
  }
  // One mount per process: exactly one connection. Anything else and the right one is unknown.
  if (fds.length !== 1) {
    logger.info({ descriptors: fds.length }, 'kernel notifications off: cannot tell which /dev/fuse descriptor is the mount');
    return undefined;
  }
  const fd = fds[0]!;
  const queue: Buffer[] = [];
  let busy = false;
  let closed = false;
  let idle: (() => void) | undefined;
  let sent = 0;
  let warned = false;
  const pump = () => {
    const msg = closed ? undefined : queue.shift();
    if (!msg) {
      busy = false;
      idle?.();
      return;
    }
    busy = true;
    write(fd, msg, 0, msg.length, null, (err) => {
      // ENOENT: the kernel has nothing cached under that name, which is fine.
      if (err && err.code !== 'ENOENT' && !warned) {
        warned = true;
        logger.warn({ err: err.message }, 'a kernel notification failed; cached entries now expire by their timeout only');
      }
      if (!err) sent++;
      pump();
    });
  };
  const enqueue = (msg: Buffer) => {
    if (closed) return;
    if (queue.length >= MAX_QUEUED) queue.shift();
    queue.push(msg);
    if (!busy) pump();
  };
  return {
    workspaceChanged(name) {
      enqueue(expireEntry(FUSE_ROOT_ID, name));
      enqueue(invalidateAttributes(FUSE_ROOT_ID));
    },
    get sent() {
      return sent;
    },
    close() {
      closed = true;
      queue.length = 0;
      return busy ? new Promise<void>((resolve) => { idle = resolve; }) : Promise.resolve();
    },
  };
}
