/**
 * A reader of git's index file (`Documentation/gitformat-index.txt`) that keeps only what deciding
 * "tracked or not" needs: each entry's path, mode, stage and the skip-worktree and intent-to-add bits.
 * Versions 2, 3 and 4 (path prefix compression), SHA-1 and SHA-256 repositories, the split index
 * (`link` extension: a shared index plus EWAH delete/replace bitmaps) and sparse-directory entries of
 * a sparse index. Stat data and object ids are skipped, and the trailing checksum is not verified:
 * git writes the index by renaming a complete file into place, so a torn read is not a concern.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface IndexEntry {
  /** The path as stored (relative to the work tree top, `/`-separated); sparse directories end in `/`. */
  path: string;
  mode: number;
  stage: number;
  skipWorktree: boolean;
  intentToAdd: boolean;
}

export const GITLINK_MODE = 0o160000;
export const SPARSE_DIR_MODE = 0o040000;

export interface ParsedIndex {
  version: number;
  entries: IndexEntry[];
  /** Hex id of the shared index when this is a split index, with the positions its bitmaps name. */
  split?: { base: string; deleted: number[]; replaced: number[] };
}

/** Thrown for a file that is not a valid index; the caller turns it into a user-facing error. */
export class IndexFormatError extends Error {}

const FLAG_EXTENDED = 0x4000;
const NAME_MASK = 0x0fff;
const EXT_SKIP_WORKTREE = 0x4000;
const EXT_INTENT_TO_ADD = 0x2000;
/** ctime, mtime (8 bytes each), dev, ino, mode, uid, gid, size (4 bytes each), before the object id. */
const STAT_BYTES = 40;
const ASCII = /^[\x00-\x7f]*$/;

/** Paths are bytes; Node decodes file names as UTF-8, so the index is decoded the same way. */
const decodeName = (latin1: string): string => (ASCII.test(latin1) ? latin1 : Buffer.from(latin1, 'latin1').toString('utf8'));

export function parseIndex(buf: Buffer, hashSize = 20): ParsedIndex {
  const fail = (what: string): never => { throw new IndexFormatError(what); };
  if (buf.length < 12 + hashSize || buf.toString('latin1', 0, 4) !== 'DIRC') fail('not a git index (no DIRC signature)');
  const version = buf.readUInt32BE(4);
  if (version < 2 || version > 4) fail(`unsupported index version ${version}`);
  const count = buf.readUInt32BE(8);
  const end = buf.length - hashSize;
  const fixed = STAT_BYTES + hashSize + 2;
  const entries = new Array<IndexEntry>(count);
  let off = 12;
  let previous = '';
  for (let i = 0; i < count; i++) {
    if (off + fixed > end) fail('truncated entry');
    const mode = buf.readUInt32BE(off + 24);
    const flags = buf.readUInt16BE(off + fixed - 2);
    let ext = 0;
    let p = off + fixed;
    if (flags & FLAG_EXTENDED) {
      if (version < 3) fail('extended flags in a version 2 index');
      ext = buf.readUInt16BE(p);
      p += 2;
    }
    let name: string;
    if (version === 4) {
      // A varint (git's offset encoding) of bytes to drop from the previous name, then the rest, NUL-terminated.
      let c = buf[p++]!;
      let strip = c & 0x7f;
      while (c & 0x80) {
        if (p >= end) fail('truncated path');
        c = buf[p++]!;
        strip = ((strip + 1) * 128) + (c & 0x7f);
      }
      if (strip > previous.length) fail('bad path compression');
      const nul = buf.indexOf(0, p);
      if (nul < 0 || nul >= end) fail('unterminated path');
      name = previous.slice(0, previous.length - strip) + buf.toString('latin1', p, nul);
      off = nul + 1;
    } else {
      let len = flags & NAME_MASK;
      if (len === NAME_MASK) len = buf.indexOf(0, p) - p;
      if (len < 0 || p + len >= end) fail('truncated path');
      name = buf.toString('latin1', p, p + len);
      // Entries are NUL-padded to a multiple of 8 bytes, with at least one NUL.
      off += (p - off + len + 8) & ~7;
    }
    previous = name;
    entries[i] = {
      path: decodeName(name), mode, stage: (flags >> 12) & 3,
      skipWorktree: (ext & EXT_SKIP_WORKTREE) !== 0, intentToAdd: (ext & EXT_INTENT_TO_ADD) !== 0,
    };
  }
  const out: ParsedIndex = { version, entries };
  while (off + 8 <= end) {
    const sig = buf.toString('latin1', off, off + 4);
    const size = buf.readUInt32BE(off + 4);
    const body = off + 8;
    if (body + size > end) fail(`truncated extension ${sig}`);
    if (sig === 'link') out.split = readLink(buf.subarray(body, body + size), hashSize, fail);
    off = body + size;
  }
  return out;
}

