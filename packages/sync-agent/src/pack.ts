/**
 * Packs: copies of a workspace's small files back to back in a few objects under `.sync/`, so a
 * mount warming a workspace makes a few range GETs instead of one GET per file (per-request cost,
 * not bandwidth, is what a source tree pays on S3). The plain per-file objects stay the truth; a
 * pack is only a faster second copy that readers verify against each entry's sha256.
 *
 * Packs are immutable and named by their sha256. A push that publishes a manifest carries the
 * references of files whose bytes did not change; once too many small files are not in any pack,
 * it writes fresh packs from the files on disk (only bytes matching the entry's sha256 go in) and
 * deletes the old ones after the manifest is committed.
 */
import { closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import {
  compareUtf8, packKey, packsPrefix, readFullySync, sha256Hex,
  type FileEntry, type Logger, type ManifestEntry, type ObjectStore, type PackInfo,
} from '@workspace-sync/shared';

export interface PackLimits {
  /** Files up to this size are packed (source files; assets above it are fetched on their own). */
  maxFile: number;
  /** Bytes per pack object: a pack is built in memory, so this bounds what packing adds to the agent's RSS. */
  maxPack: number;
  /** Bytes in all packs of a workspace, so packing never doubles a large workspace's storage. */
  maxTotal: number;
  /** Fewer small files than this: not worth a pack. */
  minFiles: number;
  /** Repack once this fraction of the small files is in no pack. */
  staleFraction: number;
}

export const DEFAULT_PACK_LIMITS: PackLimits = {
  maxFile: 256 * 1024, maxPack: 4 * 1024 * 1024, maxTotal: 256 * 1024 * 1024, minFiles: 32, staleFraction: 0.1,
};

export interface PackContext {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  wsDir: string;
  log: Logger;
  /** Off: entries lose their references and every existing pack becomes obsolete. */
  enabled: boolean;
  limits?: PackLimits | undefined;
}

export interface PackOutcome {
  /** The entries, each small file with its current pack reference or none. */
  entries: ManifestEntry[];
  packs: PackInfo[];
  /** Keys of packs the new manifest no longer uses: delete them once it is committed. */
  obsolete: string[];
  /** Packs written now. */
  written: number;
  requests: number;
}

/** The previous manifest's view: its entries and packs. */
export interface PackHistory {
  committed: ReadonlyMap<string, ManifestEntry> | undefined;
  packs: readonly PackInfo[];
}

export async function updatePacks(entries: readonly ManifestEntry[], prev: PackHistory, ctx: PackContext): Promise<PackOutcome> {
  const limits = ctx.limits ?? DEFAULT_PACK_LIMITS;
  const keyOf = (p: PackInfo) => packKey(ctx.prefix, ctx.workspace, p.id);
  const isSmall = (e: ManifestEntry): e is FileEntry => e.type === 'file' && e.size > 0 && e.size <= limits.maxFile;
  if (!ctx.enabled) {
    return { entries: entries.map(withoutPack), packs: [], obsolete: prev.packs.map(keyOf), written: 0, requests: 0 };
  }

  // Carry each unchanged small file's reference. Packs keep their order, renumbered over those
  // still in use; an entry that is the committed one (the usual case in watch mode, batch after
  // batch) is that same object, so a publish does not copy thousands of entries.
  const carriedFrom = entries.map((e) => {
    if (!isSmall(e)) return undefined;
    const before = prev.committed?.get(e.path);
    const ref = before?.type === 'file' && before.sha256 === e.sha256 ? before.pack : undefined;
    return ref && prev.packs[ref[0]] ? { before: before as FileEntry, ref } : undefined;
  });
  const small = entries.filter(isSmall).length;
  const uncovered = small - carriedFrom.filter(Boolean).length;
  const repack = small >= limits.minFiles && uncovered > limits.staleFraction * small;
  if (repack) return writePacks(entries, prev, ctx, limits, isSmall);

  const inUse = new Set(carriedFrom.flatMap((c) => (c ? [c.ref[0]] : [])));
  const renumber = new Map<number, number>();
  const packs: PackInfo[] = [];
  prev.packs.forEach((p, i) => { if (inUse.has(i)) renumber.set(i, packs.push(p) - 1); });
  const carried = entries.map((e, i) => {
    const from = carriedFrom[i];
    if (!from || e.type !== 'file') return withoutPack(e);
    const index = renumber.get(from.ref[0])!;
    if (index === from.ref[0] && sameEntry(from.before, e)) return from.before;
    return { ...e, pack: [index, from.ref[1]] as [number, number] };
  });
  const obsolete = prev.packs.filter((_, i) => !inUse.has(i)).map(keyOf);
  return { entries: carried, packs, obsolete, written: 0, requests: 0 };
}

/** Same file entry apart from its pack reference. */
function sameEntry(a: FileEntry, b: FileEntry): boolean {
  return a.path === b.path && a.size === b.size && a.mtimeMs === b.mtimeMs
    && a.mode === b.mode && a.sha256 === b.sha256 && a.etag === b.etag;
}

async function writePacks(
  entries: readonly ManifestEntry[], prev: PackHistory, ctx: PackContext, limits: PackLimits,
  isSmall: (e: ManifestEntry) => e is FileEntry,
): Promise<PackOutcome> {
  const refs = new Map<string, [number, number]>();
  const packs: PackInfo[] = [];
  let requests = 0;
  let total = 0;

  // Path order: a tree walk reads neighbours together, and neighbours then share a range GET.
  const candidates = entries.filter(isSmall).sort((a, b) => compareUtf8(a.path, b.path));
  // One buffer, reused for every pack: files are read straight into it (a copy per file, then a
  // concatenation, kept 20-35 MiB of freed memory in the watch daemon's RSS).
  const packable = Math.min(limits.maxTotal, candidates.reduce((n, e) => n + e.size, 0));
  const buffer = Buffer.allocUnsafe(Math.min(limits.maxPack, packable));
  let members: Array<{ path: string; offset: number }> = [];
  let size = 0;

  const flush = async () => {
    if (size === 0) return;
    const body = buffer.subarray(0, size);
    const id = sha256Hex(body);
    const { etag } = await ctx.store.put(packKey(ctx.prefix, ctx.workspace, id), body, { contentType: 'application/octet-stream', sha256: id });
    requests++;
    const index = packs.push({ id, size, etag }) - 1;
    for (const m of members) refs.set(m.path, [index, m.offset]);
    members = [];
    size = 0;
  };

  for (const e of candidates) {
    if (total + e.size > limits.maxTotal) break;
    if (size + e.size > buffer.length) await flush();
    // Only the bytes the manifest describes: a file edited since it was uploaded (or while it is
    // read here) does not match the entry's sha256 and stays out.
    if (!readInto(path.join(ctx.wsDir, e.path), buffer, size, e.size)) continue;
    if (sha256Hex(buffer.subarray(size, size + e.size)) !== e.sha256) continue;
    members.push({ path: e.path, offset: size });
    size += e.size;
    total += e.size;
  }
  await flush();

  // Every other object under the packs prefix goes: the previous packs, and any a crashed push left.
  const keep = new Set(packs.map((p) => packKey(ctx.prefix, ctx.workspace, p.id)));
  const obsolete = new Set(prev.packs.map((p) => packKey(ctx.prefix, ctx.workspace, p.id)));
  for await (const item of ctx.store.list(packsPrefix(ctx.prefix, ctx.workspace))) {
    if (!('commonPrefix' in item)) obsolete.add(item.key);
  }
  requests++;
  for (const k of keep) obsolete.delete(k);
  ctx.log.debug({ workspace: ctx.workspace, packs: packs.length, files: refs.size, bytes: total }, 'packed small files');

  const out = entries.map((e) => {
    const ref = e.type === 'file' ? refs.get(e.path) : undefined;
    return ref ? { ...e, pack: ref } : withoutPack(e);
  });
  return { entries: out, packs, obsolete: [...obsolete], written: packs.length, requests };
}

/** Reads exactly `length` bytes of the file into `target` at `offset`; false if it is shorter, gone or unreadable. */
function readInto(file: string, target: Buffer, offset: number, length: number): boolean {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    return readFullySync(fd, target, offset, length, 0) === length;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

function withoutPack(e: ManifestEntry): ManifestEntry {
  if (e.type !== 'file' || e.pack === undefined) return e;
  const { pack: _drop, ...rest } = e;
  return rest;
}
