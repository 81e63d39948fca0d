/**
 * `sync-agent log`, `restore` and `gc`: what the history of a workspace is, getting any retained
 * generation back, and removing what no retained generation needs. Parsing lives in cli.ts; this
 * module runs the commands and formats their results.
 */
import path from 'node:path';
import {
  createTreeReader, formatBytes, parseDuration, SyncError, type AgentConfig, type Commit, type Logger, type ObjectStore, type TreeEntry, type TreeReader, type TreeRef,
} from '@workspace-sync/shared';
import { collectGarbage, type GcReport } from './gc.js';
import { chainFromHead, listCommits, loadHistory, readHead } from './history.js';
import { restoreCommit, type RestoreReport } from './restore.js';

export interface LogEntry {
  generation: number;
  id: string;
  createdAt: string;
  writer: Commit['writer'];
  head: boolean;
  changes: Commit['changes'];
  stats: Commit['stats'];
}

export async function logWorkspace(store: ObjectStore, config: AgentConfig, workspace: string, maxCount: number): Promise<LogEntry[]> {
  const history = await loadHistory(store, config.prefix, workspace);
  if (!history.head) {
    throw new SyncError('GENERATION_NOT_FOUND', `workspace "${workspace}" has no history in s3://${store.bucket}/${config.prefix}`, {
      hint: 'push it first (sync-agent push); workspaces last pushed by an older version get their history from their next push',
    });
  }
  const chain = await chainFromHead(store, config.prefix, workspace, history, maxCount);
  return chain.map((c, i) => ({
    generation: c.generation, id: c.id, createdAt: c.createdAt, writer: c.writer, head: i === 0, changes: c.changes, stats: c.stats,
  }));
}

export function formatLog(workspace: string, entries: readonly LogEntry[]): string {
  const lines = entries.map((e) => {
    const when = e.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    const ch = e.changes;
    const counts = `+${ch.added} ~${ch.modified} -${ch.deleted}`;
    return `${workspace}#${e.generation}  ${when}  ${e.writer.host}  ${counts.padEnd(14)} ${formatBytes(ch.bytes).padStart(10)}  ${e.stats.files} files${e.head ? '  (head)' : ''}`;
  });
  return `${lines.join('\n')}\n`;
}

/** The commit `--generation N` or `--at TIME` names (the head when neither is given). */
async function resolveGeneration(store: ObjectStore, config: AgentConfig, workspace: string, want: { generation?: string; at?: string }): Promise<Commit> {
  const head = await readHead(store, config.prefix, workspace);
  if (!head) {
    throw new SyncError('GENERATION_NOT_FOUND', `workspace "${workspace}" has no commit in s3://${store.bucket}/${config.prefix}`, {
      hint: 'check the name and --prefix; sync-agent log lists what exists',
    });
  }
  if (want.generation === undefined && want.at === undefined) return head.commit;
  const listed = await listCommits(store, config.prefix, workspace);
  if (want.generation !== undefined) {
    const n = Number(want.generation);
    if (!Number.isSafeInteger(n) || n < 1) throw new SyncError('USAGE', `--generation must be a positive integer, not "${want.generation}"`, { hint: 'see sync-agent log' });
    if (n === head.commit.generation) return head.commit;
    // Several commits can share a generation (writers that raced); the chain says which one counted.
    const history = { head, listed };
    const chain = await chainFromHead(store, config.prefix, workspace, history, head.commit.generation - n + 1);
    const found = chain.find((c) => c.generation === n);
    if (found) return found;
    throw new SyncError('GENERATION_NOT_FOUND', `generation ${n} of workspace "${workspace}" is not retained`, {
      hint: `sync-agent log ${workspace} lists the generations that can be restored`,
    });
  }
  const at = parseWhen(want.at!);
  const chain = await chainFromHead(store, config.prefix, workspace, { head, listed });
  const found = chain.find((c) => Date.parse(c.createdAt) <= at);
  if (found) return found;
  throw new SyncError('GENERATION_NOT_FOUND', `workspace "${workspace}" has no retained generation from ${new Date(at).toISOString()} or earlier`, {
    hint: `sync-agent log ${workspace} lists the generations that can be restored`,
  });
}

