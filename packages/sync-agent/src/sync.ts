/**
 * The core both push and watch run once they know the local side of a workspace (a hashed snapshot):
 * remote view → plan → guards → transfers → manifest (the commit point) → state → deletes.
 * A crash anywhere before the manifest PUT leaves the previous manifest valid and the journal lets the
 * next run skip what already landed; deletes run only after the commit.
 */
import { hostname } from 'node:os';
import {
  encodeManifest, manifestKey, MANIFEST_FORMAT, MANIFEST_VERSION, objectKey, SyncError,
  type AgentConfig, type Logger, type Manifest, type ManifestEntry, type ObjectStore, type PackInfo,
} from '@workspace-sync/shared';
import { updatePacks, type PackLimits } from './pack.js';
import { checkDeleteGuard, planSync, toManifestEntry, type HashedEntry, type Plan } from './planner.js';
import { loadRemote } from './remote.js';
import type { Skipped } from './scan.js';
import type { HashRecord, StateStore, WorkspaceState } from './state.js';
import { executeTransfers, type TransferContext } from './uploader.js';
import { AGENT_VERSION } from './version.js';

export interface SyncOptions {
  config: AgentConfig;
  store: ObjectStore;
  log: Logger;
  workspace: string;
  dryRun?: boolean;
  force?: boolean;
  onPlan?: (plan: Plan) => void;
  onBytes?: TransferContext['onBytes'];
  onFile?: TransferContext['onFile'];
  signal?: AbortSignal;
  /** Overrides the pack limits (tests). */
  packLimits?: PackLimits;
}

export interface PushReport {
  workspace: string;
  dryRun: boolean;
  uploaded: number;
  copied: number;
  deleted: number;
  unchanged: number;
  skipped: Skipped[];
  bytes: number;
  seconds: number;
  hashed: number;
  manifestWritten: boolean;
  manifestEtag: string | undefined;
  generation: number;
  requests: number;
  trustedState: boolean;
  plan?: { uploads: string[]; copies: Array<{ from: string; to: string }>; deletes: string[]; uploadBytes: number };
}

/** The local side of a workspace: every synced entry, hashed, with the hash records to keep. */
export interface LocalSnapshot {
  wsDir: string;
  entries: ReadonlyMap<string, HashedEntry>;
  records: Record<string, HashRecord>;
  skipped: Skipped[];
  hashed: number;
}

export interface SyncOutcome {
  report: PushReport;
  /** The state as saved (unchanged on a dry run). */
  state: WorkspaceState | undefined;
  /** The local entries as they now are in the bucket's manifest (what landed is what was read). */
  local: Map<string, HashedEntry>;
}

