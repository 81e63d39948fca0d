/**
 * The local state index of one workspace: the committed view (format v2: entries, directory trees,
 * which plain objects are known to hold what), the stat cache (what each file's stat looked like
 * when it was hashed), and what an interrupted run left behind. It is a cache: a missing or
 * unreadable state, or a head that is not the one recorded, means a full compare, never blind trust.
 *
 * Storage: a snapshot (`<ws>.state.json`, rewritten atomically with temp file + rename) and an
 * append-only journal (`<ws>.journal`, JSON lines) of everything since: plain-object intents (written
 * before a plain object is sent, so the next run knows which objects it cannot vouch for), their
 * results, content that landed, and each commit's delta. A batch therefore appends O(what changed)
 * bytes; the journal is folded into a new snapshot once it is large. A torn last line (a crash) is
 * ignored: what it would have recorded is simply not known.
 *
 * Failure to write (a full disk): the state files are removed, so no later run trusts them, and the
 * sync goes on (publishing never depends on this cache); only if they cannot be removed either does
 * the sync stop with a clear error.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { isProcessAlive, sameStat, SyncError, type Logger, type StatVersion, type TreeRef } from '@workspace-sync/shared';
import type { ContentLocation, PlainObject } from './planner.js';
import { applyCommit, emptyView, reindex, type DirInfo, type HeadInfo, type View, type ViewChange, type ViewEntry } from './view.js';

const STATE_VERSION = 3;
/** Content landed by a run that did not commit is reused only this long (garbage collection's grace is longer). */
const PENDING_CONTENT_TTL_MS = 30 * 60_000;
const COMPACT_LINES = 2_000;

/**
 * How close to the hashing time an mtime may be before the cached hash is not trusted (git's "racily
 * clean"): a write in the same timestamp tick as the hash would leave size and mtime unchanged. Linux
 * stamps mtimes from a coarse clock (a jiffy, at most 10 ms); filesystems with whole-second mtimes need more.
 */
function racyWindowMs(mtimeMs: number): number {
  return mtimeMs % 1000 === 0 ? 2_000 : 20;
}

export interface HashRecord {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  sha256: string;
  hashedAtMs: number;
}

/** The record of a file hashed to `sha256` under `st` at `hashedAtMs` (a literal: the state keeps one per file). */
export function hashRecord(st: StatVersion, sha256: string, hashedAtMs: number): HashRecord {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, sha256, hashedAtMs };
}

/** The cached sha256 for this stat, if it can be trusted. */
export function cachedHash(rec: HashRecord | undefined, st: StatVersion): string | undefined {
  if (!rec) return undefined;
  if (!sameStat(rec, st)) return undefined;
  if (rec.hashedAtMs - rec.mtimeMs < racyWindowMs(rec.mtimeMs)) return undefined;
  return rec.sha256;
}

export interface AgentState {
  view: View;
  records: Map<string, HashRecord>;
  /** Plain objects whose state differs from what the view says: known (written, not committed) or unknown (undefined). */
  plain: Map<string, PlainObject | undefined>;
  /** Content that landed in a run that did not commit, by sha256. */
  pending: Map<string, ContentLocation>;
  /**
   * When the oldest of it landed (undefined when there is none): one time for all, not one per file,
   * which is all garbage collection's check needs (sync.ts) and keeps a push at one location per file.
   */
  pendingSince: number | undefined;
  /** Plain objects a commit dropped whose deletion has not been confirmed. */
  pendingDeletes: Set<string>;
  /** Paths the server kept refusing, and until when they are not retried unless they change (not persisted). */
  rejected: Map<string, number>;
}

export function emptyState(): AgentState {
  return { view: emptyView(), records: new Map(), plain: new Map(), pending: new Map(), pendingSince: undefined, pendingDeletes: new Set(), rejected: new Map() };
}

/** Content that landed at `at` (ms since the epoch) without being committed yet. */
export function addPending(state: AgentState, sha256: string, loc: ContentLocation, at: number): void {
  state.pending.set(sha256, loc);
  state.pendingSince = Math.min(state.pendingSince ?? at, at);
}

