/**
 * What the bucket holds for one workspace. Trusted path: the head is unchanged since our last
 * commit (one conditional GET answering 304), so the state index's view is the truth. Otherwise
 * (no state, another machine pushed, a crash after the head was written): the view is rebuilt from
 * the head's commit (its trees, a few GETs of tree packs), or from a v1 manifest, and the plain
 * objects are listed; a plain object is vouched for only when its ETag is one we recorded, or when
 * its sha256 metadata says it holds the bytes the local file has. Anything else is rewritten or
 * deleted by the plan.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import PQueue from 'p-queue';
import {
  createTreeReader, decodeCommit, decodeManifest, headKey, isSafeRelativePath, isSyncError, manifestKey, MAX_COMMIT_BYTES, SyncError, walkTree, workspacePrefix,
  type Commit, type GetResult, type ObjectStore,
} from '@workspace-sync/shared';
import type { HashedEntry, PlainObject } from './planner.js';
import { jobsOn } from './settle.js';
import { emptyState, type AgentState } from './state.js';
import { addEntry, type HeadInfo, type ViewEntry } from './view.js';

export interface RemoteBase {
  state: AgentState;
  trusted: boolean;
  /** Requests this took (for --json and tests of the O(1) claim). */
  requests: number;
  /** A v1 manifest is there: once a v2 commit lands, it is replaced by a stub old readers refuse. */
  v1Manifest: boolean;
}

export interface LoadOptions {
  store: ObjectStore;
  /** The workspace directory (local files are read to check plain objects' MD5 ETags). */
  wsDir: string;
  prefix: string;
  workspace: string;
  saved: AgentState | undefined;
  local: ReadonlyMap<string, HashedEntry>;
  concurrency: number;
}

export async function loadBase(opts: LoadOptions): Promise<RemoteBase> {
  const { store, prefix, workspace, saved } = opts;
  const key = headKey(prefix, workspace);
  let requests = 1;
  const res = await readHead(store, prefix, workspace, saved?.view.head?.etag);
  if (res?.notModified) return { state: saved!, trusted: true, requests, v1Manifest: false };

  const state = emptyState();
  if (saved) {
    // The stat cache is about local files, and content that landed is still there: both carry over.
    for (const [p, r] of saved.records) state.records.set(p, r);
    for (const [s, l] of saved.pending) state.pending.set(s, l);
    state.pendingSince = saved.pendingSince;
  }
  let v1Manifest = false;
  if (res) {
    const commit = decodeCommit(res.body, `s3://${store.bucket}/${key}`);
    checkWorkspace(commit, workspace, key);
    requests += await loadCommitView(state, opts, commit, res.etag);
  } else {
    requests++;
    v1Manifest = await loadV1(state, opts);
  }
  requests += await verifyPlain(state, opts);
  return { state, trusted: false, requests, v1Manifest };
}

/**
 * The workspace's head, or undefined when it has none; with `ifNoneMatch` (the ETag last seen)
 * an unchanged head answers `notModified` and costs no body.
 */
export async function readHead(store: ObjectStore, prefix: string, workspace: string, ifNoneMatch?: string): Promise<GetResult | undefined> {
  return store.get(headKey(prefix, workspace), { maxBytes: MAX_COMMIT_BYTES, ...(ifNoneMatch ? { ifNoneMatch } : {}) }).catch((err: unknown) => {
    if (isSyncError(err, 'OBJECT_NOT_FOUND')) return undefined;
    throw err;
  });
}

function checkWorkspace(commit: Commit, workspace: string, key: string): void {
  if (commit.workspace === workspace) return;
  throw new SyncError('MANIFEST_INVALID', `head ${key} names another workspace (${commit.workspace})`, {
    hint: 'the head was copied or written by something else; delete it to start a new history for this workspace',
  });
}

/** Builds the view from a commit's trees; returns the requests it took. */
async function loadCommitView(state: AgentState, opts: LoadOptions, commit: Commit, etag: string): Promise<number> {
  const { store, prefix, workspace } = opts;
  const reader = createTreeReader({ store, prefix, workspace });
  const view = state.view;
  view.head = headOf(commit, etag);
  view.dirs.set('', { ref: commit.root, changedAtMs: Date.parse(commit.createdAt), files: commit.stats.files, bytes: commit.stats.bytes });
  await walkTree(reader, commit.root, (e) => {
    if (e.kind === 'dir') {
      view.dirs.set(e.path, { ref: e.ref, changedAtMs: e.changedAtMs, files: e.files, bytes: e.bytes });
      return;
    }
    const entry: ViewEntry = e.kind === 'file'
      ? { type: 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: e.sha256, pack: e.pack, offset: e.offset, chunks: e.chunks, etag: undefined }
      : { type: 'symlink', target: e.target, mtimeMs: e.mtimeMs, etag: undefined };
    addEntry(view, e.path, entry);
  }, '', (path, parts) => {
    const info = view.dirs.get(path);
    if (info) info.parts = parts;
  });
  return reader.fetches;
}

export function headOf(commit: Commit, etag: string): HeadInfo {
  return { etag, stem: `${String(commit.generation).padStart(12, '0')}-${commit.id}`, generation: commit.generation };
}

/**
 * A workspace last pushed in format v1: its manifest describes the plain objects (with their ETags)
 * but its content is not in the v2 store, so the plan uploads every file's bytes once (a migration).
 */
