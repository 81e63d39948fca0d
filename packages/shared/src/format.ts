/**
 * Format v2 (docs/design.md): commits, which are also the bodies of heads, and tree objects, one per
 * directory. Both are untrusted input for every reader: decoding validates every field, every name
 * and every reference, and bounds how much a compressed object may expand to.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { SyncError } from './errors.js';
import { compareUtf8 } from './manifest.js';
import { isValidWorkspaceName } from './paths.js';

export const COMMIT_FORMAT = 'workspace-sync.commit';
/** Commits written now. 3 added split directories (below); 2 had none, and is still read. */
export const FORMAT_VERSION = 3;
const OLDEST_READ_VERSION = 2;
/** Blobs larger than this carry the sha256 of every piece of this size, so ranged reads are verified. */
export const CHUNK_SIZE = 4 * 1024 * 1024;
/** What one tree object may expand to: far above any real directory, far below a decompression bomb. */
const MAX_TREE_BYTES = 64 * 1024 * 1024;
/**
 * A split directory's parts together, compressed and as JSON: about 1.7 million entries. Bounds what
 * a hostile index can make a reader fetch and decode (parts are checked one by one, the sum here).
 */
const MAX_SPLIT_BYTES = 256 * 1024 * 1024;
/** A commit or head object; readers refuse a larger one before reading it. */
export const MAX_COMMIT_BYTES = 4 * 1024 * 1024;
/**
 * A tree pack: writers close one at 4 MiB, plus the one tree object that overflowed it (an index of
 * 65,536 parts is ~7 MiB). Readers fetch packs whole, so a larger one is refused before it is read.
 */
export const MAX_TREE_PACK_BYTES = 64 * 1024 * 1024;
/** Paths listed in a commit's `changes` (the counts are always complete). */
export const MAX_CHANGE_PATHS = 1000;

const SHA256 = /^[0-9a-f]{64}$/;
/** v2 names are 16 hex characters; v1 packs were named by their sha256. */
const PACK_NAME = /^[0-9a-f]{16}(?:[0-9a-f]{48})?$/;
const COMMIT_ID = /^[0-9a-f]{16}$/;
const COMMIT_STEM = /^\d{12}-[0-9a-f]{16}$/;

/** Where a tree object is: `[tree pack name, offset, length, sha256 of those bytes]`. */
export type TreeRef = readonly [pack: string, offset: number, length: number, sha256: string];

export interface FileTreeEntry {
  name: string;
  kind: 'file';
  size: number;
  mtimeMs: number;
  /** Permission bits only. */
  mode: number;
  sha256: string;
  /** Where the bytes are in a data pack; undefined: the blob named by sha256 (or nothing, when empty). */
  pack: string | undefined;
  offset: number;
  /** sha256 of each CHUNK_SIZE piece, for blobs larger than one chunk. */
  chunks: readonly string[] | undefined;
}

export interface DirTreeEntry {
  name: string;
  kind: 'dir';
  ref: TreeRef;
  /** Time of the commit in which anything under this directory last changed. */
  changedAtMs: number;
  /** Files and symlinks under it, and their bytes. */
  files: number;
  bytes: number;
}

export interface SymlinkTreeEntry {
  name: string;
  kind: 'symlink';
  target: string;
  mtimeMs: number;
}

export type TreeEntry = FileTreeEntry | DirTreeEntry | SymlinkTreeEntry;

export interface CommitChanges {
  added: number;
  modified: number;
  deleted: number;
  /** Bytes of added and modified files. */
  bytes: number;
  paths: { added: string[]; modified: string[]; deleted: string[] };
  truncated: boolean;
}

export interface Commit {
  format: typeof COMMIT_FORMAT;
  version: number;
  workspace: string;
  generation: number;
  id: string;
  /** Stem of the previous commit's key, or null for the first. */
  parent: string | null;
  createdAt: string;
  writer: { host: string; agent: string };
  root: TreeRef;
  stats: { files: number; dirs: number; bytes: number };
  changes: CommitChanges;
}