/** Pending content as saved (a journal line, a snapshot), unless it landed too long ago to be reused. */
function restorePending(state: AgentState, sha256: string, l: ContentLocation, at: number, now: number): void {
  if (now - at <= PENDING_CONTENT_TTL_MS) addPending(state, sha256, { pack: l.pack, offset: l.offset, chunks: l.chunks }, at);
}

/** A commit names (or has dropped) everything that landed before it. */
export function clearPending(state: AgentState): void {
  state.pending.clear();
  state.pendingSince = undefined;
}

/** What one commit changes in the state, as journaled. */
export interface CommitDelta extends ViewChange {
  records: ReadonlyMap<string, HashRecord>;
  recordRemoves: readonly string[];
  /** Plain objects to delete now that the commit is published. */
  deletes: readonly string[];
}

export interface StateStore {
  readonly file: string;
  load(): AgentState | undefined;
  /** Plain objects about to be written or deleted: unknown until their results are recorded. */
  intent(paths: readonly string[]): void;
  plain(path: string, obj: PlainObject): void;
  content(sha256: string, loc: ContentLocation): void;
  commit(delta: CommitDelta): void;
  deleted(paths: readonly string[]): void;
  /** Writes a fresh snapshot of `state` and empties the journal. */
  save(state: AgentState): void;
  /** Whether a write failed (the state files were removed; the next run compares fully). */
  readonly broken: boolean;
  /** The journal has grown enough to be folded into a new snapshot. */
  readonly compactDue: boolean;
  /**
   * What the state files are now on disk (size, inode, mtime and ctime in ns of the snapshot and
   * the journal), so a reader can tell they were not written since; undefined when there are none.
   */
  identity(): string | undefined;
}

/** One directory per (endpoint, bucket, prefix, root), so two remotes never share state. */
export function stateDirFor(stateRoot: string, remote: { endpoint: string | undefined; bucket: string; prefix: string }, root: string): string {
  const id = createHash('sha256').update(JSON.stringify([remote.endpoint ?? 'aws', remote.bucket, remote.prefix, path.resolve(root)])).digest('hex');
  return path.join(stateRoot, id.slice(0, 16));
}

// ---- encoding ----

type RawEntry = [string, 'f', number, number, number, string, string | null, number, string[] | null, string | null]
  | [string, 'l', string, number, string | null];
type RawDir = [string, string, number, number, string, number, number, number] | [string, string, number, number, string, number, number, number, TreeRef[]];
type RawRecord = [string, number, number, number, number, string, number];

const encEntry = (p: string, e: ViewEntry): RawEntry => (e.type === 'file'
  ? [p, 'f', e.size, e.mtimeMs, e.mode, e.sha256, e.pack ?? null, e.offset, e.chunks ? [...e.chunks] : null, e.etag ?? null]
  : [p, 'l', e.target, e.mtimeMs, e.etag ?? null]);

function decEntry(r: RawEntry): [string, ViewEntry] {
  if (r[1] === 'f') {
    return [r[0], { type: 'file', size: r[2], mtimeMs: r[3], mode: r[4], sha256: r[5], pack: r[6] ?? undefined, offset: r[7], chunks: r[8] ?? undefined, etag: r[9] ?? undefined }];
  }
  return [r[0], { type: 'symlink', target: r[2], mtimeMs: r[3], etag: r[4] ?? undefined }];
}

const encDir = (p: string, d: DirInfo): RawDir => (d.parts
  ? [p, d.ref[0], d.ref[1], d.ref[2], d.ref[3], d.changedAtMs, d.files, d.bytes, [...d.parts]]
  : [p, d.ref[0], d.ref[1], d.ref[2], d.ref[3], d.changedAtMs, d.files, d.bytes]);
const decDir = (r: RawDir): [string, DirInfo] => [r[0], {
  ref: [r[1], r[2], r[3], r[4]] as TreeRef, changedAtMs: r[5], files: r[6], bytes: r[7], ...(r[8] ? { parts: r[8] } : {}),
}];
const encRecord = (p: string, r: HashRecord): RawRecord => [p, r.size, r.mtimeMs, r.ctimeMs, r.ino, r.sha256, r.hashedAtMs];
const decRecord = (r: RawRecord): [string, HashRecord] => [r[0], { size: r[1], mtimeMs: r[2], ctimeMs: r[3], ino: r[4], sha256: r[5], hashedAtMs: r[6] }];

