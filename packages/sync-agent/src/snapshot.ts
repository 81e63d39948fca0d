/**
 * Turns a scan into hashed entries, hashing only files whose stat changed since the state index
 * recorded them (and racily-clean ones).
 */
import path from 'node:path';
import PQueue from 'p-queue';
import { hashFileStable, isSyncError, sha256Hex } from '@workspace-sync/shared';
import type { HashedEntry } from './planner.js';
import type { LocalEntry, Skipped } from './scan.js';
import { cachedHash, type HashRecord } from './state.js';

export interface HashedSnapshot {
  entries: Map<string, HashedEntry>;
  /** Hash records of the files hashed now (the others' records are unchanged). */
  records: Map<string, HashRecord>;
  skipped: Skipped[];
  hashed: number;
}

export async function hashSnapshot(
  wsDir: string,
  local: ReadonlyMap<string, LocalEntry>,
  previous: ReadonlyMap<string, HashRecord> | undefined,
  concurrency = 8,
): Promise<HashedSnapshot> {
  const out: HashedSnapshot = { entries: new Map(), records: new Map(), skipped: [], hashed: 0 };
  const queue = new PQueue({ concurrency });
  const now = () => Date.now();
  for (const e of local.values()) {
    if (e.type === 'symlink') {
      out.entries.set(e.path, { ...e, sha256: sha256Hex(e.target) });
      continue;
    }
    const cached = cachedHash(previous?.get(e.path), e);
    if (cached) {
      out.entries.set(e.path, { type: 'file', path: e.path, size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, sha256: cached });
      continue;
    }
    // Fed as the queue drains: a first push hashes every file, without holding a task per file.
    if (queue.size >= concurrency * 4) await queue.onSizeLessThan(concurrency * 2);
    queue.add(async () => {
      const abs = path.join(wsDir, e.path);
      try {
        const { sha256, stat } = await hashFileStable(abs);
        out.hashed++;
        out.entries.set(e.path, { type: 'file', path: e.path, size: stat.size, mtimeMs: stat.mtimeMs, mode: stat.mode & 0o7777, sha256 });
        out.records.set(e.path, { size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino, sha256, hashedAtMs: now() });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return; // deleted since the scan: simply not part of this snapshot
        if (isSyncError(err, 'FILE_UNSTABLE')) { out.skipped.push({ path: e.path, reason: err.message }); return; }
        if (code) { out.skipped.push({ path: e.path, reason: `cannot read (${code})` }); return; }
        throw err;
      }
    });
  }
  await queue.onIdle();
  return out;
}