/** An ISO-8601 time, or a duration meaning that long ago (`2h`, `1d`). */
function parseWhen(raw: string, now = Date.now()): number {
  const iso = Date.parse(raw);
  if (!Number.isNaN(iso) && /\d{4}-\d{2}-\d{2}/.test(raw)) return iso;
  try {
    return now - parseDuration(raw);
  } catch (cause) {
    throw new SyncError('USAGE', `--at needs a time such as 2026-12-01T10:00:00Z or a duration ago such as 2h, not "${raw}"`, { hint: 'see sync-agent restore --help', cause });
  }
}

export async function restoreWorkspace(store: ObjectStore, config: AgentConfig, workspace: string, args: {
  generation?: string; at?: string; to?: string; paths: string[]; force: boolean; dryRun: boolean;
}, log: Logger): Promise<RestoreReport> {
  let commit = await resolveGeneration(store, config, workspace, args);
  if (args.paths.length > 0 && args.generation === undefined && args.at === undefined) {
    // Undoing a delete: the latest generation no longer has the path; the newest one that does is meant.
    const reader = createTreeReader({ store, prefix: config.prefix, workspace });
    if (!(await hasPaths(reader, commit.root, args.paths))) {
      const history = await loadHistory(store, config.prefix, workspace);
      for (const c of (await chainFromHead(store, config.prefix, workspace, history)).slice(1)) {
        if (await hasPaths(reader, c.root, args.paths)) {
          log.info({ workspace, generation: c.generation, latest: commit.generation },
            `${args.paths.join(', ')} not in the latest generation (${commit.generation}): restoring from generation ${c.generation}, the newest that has it`);
          commit = c;
          break;
        }
      }
    }
  }
  const target = path.resolve(args.to ?? path.join(config.root, workspace));
  return restoreCommit({
    store, prefix: config.prefix, workspace, commit, target, paths: args.paths, force: args.force, dryRun: args.dryRun,
    concurrency: config.concurrency,
  });
}

export function formatRestore(r: RestoreReport): string {
  const what = r.dryRun ? 'would restore' : 'restored';
  const parts = [`${r.files} files`, `${r.symlinks} symlinks`, formatBytes(r.bytes)];
  let line = `${r.workspace}#${r.generation}: ${what} ${parts.join(', ')} into ${r.target}`;
  if (r.unchanged) line += ` (${r.unchanged} already identical)`;
  if (!r.dryRun) line += ` in ${r.seconds.toFixed(2)} s`;
  const lines = [line];
  if (r.extra) lines.push(`  ${r.extra} files there are not in generation ${r.generation}: left alone`);
  for (const f of r.failed) lines.push(`  not restored: ${f.path}: ${f.reason}`);
  return `${lines.join('\n')}\n`;
}

export async function gcWorkspace(store: ObjectStore, config: AgentConfig, workspace: string, dryRun: boolean, log: Logger): Promise<GcReport> {
  return collectGarbage({
    store, prefix: config.prefix, workspace, keepGenerations: config.keepGenerations, keepForMs: config.keepFor,
    graceMs: config.gcGrace, dryRun, log,
  });
}

export function formatGc(r: GcReport): string {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  let line = `${r.workspace}: kept ${r.commitsKept} generations; ${verb} ${r.commitsDeleted} generations and ${r.objectsDeleted} objects in all (${formatBytes(r.bytesDeleted)})`;
  if (r.uploadsAborted) line += `; ${r.dryRun ? 'would abort' : 'aborted'} ${r.uploadsAborted} abandoned uploads`;
  if (r.young) line += `; ${r.young} unreferenced objects younger than the grace period kept`;
  return `${line}\n`;
}

/** Whether every path (a file, symlink or directory) exists in the tree under `root`; reads only the directories on the way. */
async function hasPaths(reader: TreeReader, root: TreeRef, paths: readonly string[]): Promise<boolean> {
  for (const p of paths) {
    let ref: TreeRef | undefined = root;
    const segments = p.split('/');
    for (let i = 0; i < segments.length; i++) {
      if (!ref) return false;
      const entries: TreeEntry[] = await reader.read(ref);
      const e = entries.find((x) => x.name === segments[i]);
      if (!e) return false;
      ref = e.kind === 'dir' ? e.ref : undefined;
      if (!ref && i < segments.length - 1) return false;
    }
  }
  return true;
}
