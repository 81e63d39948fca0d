/**
 * Writes a format-v2 commit of a workspace the way docs/design.md lays it out, for tests and
 * benchmarks that need a v2 bucket without sync-agent: one data pack for the small files, blobs
 * (with per-chunk sha256s above 4 MiB) for the rest, one tree pack holding every directory, the
 * commit object and finally the head (the commit point). Every commit rewrites every tree, which
 * readers cannot tell from an incremental one; directories of more than SPLIT_ABOVE entries are
 * split into parts, as sync-agent writes them.
 */
import { randomBytes } from 'node:crypto';
import {
  CHUNK_SIZE, blobKey, commitKey, commitStem, compareUtf8, encodeCommit, encodeSplitTree, encodeTree, FORMAT_VERSION, headKey,
  objectKey, packKey, sha256Hex, SPLIT_ABOVE, splitEntries, treePackKey,
  type Commit, type ObjectStore, type TreeEntry, type TreeRef,
} from '@workspace-sync/shared';

export type CommitFixtureEntry =
  | { path: string; content: string | Buffer; mode?: number; mtimeMs?: number }
  | { path: string; symlink: string; mtimeMs?: number };

export interface CommitFixtureOptions {
  /** Default: one more than the head's, or 1. */
  generation?: number;
  /** Stem of the previous commit (default: the current head's, if any). */
  parent?: string | null;
  createdAt?: Date;
  /** Also write the plain mirror `<prefix><ws>/<path>` (default false: thousands of PUTs are slow). */
  plain?: boolean;
  /** Files up to this size go into the data pack (default 256 KiB, as sync-agent). */
  packMax?: number;
  /** Parallel PUTs (default 16). */
  concurrency?: number;
  /** The commit's `changes` (default: every file counted as added, no paths, `truncated`). */
  changes?: Commit['changes'];
}

export interface CommitFixture {
  commit: Commit;
  stem: string;
  /** ETag of the head as written. */
  headEtag: string;
  /** Keys written, in order (the head last). */
  keys: string[];
}

const PACK_MAX = 256 * 1024;

