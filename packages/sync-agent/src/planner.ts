/**
 * Pure planning: the local snapshot against the committed view → which tree entries change, which
 * contents the store lacks, which plain objects must be written or deleted. No I/O here; push and
 * watch both use it. `paths` says which paths to look at: every one for a push, the changed ones
 * for a watch batch, so a batch costs O(what changed).
 */
import { sha256Hex, SyncError } from '@workspace-sync/shared';
import type { Skipped } from './scan.js';
import { contentAt, type View, type ViewEntry } from './view.js';

/** A local file or symlink with its content hash (for symlinks: sha256 of the target text). */
export type HashedEntry =
  | { type: 'file'; path: string; size: number; mtimeMs: number; mode: number; sha256: string }
  | { type: 'symlink'; path: string; target: string; mtimeMs: number; sha256: string };

export type HashedFile = Extract<HashedEntry, { type: 'file' }>;

/** What a plain object is known to hold (from the journal or a verified listing). */
export interface PlainObject {
  etag: string;
  /** sha256 of the body (for a symlink: of its target) and the permission bits in its metadata. */
  sha256: string;
  mode: number;
}

/** Content uploaded by an earlier run that was not committed (from the journal). */
export interface ContentLocation {
  pack: string | undefined;
  offset: number;
  chunks: readonly string[] | undefined;
}

export interface PlanInput {
  local: ReadonlyMap<string, HashedEntry>;
  view: View;
  /** Paths to consider, each once; each is looked up in `local` and in the view. */
  paths: Iterable<string>;
  skipped: readonly Skipped[];
  /** Plain objects whose state is known apart from the view (undefined value: unknown, e.g. an intent without a result). */
  plain: ReadonlyMap<string, PlainObject | undefined>;
  pending: ReadonlyMap<string, ContentLocation>;
}

export interface Plan {
  /** Entries whose tree entry is new or different. */
  changed: HashedEntry[];
  /** Paths leaving the tree. */
  removed: string[];
  /** Files whose bytes the store does not have, one per sha256. */
  newContent: HashedFile[];
  /** Entries whose plain object must be (re)written. */
  plainWrites: HashedEntry[];
  /** Plain objects to delete once the commit is published. */
  plainDeletes: string[];
  changes: { added: string[]; modified: string[]; deleted: string[] };
  uploadBytes: number;
  /** A new commit is needed (the tree changes, or there is no v2 commit yet). */
  commit: boolean;
}

export function planSync(input: PlanInput): Plan {
  const { local, view, plain, pending } = input;
  const plan = emptyPlan();
  plan.commit = view.head === undefined;
  const queued = new Set<string>();
  const kept = keptMatcher(input.skipped);
  for (const p of input.paths) {
    const e = local.get(p);
    const c = view.entries.get(p);
    if (!e) {
      if (kept(p)) continue;
      if (c) {
        plan.removed.push(p);
        plan.changes.deleted.push(p);
      }
      if (c || plain.has(p)) plan.plainDeletes.push(p);
      continue;
    }
    // Before the first v2 commit (a migration from v1), every file needs its bytes in the store.
    const sameTree = view.head !== undefined && c !== undefined && sameTreeEntry(c, e);
    if (!sameTree) {
      plan.changed.push(e);
      if (!c) plan.changes.added.push(p);
      else if (!sameContent(c, e)) plan.changes.modified.push(p);
    }
    const held = plain.has(p) ? plain.get(p) : c?.etag !== undefined ? heldByView(c) : undefined;
    const plainOk = held !== undefined && held.sha256 === e.sha256 && (e.type === 'symlink' || held.mode === e.mode);
    if (!plainOk) plan.plainWrites.push(e);
    // An unchanged tree entry's bytes are in the store already: only changed files need a look-up.
    if (!sameTree && e.type === 'file' && e.size > 0 && !queued.has(e.sha256) && !pending.has(e.sha256)
      && (view.head === undefined || !contentAt(view, e.sha256))) {
      queued.add(e.sha256);
      plan.newContent.push(e);
      plan.uploadBytes += e.size;
    }
  }
  plan.commit ||= plan.changed.length > 0 || plan.removed.length > 0;
  plan.plainDeletes.sort();
  return plan;
}

/** A plan with nothing to do. */
export function emptyPlan(): Plan {
  return {
    changed: [], removed: [], newContent: [], plainWrites: [], plainDeletes: [],
    changes: { added: [], modified: [], deleted: [] }, uploadBytes: 0, commit: false,
  };
}

/** Every path of the local side, the view and `extra`, once each (a full push looks at all of them). */
export function* allPaths(local: ReadonlyMap<string, unknown>, view: View, extra: Iterable<string>): Generator<string> {
  for (const p of local.keys()) yield p;
  for (const p of view.entries.keys()) if (!local.has(p)) yield p;
  const seen = new Set<string>();
  for (const p of extra) {
    if (local.has(p) || view.entries.has(p) || seen.has(p)) continue;
    seen.add(p);
    yield p;
  }
}

/** The tree entry would be identical: same kind, content, mode, size and mtime. */
export function sameTreeEntry(c: ViewEntry, e: HashedEntry): boolean {
  if (c.mtimeMs !== e.mtimeMs) return false;
  return sameContent(c, e);
}

/** Same kind, bytes (or target) and mode: what a plain object holds. */
export function sameContent(c: ViewEntry, e: HashedEntry): boolean {
  if (c.type === 'file' && e.type === 'file') return c.sha256 === e.sha256 && c.size === e.size && c.mode === e.mode;
  return c.type === 'symlink' && e.type === 'symlink' && c.target === e.target;
}

function heldByView(c: ViewEntry): PlainObject {
  return c.type === 'file'
    ? { etag: c.etag!, sha256: c.sha256, mode: c.mode }
    : { etag: c.etag!, sha256: sha256Hex(c.target), mode: 0o777 };
}

/** Paths we could not read keep their committed version; a path ending in '/' covers a directory. */
function keptMatcher(skipped: readonly Skipped[]): (p: string) => boolean {
  if (skipped.length === 0) return () => false;
  const exact = new Set<string>();
  const dirs: string[] = [];
  for (const s of skipped) {
    if (s.path.endsWith('/')) dirs.push(s.path);
    else exact.add(s.path);
  }
  return (p) => exact.has(p) || dirs.some((d) => p.startsWith(d));
}

export interface DeleteGuard {
  /** Absolute limit from --max-delete; undefined means the default fraction applies. */
  maxDelete: number | undefined;
  force: boolean;
}

/** Deleting more than half of a workspace (and more than this many files) needs --force or --max-delete. */
const DEFAULT_DELETE_FLOOR = 10;

/**
 * `deletes` counts this sync's deletes plus those of the recent burst (watch passes the deletes of
 * the last minute), so a slow `rm -r` is refused as a whole, not batch by batch.
 */
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
