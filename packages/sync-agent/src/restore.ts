/**
 * `sync-agent restore`: writes a workspace (or some of its paths) as a commit recorded it, byte for
 * byte, with exec bits, symlinks and mtimes. Content comes from the immutable store (data packs and
 * blobs), never from the plain objects, so any retained generation can be restored, including files
 * deleted since. Every file is verified against its sha256 (and its chunks') before it is renamed
 * into place; neighbouring files of a pack are fetched with one range GET.
 *
 * Safety: a non-empty target is refused unless `force`; files the generation does not have are left
 * alone (and counted); a path whose parent is not a directory here is reported, not overwritten.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, utimesSync, writeSync } from 'node:fs';
import path from 'node:path';
import PQueue from 'p-queue';
import {
  blobKey, CHUNK_SIZE, createTreeReader, isSafeRelativePath, packKey, sha256Hex, SyncError, walkTree,
  type Commit, type FlatEntry, type ObjectStore,
} from '@workspace-sync/shared';

export interface RestoreOptions {
  store: ObjectStore;
  prefix: string;
  workspace: string;
  commit: Commit;
  /** Directory to write into. */
  target: string;
  /** Only these paths (files, or directories and everything under them); empty: everything. */
  paths: readonly string[];
  force: boolean;
  dryRun: boolean;
  concurrency: number;
  onFile?: () => void;
}

export interface RestoreReport {
  workspace: string;
  generation: number;
  target: string;
  files: number;
  symlinks: number;
  bytes: number;
  /** Files already identical here (same content and mode), not rewritten. */
  unchanged: number;
  /** Paths present in the target that the generation does not have (left alone). */
  extra: number;
  /** Paths that could not be written (a file where a directory is needed, …). */
  failed: Array<{ path: string; reason: string }>;
  dryRun: boolean;
  seconds: number;
}

/** Largest gap between two pack ranges still fetched with one GET, and the largest GET. */
const COALESCE_GAP = 64 * 1024;
const COALESCE_MAX = 8 * 1024 * 1024;