/**
 * Snapshot form of an entry: pack names by index into the snapshot's table, and the stat record of
 * the file inline when it describes the same bytes (the usual case), so path and sha256 are stored once.
 */
type SnapEntry = [string, 'f', number, number, number, string, number, number, string[] | null, string | null, [number, number, number] | null]
  | [string, 'l', string, number, string | null];

interface Snapshot {
  version: number;
  workspace: string;
  head: HeadInfo | null;
  v1Generation: number;
  packs: string[];
  entries: SnapEntry[];
  dirs: RawDir[];
  records: RawRecord[];
  plain: Array<[string, PlainObject | null]>;
  pending: Array<[string, ContentLocation & { at: number }]>;
  pendingDeletes: string[];
}

type Line =
  | { t: 'i'; p: string[] }
  | { t: 'w'; p: string; o: PlainObject }
  | { t: 'b'; s: string; l: ContentLocation; at: number }
  | { t: 'c'; head: HeadInfo; up: RawEntry[]; rm: string[]; dirs: Array<RawDir | [string, null]>; rec: RawRecord[]; rrm: string[]; del: string[] }
  | { t: 'g'; p: string[] };

function replay(state: AgentState, line: Line, now: number): void {
  switch (line.t) {
    case 'i':
      for (const p of line.p) state.plain.set(p, undefined);
      return;
    case 'w':
      state.plain.set(line.p, line.o);
      return;
    case 'b':
      restorePending(state, line.s, line.l, line.at, now);
      return;
    case 'c': {
      const upserts = new Map(line.up.map(decEntry));
      const removes = new Set(line.rm);
      // The name sets of changed directories are rebuilt from the entries after loading.
      applyCommit(state.view, {
        upserts, removes, head: line.head, children: new Map(),
        dirs: new Map(line.dirs.map((d) => (d[1] === null ? [d[0], null] : decDir(d as RawDir)))),
      });
      for (const r of line.rec) { const [p, rec] = decRecord(r); state.records.set(p, rec); }
      for (const p of line.rrm) state.records.delete(p);
      for (const p of upserts.keys()) state.plain.delete(p);
      for (const p of line.del) state.pendingDeletes.add(p);
      clearPending(state);
      return;
    }
    case 'g':
      for (const p of line.p) { state.pendingDeletes.delete(p); state.plain.delete(p); }
      return;
  }
}

// The index names every file of the workspace and its hash: readable by its owner only.
const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

