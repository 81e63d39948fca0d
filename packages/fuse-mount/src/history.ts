/**
 * Older generations, read-only, at `<mount>/.snapshots/<workspace>/<generation>/…`, loaded lazily:
 * listing a workspace there LISTs `.sync/<ws>/commits/` (trusted for --dir-cache-time); opening a
 * generation GETs that commit once and serves its tree exactly like the current one (same tree
 * store, same content cache). A generation is named by its number; when two commits carry the same
 * number (a crashed push leaves an unreferenced commit behind), each is named by its full stem
 * `<generation:012>-<id>`, which is also accepted for any generation. Commits removed by garbage
 * collection answer ENOENT.
 *
 * Concurrency rules: one LIST per workspace and one GET per commit at a time (single-flight).
 */
import { LRUCache } from 'lru-cache';
import {
  commitKey, commitsPrefix, decodeCommit, isCommitStem, isSyncError, MAX_COMMIT_BYTES, type Logger, type ObjectStore,
} from '@workspace-sync/shared';
import type { RemoteStatus } from './remote-status.js';
import type { TreeStore } from './tree-store.js';
import { CommitView } from './views.js';

export const SNAPSHOTS_DIR = '.snapshots';

export interface HistoryOptions {
  store: ObjectStore;
  prefix: string;
  trees: TreeStore;
  status: RemoteStatus;
  logger: Logger;
  dirCacheTime: number;
  now?: () => number;
}

interface Listing {
  at: number;
  /** Directory name → commit stem, in generation order. */
  names: Map<string, string>;
}

export class History {
  private readonly listings = new LRUCache<string, Listing>({ max: 1024 });
  private readonly listFlights = new Map<string, Promise<Listing>>();
  private readonly views = new LRUCache<string, CommitView>({ max: 256 });
  private readonly viewFlights = new Map<string, Promise<CommitView | undefined>>();
  private readonly now: () => number;

  constructor(private readonly opts: HistoryOptions) {
    this.now = opts.now ?? Date.now;
  }

  /**
   * The generations of `ws` as directory names, oldest first. `fresh` (a name not in the listing)
   * still trusts a listing of the last second, no LIST per miss, unless it is older than `newerThan`.
   */
  async generations(ws: string, fresh = false, newerThan = 0): Promise<Map<string, string>> {
    const have = this.listings.get(ws);
    const trust = fresh ? 1_000 : this.opts.dirCacheTime;
    if (have && ((this.now() - have.at < trust && have.at >= newerThan) || this.opts.status.down)) return have.names;
    let flight = this.listFlights.get(ws);
    if (!flight) {
      flight = this.list(ws).finally(() => this.listFlights.delete(ws));
      this.listFlights.set(ws, flight);
    }
    try {
      return (await flight).names;
    } catch (err) {
      if (have) return have.names;
      throw err;
    }
  }

  /**
   * The view of generation `name` of `ws`, or undefined when there is no such commit (any more).
   * `headSeenAt`: when the mount installed the workspace's current commit; a listing made before
   * then cannot know it (a change event names it at once), so a miss lists again.
   */
  async view(ws: string, name: string, headSeenAt = 0): Promise<CommitView | undefined> {
    if (!isGenerationName(name)) return undefined;
    const find = (names: Map<string, string>) => names.get(name) ?? ([...names.values()].includes(name) ? name : undefined);
    // A generation pushed after the listing: look once more before answering ENOENT.
    const stem = find(await this.generations(ws)) ?? find(await this.generations(ws, true, headSeenAt));
    if (!stem) return undefined;
    const id = `${ws}/${stem}`;
    const hit = this.views.get(id);
    if (hit) return hit;
    let flight = this.viewFlights.get(id);
    if (!flight) {
      flight = this.load(ws, stem).finally(() => this.viewFlights.delete(id));
      this.viewFlights.set(id, flight);
    }
    return flight;
  }

  private async list(ws: string): Promise<Listing> {
    const { store, prefix, status } = this.opts;
    const base = commitsPrefix(prefix, ws);
    const stems: string[] = [];
    try {
      for await (const e of store.list(base)) {
        if (!('key' in e) || !e.key.endsWith('.json')) continue;
        const stem = e.key.slice(base.length, -'.json'.length);
        if (isCommitStem(stem)) stems.push(stem);
      }
      status.ok();
    } catch (err) {
      status.failed(err);
      throw err;
    }
    stems.sort();
    const counts = new Map<string, number>();
    for (const s of stems) {
      const g = String(Number(s.slice(0, 12)));
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
    const names = new Map<string, string>();
    for (const s of stems) {
      const g = String(Number(s.slice(0, 12)));
      if (counts.get(g) === 1) names.set(g, s);
      else names.set(s, s);
    }
    const listing: Listing = { at: this.now(), names };
    this.listings.set(ws, listing);
    return listing;
  }

  private async load(ws: string, stem: string): Promise<CommitView | undefined> {
    const { store, prefix, status, trees } = this.opts;
    const key = commitKey(prefix, ws, stem);
    let body: Buffer;
    try {
      const res = await store.get(key, { maxBytes: MAX_COMMIT_BYTES });
      if (res.notModified) throw new Error(`GET s3://${store.bucket}/${key} answered 304 without If-None-Match`);
      body = res.body;
      status.ok();
    } catch (err) {
      if (isSyncError(err, 'OBJECT_NOT_FOUND')) {
        // Removed by garbage collection since the listing.
        status.ok();
        this.listings.get(ws)?.names.forEach((s, n, m) => { if (s === stem) m.delete(n); });
        return undefined;
      }
      status.failed(err);
      throw err;
    }
    const commit = decodeCommit(body, `s3://${store.bucket}/${key}`);
    if (commit.workspace !== ws) return undefined;
    const view = new CommitView({ prefix, workspace: ws, commit, namespace: `${SNAPSHOTS_DIR}/${ws}/${stem}`, trees, now: this.now() });
    this.views.set(`${ws}/${stem}`, view);
    return view;
  }
}

/** Whether `name` can be a generation directory (saves a LIST for names that cannot be one). */
function isGenerationName(name: string): boolean {
  return /^\d+$/.test(name) || isCommitStem(name);
}
