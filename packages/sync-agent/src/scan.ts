/**
 * Walks one workspace and returns what would be synced, without reading file contents.
 * Never descends into excluded directories (into one git ignores but whose index names paths below it,
 * only along those paths), never follows symlinks, and reports (rather than fails on) entries it cannot
 * sync: unreadable directories, special files, symlinks pointing outside.
 */
import { lstatSync, readdirSync, type Dirent, type Stats } from 'node:fs';
import { readlink } from 'node:fs/promises';
import path from 'node:path';
import type { Filter } from '@workspace-sync/shared';
import { isValidName } from '@workspace-sync/shared';
import type { HashedFile } from './planner.js';

export interface LocalFile {
  type: 'file';
  path: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  /** Permission bits only. */
  mode: number;
}

export interface LocalSymlink {
  type: 'symlink';
  path: string;
  target: string;
  mtimeMs: number;
}

export type LocalEntry = LocalFile | LocalSymlink;

export interface Skipped {
  path: string;
  reason: string;
}

export interface ScanResult {
  /** How many files and symlinks the walk found. */
  readonly size: number;
  /** Each of them by path, in walk order; built on first use (a no-op push answered by its clean marker never needs it). */
  readonly entries: Map<string, LocalEntry>;
  /** Visits each of them in walk order without building `entries`. */
  forEach(file: FileVisitor, symlink: SymlinkVisitor): void;
  skipped: Skipped[];
}

export type FileVisitor = (path: string, size: number, mtimeMs: number, ctimeMs: number, ino: number, mode: number) => void;
export type SymlinkVisitor = (path: string, target: string, mtimeMs: number) => void;

/** Numbers kept per entry: size, mtimeMs, ctimeMs, ino, mode (a symlink uses only mtimeMs). */
const FIELDS = 5;

/**
 * What a walk found, held in columns: the paths, their stat numbers in one array, and the targets
 * of the few symlinks. At 100,000 files an object per file, its boxed times and the map of them
 * were a fifth of a no-op push's walk; they are built only when a push goes on past its marker.
 */
class Found implements ScanResult {
  readonly skipped: Skipped[] = [];
  private readonly paths: string[] = [];
  private nums = new Float64Array(FIELDS * 1024);
  private readonly targets = new Map<number, string>();
  private built: Map<string, LocalEntry> | undefined;

  get size(): number {
    return this.paths.length;
  }

  file(rel: string, st: Stats): void {
    const o = this.slot(rel);
    this.nums[o] = st.size;
    this.nums[o + 1] = st.mtimeMs;
    this.nums[o + 2] = st.ctimeMs;
    this.nums[o + 3] = st.ino;
    this.nums[o + 4] = st.mode & 0o7777;
  }

  symlink(e: LocalSymlink): void {
    const o = this.slot(e.path);
    this.nums[o + 1] = e.mtimeMs;
    this.targets.set(o / FIELDS, e.target);
  }

  forEach(file: FileVisitor, symlink: SymlinkVisitor): void {
    const { paths, nums, targets } = this;
    for (let i = 0; i < paths.length; i++) {
      const o = i * FIELDS;
      const target = targets.size > 0 ? targets.get(i) : undefined;
      if (target === undefined) file(paths[i]!, nums[o]!, nums[o + 1]!, nums[o + 2]!, nums[o + 3]!, nums[o + 4]!);
      else symlink(paths[i]!, target, nums[o + 1]!);
    }
  }

  get entries(): Map<string, LocalEntry> {
    if (!this.built) {
      const built = new Map<string, LocalEntry>();
      this.forEach(
        (path, size, mtimeMs, ctimeMs, ino, mode) => built.set(path, { type: 'file', path, size, mtimeMs, ctimeMs, ino, mode }),
        (path, target, mtimeMs) => built.set(path, { type: 'symlink', path, target, mtimeMs }),
      );
      this.built = built;
    }
    return this.built;
  }

  /** Appends `rel`; returns where its numbers go. */
  private slot(rel: string): number {
    const o = this.paths.length * FIELDS;
    if (o + FIELDS > this.nums.length) {
      const grown = new Float64Array(this.nums.length * 2);
      grown.set(this.nums);
      this.nums = grown;
    }
    this.paths.push(rel);
    return o;
  }
}

export function fileFromStats(rel: string, st: Stats): LocalFile {
  return { type: 'file', path: rel, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, mode: st.mode & 0o7777 };
}

/**
 * The entry of a file read under `st` whose bytes hash to `sha256`. A literal, never a spread of
 * another object: a push keeps one per file, and each spread-built one had its own hidden class.
 */
export function hashedFile(rel: string, st: Stats, sha256: string): HashedFile {
  return { type: 'file', path: rel, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777, sha256 };
}

/**
 * The entry for a file as read now: `planned` itself when nothing differs (a push holds one entry
 * per file, not two), a new one otherwise.
 */
export function readAs(planned: HashedFile, st: Stats, sha256: string): HashedFile {
  const same = planned.sha256 === sha256 && planned.size === st.size && planned.mtimeMs === st.mtimeMs && planned.mode === (st.mode & 0o7777);
  return same ? planned : hashedFile(planned.path, st, sha256);
}

