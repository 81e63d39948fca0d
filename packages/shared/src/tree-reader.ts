/**
 * Reading format-v2 trees from a bucket: a tree ref names a tree pack, an offset, a length and the
 * sha256 of those bytes. Tree packs are immutable and small, so they are fetched whole and kept (in
 * a bounded map here; the mount adds its disk cache through `fetchPack`); every tree object is
 * verified against its ref before it is decoded.
 *
 * Concurrency rules: one fetch per pack at a time (single-flight); decoded trees are shared.
 */
import { SyncError } from './errors.js';
import { decodeSplit, decodeTreeObject, MAX_TREE_PACK_BYTES, type TreeEntry, type TreeRef } from './format.js';
import { sha256Hex } from './hash.js';
import { treePackKey } from './paths.js';
import type { ObjectStore } from './s3.js';

export interface TreeReaderOptions {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  /** Bytes of tree packs kept in memory (least recently used dropped first). */
  maxPackBytes?: number;
  /** Replaces the plain GET of a whole tree pack (the mount serves it from its disk cache). */
  fetchPack?: (key: string) => Promise<Buffer>;
}

export interface TreeReader {
  /** The directory a ref names, verified and decoded (a split directory's parts read and joined). */
  read(ref: TreeRef): Promise<TreeEntry[]>;
  /** The same, with the refs of its parts when the directory is split (GC keeps their packs). */
  readWithParts(ref: TreeRef): Promise<{ entries: TreeEntry[]; parts: readonly TreeRef[] }>;
  /** Tree-pack GETs made so far. */
  readonly fetches: number;
}

export function createTreeReader(opts: TreeReaderOptions): TreeReader {
  const max = opts.maxPackBytes ?? 64 * 1024 * 1024;
  const packs = new Map<string, Buffer>();
  const flights = new Map<string, Promise<Buffer>>();
  let held = 0;
  let fetches = 0;
  const fetchPack = opts.fetchPack ?? (async (key: string) => {
    const res = await opts.store.get(key, { maxBytes: MAX_TREE_PACK_BYTES });
    if (res.notModified) throw new Error('unconditional GET answered 304');
    return res.body;
  });

  const pack = (name: string): Promise<Buffer> => {
    const have = packs.get(name);
    if (have) {
      packs.delete(name);
      packs.set(name, have);
      return Promise.resolve(have);
    }
    let flight = flights.get(name);
    if (!flight) {
      fetches++;
      flight = fetchPack(treePackKey(opts.prefix, opts.workspace, name)).then((body) => {
        packs.set(name, body);
        held += body.length;
        for (const [k, v] of packs) {
          if (held <= max || k === name) break;
          packs.delete(k);
          held -= v.length;
        }
        return body;
      }).finally(() => flights.delete(name));
      flights.set(name, flight);
    }
    return flight;
  };

  /** The verified bytes of the tree object `ref` names. */
  const bytesOf = async (ref: TreeRef): Promise<{ bytes: Buffer; where: string }> => {
    const [name, offset, length, sha256] = ref;
    const where = `${name}.pack@${offset}`;
    const body = await pack(name);
    if (offset + length > body.length) {
      throw new SyncError('MANIFEST_INVALID', `tree object ${where} lies outside its pack (${body.length} bytes)`, {
        hint: 'the bucket holds a damaged pack; push the workspace again to write a fresh commit',
      });
    }
    const bytes = body.subarray(offset, offset + length);
    if (sha256Hex(bytes) !== sha256) {
      throw new SyncError('MANIFEST_INVALID', `tree object ${where} does not match its sha256`, {
        hint: 'the bucket holds a damaged pack; push the workspace again to write a fresh commit',
      });
    }
    return { bytes, where };
  };
  const readWithParts = async (ref: TreeRef) => {
    const { bytes, where } = await bytesOf(ref);
    const obj = decodeTreeObject(bytes, where);
    if (obj.entries) return { entries: obj.entries, parts: [] };
    const parts = await Promise.all(obj.parts.map((p) => bytesOf(p)));
    return { entries: decodeSplit(parts, where), parts: obj.parts };
  };

  return {
    get fetches() { return fetches; },
    readWithParts,
    async read(ref) {
      return (await readWithParts(ref)).entries;
    },
  };
}

/** A file or symlink of a tree, with its path relative to the workspace. */
export type FlatEntry = Exclude<TreeEntry, { kind: 'dir' }> & { path: string };
export type FlatDir = Extract<TreeEntry, { kind: 'dir' }> & { path: string };

