/**
 * One push of one workspace: a stat walk that never enters excluded directories → hash only what the
 * state index cannot vouch for → the shared sync core (plan, transfers, manifest last, state, deletes).
 * Watch runs the same function to reconcile a workspace on start, on its return, and on a rescan.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createFilter, SyncError, type Filter } from '@workspace-sync/shared';
import { scanWorkspace, type ScanResult } from './scan.js';
import { hashSnapshot } from './snapshot.js';
import { openStateStore, stateDirFor, type StateStore } from './state.js';
import { syncSnapshot, type PushReport, type SyncOptions, type SyncOutcome } from './sync.js';

export type PushOptions = SyncOptions;
export type { PushReport };

export async function pushWorkspace(opts: PushOptions): Promise<PushReport> {
  return (await reconcileWorkspace(opts)).report;
}

/** The push path, returning what watch needs to go on incrementally; `filter` lets it share its own. */
export async function reconcileWorkspace(opts: SyncOptions & { filter?: Filter; stateStore?: StateStore }): Promise<SyncOutcome> {
  const started = performance.now();
  const { config, workspace } = opts;
  const wsDir = path.join(config.root, workspace);
  await assertWorkspaceDir(config.root, workspace);

  const filter = opts.filter ?? createFilter({ root: config.root, workspace, excludes: config.exclude, gitIndex: config.gitIndex });
  let scan: ScanResult | undefined;
  try {
    scan = await scanWorkspace(wsDir, filter);
  } catch (err) {
    throw new SyncError('WORKSPACE_UNREADABLE', `cannot read workspace directory ${wsDir} (${(err as NodeJS.ErrnoException).code})`, {
      hint: 'check its permissions; nothing was changed in the bucket', cause: err,
    });
  }
  const stateStore = opts.stateStore ?? workspaceStateStore(opts);
  const state = stateStore.load();
  const snap = await hashSnapshot(wsDir, scan.entries, state?.records);
  const skipped = [...scan.skipped, ...snap.skipped];
  // The scan's entries are hashed copies now: let them go before the sync (100k files are megabytes).
  scan = undefined;
  const gone = state ? [...state.records.keys()].filter((p) => !snap.entries.has(p)) : [];
  return syncSnapshot(opts, {
    wsDir, entries: snap.entries, records: snap.records, skipped, hashed: snap.hashed, gone,
  }, stateStore, state, started);
}

export function workspaceStateStore(opts: Pick<SyncOptions, 'config' | 'workspace' | 'log'>): StateStore {
  return openStateStore(stateDirFor(opts.config.stateDir, opts.config, opts.config.root), opts.workspace, opts.log);
}

/** The workspace must be an existing, readable directory: anything else is an error, never deletes. */
export async function assertWorkspaceDir(root: string, workspace: string): Promise<void> {
  const wsDir = path.join(root, workspace);
  try {
    const st = await stat(wsDir);
    if (st.isDirectory()) return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') {
      throw new SyncError('WORKSPACE_UNREADABLE', `cannot access workspace directory ${wsDir} (${code})`, {
        hint: 'check its permissions; nothing was changed in the bucket', cause: err,
      });
    }
  }
  throw new SyncError('WORKSPACE_MISSING', `workspace "${workspace}" does not exist: no directory ${wsDir}`, {
    hint: 'check the name and --root / WORKSPACES_DIR (`sync-agent push` with no name pushes every workspace); nothing was changed in the bucket',
  });
}