/**
 * Symlink target as stored: relative, and inside the workspace; undefined when it points outside.
 * Absolute targets inside the workspace are rewritten relative so they still resolve under a mount.
 */
function normalizeLinkTarget(wsDir: string, rel: string, target: string): string | undefined {
  const linkDir = path.dirname(path.join(wsDir, rel));
  const resolved = path.resolve(linkDir, target);
  const inside = path.relative(wsDir, resolved);
  if (inside.startsWith('..') || path.isAbsolute(inside)) return undefined;
  return path.isAbsolute(target) ? path.relative(linkDir, resolved) || '.' : target;
}

/** Classifies one lstat'ed path; used by both the full scan and the watcher. */
export async function entryFor(wsDir: string, rel: string, st: Stats): Promise<LocalEntry | Skipped> {
  if (st.isFile()) return fileFromStats(rel, st);
  if (st.isSymbolicLink()) {
    const raw = await readlink(path.join(wsDir, rel));
    const target = normalizeLinkTarget(wsDir, rel, raw);
    if (target === undefined) return { path: rel, reason: `symlink points outside the workspace (${raw})` };
    return { type: 'symlink', path: rel, target, mtimeMs: st.mtimeMs };
  }
  return { path: rel, reason: 'not a regular file, directory or symlink' };
}

/**
 * Walks the workspace, or only the subtree `from` (a workspace-relative directory the caller has
 * checked is not excluded). A `from` that cannot be read throws; deeper unreadable directories are skipped.
 */
export async function scanWorkspace(wsDir: string, filter: Filter, from = ''): Promise<ScanResult> {
  const found = new Found();
  const { skipped } = found;

  // Synchronous readdir/lstat: on a local disk each call is microseconds, far less than a thread-pool
  // round trip, and a no-op push is one such walk over every synced file.
  const walk = async (relDir: string): Promise<void> => {
    // A directory git ignores but whose index names paths below it: look at those names only, never
    // list it (a node_modules with one tracked file holds thousands that are not).
    const tracked = filter.trackedOnly(relDir);
    const absDir = relDir ? `${wsDir}/${relDir}` : wsDir;
    let names: readonly string[];
    let dirents: Dirent[] | undefined;
    try {
      if (tracked) names = tracked;
      else {
        dirents = readdirSync(absDir, { withFileTypes: true });
        names = dirents.map((d) => d.name);
      }
    } catch (err) {
      if (relDir === from) throw err;
      skipped.push({ path: `${relDir}/`, reason: `cannot read directory (${(err as NodeJS.ErrnoException).code})` });
      return;
    }
    const undecodable = dirents?.some((d) => d.name.includes('\uFFFD')) ? notUtf8Names(absDir) : undefined;
    const subdirs: string[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const rel = relDir ? `${relDir}/${name}` : name;
      // The directory's own path was checked on the way down: only this segment is new.
      if (!isValidName(name) || rel.length * 3 > MAX_PATH_BYTES && Buffer.byteLength(rel) > MAX_PATH_BYTES) {
        skipped.push({ path: rel, reason: 'name cannot be stored as an object key' });
        continue;
      }
      if (undecodable?.has(name)) {
        skipped.push({ path: rel, reason: 'file name is not valid UTF-8, so it cannot be an object key (rename it)' });
        continue;
      }
      const known = dirents ? dirents[i]!.isDirectory() : undefined;
      // Concatenated, not path.join: the name was checked above (no "/", ".", ".."), and joining
      // re-normalises the whole path, several percent of a no-op push at 100,000 files.
      const abs = `${absDir}/${name}`;
      let st: Stats | undefined;
      try {
        if (known === undefined) st = lstatSync(abs);
        const isDir = known ?? st!.isDirectory();
        if (filter.excludes(rel, isDir)) continue;
        if (isDir) { subdirs.push(rel); continue; }
        st ??= lstatSync(abs);
        if (st.isFile()) {
          found.file(rel, st);
          continue;
        }
        const e = await entryFor(wsDir, rel, st);
        if ('reason' in e) skipped.push(e);
        else if (e.type === 'symlink') found.symlink(e);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Gone since the listing, or a tracked path deleted from the work tree: nothing to sync.
        if (code !== 'ENOENT' && code !== 'ENOTDIR') skipped.push({ path: rel, reason: `cannot stat (${code})` });
      }
    }
    for (const sub of subdirs) await walk(sub);
  };

  await walk(from);
  return found;
}

const MAX_PATH_BYTES = 4096;

/**
 * Names in `dir` whose bytes are not valid UTF-8, as Node decodes them (with U+FFFD): they cannot
 * round-trip into an object key, so they are reported rather than stored under a mangled name.
 */
function notUtf8Names(dir: string): Set<string> {
  const out = new Set<string>();
  for (const raw of readdirSync(dir, { encoding: 'buffer' })) {
    const decoded = raw.toString('utf8');
    if (!Buffer.from(decoded, 'utf8').equals(raw)) out.add(decoded);
  }
  return out;
}
