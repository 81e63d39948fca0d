/**
 * Syncs a batch of changed paths without walking the whole workspace: the in-memory mirror (the local
 * side as of the last sync, and the state index) is updated by lstat'ing only the changed paths and
 * re-reading only the changed directories' subtrees, then the shared sync core plans it against the
 * remote (one conditional GET), transfers, publishes the manifest and saves the state, as push does.
 * The mirror is replaced only when the sync succeeded; a failed batch leaves it as it was.
 */
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { isSafeRelativePath, type Filter } from '@workspace-sync/shared';
import type { HashedEntry } from './planner.js';
import { assertWorkspaceDir } from './push.js';
import { entryFor, scanWorkspace, type LocalEntry, type Skipped } from './scan.js';
import { Overlay } from './overlay.js';
import { hashSnapshot } from './snapshot.js';
import type { AgentState, StateStore } from './state.js';
import { syncSnapshot, type SyncOptions, type SyncOutcome } from './sync.js';

/** What watch knows of one workspace between syncs. */
export interface Mirror {
  local: Map<string, HashedEntry>;
  state: AgentState;
  skipped: readonly Skipped[];
}

/** The mirror after a sync that succeeded (a watch batch's changes now land in the mirror's map). */
export function mirrorFrom(outcome: SyncOutcome): Mirror {
  const { local } = outcome;
  const map = local instanceof Overlay ? (local as Overlay<string, HashedEntry>).commit()
    : local instanceof Map ? local as Map<string, HashedEntry> : new Map(local);
  return { local: map, state: outcome.state, skipped: outcome.report.skipped };
}

export interface ChangedPaths {
  /** Paths to lstat (files, symlinks, or whatever is there now). */
  files: readonly string[];
  /** Directories whose whole subtree is re-read. */
  dirs: readonly string[];
}

export async function syncChanges(
  opts: SyncOptions & { filter: Filter; stateStore: StateStore },
  mirror: Mirror,
  changed: ChangedPaths,
): Promise<SyncOutcome> {
  const started = performance.now();
  const { config, workspace, filter } = opts;
  const wsDir = path.join(config.root, workspace);
  await assertWorkspaceDir(config.root, workspace);

  const local = new Overlay(mirror.local);
  const skipped = new Map(mirror.skipped.map((s) => [s.path, s]));
  const toHash = new Map<string, LocalEntry>();
  /** Every path this batch looked at: the plan considers these and only these. */
  const touched = new Set<string>();
  const forget = (p: string) => { if (local.delete(p)) touched.add(p); skipped.delete(p); touched.add(p); };
  const forgetUnder = (dir: string) => {
    const head = `${dir}/`;
    for (const p of local.keys()) if (p.startsWith(head)) { local.delete(p); touched.add(p); }
    for (const p of skipped.keys()) if (p.startsWith(head)) skipped.delete(p);
    for (const p of mirror.state.view.entries.keys()) if (p.startsWith(head)) touched.add(p);
    forget(dir);
    forget(head);
  };

  const rescan = async (dir: string): Promise<void> => {
    forgetUnder(dir);
    if (filter.excludes(dir, true)) return;
    try {
      const scan = await scanWorkspace(wsDir, filter, dir);
      for (const e of scan.entries.values()) toHash.set(e.path, e);
      for (const s of scan.skipped) skipped.set(s.path, s);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') await look(dir);
      else if (code !== 'ENOENT') skipped.set(`${dir}/`, { path: `${dir}/`, reason: `cannot read directory (${code})` });
    }
  };

  const look = async (p: string): Promise<void> => {
    forget(p);
    if (!isSafeRelativePath(p) || filter.excludes(p, false)) return;
    let st;
    try {
      st = await lstat(path.join(wsDir, p));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') skipped.set(p, { path: p, reason: `cannot stat (${code})` });
      return;
    }
    touched.add(p);
    if (st.isDirectory()) { await rescan(p); return; }
    try {
      const e = await entryFor(wsDir, p, st);
      if ('reason' in e) skipped.set(p, e);
      else toHash.set(p, e);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') skipped.set(p, { path: p, reason: `cannot read link (${code})` });
    }
  };

  for (const dir of changed.dirs) await rescan(dir);
  await Promise.all(changed.files.map(look));

  const snap = await hashSnapshot(wsDir, toHash, mirror.state.records);
  for (const e of snap.entries.values()) { local.set(e.path, e); touched.add(e.path); }
  for (const s of snap.skipped) skipped.set(s.path, s);
  touched.delete('');
  return syncSnapshot(opts, {
    wsDir, entries: local, records: snap.records, skipped: [...skipped.values()], hashed: snap.hashed,
    paths: [...touched].filter((p) => !p.endsWith('/')), gone: [...touched].filter((p) => !local.has(p)),
  }, opts.stateStore, mirror.state, started);
}