/** `<generation:012>-<id>`: the commit's key is `.sync/<ws>/commits/<stem>.json`. */
export function commitStem(c: Pick<Commit, 'generation' | 'id'>): string {
  return `${String(c.generation).padStart(12, '0')}-${c.id}`;
}

export function isCommitStem(s: string): boolean {
  return COMMIT_STEM.test(s);
}

export function isPackName(s: string): boolean {
  return PACK_NAME.test(s);
}

// ---- trees ----

type RawEntry = unknown[];

/**
 * Encodes a directory's entries (any order; sorted here) as one gzip-compressed tree object.
 * Pack names are stored once per tree and referred to by index.
 */
export function encodeTree(entries: readonly TreeEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => compareUtf8(a.name, b.name));
  const treePacks: string[] = [];
  const dataPacks: string[] = [];
  const indexOf = (list: string[], seen: Map<string, number>, name: string) => {
    let i = seen.get(name);
    if (i === undefined) { i = list.push(name) - 1; seen.set(name, i); }
    return i;
  };
  const tSeen = new Map<string, number>();
  const dSeen = new Map<string, number>();
  const e: RawEntry[] = sorted.map((x) => {
    switch (x.kind) {
      case 'file': {
        const raw: RawEntry = [x.name, 'f', x.size, x.mtimeMs, x.mode, x.sha256, x.pack === undefined ? -1 : indexOf(dataPacks, dSeen, x.pack), x.offset];
        if (x.chunks) raw.push(x.chunks);
        return raw;
      }
      case 'dir':
        return [x.name, 'd', indexOf(treePacks, tSeen, x.ref[0]), x.ref[1], x.ref[2], x.ref[3], x.changedAtMs, x.files, x.bytes];
      case 'symlink':
        return [x.name, 'l', x.target, x.mtimeMs];
    }
  });
  return gzipSync(Buffer.from(JSON.stringify({ t: treePacks, d: dataPacks, e })), { level: 6 });
}

/**
 * A directory with more entries than this is written as a split tree: an index of parts, each part
 * an ordinary tree object holding a run of its entries. A change then rewrites one part and the
 * index instead of the whole directory, so what a save costs stays bounded however large the
 * directory grows.
 */
export const SPLIT_ABOVE = 256;
/** A part ends after a name whose hash is 0 modulo this (about this many entries per part)... */
const PART_TARGET = 64;
/** ...or at this many entries, whatever the names. */
const PART_MAX = 1024;
/** Parts in one index: a directory of 4 million entries, far past anything a filesystem serves well. */
const MAX_PARTS = 65536;

/**
 * Cuts a directory's sorted entries into parts at boundaries chosen by the names themselves
 * (content-defined, as rsync and restic cut files): adding or removing an entry moves at most the
 * boundaries next to it, so every other part keeps its bytes and its ref.
 */
