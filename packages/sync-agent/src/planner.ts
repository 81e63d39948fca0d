/**
 * Pure planning: the local snapshot against what the remote holds → uploads, server-side copies,
 * deletes, and whether a new manifest must be published. No I/O here; push and watch both use it.
 */
import { SyncError, type ManifestEntry } from '@workspace-sync/shared';

/** A local file or symlink with its content hash (for symlinks: sha256 of the target text). */
export type HashedEntry =
  | { type: 'file'; path: string; size: number; mtimeMs: number; mode: number; sha256: string }
  | { type: 'symlink'; path: string; target: string; mtimeMs: number; sha256: string };

/** An object known to exist at `<workspace prefix><path>`. */
export interface RemoteObject {
  path: string;
  type: 'file' | 'symlink';
  sha256: string;
  etag: string;
  size: number;
}

export interface Plan {
  uploads: HashedEntry[];
  /** Server-side copies of identical content already in the bucket (renames, duplicates). */
  copies: Array<{ from: string; entry: HashedEntry }>;
  /** Entries whose object is already right; `etag` is the object's. */
  unchanged: Array<{ entry: HashedEntry; etag: string }>;
  /** Paths whose objects must go (after the manifest is committed). */
  deletes: string[];
  uploadBytes: number;
  copyBytes: number;
  /** True when the committed manifest does not already describe exactly this snapshot. */
  manifestChanged: boolean;
}

export function planSync(
  local: ReadonlyMap<string, HashedEntry>,
  remote: ReadonlyMap<string, RemoteObject>,
  committed: ReadonlyMap<string, ManifestEntry> | undefined,
): Plan {
  const bySha = new Map<string, string>();
  for (const o of remote.values()) if (o.type === 'file' && o.size > 0 && !bySha.has(o.sha256)) bySha.set(o.sha256, o.path);

  const plan: Plan = { uploads: [], copies: [], unchanged: [], deletes: [], uploadBytes: 0, copyBytes: 0, manifestChanged: committed === undefined };
  for (const entry of local.values()) {
    const there = remote.get(entry.path);
    if (there && there.type === entry.type && there.sha256 === entry.sha256) {
      plan.unchanged.push({ entry, etag: there.etag });
      if (!plan.manifestChanged && !sameManifestEntry(committed?.get(entry.path), entry, there.etag)) plan.manifestChanged = true;
      continue;
    }
    plan.manifestChanged = true;
    const source = entry.type === 'file' && entry.size > 0 ? bySha.get(entry.sha256) : undefined;
    if (source !== undefined) {
      plan.copies.push({ from: source, entry });
      plan.copyBytes += entry.type === 'file' ? entry.size : 0;
    } else {
      plan.uploads.push(entry);
      plan.uploadBytes += entry.type === 'file' ? entry.size : Buffer.byteLength(entry.target);
    }
  }
  for (const p of remote.keys()) if (!local.has(p)) plan.deletes.push(p);
  if (committed) for (const p of committed.keys()) if (!local.has(p)) plan.manifestChanged = true;
  plan.deletes.sort();
  return plan;
}

function sameManifestEntry(m: ManifestEntry | undefined, e: HashedEntry, etag: string): boolean {
  if (!m || m.type !== e.type || m.etag !== etag || m.mtimeMs !== e.mtimeMs) return false;
  if (m.type === 'file' && e.type === 'file') return m.sha256 === e.sha256 && m.size === e.size && m.mode === e.mode;
  return m.type === 'symlink' && e.type === 'symlink' && m.target === e.target;
}

export interface DeleteGuard {
  /** Absolute limit from --max-delete; undefined means the default fraction applies. */
  maxDelete: number | undefined;
  force: boolean;
}

/** Deleting more than half of a workspace (and more than this many files) needs --force or --max-delete. */
export const DEFAULT_DELETE_FLOOR = 10;

export function checkDeleteGuard(workspace: string, deletes: number, remoteCount: number, guard: DeleteGuard): void {
  if (guard.force || deletes === 0) return;
  if (guard.maxDelete !== undefined) {
    if (deletes > guard.maxDelete) {
      throw new SyncError('DELETE_LIMIT', `refusing to delete ${deletes} objects from workspace "${workspace}": --max-delete is ${guard.maxDelete}`, {
        hint: 'check the workspace directory; raise --max-delete or pass --force if this is intended (--dry-run lists them)',
      });
    }
    return;
  }
  if (deletes > DEFAULT_DELETE_FLOOR && deletes > remoteCount / 2) {
    throw new SyncError('DELETE_LIMIT', `refusing to delete ${deletes} of ${remoteCount} objects from workspace "${workspace}" (more than half)`, {
      hint: 'check the workspace directory; pass --max-delete N or --force if this is intended (--dry-run lists them)',
    });
  }
}

/** Manifest entry for a synced local entry, given its object's ETag. */
export function toManifestEntry(e: HashedEntry, etag: string): ManifestEntry {
  return e.type === 'file'
    ? { path: e.path, type: 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: e.sha256, etag }
    : { path: e.path, type: 'symlink', target: e.target, mtimeMs: e.mtimeMs, etag };
}