function readLink(data: Buffer, hashSize: number, fail: (what: string) => never): ParsedIndex['split'] {
  if (data.length < hashSize) fail('corrupt link extension');
  const base = data.toString('hex', 0, hashSize);
  if (data.length === hashSize) return { base, deleted: [], replaced: [] };
  const del = readEwah(data, hashSize, fail);
  const rep = readEwah(data, del.next, fail);
  if (rep.next !== data.length) fail('garbage at the end of the link extension');
  return { base, deleted: del.bits, replaced: rep.bits };
}

/**
 * One serialized EWAH bitmap (git's ewah/ewah_io.c): bit count, word count, 64-bit big-endian words,
 * the position of the last run-length word. Each run-length word holds a run bit (bit 0), a run length
 * in 64-bit words (bits 1-32) and the number of literal words that follow it (bits 33-63).
 */
export function readEwah(buf: Buffer, start: number, fail: (what: string) => never): { bits: number[]; next: number } {
  if (start + 8 > buf.length) fail('truncated bitmap');
  const words = buf.readUInt32BE(start + 4);
  const first = start + 8;
  const next = first + words * 8 + 4;
  if (next > buf.length) fail('truncated bitmap');
  const bits: number[] = [];
  let pos = 0;
  for (let w = 0; w < words;) {
    const hi = buf.readUInt32BE(first + w * 8);
    const lo = buf.readUInt32BE(first + w * 8 + 4);
    const run = ((lo >>> 1) + (hi & 1) * 0x80000000) * 64;
    if (lo & 1) for (let k = 0; k < run; k++) bits.push(pos + k);
    pos += run;
    const literals = hi >>> 1;
    w++;
    if (w + literals > words) fail('corrupt bitmap');
    for (let k = 0; k < literals; k++, w++) {
      // Bit c of a word is position pos + c: the low half (second 4 bytes) holds bits 0-31.
      const whi = buf.readUInt32BE(first + w * 8);
      const wlo = buf.readUInt32BE(first + w * 8 + 4);
      for (let c = 0; c < 32; c++) if ((wlo >>> c) & 1) bits.push(pos + c);
      for (let c = 0; c < 32; c++) if ((whi >>> c) & 1) bits.push(pos + 32 + c);
      pos += 64;
    }
  }
  return { bits, next };
}

/** The entries of a split index applied to its shared index, as git's merge_base_index() does. */
export function mergeSplitIndex(base: readonly IndexEntry[], own: ParsedIndex): IndexEntry[] {
  const split = own.split!;
  const merged: Array<IndexEntry | undefined> = [...base];
  let r = 0;
  for (const pos of split.replaced) {
    const src = own.entries[r++];
    const dst = merged[pos];
    if (!src || !dst) throw new IndexFormatError('split index replaces an entry that does not exist');
    merged[pos] = { ...src, path: dst.path };
  }
  for (const pos of split.deleted) {
    if (pos >= merged.length) throw new IndexFormatError('split index deletes an entry that does not exist');
    merged[pos] = undefined;
  }
  const byKey = new Map<string, IndexEntry>();
  for (const e of merged) if (e) byKey.set(`${e.stage}\0${e.path}`, e);
  // Added entries replace an entry of the same path and stage (add_index_entry with OK_TO_ADD).
  for (let i = r; i < own.entries.length; i++) {
    const e = own.entries[i]!;
    if (e.path === '') throw new IndexFormatError('split index adds an entry without a name');
    byKey.set(`${e.stage}\0${e.path}`, e);
  }
  return [...byKey.values()];
}

/**
 * The entries of the index at `indexFile`, with its shared index merged in when it is split (the shared
 * index is looked up in `gitDir`, then next to the index file, as git does). A missing index is empty.
 */
export function readIndexFile(indexFile: string, gitDir: string, hashSize = 20): IndexEntry[] {
  let buf: Buffer;
  try {
    buf = readFileSync(indexFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const own = parseIndex(buf, hashSize);
  if (!own.split || /^0+$/.test(own.split.base)) return own.entries;
  const name = `sharedindex.${own.split.base}`;
  let shared: Buffer;
  try {
    shared = readFileSync(path.join(gitDir, name));
  } catch {
    try {
      shared = readFileSync(path.join(path.dirname(indexFile), name));
    } catch {
      throw new IndexFormatError(`its shared index ${name} is missing`);
    }
  }
  return mergeSplitIndex(parseIndex(shared, hashSize).entries, own);
}
