/**
 * The marker a push leaves when it ends with the bucket holding exactly the workspace and nothing
 * left to retry: the head it ends on, the state index files as it left them, and a digest of the
 * stat of every synced path. A later push whose walk gives the same digest, while the state files
 * are untouched since and the head unchanged (the one conditional GET a trusted push starts with),
 * has nothing to do, and says so without loading the state index: at 100,000 files, loading it,
 * hashing the snapshot from it and planning were about half of a push that changes nothing.
 *
 * Anything else goes the whole way: a changed, added or removed path, a watch or another push
 * having written the state since, another writer's commit, a path skipped or left to retry. Like the
 * state index itself (and git's), it trusts stat data: a file it counts was hashed at least the racy
 * window after its mtime (state.ts), and a push that leaves a racily clean file leaves no marker.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { HashedEntry } from './planner.js';
import { sameTreeEntry } from './planner.js';
import type { FileVisitor, ScanResult, SymlinkVisitor } from './scan.js';
import { cachedHash, type AgentState, type HashRecord, type StateStore } from './state.js';

const MARKER_VERSION = 1;

export interface CleanMarker {
  version: number;
  workspace: string;
  /** ETag and generation of the head the workspace was in sync with. */
  head: string;
  generation: number;
  files: number;
  digest: string;
  /** `StateStore.identity()` once the push had written everything. */
  state: string;
}

export interface StatDigest {
  files: number;
  digest: string;
}

interface DigestBuilder {
  file: FileVisitor;
  symlink: SymlinkVisitor;
  done(): StatDigest;
}

const SEEDS = [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f];
const PRIMES = [2654435761, 1597334677, 2246822519, 3266489917];

/**
 * An order-independent digest (the walk's order is the directories'): each entry hashed to 128 bits
 * (four 32-bit lanes), the lanes summed modulo 2³². A change to any field of any entry moves it.
 */
function digestBuilder(): DigestBuilder {
  const sum = [0, 0, 0, 0];
  const h = [0, 0, 0, 0];
  const f64 = new Float64Array(1);
  const words = new Uint32Array(f64.buffer);
  let files = 0;
  const start = (kind: number) => {
    for (let l = 0; l < 4; l++) h[l] = Math.imul(SEEDS[l]! ^ kind, PRIMES[l]!);
  };
  const word = (w: number) => {
    for (let l = 0; l < 4; l++) h[l] = Math.imul(h[l]! ^ w, PRIMES[l]!);
  };
  // Two UTF-16 code units a word: half the mixing of one a word, and still every bit of the text.
  const text = (s: string) => {
    word(s.length);
    const pairs = s.length - (s.length % 2);
    for (let i = 0; i < pairs; i += 2) word(s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
    if (pairs < s.length) word(s.charCodeAt(pairs));
  };
  const num = (n: number) => {
    f64[0] = n;
    word(words[0]!);
    word(words[1]!);
  };
  const end = () => {
    for (let l = 0; l < 4; l++) {
      let x = h[l]!;
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
      x ^= x >>> 16;
      sum[l] = (sum[l]! + (x >>> 0)) >>> 0;
    }
    files++;
  };
  return {
    file: (path, size, mtimeMs, ctimeMs, ino, mode) => {
      start(1);
      text(path);
      num(size);
      num(mtimeMs);
      num(ctimeMs);
      num(ino);
      num(mode);
      end();
    },
    symlink: (path, target, mtimeMs) => {
      start(2);
      text(path);
      text(target);
      num(mtimeMs);
      end();
    },
    done: () => ({ files, digest: sum.map((x) => x.toString(16).padStart(8, '0')).join('') }),
  };
}

/** The digest of what a walk found, from its columns (no entry objects). */
export function digestOfScan(scan: Pick<ScanResult, 'forEach'>): StatDigest {
  const d = digestBuilder();
  scan.forEach(d.file, d.symlink);
  return d.done();
}

/**
 * The digest of what a sync left in sync (the same as `digestOfScan` of a walk that finds the files
 * as they were hashed), or undefined when the state cannot vouch for every path: a file without a
 * record of its stat, one racily clean, or one whose committed entry or plain object is not known
 * to be this version.
 */
export function digestOfSynced(local: ReadonlyMap<string, HashedEntry>, st: AgentState): StatDigest | undefined {
  if (local.size !== st.view.entries.size) return undefined;
  const d = digestBuilder();
  for (const [p, e] of local) {
    const c = st.view.entries.get(p);
    if (!c || c.etag === undefined || !sameTreeEntry(c, e)) return undefined;
    if (e.type === 'symlink') {
      d.symlink(p, e.target, e.mtimeMs);
      continue;
    }
    const r: HashRecord | undefined = st.records.get(p);
    if (!r || r.size !== e.size || r.mtimeMs !== e.mtimeMs || cachedHash(r, r) !== e.sha256) return undefined;
    d.file(p, e.size, e.mtimeMs, r.ctimeMs, r.ino, e.mode);
  }
  return d.done();
}

/** The marker's file: next to the state index's. */
function markerFile(store: StateStore): string {
  return store.file.replace(/\.state\.json$/, '.clean.json');
}

export function readMarker(store: StateStore, workspace: string): CleanMarker | undefined {
  try {
    const m = JSON.parse(readFileSync(markerFile(store), 'utf8')) as Partial<CleanMarker>;
    if (m.version !== MARKER_VERSION || m.workspace !== workspace || typeof m.head !== 'string' || typeof m.digest !== 'string'
      || typeof m.state !== 'string' || typeof m.files !== 'number' || typeof m.generation !== 'number') return undefined;
    return m as CleanMarker;
  } catch {
    return undefined;
  }
}

/**
 * Leaves the marker after a push that ended in sync (see the header), or none. Best effort: without
 * it the next push simply goes the whole way.
 */
export function leaveMarker(store: StateStore, workspace: string, st: AgentState, local: ReadonlyMap<string, HashedEntry>, skipped: number): void {
  clearMarker(store);
  const head = st.view.head;
  if (store.broken || skipped > 0 || !head || st.plain.size > 0 || st.pendingDeletes.size > 0 || st.pending.size > 0) return;
  const digest = digestOfSynced(local, st);
  const state = store.identity();
  if (!digest || !state) return;
  const marker: CleanMarker = { version: MARKER_VERSION, workspace, head: head.etag, generation: head.generation, ...digest, state };
  const file = markerFile(store);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(marker), { mode: 0o600 });
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}

/** Removes the marker (a push that does not end in sync must not leave the last one behind). */
export function clearMarker(store: StateStore): void {
  try {
    rmSync(markerFile(store), { force: true });
  } catch { /* a directory that cannot be written holds no marker this push could trust either */ }
}
