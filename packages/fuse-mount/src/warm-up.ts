/**
 * A workspace's warm-up on first use: its small files handed to the prefetcher in the order readers
 * go (cp -r, tar, `find | xargs cat`: depth first, each directory in name order), walked as they are
 * handed over. The walk waits whenever the prefetcher has a backlog, so a 100,000-file workspace
 * costs a window of tasks and the directories on the current path in memory, not a list of every
 * file (which held ~200 MB at that size). The subdirectories of each directory are loaded ahead in
 * the background, so the walk stays ahead of the downloads even when S3 answers in 30 ms.
 */
import type { TreeRef } from '@workspace-sync/shared';
import type { Fetcher } from './fetcher.js';
import type { FileNode } from './tree.js';
import type { TreeStore } from './tree-store.js';
import type { CommitView } from './views.js';

/** Files handed to the prefetcher per call. */
const BATCH = 500;

/** Warms `view`'s files; returns how many were queued, or -1 when refused because S3 is down. */
export async function warmCommit(view: CommitView, trees: TreeStore, fetcher: Pick<Fetcher, 'warm' | 'warmBudget' | 'room'>): Promise<number> {
  const ws = view.workspace;
  const budget = fetcher.warmBudget();
  let batch: FileNode[] = [];
  let queued = 0;
  let refused = false;

  /** Hands the batch over and waits for room; false once there is no point going on. */
  const flush = async (): Promise<boolean> => {
    const n = fetcher.warm(batch, budget);
    batch = [];
    if (n < 0) { refused = true; return false; }
    queued += n;
    if (budget.left <= 0) return false;
    await fetcher.room();
    return true;
  };

  const visit = async (ref: TreeRef, dir: string): Promise<boolean> => {
    // Materialized for the walk of this directory only (the tree store keeps it compact).
    const entries = (await trees.load(ws, ref)).entries();
    for (const e of entries) if (e.kind === 'dir') trees.preload(ws, e.ref);
    for (const e of entries) {
      const path = dir === '' ? e.name : `${dir}/${e.name}`;
      if (e.kind === 'dir') {
        if (!(await visit(e.ref, path))) return false;
      } else if (e.kind === 'file') {
        batch.push(view.nodeOf(path, e) as FileNode);
        if (batch.length >= BATCH && !(await flush())) return false;
      }
    }
    return true;
  };

  if (budget.left > 0 && await visit(view.commit.root, '')) await flush();
  return refused ? -1 : queued;
}
