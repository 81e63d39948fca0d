/** The first-use warm-up walk: order, pacing and budget, on the in-memory store with a recording fetcher. */
import { afterEach, describe, expect, it } from 'vitest';
import { decodeCommit, headKey } from '@workspace-sync/shared';
import { createMemoryStore, waitFor, writeCommitFixture, type CommitFixtureEntry } from '@workspace-sync/testkit';
import { ContentCache } from '../src/content-cache.js';
import type { WarmBudget } from '../src/fetcher.js';
import { RemoteStatus } from '../src/remote-status.js';
import type { FileNode } from '../src/tree.js';
import { TreeStore } from '../src/tree-store.js';
import { CommitView } from '../src/views.js';
import { warmCommit } from '../src/warm-up.js';
import { quietLogger, removeDir, tempDir } from './helpers.js';

const store = createMemoryStore();
const cleanups: Array<() => Promise<void> | void> = [];
let n = 0;

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function viewOf(files: CommitFixtureEntry[]): Promise<{ view: CommitView; trees: TreeStore }> {
  const prefix = `w${++n}/`;
  await writeCommitFixture(store, prefix, 'ws', files);
  const dir = tempDir('warm');
  const cache = await ContentCache.open({ dir, maxSize: 1 << 24, maxAge: 0, memSize: 0, logger: quietLogger });
  cleanups.push(async () => { await cache.close(); removeDir(dir); });
  const trees = new TreeStore({ store, prefix, cache, status: new RemoteStatus(), logger: quietLogger });
  const res = await store.get(headKey(prefix, 'ws'));
  if (res.notModified) throw new Error('304');
  return { view: new CommitView({ prefix, workspace: 'ws', commit: decodeCommit(res.body, 'head'), namespace: 'ws', trees }), trees };
}

/** Takes what it is given (within the budget, like the Fetcher) and records the batches; `room` waits for `release`. */
function recordingFetcher(budget: number) {
  const batches: number[][] = [];
  const sizes: number[] = [];
  let release: (() => void) | undefined;
  let waiting = 0;
  const fetcher = {
    warmBudget: (): WarmBudget => ({ left: budget, packs: new Map() }),
    warm(nodes: Iterable<FileNode>, b: WarmBudget): number {
      const batch: number[] = [];
      for (const node of nodes) {
        if (b.left < node.size) { b.left = 0; break; }
        b.left -= node.size;
        batch.push(node.size);
      }
      batches.push(batch);
      sizes.push(...batch);
      return batch.length;
    },
    room: () => new Promise<void>((resolve) => { waiting++; release = resolve; }),
  };
  return { fetcher, batches, sizes, waiting: () => waiting, release: () => release?.() };
}

describe('warmCommit', () => {
  it('hands files over depth first in name order, a batch at a time, waiting for room between batches', async () => {
    // Sizes encode the order a reader walking the tree (cp -r, tar) meets the files in.
    const files: CommitFixtureEntry[] = [];
    const order = ['a/a1', 'a/b/b1', 'a/b/b2', 'a/c', 'b/x', 'z'];
    for (let i = 0; i < 1200; i++) files.push({ path: `m/f${String(i).padStart(4, '0')}`, content: Buffer.alloc(1000 + i) });
    for (const [i, path] of order.entries()) files.push({ path, content: Buffer.alloc(10 + i) });
    const { view, trees } = await viewOf(files);
    const rec = recordingFetcher(1e9);
    const done = warmCommit(view, trees, rec.fetcher);
    // 500 files handed over, then the walk waits until the prefetcher has taken them.
    await waitFor(() => rec.waiting() === 1, 'the first pause', 5000, 2);
    expect(rec.batches.map((b) => b.length)).toEqual([500]);
    rec.release();
    await waitFor(() => rec.waiting() === 2, 'the second pause', 5000, 2);
    expect(rec.batches.map((b) => b.length)).toEqual([500, 500]);
    rec.release();
    await waitFor(() => rec.waiting() === 3, 'the last pause', 5000, 2);
    rec.release();
    expect(await done).toBe(1206);
    expect(rec.batches.map((b) => b.length)).toEqual([500, 500, 206]);
    // Depth first, each directory in name order: a/…, b/x, m/f0000…f1199 (a split directory), z.
    expect(rec.sizes).toEqual([10, 11, 12, 13, 14, ...Array.from({ length: 1200 }, (_, i) => 1000 + i), 15]);
  });

  it('stops walking once the budget is spent', async () => {
    const files: CommitFixtureEntry[] = Array.from({ length: 1200 }, (_, i) => ({ path: `d${i % 4}/f${String(i).padStart(4, '0')}`, content: Buffer.alloc(100) }));
    const { view, trees } = await viewOf(files);
    const rec = recordingFetcher(30_050);
    expect(await warmCommit(view, trees, rec.fetcher)).toBe(300);
    // One batch, and no waiting for room to walk on: the rest of the tree is never read.
    expect(rec.batches.map((b) => b.length)).toEqual([300]);
    expect(rec.waiting()).toBe(0);
  });
});