async function loadV1(state: AgentState, opts: LoadOptions): Promise<boolean> {
  const { store, prefix, workspace } = opts;
  const key = manifestKey(prefix, workspace);
  let body: Buffer;
  try {
    const res = await store.get(key);
    if (res.notModified) return false;
    body = res.body;
  } catch (err) {
    if (isSyncError(err, 'OBJECT_NOT_FOUND')) return false;
    throw err;
  }
  let manifest;
  try {
    manifest = decodeManifest(body, `s3://${store.bucket}/${key}`);
  } catch (err) {
    // A stub left by a migration whose head is gone: start a new history rather than fail forever.
    if (isSyncError(err, 'MANIFEST_TOO_NEW')) return true;
    throw err;
  }
  state.view.v1Generation = manifest.generation;
  for (const e of manifest.entries) {
    addEntry(state.view, e.path, e.type === 'file'
      ? { type: 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: e.sha256, pack: undefined, offset: 0, chunks: undefined, etag: e.etag }
      : { type: 'symlink', target: e.target, mtimeMs: e.mtimeMs, etag: e.etag });
  }
  // v1 entries say nothing about where v2 content is.
  state.view.bySha.clear();
  return true;
}

/**
 * Lists the plain objects and decides what each is known to hold. Returns the requests it took.
 * An object the view describes keeps its ETag only when the listing shows the same one; an object
 * of the same size as the local file is identified by its sha256 metadata; everything else is unknown.
 */
async function verifyPlain(state: AgentState, opts: LoadOptions): Promise<number> {
  const { store, prefix, workspace, saved, local } = opts;
  const wsPrefix = workspacePrefix(prefix, workspace);
  const listed = new Map<string, { etag: string; size: number }>();
  for await (const item of store.list(wsPrefix)) {
    if ('commonPrefix' in item) continue;
    const p = item.key.slice(wsPrefix.length);
    if (isSafeRelativePath(p)) listed.set(p, { etag: item.etag, size: item.size });
  }
  let requests = 1;
  const view = state.view;
  for (const [p, e] of view.entries) {
    const l = listed.get(p);
    const old = saved?.view.entries.get(p);
    // The ETag recorded when we wrote it, for the same content, and the object still has it.
    const recorded = e.etag ?? (old && sameContent(old, e) ? old.etag : undefined);
    e.etag = l && recorded === l.etag ? l.etag : undefined;
  }
  const toIdentify: Array<[string, { etag: string; size: number }]> = [];
  for (const [p, l] of listed) {
    if (view.entries.get(p)?.etag !== undefined) continue;
    // Written by an earlier run of ours (journaled result) and untouched since.
    const known = saved?.plain.get(p);
    if (known && known.etag === l.etag) { state.plain.set(p, known); continue; }
    const mine = local.get(p);
    const size = mine?.type === 'file' ? mine.size : mine ? Buffer.byteLength(mine.target) : -1;
    if (size === l.size) toIdentify.push([p, l]);
    else state.plain.set(p, undefined);
  }
  const queue = new PQueue({ concurrency: opts.concurrency });
  const jobs = jobsOn(queue);
  for (const [p, l] of toIdentify) {
    // A single-part object's ETag is the MD5 of its body: comparing it with the local file's MD5
    // proves the content without a request. Its metadata mode is the committed entry's when that
    // entry has these very bytes (our writes put the entry's mode there); otherwise ask the server.
    const mine = local.get(p);
    const committed = view.entries.get(p);
    if (mine?.type === 'file' && MD5_ETAG.test(l.etag) && mine.size <= LOCAL_MD5_MAX && committed?.type === 'file'
      && committed.sha256 === mine.sha256 && committed.mode === mine.mode) {
      const md5 = localMd5(path.join(opts.wsDir, p));
      if (md5 === l.etag) { state.plain.set(p, { etag: l.etag, sha256: mine.sha256, mode: mine.mode }); continue; }
      if (md5 !== undefined) { state.plain.set(p, undefined); continue; }
    }
    if (queue.size >= opts.concurrency * 4) await queue.onSizeLessThan(opts.concurrency * 2);
    if (jobs.failed) break;
    jobs.add(async () => {
      const info = await store.head(`${wsPrefix}${p}`);
      requests++;
      const sha256 = info?.metadata.sha256;
      const mode = Number(info?.metadata.mode);
      if (info && info.etag === l.etag && sha256 && /^[0-9a-f]{64}$/.test(sha256)) {
        const obj: PlainObject = { etag: info.etag, sha256, mode: Number.isFinite(mode) ? mode & 0o7777 : -1 };
        state.plain.set(p, obj);
      } else {
        state.plain.set(p, undefined);
      }
    });
  }
  await jobs.done();
  return requests;
}

function sameContent(a: ViewEntry, b: ViewEntry): boolean {
  if (a.type === 'file' && b.type === 'file') return a.sha256 === b.sha256 && a.mode === b.mode;
  return a.type === 'symlink' && b.type === 'symlink' && a.target === b.target;
}

const MD5_ETAG = /^[0-9a-f]{32}$/;
/** Files up to this size are checked against an MD5 ETag by reading them; larger ones by a HEAD. */
const LOCAL_MD5_MAX = 16 * 1024 * 1024;

/** MD5 of a local file, or undefined when it cannot be read (then the server is asked instead). */
function localMd5(file: string): string | undefined {
  try {
    return createHash('md5').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}