export function splitEntries<T extends { name: string }>(sorted: readonly T[]): T[][] {
  const parts: T[][] = [];
  let part: T[] = [];
  for (const e of sorted) {
    part.push(e);
    if (part.length >= PART_MAX || nameHash(e.name) % PART_TARGET === 0) {
      parts.push(part);
      part = [];
    }
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

/** FNV-1a over the name's UTF-16 code units: stable across versions, which is all the cut needs. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Encodes the index of a split directory: the refs of its parts, in name order. */
export function encodeSplitTree(parts: readonly TreeRef[]): Buffer {
  const packs: string[] = [];
  const seen = new Map<string, number>();
  const s = parts.map(([pack, offset, length, sha256]) => {
    let i = seen.get(pack);
    if (i === undefined) { i = packs.push(pack) - 1; seen.set(pack, i); }
    return [i, offset, length, sha256];
  });
  return gzipSync(Buffer.from(JSON.stringify({ t: packs, s })), { level: 6 });
}

/** A decoded tree object: a directory's entries, or (split directories) the refs of its parts. */
export type TreeObject = { entries: TreeEntry[]; parts?: undefined } | { parts: TreeRef[]; entries?: undefined };

/**
 * Decodes and validates a tree object (either kind) whose bytes were already checked against its
 * ref's sha256. A split directory's parts must each be an ordinary tree object: the caller fetches
 * and checks them, and `decodeSplit` decodes and joins them.
 */
export function decodeTreeObject(body: Buffer, where: string): TreeObject {
  const raw = parseTree(body, where);
  if (raw.s === undefined) return { entries: decodeEntries(raw, where) };
  const bad = badTree(where);
  if (!isStringArray(raw.t) || !Array.isArray(raw.s) || raw.e !== undefined || raw.d !== undefined) return bad('expected {t, s}');
  const packs = raw.t as string[];
  for (const p of packs) if (!isPackName(p)) bad(`pack name ${JSON.stringify(p)}`);
  const list = raw.s as unknown[];
  if (list.length < 2 || list.length > MAX_PARTS) return bad(`${list.length} parts`);
  let total = 0;
  const parts = list.map((item, i) => {
    if (!Array.isArray(item) || item.length !== 4) return bad(`part ${i}`);
    const [pack, offset, length, sha256] = item as unknown[];
    if (!isInt(pack) || (pack as number) < 0 || (pack as number) >= packs.length || !isCount(offset)) return bad(`part ${i}: location`);
    if (!isCount(length) || (length as number) === 0 || (length as number) > MAX_TREE_BYTES || !isSha(sha256)) return bad(`part ${i}: ref`);
    total += length as number;
    return [packs[pack as number]!, offset as number, length as number, sha256 as string] as TreeRef;
  });
  // Checked before any part is fetched.
  if (total > MAX_SPLIT_BYTES) return bad(`its parts hold ${total} bytes, more than ${MAX_SPLIT_BYTES}`);
  return { parts };
}

/**
 * The entries of a split directory from its parts' bytes (each already checked against its ref),
 * decoded within one budget of JSON for the whole directory: an index naming many small parts that
 * inflate hugely cannot make a reader decode gigabytes.
 */
export function decodeSplit(parts: ReadonlyArray<{ bytes: Buffer; where: string }>, where: string, maxBytes = MAX_SPLIT_BYTES): TreeEntry[] {
  let budget = maxBytes;
  const decoded = parts.map((p) => {
    if (budget <= 0) return badTree(where)(`its parts hold more than ${maxBytes} bytes of entries`);
    const { raw, size } = parseTreeSized(p.bytes, p.where, Math.min(budget, MAX_TREE_BYTES));
    budget -= size;
    if (raw.s !== undefined) badTree(p.where)('a split index where a part was expected');
    return decodeEntries(raw, p.where);
  });
  return joinParts(decoded, where);
}

/** The entries of a split directory from its decoded parts, checked to be in order across parts. */
function joinParts(parts: readonly (readonly TreeEntry[])[], where: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  for (const [i, part] of parts.entries()) {
    if (part.length === 0) badTree(where)(`part ${i} is empty`);
    if (out.length > 0 && compareUtf8(out[out.length - 1]!.name, part[0]!.name) >= 0) badTree(where)(`part ${i} is out of order`);
    for (const e of part) out.push(e);
  }
  return out;
}

function badTree(where: string): (why: string) => never {
  return (why) => {
    throw new SyncError('MANIFEST_INVALID', `tree object ${where} is invalid: ${why}`, {
      hint: 'the bucket holds a damaged or foreign object; push the workspace again to write a fresh commit',
    });
  };
}

function parseTree(body: Buffer, where: string): Record<string, unknown> {
  return parseTreeSized(body, where, MAX_TREE_BYTES).raw;
}

function parseTreeSized(body: Buffer, where: string, max: number): { raw: Record<string, unknown>; size: number } {
  let json: Buffer;
  let raw: unknown;
  try {
    json = gunzipSync(body, { maxOutputLength: max });
    raw = JSON.parse(json.toString('utf8'));
  } catch {
    return badTree(where)(`not gzip-compressed JSON (or more than the ${max} bytes left for its directory)`);
  }
  if (!isObject(raw)) return badTree(where)('not an object');
  return { raw, size: json.length };
}

function decodeEntries(raw: Record<string, unknown>, where: string): TreeEntry[] {
  const bad = badTree(where);
  if (!isStringArray(raw.t) || !isStringArray(raw.d) || !Array.isArray(raw.e)) return bad('expected {t, d, e}');
  const treePacks = raw.t as string[];
  const dataPacks = raw.d as string[];
  for (const p of [...treePacks, ...dataPacks]) if (!isPackName(p)) bad(`pack name ${JSON.stringify(p)}`);
  const out: TreeEntry[] = [];
  let previous: string | undefined;
  for (const [i, item] of (raw.e as unknown[]).entries()) {
    const at = `entry ${i}`;
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !isValidName(item[0])) return bad(`${at}: name`);
    const name = item[0];
    if (previous !== undefined && compareUtf8(previous, name) >= 0) return bad(`${at}: ${JSON.stringify(name)} is out of order or repeated`);
    previous = name;
    switch (item[1]) {
      case 'f': {
        const [, , size, mtimeMs, mode, sha256, pack, offset, chunks] = item as unknown[];
        if (!isCount(size) || !isTime(mtimeMs) || !isCount(mode) || (mode as number) > 0o7777 || !isSha(sha256)) return bad(`${at}: file fields`);
        if (!isInt(pack) || (pack as number) < -1 || (pack as number) >= dataPacks.length || !isCount(offset)) return bad(`${at}: file location`);
        const n = Math.ceil((size as number) / CHUNK_SIZE);
        if (chunks !== undefined && (!isStringArray(chunks) || chunks.length !== n || !chunks.every(isSha))) return bad(`${at}: chunk hashes`);
        if (chunks === undefined && pack === -1 && n > 1) return bad(`${at}: a blob of ${size as number} bytes without chunk hashes`);
        if (item.length > (chunks === undefined ? 8 : 9)) return bad(`${at}: extra fields`);
        out.push({
          name, kind: 'file', size: size as number, mtimeMs: mtimeMs as number, mode: mode as number, sha256: sha256 as string,
          pack: pack === -1 ? undefined : dataPacks[pack as number], offset: pack === -1 ? 0 : offset as number,
          chunks: chunks as string[] | undefined,
        });
        break;
      }
      case 'd': {
        const [, , pack, offset, length, sha256, changedAtMs, files, bytes] = item as unknown[];
        if (!isInt(pack) || (pack as number) < 0 || (pack as number) >= treePacks.length || !isCount(offset)) return bad(`${at}: directory location`);
        if (!isCount(length) || (length as number) === 0 || (length as number) > MAX_TREE_BYTES || !isSha(sha256)) return bad(`${at}: directory ref`);
        if (!isTime(changedAtMs) || !isCount(files) || !isCount(bytes) || item.length !== 9) return bad(`${at}: directory fields`);
        out.push({
          name, kind: 'dir', ref: [treePacks[pack as number]!, offset as number, length as number, sha256 as string],
          changedAtMs: changedAtMs as number, files: files as number, bytes: bytes as number,
        });
        break;
      }
      case 'l': {
        const [, , target, mtimeMs] = item as unknown[];
        if (!isLinkTarget(target) || !isTime(mtimeMs) || item.length !== 4) return bad(`${at}: symlink fields`);
        out.push({ name, kind: 'symlink', target: target as string, mtimeMs: mtimeMs as number });
        break;
      }
      default:
        return bad(`${at}: unknown kind ${JSON.stringify(item[1])}`);
    }
  }
  return out;
}

// ---- commits ----

export function encodeCommit(c: Commit): Buffer {
  return Buffer.from(`${JSON.stringify(c)}\n`);
}

/** Decodes and validates a commit (or a head, whose body is a commit). */
export function decodeCommit(body: Buffer, where: string): Commit {
  const bad = (why: string): never => {
    throw new SyncError('MANIFEST_INVALID', `commit ${where} is invalid: ${why}`, {
      hint: 'the bucket holds a damaged or foreign object; push the workspace again to write a fresh commit',
    });
  };
  if (body.length > MAX_COMMIT_BYTES) return bad('larger than 4 MiB');
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch {
    return bad('not JSON');
  }
  if (!isObject(raw)) return bad('not an object');
  if (raw.format !== COMMIT_FORMAT) return bad(`format is ${JSON.stringify(raw.format)}`);
  if (typeof raw.version === 'number' && raw.version > FORMAT_VERSION) {
    throw new SyncError('MANIFEST_TOO_NEW', `commit ${where} has format version ${raw.version}; this build reads ${FORMAT_VERSION}`, {
      hint: 'upgrade workspace-sync on this machine',
    });
  }
  if (!isInt(raw.version) || (raw.version as number) < OLDEST_READ_VERSION) return bad(`version is ${JSON.stringify(raw.version)}`);
  if (typeof raw.workspace !== 'string' || !isValidWorkspaceName(raw.workspace)) return bad('workspace name');
  if (!isCount(raw.generation) || (raw.generation as number) < 1) return bad('generation');
  if (typeof raw.id !== 'string' || !COMMIT_ID.test(raw.id)) return bad('id');
  if (raw.parent !== null && (typeof raw.parent !== 'string' || !COMMIT_STEM.test(raw.parent))) return bad('parent');
  if (typeof raw.createdAt !== 'string' || Number.isNaN(Date.parse(raw.createdAt))) return bad('createdAt');
  const w = raw.writer;
  if (!isObject(w) || typeof w.host !== 'string' || typeof w.agent !== 'string' || w.host.length > 255 || w.agent.length > 255) return bad('writer');
  const r = raw.root;
  if (!Array.isArray(r) || r.length !== 4 || typeof r[0] !== 'string' || !isPackName(r[0]) || !isCount(r[1]) || !isCount(r[2]) || (r[2] as number) === 0 || (r[2] as number) > MAX_TREE_BYTES || !isSha(r[3])) return bad('root');
  const s = raw.stats;
  if (!isObject(s) || !isCount(s.files) || !isCount(s.dirs) || !isCount(s.bytes)) return bad('stats');
  const ch = raw.changes;
  if (!isObject(ch) || !isCount(ch.added) || !isCount(ch.modified) || !isCount(ch.deleted) || !isCount(ch.bytes) || typeof ch.truncated !== 'boolean') return bad('changes');
  const p = ch.paths;
  if (!isObject(p) || !isStringArray(p.added) || !isStringArray(p.modified) || !isStringArray(p.deleted)) return bad('changes.paths');
  if ((p.added as string[]).length + (p.modified as string[]).length + (p.deleted as string[]).length > MAX_CHANGE_PATHS) return bad('too many change paths');
  return {
    format: COMMIT_FORMAT, version: raw.version as number, workspace: raw.workspace, generation: raw.generation as number, id: raw.id,
    parent: raw.parent as string | null, createdAt: raw.createdAt, writer: { host: w.host, agent: w.agent },
    root: [r[0], r[1] as number, r[2] as number, r[3] as string],
    stats: { files: s.files as number, dirs: s.dirs as number, bytes: s.bytes as number },
    changes: {
      added: ch.added as number, modified: ch.modified as number, deleted: ch.deleted as number, bytes: ch.bytes as number,
      paths: { added: p.added as string[], modified: p.modified as string[], deleted: p.deleted as string[] }, truncated: ch.truncated,
    },
  };
}

// ---- checks ----

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

function isInt(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function isCount(v: unknown): boolean {
  return isInt(v) && (v as number) >= 0;
}

/** Any finite time: files dated before 1970 exist. */
function isTime(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v);
}

function isSha(v: unknown): v is string {
  return typeof v === 'string' && SHA256.test(v);
}

function isLinkTarget(v: unknown): boolean {
  return typeof v === 'string' && v.length > 0 && v.length <= 4096 && !v.includes('\0');
}

/** One path segment as a tree may name it. */
export function isValidName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') && Buffer.byteLength(name) <= 255;
}
