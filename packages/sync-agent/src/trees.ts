/**
 * Builds the tree objects a commit needs: only the directories on the path from each changed entry
 * to the root are written again; every other directory keeps its ref. Pure: the caller uploads the
 * tree packs this returns and applies the directory changes once the commit succeeds.
 */
import {
  compareUtf8, encodeSplitTree, encodeTree, sha256Hex, SPLIT_ABOVE, splitEntries, type TreeEntry, type TreeRef,
} from '@workspace-sync/shared';
import { childrenOf, nameOf, parentOf, type DirInfo, type View, type ViewEntry } from './view.js';

/** A tree pack is written once it holds this much. */
const TREE_PACK_SIZE = 4 * 1024 * 1024;

export interface TreeBuild {
  packs: Array<{ name: string; body: Buffer }>;
  root: TreeRef;
  /** Directories written now, and directories gone (null). */
  dirs: Map<string, DirInfo | null>;
  /** The new name sets of every directory that changed (null: gone). */
  children: Map<string, Set<string> | null>;
  stats: { files: number; dirs: number; bytes: number };
}

export function buildTrees(
  view: View,
  upserts: ReadonlyMap<string, ViewEntry>,
  removes: ReadonlySet<string>,
  nowMs: number,
  newPackName: () => string,
): TreeBuild {
  const children = new Map<string, Set<string> | null>();
  const committed = childrenOf(view);
  const dirty = new Set<string>();
  const own = (dir: string): Set<string> => {
    let set = children.get(dir);
    if (set === undefined) {
      set = new Set(committed.get(dir));
      children.set(dir, set);
    } else if (set === null) {
      set = new Set();
      children.set(dir, set);
    }
    return set;
  };
  const isDir = (p: string): boolean => {
    const c = children.get(p);
    return c === undefined ? committed.has(p) : c !== null;
  };
  const markUp = (dir: string) => {
    for (let d = dir; ; d = parentOf(d)) {
      if (dirty.has(d) && d !== dir) break;
      dirty.add(d);
      if (d === '') break;
    }
  };

  for (const p of removes) {
    own(parentOf(p)).delete(nameOf(p));
    markUp(parentOf(p));
  }
  // Directories left empty vanish, deepest first (git stores no empty directories).
  for (const d of [...dirty].sort(byDepthDesc)) {
    if (d === '' || !isDir(d) || own(d).size > 0) continue;
    children.set(d, null);
    own(parentOf(d)).delete(nameOf(d));
    markUp(parentOf(d));
  }
  for (const p of upserts.keys()) {
    let child = p;
    for (;;) {
      const dir = parentOf(child);
      own(dir).add(nameOf(child));
      dirty.add(dir);
      if (dir === '') break;
      child = dir;
    }
  }
  dirty.add('');

  const packs: TreeBuild['packs'] = [];
  let current: { name: string; parts: Buffer[]; size: number } | undefined;
  const append = (body: Buffer): TreeRef => {
    if (!current || (current.size > 0 && current.size + body.length > TREE_PACK_SIZE)) {
      if (current) packs.push({ name: current.name, body: Buffer.concat(current.parts) });
      current = { name: newPackName(), parts: [], size: 0 };
    }
    const ref: TreeRef = [current.name, current.size, body.length, sha256Hex(body)];
    current.parts.push(body);
    current.size += body.length;
    return ref;
  };

  const dirs = new Map<string, DirInfo | null>();
  const infoOf = (p: string): DirInfo => {
    const info = dirs.get(p) ?? view.dirs.get(p);
    if (!info) throw new Error(`tree builder: no tree for directory ${JSON.stringify(p)}`);
    return info;
  };
  for (const d of [...dirty].sort(byDepthDesc)) {
    if (d !== '' && !isDir(d)) { if (view.dirs.has(d)) dirs.set(d, null); continue; }
    const names = children.get(d) ?? committed.get(d) ?? new Set<string>();
    const entries: TreeEntry[] = [];
    let files = 0;
    let bytes = 0;
    for (const name of names) {
      const p = d === '' ? name : `${d}/${name}`;
      if (isDir(p)) {
        const info = infoOf(p);
        entries.push({ name, kind: 'dir', ref: info.ref, changedAtMs: info.changedAtMs, files: info.files, bytes: info.bytes });
        files += info.files;
        bytes += info.bytes;
        continue;
      }
      const e = upserts.get(p) ?? (removes.has(p) ? undefined : view.entries.get(p));
      if (!e) throw new Error(`tree builder: no entry for ${JSON.stringify(p)}`);
      files++;
      if (e.type === 'file') {
        bytes += e.size;
        entries.push({
          name, kind: 'file', size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: e.sha256, pack: e.pack, offset: e.offset, chunks: e.chunks,
        });
      } else {
        entries.push({ name, kind: 'symlink', target: e.target, mtimeMs: e.mtimeMs });
      }
    }
    dirs.set(d, { ...writeDir(entries, view.dirs.get(d)?.parts, append), changedAtMs: nowMs, files, bytes });
  }
  if (current) packs.push({ name: current.name, body: Buffer.concat(current.parts) });

  const root = dirs.get('')!;
  // Directories below the root: the view's, plus those created now, minus those gone.
  let below = view.dirs.size - (view.dirs.has('') ? 1 : 0);
  for (const [d, info] of dirs) {
    if (d === '') continue;
    if (info && !view.dirs.has(d)) below++;
    else if (!info) below--;
  }
  return { packs, root: root.ref, dirs, children, stats: { files: root.files, dirs: below, bytes: root.bytes } };
}

/**
 * One tree object for a directory, or for a large one an index over parts: a part whose bytes a
 * previous commit already wrote keeps that commit's ref, so only the parts a change touches are new.
 */
function writeDir(
  entries: TreeEntry[], previous: readonly TreeRef[] | undefined, append: (body: Buffer) => TreeRef,
): { ref: TreeRef; parts?: TreeRef[] } {
  if (entries.length <= SPLIT_ABOVE) return { ref: append(encodeTree(entries)) };
  const chunks = splitEntries(entries.sort((a, b) => compareUtf8(a.name, b.name)));
  if (chunks.length < 2) return { ref: append(encodeTree(entries)) };
  const known = new Map((previous ?? []).map((r) => [r[3], r]));
  const parts = chunks.map((chunk) => {
    const body = encodeTree(chunk);
    return known.get(sha256Hex(body)) ?? append(body);
  });
  return { ref: append(encodeSplitTree(parts)), parts };
}

function depth(p: string): number {
  if (p === '') return 0;
  let n = 1;
  for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) n++;
  return n;
}

function byDepthDesc(a: string, b: string): number {
  return depth(b) - depth(a);
}