export async function restoreCommit(opts: RestoreOptions): Promise<RestoreReport> {
  const started = performance.now();
  const { store, prefix, workspace, commit, target } = opts;
  for (const p of opts.paths) {
    if (!isSafeRelativePath(p)) throw new SyncError('USAGE', `not a path inside the workspace: ${JSON.stringify(p)}`, { hint: 'give paths relative to the workspace, such as src/index.ts' });
  }
  const wanted = (p: string) => opts.paths.length === 0 || opts.paths.some((w) => p === w || p.startsWith(`${w}/`));
  const entries: FlatEntry[] = [];
  const reader = createTreeReader({ store, prefix, workspace });
  await walkTree(reader, commit.root, (e) => {
    if (e.kind === 'dir') return opts.paths.length === 0 || opts.paths.some((w) => e.path === w || e.path.startsWith(`${w}/`) || w.startsWith(`${e.path}/`));
    if (wanted(e.path)) entries.push(e);
    return undefined;
  });
  if (entries.length === 0 && opts.paths.length > 0) {
    throw new SyncError('USAGE', `generation ${commit.generation} of workspace "${workspace}" has none of ${opts.paths.join(', ')}`, {
      hint: `list what it has with: sync-agent log ${workspace}, then restore an earlier --generation`,
    });
  }
  const existing = listExisting(target);
  if (existing.size > 0 && !opts.force && opts.paths.length === 0) {
    throw new SyncError('TARGET_NOT_EMPTY', `${target} is not empty (${existing.size} entries); restoring there could overwrite files`, {
      hint: 'pass --force to write the generation over it (files it does not have are left alone), or --to an empty directory',
    });
  }
  if (!opts.force && opts.paths.length > 0) {
    const differ = entries.filter((e) => lstatSafe(path.join(target, e.path)) && !(e.kind === 'file' && unchangedHere(target, e))).map((e) => e.path);
    if (differ.length > 0) {
      throw new SyncError('TARGET_NOT_EMPTY', `restoring would overwrite ${differ.length} file(s) that differ here: ${differ.slice(0, 5).join(', ')}${differ.length > 5 ? ', …' : ''}`, {
        hint: 'pass --force to overwrite them, or --to another directory',
      });
    }
  }
  const report: RestoreReport = {
    workspace, generation: commit.generation, target, files: 0, symlinks: 0, bytes: 0, unchanged: 0, extra: 0,
    failed: [], dryRun: opts.dryRun, seconds: 0,
  };
  const inGeneration = new Set(entries.map((e) => e.path));
  if (opts.paths.length === 0) for (const p of existing) if (!inGeneration.has(p)) report.extra++;
  if (opts.dryRun) {
    for (const e of entries) e.kind === 'file' ? (report.files++, report.bytes += e.size) : report.symlinks++;
    report.seconds = (performance.now() - started) / 1000;
    return report;
  }

  const queue = new PQueue({ concurrency: opts.concurrency });
  const write = (e: FlatEntry, body: Buffer | undefined) => {
    try {
      place(target, e, body);
      if (e.kind === 'file') { report.files++; report.bytes += e.size; } else report.symlinks++;
      opts.onFile?.();
    } catch (err) {
      report.failed.push({ path: e.path, reason: (err as Error).message });
    }
  };

  // Small files: grouped by pack, neighbours fetched together.
  const byPack = new Map<string, Array<Extract<FlatEntry, { kind: 'file' }>>>();
  for (const e of entries) {
    if (e.kind === 'symlink') { write(e, undefined); continue; }
    if (unchangedHere(target, e)) { report.unchanged++; continue; }
    if (e.size === 0) { write(e, Buffer.alloc(0)); continue; }
    if (e.pack === undefined) { queue.add(async () => write(e, await fetchBlob(store, prefix, workspace, e))); continue; }
    let list = byPack.get(e.pack);
    if (!list) byPack.set(e.pack, (list = []));
    list.push(e);
  }
  for (const [pack, files] of byPack) {
    files.sort((a, b) => a.offset - b.offset);
    for (const group of coalesce(files)) {
      queue.add(async () => {
        const start = group[0]!.offset;
        const end = group.reduce((n, f) => Math.max(n, f.offset + f.size), 0);
        const res = await store.get(packKey(prefix, workspace, pack), { range: { start, end: end - 1 } });
        if (res.notModified) throw new Error('unconditional GET answered 304');
        for (const f of group) {
          const body = res.body.subarray(f.offset - start, f.offset - start + f.size);
          if (body.length !== f.size || sha256Hex(body) !== f.sha256) {
            report.failed.push({ path: f.path, reason: `the stored bytes do not match its sha256 (pack ${pack})` });
            continue;
          }
          write(f, body);
        }
      });
    }
  }
  await queue.onIdle();
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

function coalesce<T extends { offset: number; size: number }>(sorted: T[]): T[][] {
  const groups: T[][] = [];
  let cur: T[] = [];
  let start = 0;
  let end = 0;
  for (const f of sorted) {
    if (cur.length > 0 && (f.offset - end > COALESCE_GAP || f.offset + f.size - start > COALESCE_MAX)) { groups.push(cur); cur = []; }
    if (cur.length === 0) start = f.offset;
    cur.push(f);
    end = Math.max(end, f.offset + f.size);
  }
  if (cur.length) groups.push(cur);
  return groups;
}

async function fetchBlob(store: ObjectStore, prefix: string, workspace: string, e: Extract<FlatEntry, { kind: 'file' }>): Promise<Buffer> {
  const key = blobKey(prefix, workspace, e.sha256);
  const res = await store.get(key);
  if (res.notModified) throw new Error('unconditional GET answered 304');
  const body = res.body;
  const bad = body.length !== e.size || sha256Hex(body) !== e.sha256
    || (e.chunks?.some((sha, i) => sha256Hex(body.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)) !== sha) ?? false);
  if (bad) throw new SyncError('S3_ERROR', `blob ${key} does not match the sha256 of ${e.path}`, { hint: 'the store is damaged; restore another generation' });
  return body;
}

/** Writes one entry atomically (temp file, then rename) with its mode and mtime. */
function place(target: string, e: FlatEntry, body: Buffer | undefined): void {
  const abs = path.join(target, e.path);
  mkdirSync(path.dirname(abs), { recursive: true });
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.restore-${randomBytes(4).toString('hex')}`);
  try {
    if (e.kind === 'symlink') {
      symlinkSync(e.target, tmp);
    } else {
      const fd = openSync(tmp, 'wx', 0o600);
      try {
        for (let off = 0; off < body!.length;) off += writeSync(fd, body!, off, body!.length - off);
      } finally {
        closeSync(fd);
      }
      chmodSync(tmp, e.mode);
      const t = e.mtimeMs / 1000;
      utimesSync(tmp, t, t);
    }
    const st = lstatSafe(abs);
    if (st?.isDirectory()) throw new Error('a directory is in the way');
    renameSync(tmp, abs);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

function lstatSafe(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/** The file is already here with the same size, mode and content (no rewrite, mtime aside). */
function unchangedHere(target: string, e: Extract<FlatEntry, { kind: 'file' }>): boolean {
  const st = lstatSafe(path.join(target, e.path));
  if (!st?.isFile() || st.size !== e.size || (st.mode & 0o7777) !== e.mode) return false;
  try {
    // Local and usually small: a restore over a mostly intact workspace reads rather than downloads.
    return Math.abs(st.mtimeMs - e.mtimeMs) < 1 && sha256Hex(readFileSync(path.join(target, e.path))) === e.sha256;
  } catch {
    return false;
  }
}

/** Relative paths of files and symlinks under `dir` (empty when it does not exist). */
function listExisting(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (rel: string) => {
    let names;
    try {
      names = readdirSync(rel ? path.join(dir, rel) : dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const d of names) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(p);
      else out.add(p);
    }
  };
  walk('');
  return out;
}
