/**
 * One push of one workspace: a stat walk that never enters excluded directories → hash only what the
 * state index cannot vouch for → the shared sync core (plan, transfers, manifest last, state, deletes).
 * Watch runs the same function to reconcile a workspace on start, on its return, and on a rescan.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createFilter, SyncError, type Filter } from '@workspace-sync/shared';
import { digestOfScan, leaveMarker, readMarker } from './clean-marker.js';
import { emptyPlan } from './planner.js';
import { readHead } from './remote.js';
import { scanWorkspace, type ScanResult } from './scan.js';
import { hashSnapshot } from './snapshot.js';
import { openStateStore, stateDirFor, type StateStore } from './state.js';
import { syncSnapshot, type PushReport, type SyncOptions, type SyncOutcome } from './sync.js';

export type PushOptions = SyncOptions;
export type { PushReport };

export async function pushWorkspace(opts: PushOptions): Promise<PushReport> {
  const started = performance.now();
  const walked: Walked = { scan: await walkWorkspace(opts), started };
  const stateStore = workspaceStateStore(opts);
  const unchanged = await answerFromMarker(opts, stateStore, walked.scan!, started);
  if (unchanged) return unchanged;
  const outcome = await reconcileWorkspace({ ...opts, stateStore }, walked);
  if (!opts.dryRun) leaveMarker(stateStore, opts.workspace, outcome.state, outcome.local, outcome.report.skipped.length);
  return outcome.report;
}

/** A walk already made, handed to `reconcileWorkspace`, which drops it once hashed (100k files are megabytes). */
interface Walked {
  scan: ScanResult | undefined;
  started: number;
}

/**
 * The push path, returning what watch needs to go on incrementally; `filter` lets it share its own,
 * `walked` hands over a walk already made.
 */
export async function reconcileWorkspace(opts: SyncOptions & { filter?: Filter; stateStore?: StateStore }, walked?: Walked): Promise<SyncOutcome> {
  const started = walked?.started ?? performance.now();
  const { config, workspace } = opts;
  const wsDir = path.join(config.root, workspace);
  let scan: ScanResult | undefined = walked?.scan ?? await walkWorkspace(opts, opts.filter);
  const stateStore = opts.stateStore ?? workspaceStateStore(opts);
  const state = stateStore.load();
  const snap = await hashSnapshot(wsDir, scan.entries, state?.records);
  const skipped = [...scan.skipped, ...snap.skipped];
  // The scan's entries are hashed copies now: let them go before the sync.
  scan = undefined;
  if (walked) walked.scan = undefined;
  const gone = state ? [...state.records.keys()].filter((p) => !snap.entries.has(p)) : [];
  return syncSnapshot(opts, {
    wsDir, entries: snap.entries, records: snap.records, skipped, hashed: snap.hashed, gone,
  }, stateStore, state, started);
}

/** The stat walk of an existing workspace directory, with its filter (or `filter`, one a watch already has). */
async function walkWorkspace(opts: Pick<SyncOptions, 'config' | 'workspace'>, filter?: Filter): Promise<ScanResult> {
  const { config, workspace } = opts;
  const wsDir = path.join(config.root, workspace);
  await assertWorkspaceDir(config.root, workspace);
  try {
    return await scanWorkspace(wsDir, filter ?? createFilter({ root: config.root, workspace, excludes: config.exclude, gitIndex: config.gitIndex }));
  } catch (err) {
    throw new SyncError('WORKSPACE_UNREADABLE', `cannot read workspace directory ${wsDir} (${(err as NodeJS.ErrnoException).code})`, {
      hint: 'check its permissions; nothing was changed in the bucket', cause: err,
    });
  }
}

/**
 * Nothing to do when the walk matches the last push's clean marker, the state files are as that
 * push left them and the head is unchanged (one conditional GET): the report a trusted push that
 * changes nothing would give, without loading the state index. Undefined: go the whole way.
 */
async function answerFromMarker(opts: PushOptions, stateStore: StateStore, scan: ScanResult, started: number): Promise<PushReport | undefined> {
  const { config, store, workspace } = opts;
  if (scan.skipped.length > 0) return undefined;
  const marker = readMarker(stateStore, workspace);
  if (!marker || marker.files !== scan.size || marker.state !== stateStore.identity()) return undefined;
  if (digestOfScan(scan).digest !== marker.digest) return undefined;
  if (!(await readHead(store, config.prefix, workspace, marker.head))?.notModified) return undefined;
  opts.onPlan?.(emptyPlan());
  return {
    workspace, dryRun: !!opts.dryRun, uploaded: 0, copied: 0, deleted: 0, unchanged: marker.files, skipped: [], bytes: 0,
    seconds: (performance.now() - started) / 1000, hashed: 0, manifestWritten: false, manifestEtag: marker.head, generation: marker.generation,
    requests: 1, trustedState: true, marker: true, conflicts: 0, changes: { added: 0, modified: 0, deleted: 0 },
    ...(opts.dryRun ? { plan: { uploads: [], deletes: [], uploadBytes: 0, changed: [] } } : {}),
  };
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
