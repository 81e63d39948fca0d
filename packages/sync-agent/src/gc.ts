/**
 * Garbage collection of a workspace's format-v2 store: mark everything the retained commits
 * reference, sweep what nothing retained references.
 *
 * Retained: the last `keepGenerations` generations (at least 2: the head and its parent, which a
 * push in flight may be building on), every commit younger than `keepFor`, and every commit younger
 * than the grace period. Swept: commits, tree packs, data packs and blobs that no retained commit
 * references and that are older than the grace period, so a push in flight — whose new objects are
 * young and whose reused objects belong to its base, a retained commit — never loses what it is
 * about to commit. Abandoned multipart uploads older than the grace period are aborted too.
 * Plain objects are not gc's business: they mirror the head.
 */
import {
  blobsPrefix, commitsPrefix, controlPrefix, createTreeReader, decodeManifest, isSyncError, manifestKey,
  packsPrefix, treePacksPrefix, walkTree, type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import { loadHistory, readCommit } from './history.js';

export interface GcOptions {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  keepGenerations: number;
  keepForMs: number;
  graceMs: number;
  dryRun: boolean;
  log: Logger;
  now?: number;
}

export interface GcReport {
  workspace: string;
  dryRun: boolean;
  commitsKept: number;
  commitsDeleted: number;
  objectsDeleted: number;
  bytesDeleted: number;
  uploadsAborted: number;
  /** Objects kept only because they are younger than the grace period. */
  young: number;
  seconds: number;
}

interface Listed { key: string; size: number; lastModified: Date | undefined }

export async function collectGarbage(opts: GcOptions): Promise<GcReport> {
  const started = performance.now();
  const { store, prefix, workspace, log } = opts;
  const now = opts.now ?? Date.now();
  const report: GcReport = {
    workspace, dryRun: opts.dryRun, commitsKept: 0, commitsDeleted: 0, objectsDeleted: 0, bytesDeleted: 0, uploadsAborted: 0, young: 0, seconds: 0,
  };
  const history = await loadHistory(store, prefix, workspace);
  const headGen = history.head?.commit.generation ?? 0;
  const keep = Math.max(2, opts.keepGenerations);
  const age = (d: Date | undefined) => (d ? now - d.getTime() : 0);
  const retained = history.listed.filter((c) => c.generation > headGen - keep || age(c.lastModified) < opts.keepForMs || age(c.lastModified) < opts.graceMs);
  const retainedStems = new Set(retained.map((c) => c.stem));
  if (history.head) retainedStems.add(`${String(headGen).padStart(12, '0')}-${history.head.commit.id}`);

  // Mark. Unchanged subtrees share refs between generations: each tree object is read once.
  const treePacks = new Set<string>();
  const dataPacks = new Set<string>();
  const blobs = new Set<string>();
  const seen = new Set<string>();
  const reader = createTreeReader({ store, prefix, workspace });
  const roots = await Promise.all([...retainedStems].map(async (stem) => {
    try {
      return (await readCommit(store, prefix, workspace, stem)).root;
    } catch (err) {
      // Gone meanwhile (another gc) or not a commit of ours: nothing of it to keep.
      if (isSyncError(err, 'OBJECT_NOT_FOUND') || isSyncError(err, 'MANIFEST_INVALID')) return undefined;
      throw err;
    }
  }));
  for (const root of roots) {
    if (!root || seen.has(root[3])) continue;
    seen.add(root[3]);
    treePacks.add(root[0]);
    await walkTree(reader, root, (e) => {
      if (e.kind === 'dir') {
        if (seen.has(e.ref[3])) return false;
        seen.add(e.ref[3]);
        treePacks.add(e.ref[0]);
      } else if (e.kind === 'file' && e.size > 0) {
        if (e.pack !== undefined) dataPacks.add(e.pack);
        else blobs.add(e.sha256);
      }
      return undefined;
    }, '', (_path, parts) => { for (const p of parts) treePacks.add(p[0]); });
  }
  // A workspace still read as v1 (its manifest not yet replaced by a stub) keeps its v1 packs.
  for (const p of await v1Packs(store, prefix, workspace)) dataPacks.add(p);

  // Sweep.
  const doomed: Listed[] = [];
  /** Marks an unreferenced object for deletion unless it is younger than the grace period; true when it goes. */
  const consider = (item: Listed, used: boolean): boolean => {
    if (used) return false;
    if (age(item.lastModified) < opts.graceMs) { report.young++; return false; }
    doomed.push(item);
    return true;
  };
  for (const item of await listAll(store, commitsPrefix(prefix, workspace))) {
    const stem = item.key.slice(commitsPrefix(prefix, workspace).length).replace(/\.json$/, '');
    if (retainedStems.has(stem)) report.commitsKept++;
    else if (consider(item, false)) report.commitsDeleted++;
  }
  for (const item of await listAll(store, treePacksPrefix(prefix, workspace))) consider(item, treePacks.has(nameOf(item.key, '.pack')));
  for (const item of await listAll(store, packsPrefix(prefix, workspace))) consider(item, dataPacks.has(nameOf(item.key, '.pack')));
  for (const item of await listAll(store, blobsPrefix(prefix, workspace))) consider(item, blobs.has(nameOf(item.key, '')));
  report.objectsDeleted = doomed.length;
  report.bytesDeleted = doomed.reduce((n, d) => n + d.size, 0);

  const stale: Array<{ key: string; uploadId: string }> = [];
  try {
    for await (const u of store.listUploads(controlPrefix(prefix, workspace))) {
      if (age(u.initiated) >= opts.graceMs) stale.push(u);
    }
  } catch (err) {
    // Some S3-compatible servers cannot list uploads (501), and a least-privilege policy may not allow it
    // (docs/security.md): there is nothing gc can sweep there.
    if (!/NotImplemented|HTTP 501/.test((err as Error).message) && !isSyncError(err, 'ACCESS_DENIED')) throw err;
    log.debug({ workspace }, 'gc: multipart uploads cannot be listed here; skipping that sweep');
  }
  report.uploadsAborted = stale.length;

  if (!opts.dryRun) {
    // Commits go first: a reader listing history never finds a commit whose trees are gone.
    const ordered = [...doomed].sort((a, b) => Number(b.key.includes('/commits/')) - Number(a.key.includes('/commits/')));
    const { failed } = await store.deleteMany(ordered.map((d) => d.key));
    for (const f of failed) log.warn({ key: f.key, error: f.message }, 'gc: delete failed; the next gc tries again');
    report.objectsDeleted -= failed.length;
    for (const u of stale) await store.abortUpload(u.key, u.uploadId);
  }
  report.seconds = (performance.now() - started) / 1000;
  log.debug({ ...report }, 'gc done');
  return report;
}

async function listAll(store: ObjectStore, prefix: string): Promise<Listed[]> {
  const out: Listed[] = [];
  for await (const item of store.list(prefix)) if (!('commonPrefix' in item)) out.push(item);
  return out;
}

function nameOf(key: string, suffix: string): string {
  const base = key.slice(key.lastIndexOf('/') + 1);
  return suffix && base.endsWith(suffix) ? base.slice(0, -suffix.length) : base;
}

async function v1Packs(store: ObjectStore, prefix: string, workspace: string): Promise<string[]> {
  try {
    const res = await store.get(manifestKey(prefix, workspace));
    if (res.notModified) return [];
    return (decodeManifest(res.body, manifestKey(prefix, workspace)).packs ?? []).map((p) => p.id);
  } catch {
    // No manifest, a stub of a migrated workspace, or a damaged one: no v1 pack is needed.
    return [];
  }
}
