/**
 * `-o opt[,opt...]`, as mount(8), rclone mount and s3fs take them: each option maps onto an option
 * of the table (flags given by name win over `-o`). The mount is read-only whatever is asked, so
 * `rw` is refused rather than ignored.
 */
import { SyncError } from '@workspace-sync/shared';

const BOOLEAN: Record<string, string> = {
  allow_other: 'allowOther',
  default_permissions: 'defaultPermissions',
};
const NUMERIC: Record<string, string> = { uid: 'uid', gid: 'gid' };
/** Accepted and already true of every mount of this tool. */
const IMPLIED = new Set(['ro', 'nodev', 'nosuid', 'noexec', 'noatime']);

/** Flags (by option key) from `-o` values; `given` are the flags set by name, which win. */
export function mountOptionFlags(values: readonly string[], given: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const raw of values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean)) {
    const eq = raw.indexOf('=');
    const name = eq < 0 ? raw : raw.slice(0, eq);
    const value = eq < 0 ? undefined : raw.slice(eq + 1);
    let key: string | undefined;
    let parsed: unknown;
    if (name in BOOLEAN && value === undefined) { key = BOOLEAN[name]; parsed = true; }
    else if (name in NUMERIC && value !== undefined) { key = NUMERIC[name]; parsed = value; }
    else if (IMPLIED.has(name) && value === undefined) continue;
    else if (name === 'rw') {
      throw new SyncError('USAGE', '-o rw: fuse-mount mounts read-only; the bucket is written by sync-agent', { hint: 'drop rw' });
    } else {
      throw new SyncError('USAGE', `-o ${raw}: not a mount option fuse-mount knows`, {
        hint: `known: ${[...Object.keys(BOOLEAN), ...Object.keys(NUMERIC).map((k) => `${k}=N`), ...IMPLIED].join(', ')}; every other setting has a flag (fuse-mount --help)`,
      });
    }
    if (given[key!] === undefined) out[key!] = parsed;
  }
  return out;
}