export async function writeCommitFixture(
  store: ObjectStore, prefix: string, workspace: string, files: readonly CommitFixtureEntry[], opts: CommitFixtureOptions = {},
): Promise<CommitFixture> {
  const createdAt = opts.createdAt ?? new Date();
  const now = createdAt.getTime();
  const packMax = opts.packMax ?? PACK_MAX;
  const previous = opts.generation === undefined || opts.parent === undefined ? await readHead(store, prefix, workspace) : undefined;
  const generation = opts.generation ?? (previous ? previous.generation + 1 : 1);
  const parent = opts.parent !== undefined ? opts.parent : previous ? commitStem(previous) : null;
  const keys: string[] = [];
  const puts: Array<() => Promise<unknown>> = [];
  const put = (key: string, body: Buffer) => {
    keys.push(key);
    puts.push(() => store.put(key, body));
  };

  const dataPack = randomBytes(8).toString('hex');
  const packParts: Buffer[] = [];
  let packSize = 0;
  // Directory path → its entries (files, symlinks; subdirectories are added bottom-up below).
  const dirs = new Map<string, TreeEntry[]>([['', []]]);
  const ensureDir = (dir: string) => {
    for (let d = dir; !dirs.has(d); d = parentOf(d)) dirs.set(d, []);
  };
  let bytes = 0;
  for (const f of files) {
    const dir = parentOf(f.path);
    ensureDir(dir);
    const name = f.path.slice(dir ? dir.length + 1 : 0);
    const mtimeMs = f.mtimeMs ?? 1_700_000_000_000;
    if ('symlink' in f) {
      dirs.get(dir)!.push({ name, kind: 'symlink', target: f.symlink, mtimeMs });
      if (opts.plain) put(objectKey(prefix, workspace, f.path), Buffer.from(f.symlink));
      continue;
    }
    const body = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content);
    const sha256 = sha256Hex(body);
    bytes += body.length;
    let pack: string | undefined;
    let offset = 0;
    let chunks: string[] | undefined;
    if (body.length > 0 && body.length <= packMax) {
      pack = dataPack;
      offset = packSize;
      packParts.push(body);
      packSize += body.length;
    } else if (body.length > 0) {
      if (body.length > CHUNK_SIZE) {
        chunks = [];
        for (let at = 0; at < body.length; at += CHUNK_SIZE) chunks.push(sha256Hex(body.subarray(at, at + CHUNK_SIZE)));
      }
      put(blobKey(prefix, workspace, sha256), body);
    }
    dirs.get(dir)!.push({ name, kind: 'file', size: body.length, mtimeMs, mode: f.mode ?? 0o644, sha256, pack, offset, chunks });
    if (opts.plain) put(objectKey(prefix, workspace, f.path), body);
  }
  if (packSize > 0) put(packKey(prefix, workspace, dataPack), Buffer.concat(packParts));

  // Trees bottom-up: the deepest directories first, each added to its parent as it is written.
  const treePack = randomBytes(8).toString('hex');
  const treeParts: Buffer[] = [];
  let treeSize = 0;
  const totals = new Map<string, { files: number; bytes: number }>();
  let root: TreeRef | undefined;
  for (const dir of [...dirs.keys()].sort((a, b) => depth(b) - depth(a) || (a < b ? -1 : 1))) {
    const entries = dirs.get(dir)!;
    const own = totals.get(dir) ?? { files: 0, bytes: 0 };
    for (const e of entries) {
      if (e.kind === 'file') { own.files++; own.bytes += e.size; } else if (e.kind === 'symlink') own.files++;
    }
    const append = (body: Buffer): TreeRef => {
      const ref: TreeRef = [treePack, treeSize, body.length, sha256Hex(body)];
      treeParts.push(body);
      treeSize += body.length;
      return ref;
    };
    const chunks = entries.length > SPLIT_ABOVE ? splitEntries(entries.sort((a, b) => compareUtf8(a.name, b.name))) : [entries];
    const ref = chunks.length > 1 ? append(encodeSplitTree(chunks.map((c) => append(encodeTree(c))))) : append(encodeTree(entries));
    if (dir === '') { root = ref; break; }
    const up = parentOf(dir);
    dirs.get(up)!.push({ name: dir.slice(up ? up.length + 1 : 0), kind: 'dir', ref, changedAtMs: now, files: own.files, bytes: own.bytes });
    const t = totals.get(up) ?? { files: 0, bytes: 0 };
    t.files += own.files;
    t.bytes += own.bytes;
    totals.set(up, t);
  }
  put(treePackKey(prefix, workspace, treePack), Buffer.concat(treeParts));

  const commit: Commit = {
    format: 'workspace-sync.commit', version: FORMAT_VERSION, workspace, generation, id: randomBytes(8).toString('hex'), parent,
    createdAt: createdAt.toISOString(), writer: { host: 'fixture', agent: 'testkit' }, root: root!,
    stats: { files: files.length, dirs: dirs.size, bytes },
    changes: opts.changes ?? { added: files.length, modified: 0, deleted: 0, bytes, paths: { added: [], modified: [], deleted: [] }, truncated: true },
  };
  const stem = commitStem(commit);
  const body = encodeCommit(commit);
  put(commitKey(prefix, workspace, stem), body);
  await runLimited(puts, opts.concurrency ?? 16);
  // The commit point, after everything it references has landed.
  const head = headKey(prefix, workspace);
  const { etag } = await store.put(head, body);
  keys.push(head);
  return { commit, stem, headEtag: etag, keys };
}

async function readHead(store: ObjectStore, prefix: string, workspace: string): Promise<Commit | undefined> {
  try {
    const res = await store.get(headKey(prefix, workspace));
    if (res.notModified) return undefined;
    return JSON.parse(res.body.toString('utf8')) as Commit;
  } catch {
    return undefined;
  }
}

async function runLimited(tasks: Array<() => Promise<unknown>>, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
}

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function depth(p: string): number {
  return p === '' ? 0 : p.split('/').length;
}