export function openStateStore(dir: string, workspace: string, log?: Logger): StateStore {
  const base = path.join(dir, encodeURIComponent(workspace));
  const file = `${base}.state.json`;
  const journalFile = `${base}.journal`;
  let lines = 0;
  let broken = false;
  let dirReady = false;
  const ensureDir = () => {
    if (!dirReady) mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    dirReady = true;
  };

  const fail = (err: unknown) => {
    if (broken) return;
    broken = true;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    closeJournal();
    try {
      removeIfThere(journalFile);
      removeIfThere(file);
    } catch (rmErr) {
      throw new SyncError('STATE_UNWRITABLE', `cannot write the state index in ${dir} (${code}) and cannot remove it (${(rmErr as NodeJS.ErrnoException).code})`, {
        hint: 'free space or fix permissions there (--state-dir / SYNC_STATE_DIR); nothing unsafe was published', cause: err,
      });
    }
    log?.error({ workspace, dir, code, hint: 'free space or fix permissions (--state-dir / SYNC_STATE_DIR)' },
      `cannot write the state index (${code}): syncing goes on without it; the next run compares the workspace with the bucket in full`);
  };
  /** The journal, open for appending while it exists (save() removes it; the next line opens it again). */
  let journalFd: number | undefined;
  const closeJournal = () => {
    if (journalFd === undefined) return;
    try { closeSync(journalFd); } catch { /* already unusable: the next append reopens it */ }
    journalFd = undefined;
  };
  const append = (line: Line) => {
    if (broken) return;
    try {
      ensureDir();
      journalFd ??= openSync(journalFile, 'a', PRIVATE_FILE);
      // Synchronous and small: in the page cache before the request it announces is sent.
      writeSync(journalFd, `${JSON.stringify(line)}\n`);
      lines++;
    } catch (err) {
      closeJournal();
      fail(err);
    }
  };

  const store: StateStore = {
    file,
    get broken() { return broken; },
    get compactDue() { return lines >= COMPACT_LINES; },
    load() {
      lines = 0;
      removeStaleTemps(dir, encodeURIComponent(workspace));
      let snap: Snapshot | undefined;
      let text: string | undefined;
      try { snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot; } catch { /* none yet, or unreadable */ }
      // A first run killed before its first snapshot still leaves a journal worth replaying.
      try { text = readFileSync(journalFile, 'utf8'); } catch { /* no journal */ }
      if (snap && (snap.version !== STATE_VERSION || snap.workspace !== workspace || !Array.isArray(snap.entries))) return undefined;
      if (!snap && text === undefined) return undefined;
      snap ??= { version: STATE_VERSION, workspace, head: null, v1Generation: 0, packs: [], entries: [], dirs: [], records: [], plain: [], pending: [], pendingDeletes: [] };
      const state = emptyState();
      const now = Date.now();
      try {
        state.view.head = snap.head ?? undefined;
        state.view.v1Generation = snap.v1Generation;
        for (const r of snap.entries) {
          if (r[1] === 'l') { state.view.entries.set(r[0], { type: 'symlink', target: r[2], mtimeMs: r[3], etag: r[4] ?? undefined }); continue; }
          const [p, , size, mtimeMs, mode, sha256, pack, offset, chunks, etag, rec] = r;
          state.view.entries.set(p, { type: 'file', size, mtimeMs, mode, sha256, pack: pack < 0 ? undefined : snap.packs[pack], offset, chunks: chunks ?? undefined, etag: etag ?? undefined });
          if (rec) state.records.set(p, { size, mtimeMs, ctimeMs: rec[0], ino: rec[1], sha256, hashedAtMs: rec[2] });
        }
        for (const r of snap.dirs) state.view.dirs.set(...decDir(r));
        for (const r of snap.records) state.records.set(...decRecord(r));
        for (const [p, o] of snap.plain) state.plain.set(p, o ?? undefined);
        for (const [s, l] of snap.pending) restorePending(state, s, l, l.at, now);
        for (const p of snap.pendingDeletes) state.pendingDeletes.add(p);
        for (const raw of (text ?? '').split('\n')) {
          if (!raw) continue;
          let line: Line;
          try { line = JSON.parse(raw) as Line; } catch { continue; }
          replay(state, line, now);
          lines++;
        }
      } catch {
        return undefined;
      }
      // The content index follows from the entries; so do the name sets, built when first needed.
      reindex(state.view);
      return state;
    },
    identity() {
      const ids = [file, journalFile].map(fileIdentity);
      return ids.every((id) => id === '-') ? undefined : ids.join('|');
    },
    intent(paths) { append({ t: 'i', p: [...paths] }); },
    plain(p, o) { append({ t: 'w', p, o }); },
    content(s, l) { append({ t: 'b', s, l: { pack: l.pack, offset: l.offset, chunks: l.chunks }, at: Date.now() }); },
    deleted(paths) { if (paths.length) append({ t: 'g', p: [...paths] }); },
    commit(d) {
      append({
        t: 'c', head: d.head, up: [...d.upserts].map(([p, e]) => encEntry(p, e)), rm: [...d.removes],
        dirs: [...d.dirs].map(([p, info]) => (info ? encDir(p, info) : [p, null])),
        rec: [...d.records].map(([p, r]) => encRecord(p, r)), rrm: [...d.recordRemoves], del: [...d.deletes],
      });
    },
    save(state) {
      if (broken) return;
      const tmp = `${file}.${process.pid}.tmp`;
      let fd: number | undefined;
      try {
        ensureDir();
        fd = openSync(tmp, 'w', PRIVATE_FILE);
        writeSnapshot(fd, workspace, state);
        closeSync(fd);
        fd = undefined;
        renameSync(tmp, file);
        closeJournal();
        rmSync(journalFile, { force: true });
        lines = 0;
      } catch (err) {
        try {
          if (fd !== undefined) closeSync(fd);
          rmSync(tmp, { force: true });
        } catch { /* the failure below removes the state either way */ }
        fail(err);
      }
    },
  };
  return store;
}

