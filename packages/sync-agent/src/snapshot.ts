/**
 * Turns a scan into hashed entries, hashing only files whose stat changed since the state index
 * recorded them (and racily-clean ones).
 */
import path from 'node:path';
import PQueue from 'p-queue';
import { hashFileStable, isSyncError, sha256Hex } from '@workspace-sync/shared';
import type { HashedEntry } from './planner.js';
import { hashedFile, type LocalEntry, type Skipped } from './scan.js';
import { jobsOn } from './settle.js';
import { cachedHash, hashRecord, type HashRecord } from './state.js';

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
  const jobs = jobsOn(queue);
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
    if (jobs.failed) break;
    jobs.add(async () => {
      const abs = path.join(wsDir, e.path);
      try {
        const { sha256, stat } = await hashFileStable(abs);
        out.hashed++;
        out.entries.set(e.path, hashedFile(e.path, stat, sha256));
        out.records.set(e.path, hashRecord(stat, sha256, now()));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return; // deleted since the scan: simply not part of this snapshot
        if (isSyncError(err, 'FILE_UNSTABLE')) { out.skipped.push({ path: e.path, reason: err.message }); return; }
        if (code) { out.skipped.push({ path: e.path, reason: `cannot read (${code})` }); return; }
        throw err;
      }
    });
  }
  await jobs.done();
  return out;
}
