/**
 * The local state index of one workspace: what each file's stat looked like when it was hashed, and
 * which manifest (by ETag) the remote held after our last push, with its entries. It lets a no-op push
 * be one stat walk plus one conditional GET. It is a cache: a missing or unreadable state file, or a
 * remote manifest that is not the one recorded, means a full compare, never blind trust.
 *
 * The journal records objects uploaded by a push that has not committed its manifest yet, so a push
 * killed half-way is completed by the next one without uploading the same bytes again.
 *
 * Writes are atomic (temp file + rename); the journal is append-only JSON lines (a torn last line from a
 * crash is ignored).
 */
import { createHash } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ManifestEntry, PackInfo } from '@workspace-sync/shared';

export const STATE_VERSION = 1;

/**
 * How close to the hashing time an mtime may be before the cached hash is not trusted (git's "racily
 * clean"): a write in the same timestamp tick as the hash would leave size and mtime unchanged. Linux
 * stamps mtimes from a coarse clock (a jiffy, at most 10 ms); filesystems with whole-second mtimes need more.
 */
export function racyWindowMs(mtimeMs: number): number {
  return mtimeMs % 1000 === 0 ? 2_000 : 20;
}

export interface HashRecord {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  sha256: string;
  hashedAtMs: number;
}

export interface WorkspaceState {
  version: number;
  workspace: string;
  /** ETag of the manifest we last published or saw; undefined before the first push. */
  manifestEtag: string | undefined;
  generation: number;
  /** Entries of that manifest. */
  entries: ManifestEntry[];
  /** Packs of that manifest (absent in states written before packs existed). */
  packs?: PackInfo[];
  files: Record<string, HashRecord>;
  /** Keys dropped from the committed manifest whose DeleteObjects has not completed. */
  pendingDeletes: string[];
}

export interface JournalRecord {
  path: string;
  key: string;
  sha256: string;
  size: number;
  etag: string;
}

export interface StateStore {
  load(): Promise<WorkspaceState | undefined>;
  save(state: WorkspaceState): Promise<void>;
  readJournal(): Promise<JournalRecord[]>;
  appendJournal(rec: JournalRecord): Promise<void>;
  clearJournal(): Promise<void>;
  readonly file: string;
}

/** One directory per (endpoint, bucket, prefix, root), so two remotes never share state. */
export function stateDirFor(stateRoot: string, remote: { endpoint: string | undefined; bucket: string; prefix: string }, root: string): string {
  const id = createHash('sha256').update(JSON.stringify([remote.endpoint ?? 'aws', remote.bucket, remote.prefix, path.resolve(root)])).digest('hex');
  return path.join(stateRoot, id.slice(0, 16));
}

export function openStateStore(dir: string, workspace: string): StateStore {
  const file = path.join(dir, `${encodeURIComponent(workspace)}.state.json`);
  const journal = path.join(dir, `${encodeURIComponent(workspace)}.journal`);
  let journalDirReady = false;
  return {
    file,
    async load() {
      let raw: string;
      try {
        raw = await readFile(file, 'utf8');
      } catch {
        return undefined;
      }
      try {
        const s = JSON.parse(raw) as WorkspaceState;
        if (s.version !== STATE_VERSION || s.workspace !== workspace || typeof s.files !== 'object' || !Array.isArray(s.entries)) return undefined;
        return s;
      } catch {
        return undefined;
      }
    },
    async save(state) {
      await mkdir(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(state));
      await rename(tmp, file);
    },
    async readJournal() {
      let raw: string;
      try {
        raw = await readFile(journal, 'utf8');
      } catch {
        return [];
      }
      const out: JournalRecord[] = [];
      for (const line of raw.split('\n')) {
        if (!line) continue;
        try {
          out.push(JSON.parse(line) as JournalRecord);
        } catch {
          // a line torn by a crash: that upload is simply not known to have finished
        }
      }
      return out;
    },
    async appendJournal(rec) {
      // Synchronous and small: one write per landed object, cheaper than a thread-pool round trip,
      // and in the page cache before the next object is counted as done.
      if (!journalDirReady) { mkdirSync(dir, { recursive: true }); journalDirReady = true; }
      appendFileSync(journal, `${JSON.stringify(rec)}\n`);
    },
    async clearJournal() {
      await rm(journal, { force: true });
    },
  };
}

/** The cached sha256 for this stat, if it can be trusted. */
export function cachedHash(rec: HashRecord | undefined, st: { size: number; mtimeMs: number; ctimeMs: number; ino: number }): string | undefined {
  if (!rec) return undefined;
  if (rec.size !== st.size || rec.mtimeMs !== st.mtimeMs || rec.ctimeMs !== st.ctimeMs || rec.ino !== st.ino) return undefined;
  if (rec.hashedAtMs - rec.mtimeMs < racyWindowMs(rec.mtimeMs)) return undefined;
  return rec.sha256;
}