export async function syncSnapshot(
  opts: SyncOptions,
  snap: LocalSnapshot,
  stateStore: StateStore,
  state: WorkspaceState | undefined,
  started: number,
): Promise<SyncOutcome> {
  const { config, store, log, workspace } = opts;
  const { wsDir } = snap;
  const journal = await stateStore.readJournal();
  const skipped = [...snap.skipped];
  const remote = await loadRemote({ store, prefix: config.prefix, workspace, state, journal, local: snap.entries, concurrency: config.concurrency });
  log.debug({ workspace, local: snap.entries.size, remote: remote.objects.size, trusted: remote.trusted, hashed: snap.hashed }, 'compared');

  if (snap.entries.size === 0 && remote.objects.size > 0) {
    throw new SyncError('WORKSPACE_EMPTY', `workspace "${workspace}" has no files to sync but ${remote.objects.size} objects exist in the bucket; refusing to delete them`, {
      hint: `check ${wsDir} (an unmounted disk or a wrong --root?); nothing was changed in the bucket`,
    });
  }

  const plan = planSync(snap.entries, remote.objects, remote.committed);
  // Paths we could not read keep their previous remote version rather than being deleted.
  const kept = keptEntries(skipped, remote.committed);
  const pending = new Set(remote.trusted ? state?.pendingDeletes ?? [] : []);
  const wsKey = (p: string) => objectKey(config.prefix, workspace, p);
  plan.deletes = plan.deletes.filter((p) => !isCovered(p, skipped));
  const newDeletes = plan.deletes.filter((p) => !pending.has(wsKey(p)));
  checkDeleteGuard(workspace, newDeletes.length, remote.committed?.size ?? remote.objects.size, { maxDelete: config.maxDelete, force: !!opts.force });
  opts.onPlan?.(plan);

  const report: PushReport = {
    workspace, dryRun: !!opts.dryRun, uploaded: 0, copied: 0, deleted: 0, unchanged: plan.unchanged.length, skipped,
    bytes: 0, seconds: 0, hashed: snap.hashed, manifestWritten: false, manifestEtag: remote.manifestEtag,
    generation: remote.generation, requests: remote.requests, trustedState: remote.trusted,
  };
  if (opts.dryRun) {
    report.plan = {
      uploads: plan.uploads.map((e) => e.path), copies: plan.copies.map((c) => ({ from: c.from, to: c.entry.path })),
      deletes: plan.deletes, uploadBytes: plan.uploadBytes,
    };
    report.seconds = (performance.now() - started) / 1000;
    return { report, state, local: new Map(snap.entries) };
  }

  const transfers = await executeTransfers(plan, {
    store, prefix: config.prefix, workspace, wsDir, concurrency: config.concurrency,
    multipartThreshold: config.multipartThreshold, journal: (r) => stateStore.appendJournal(r),
    onBytes: opts.onBytes, onFile: opts.onFile, log, signal: opts.signal,
  });
  report.requests += transfers.landed.size;
  skipped.push(...transfers.skipped);
  for (const { how } of transfers.landed.values()) how === 'copied' ? report.copied++ : report.uploaded++;
  report.bytes = transfers.bytes;

  // The new manifest: what landed, what was already right, and the previous version of what we could not read.
  let entries: ManifestEntry[] = [];
  const records = { ...snap.records };
  const local = new Map(snap.entries);
  for (const { entry, etag } of plan.unchanged) entries.push(toManifestEntry(entry, etag));
  for (const { entry, etag, stat: st } of transfers.landed.values()) {
    entries.push(toManifestEntry(entry, etag));
    local.set(entry.path, entry);
    if (entry.type === 'file' && st) {
      records[entry.path] = { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, sha256: entry.sha256, hashedAtMs: st.readAtMs };
    }
  }
  const listed = new Set(entries.map((e) => e.path));
  for (const e of kept) if (!listed.has(e.path)) { entries.push(e); listed.add(e.path); }
  for (const s of transfers.skipped) {
    local.delete(s.path);
    const prev = remote.committed?.get(s.path);
    if (prev && !listed.has(s.path)) { entries.push(prev); listed.add(s.path); }
  }
  // Files that vanished since the scan are gone locally: their remote copies go too.
  const deletes = new Set(plan.deletes.map(wsKey));
  for (const p of transfers.vanished) {
    local.delete(p);
    delete records[p];
    if (remote.objects.has(p) && !listed.has(p)) deletes.add(wsKey(p));
  }
  for (const k of pending) deletes.add(k);

  const mustPublish = plan.manifestChanged || transfers.landed.size > 0 || transfers.vanished.length > 0;
  let manifestEtag = remote.manifestEtag;
  let generation = remote.generation;
  let packs: PackInfo[] = remote.packs;
  let obsoletePacks: string[] = [];
  if (mustPublish) {
    const packed = await updatePacks(entries, remote, {
      store, prefix: config.prefix, workspace, wsDir, log, enabled: config.pack, limits: opts.packLimits,
    });
    ({ entries, packs } = packed);
    obsoletePacks = packed.obsolete;
    report.requests += packed.requests;
    generation += 1;
    const manifest: Manifest = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, workspace, generation, createdAt: new Date().toISOString(),
      writer: { host: hostname(), agent: `sync-agent/${AGENT_VERSION}` }, entries, ...(packs.length > 0 ? { packs } : {}),
    };
    const res = await store.put(manifestKey(config.prefix, workspace), encodeManifest(manifest), {
      contentType: 'application/json', contentEncoding: undefined, cacheControl: 'no-cache',
    });
    manifestEtag = res.etag;
    report.manifestWritten = true;
    report.requests++;
  }

  const newState: WorkspaceState = {
    version: 1, workspace, manifestEtag, generation, entries: mustPublish ? entries : [...(remote.committed?.values() ?? [])],
    packs, files: records, pendingDeletes: [...deletes],
  };
  // A no-op leaves the state index as it was: skip rewriting it (megabytes for a large workspace).
  const stateUnchanged = state !== undefined && remote.trusted && !mustPublish && deletes.size === 0
    && journal.length === 0 && state.pendingDeletes.length === 0 && sameRecords(records, state.files);
  if (!stateUnchanged) {
    await stateStore.save(newState);
    await stateStore.clearJournal();
  }

  if (deletes.size > 0) {
    const { failed } = await store.deleteMany([...deletes]);
    report.requests += Math.ceil(deletes.size / 1000);
    report.deleted = deletes.size - failed.length;
    for (const f of failed) log.warn({ key: f.key, error: f.message }, 'delete failed; will retry on the next push');
    newState.pendingDeletes = failed.map((f) => f.key);
    await stateStore.save(newState);
  }
  if (obsoletePacks.length > 0) {
    // Best effort: a pack left behind is only storage, and the next repack lists and removes it.
    const { failed } = await store.deleteMany(obsoletePacks);
    report.requests += Math.ceil(obsoletePacks.length / 1000);
    for (const f of failed) log.debug({ key: f.key, error: f.message }, 'deleting an old pack failed');
  }
  report.manifestEtag = manifestEtag;
  report.generation = generation;
  report.seconds = (performance.now() - started) / 1000;
  return { report, state: newState, local };
}

function sameRecords(a: Record<string, HashRecord>, b: Record<string, HashRecord>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => a[k] === b[k]);
}

function isCovered(p: string, skipped: readonly Skipped[]): boolean {
  return skipped.some((s) => (s.path.endsWith('/') ? p.startsWith(s.path) : p === s.path));
}

function keptEntries(skipped: readonly Skipped[], committed: ReadonlyMap<string, ManifestEntry> | undefined): ManifestEntry[] {
  if (!committed || skipped.length === 0) return [];
  return [...committed.values()].filter((e) => isCovered(e.path, skipped));
}
