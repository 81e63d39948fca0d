/**
 * What a sync commits, decided from the plan and the transfers' results, without I/O: landed entries
 * as they were read; paths that vanished meanwhile leave the tree; paths that could not be read or
 * stored keep their committed version. The local side (the snapshot's own map) is updated to what
 * ends up in the bucket.
 */
import { sha256Hex } from '@workspace-sync/shared';
import { sameContent, sameTreeEntry, type ContentLocation, type HashedEntry, type Plan, type PlainObject } from './planner.js';
import type { MutableMap } from './overlay.js';
import type { HashRecord } from './state.js';
import type { TransferResult } from './uploader.js';
import type { View, ViewEntry } from './view.js';

export interface Outcome {
  /** Entries whose tree entry or known plain ETag changes. */
  upserts: Map<string, ViewEntry>;
  /** The part of `upserts` that changes the tree. */
  treeUpserts: ReadonlyMap<string, ViewEntry>;
  removes: Set<string>;
  plainDeletes: Set<string>;
  /** Stat records to save, and paths whose records go. */
  records: Map<string, HashRecord>;
  recordRemoves: string[];
  /** Paths for the commit's change list, and the bytes of added and modified files. */
  changes: { added: string[]; modified: string[]; deleted: string[]; bytes: number };
  /** A new commit is needed. */
  mustCommit: boolean;
}

export interface OutcomeInput {
  view: View;
  /** Plain objects known apart from the view (journal, verified listing). */
  plain: ReadonlyMap<string, PlainObject | undefined>;
  /** The local side as hashed for the plan; updated in place. */
  local: MutableMap<string, HashedEntry>;
  /** The records of the files hashed for the plan; taken over: updated in place into the `records` to save. */
  records: Map<string, HashRecord>;
  /** Paths that left the local side since the stat records were saved. */
  gone: Iterable<string>;
  plan: Pick<Plan, 'removed' | 'plainDeletes' | 'changes'>;
  transfers: Pick<TransferResult, 'landed' | 'skipped' | 'vanished'>;
  contentOf: (sha256: string) => ContentLocation | undefined;
}

export function decideOutcome(input: OutcomeInput): Outcome {
  const { view, local, transfers } = input;
  const upserts = new Map<string, ViewEntry>();
  const removes = new Set(input.plan.removed);
  const plainDeletes = new Set(input.plan.plainDeletes);
  const { records } = input;
  const deleted = new Set(input.plan.changes.deleted);
  for (const s of transfers.skipped) {
    local.delete(s.path);
    records.delete(s.path);
    const committed = view.entries.get(s.path);
    if (committed) local.set(s.path, asHashed(s.path, committed));
  }
  for (const p of transfers.vanished) {
    local.delete(p);
    records.delete(p);
    if (view.entries.has(p)) { removes.add(p); deleted.add(p); }
    plainDeletes.add(p);
  }
  for (const [p, l] of transfers.landed) {
    local.set(p, l.entry);
    if (l.record && l.entry.type === 'file') records.set(p, l.record);
    const old = view.entries.get(p);
    // What the plain object holds: written now, or known from the journal or a verified listing, or the view's.
    // (An mtime-only change leaves the plain object right: its bytes and mode are what it holds.)
    const etag = plainEtag(l.plain ?? input.plain.get(p), l.entry) ?? (old && sameContent(old, l.entry) ? old.etag : undefined);
    const location = l.entry.type === 'file' && l.entry.size > 0 ? l.location ?? input.contentOf(l.entry.sha256) : undefined;
    if (!old || view.head === undefined || !sameTreeEntry(old, l.entry) || old.etag !== etag) upserts.set(p, toViewEntry(l.entry, location, etag));
  }
  // Plain objects verified apart from the view (a full compare, the journal) that hold the committed
  // entry: the view records their ETags, so the side map stays small.
  for (const [p, o] of input.plain) {
    if (!o || transfers.landed.has(p) || upserts.has(p)) continue;
    const old = view.entries.get(p);
    const mine = local.get(p);
    if (old && mine && sameTreeEntry(old, mine) && old.etag !== o.etag && plainEtag(o, mine) === o.etag) upserts.set(p, { ...old, etag: o.etag });
  }
  // Before the first commit every upsert changes the tree: the same map (100k files are megabytes of map).
  let treeUpserts: ReadonlyMap<string, ViewEntry> = upserts;
  if (view.head !== undefined) {
    const changed = new Map<string, ViewEntry>();
    for (const [p, e] of upserts) {
      const old = view.entries.get(p);
      if (!old || !sameTreeEntry(old, asHashed(p, e))) changed.set(p, e);
    }
    treeUpserts = changed;
  }
  const { added, modified } = input.plan.changes;
  const bytes = [...added, ...modified].reduce((n, p) => {
    const e = local.get(p);
    return n + (e?.type === 'file' ? e.size : 0);
  }, 0);
  return {
    upserts, treeUpserts, removes, plainDeletes, records,
    recordRemoves: [...input.gone, ...removes].filter((p) => !local.has(p)),
    changes: { added, modified, deleted: [...deleted], bytes },
    mustCommit: view.head === undefined || treeUpserts.size > 0 || removes.size > 0,
  };
}

export function plainEtag(plain: PlainObject | undefined, e: HashedEntry): string | undefined {
  if (!plain) return undefined;
  return plain.sha256 === e.sha256 && (e.type === 'symlink' || plain.mode === e.mode) ? plain.etag : undefined;
}

function toViewEntry(e: HashedEntry, loc: ContentLocation | undefined, etag: string | undefined): ViewEntry {
  return e.type === 'file'
    ? { type: 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: e.sha256, pack: loc?.pack, offset: loc?.offset ?? 0, chunks: loc?.chunks, etag }
    : { type: 'symlink', target: e.target, mtimeMs: e.mtimeMs, etag };
}

function asHashed(path: string, e: ViewEntry): HashedEntry {
  return e.type === 'file'
    ? { type: 'file', path, size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: e.sha256 }
    : { type: 'symlink', path, target: e.target, mtimeMs: e.mtimeMs, sha256: sha256Hex(e.target) };
}