/**
 * Visits every entry under `ref` (directories before what they hold), loading the trees of one
 * level in parallel. `into` may return false for a directory to skip its subtree. `onSplit` hears
 * the part refs of every split directory read (the root included).
 */
export async function walkTree(
  reader: TreeReader, ref: TreeRef,
  visit: (entry: FlatEntry | FlatDir) => boolean | void,
  base = '',
  onSplit?: (path: string, parts: readonly TreeRef[]) => void,
): Promise<void> {
  let level: Array<{ path: string; ref: TreeRef }> = [{ path: base, ref }];
  while (level.length > 0) {
    const trees = await Promise.all(level.map((d) => reader.readWithParts(d.ref)));
    const next: Array<{ path: string; ref: TreeRef }> = [];
    trees.forEach(({ entries, parts }, i) => {
      const dir = level[i]!.path;
      if (parts.length > 0) onSplit?.(dir, parts);
      for (const e of entries) {
        const path = dir ? `${dir}/${e.name}` : e.name;
        const descend = visit({ ...e, path });
        if (e.kind === 'dir' && descend !== false) next.push({ path, ref: e.ref });
      }
    });
    level = next;
  }
}

export interface TreeDiff {
  /** Files and symlinks only in `b`, or whose kind changed. */
  added: FlatEntry[];
  /** In both, with other content, mode or target. */
  modified: Array<{ before: FlatEntry; after: FlatEntry }>;
  /** Only in `a`. */
  deleted: FlatEntry[];
  /** In both with the same content but another mtime. */
  touched: FlatEntry[];
}

/**
 * What changed from tree `a` to tree `b`, descending only into directories whose refs differ: the
 * cost follows the change, not the size of the trees.
 */
export async function diffTrees(reader: TreeReader, a: TreeRef | undefined, b: TreeRef | undefined): Promise<TreeDiff> {
  const out: TreeDiff = { added: [], modified: [], deleted: [], touched: [] };
  const all = async (ref: TreeRef, dir: string, into: FlatEntry[]) => {
    await walkTree(reader, ref, (e) => { if (e.kind !== 'dir') into.push(e); }, dir);
  };
  const step = async (dir: string, ra: TreeRef | undefined, rb: TreeRef | undefined): Promise<void> => {
    if (ra && rb && ra[3] === rb[3]) return;
    if (!ra) { if (rb) await all(rb, dir, out.added); return; }
    if (!rb) { await all(ra, dir, out.deleted); return; }
    const [ea, eb] = await Promise.all([reader.read(ra), reader.read(rb)]);
    const byName = new Map(ea.map((e) => [e.name, e]));
    const sub: Array<Promise<void>> = [];
    for (const y of eb) {
      const path = dir ? `${dir}/${y.name}` : y.name;
      const x = byName.get(y.name);
      byName.delete(y.name);
      if (y.kind === 'dir') {
        if (x?.kind === 'dir') sub.push(step(path, x.ref, y.ref));
        else {
          if (x) out.deleted.push({ ...x, path } as FlatEntry);
          sub.push(all(y.ref, path, out.added));
        }
        continue;
      }
      if (!x) { out.added.push({ ...y, path }); continue; }
      if (x.kind === 'dir') { sub.push(all(x.ref, path, out.deleted)); out.added.push({ ...y, path }); continue; }
      if (x.kind !== y.kind) { out.deleted.push({ ...x, path }); out.added.push({ ...y, path }); continue; }
      if (sameContent(x, y)) { if (x.mtimeMs !== y.mtimeMs) out.touched.push({ ...y, path }); continue; }
      out.modified.push({ before: { ...x, path }, after: { ...y, path } });
    }
    for (const x of byName.values()) {
      const path = dir ? `${dir}/${x.name}` : x.name;
      if (x.kind === 'dir') sub.push(all(x.ref, path, out.deleted));
      else out.deleted.push({ ...x, path });
    }
    await Promise.all(sub);
  };
  await step('', a, b);
  return out;
}

function sameContent(x: Exclude<TreeEntry, { kind: 'dir' }>, y: Exclude<TreeEntry, { kind: 'dir' }>): boolean {
  if (x.kind === 'file' && y.kind === 'file') return x.sha256 === y.sha256 && x.mode === y.mode;
  return x.kind === 'symlink' && y.kind === 'symlink' && x.target === y.target;
}