/**
 * Writes the snapshot as one JSON object, a thousand entries at a time: a 100,000-file workspace
 * never becomes one string of tens of megabytes (nor an array of 100,000 encoded entries).
 */
function writeSnapshot(fd: number, workspace: string, state: AgentState): void {
  const packIndex = new Map<string, number>();
  const inline = new Set<string>();
  let batch: string[] = [];
  const flush = () => { if (batch.length) writeSync(fd, batch.join(',')); batch = []; };
  const head = { version: STATE_VERSION, workspace, head: state.view.head ?? null, v1Generation: state.view.v1Generation };
  writeSync(fd, `${JSON.stringify(head).slice(0, -1)},"entries":[`);
  let first = true;
  for (const [p, e] of state.view.entries) {
    let enc: SnapEntry;
    if (e.type === 'symlink') enc = [p, 'l', e.target, e.mtimeMs, e.etag ?? null];
    else {
      let pack = -1;
      if (e.pack !== undefined) {
        pack = packIndex.get(e.pack) ?? -1;
        if (pack < 0) { pack = packIndex.size; packIndex.set(e.pack, pack); }
      }
      const r = state.records.get(p);
      const same = r !== undefined && r.size === e.size && r.mtimeMs === e.mtimeMs && r.sha256 === e.sha256;
      if (same) inline.add(p);
      enc = [p, 'f', e.size, e.mtimeMs, e.mode, e.sha256, pack, e.offset, e.chunks ? [...e.chunks] : null, e.etag ?? null, same ? [r.ctimeMs, r.ino, r.hashedAtMs] : null];
    }
    if (!first && batch.length === 0) writeSync(fd, ',');
    first = false;
    batch.push(JSON.stringify(enc));
    if (batch.length === 1000) flush();
  }
  flush();
  const rest = {
    packs: [...packIndex.keys()],
    dirs: [...state.view.dirs].map(([p, d]) => encDir(p, d)),
    records: [...state.records].filter(([p]) => !inline.has(p)).map(([p, r]) => encRecord(p, r)),
    plain: [...state.plain].map(([p, o]) => [p, o ?? null]),
    // Each with the oldest time: it expires no later, and is checked no less, than with its own.
    pending: [...state.pending].map(([s, l]) => [s, { ...l, at: state.pendingSince ?? 0 }]),
    pendingDeletes: [...state.pendingDeletes],
  };
  writeSync(fd, `],${JSON.stringify(rest).slice(1)}`);
}

/** A file's size, inode and times in ns: any write or replacement changes at least one of them. '-': no such file. */
function fileIdentity(f: string): string {
  const st = statSync(f, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.size}:${st.ino}:${st.mtimeNs}:${st.ctimeNs}` : '-';
}

/** A temporary file this old is no run's write in progress (a snapshot of 100,000 files takes about a second). */
const STALE_TEMP_MS = 60_000;

/**
 * Temporary files a run killed while writing left behind (`<ws>.state.json.<pid>.tmp`, the clean
 * marker's likewise; a snapshot's is megabytes at 100,000 files), once their process is gone and
 * they are a minute old: a live process is another run writing now, and the age covers a writer
 * whose pid this process cannot see (another container sharing the directory). Best effort: what
 * cannot be removed now is tried again next time.
 */
function removeStaleTemps(dir: string, stem: string): void {
  let names: string[];
  try { names = readdirSync(dir); } catch { return; }
  const now = Date.now();
  for (const name of names) {
    const m = /^(.*)\.(?:state|clean)\.json\.(\d+)\.tmp$/.exec(name);
    if (!m || m[1] !== stem || isProcessAlive(Number(m[2]))) continue;
    try {
      const file = path.join(dir, name);
      if (now - statSync(file).mtimeMs > STALE_TEMP_MS) rmSync(file, { force: true });
    } catch { /* gone meanwhile, or next time */ }
  }
}

/** Removes a file; one that cannot exist (no such directory, or a file where a directory would be) is not an error. */
function removeIfThere(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
  }
}
