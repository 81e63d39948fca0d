/**
 * The watch loop's shell, driven by hand: a fake directory watcher delivers events, a manual clock
 * decides when batches and retries are due, and the in-memory store stands in for S3. Real syncs of
 * a real directory run underneath; nothing sleeps.
 */
import { mkdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Registry, createLogger, resolveConfig, type ObjectStore } from '@workspace-sync/shared';
import {
  createManualClock, createMemoryStore, readCommitted, tempDir, unreachable, withFaults, type ManualClock,
} from '@workspace-sync/testkit';
import { DEFAULT_BATCH_POLICY } from '../src/batcher.js';
import type { FsChange } from '../src/coalesce.js';
import { createWatchMetrics } from '../src/watch-metrics.js';
import { WorkspaceSync, type WatchContext } from '../src/watch-workspace.js';
import type { TreeWatcherOptions } from '../src/dir-watcher.js';

const log = createLogger({ level: 'silent' });
const PREFIX = 'p/';
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const fn of cleanups.splice(0).reverse()) await fn(); });

function setup(store: ObjectStore = createMemoryStore()) {
  const dir = tempDir('watch-loop');
  cleanups.push(dir.remove);
  const root = path.join(dir.dir, 'root');
  const ws = path.join(root, 'w');
  mkdirSync(path.join(ws, 'src'), { recursive: true });
  for (let i = 0; i < 12; i++) writeFileSync(path.join(ws, `src/f${i}.ts`), `export const f${i} = ${i};\n`);
  const config = resolveConfig('agent', { env: {}, cwd: dir.dir, flags: { root, stateDir: path.join(dir.dir, 'state'), prefix: PREFIX, gcEvery: 0 } });
  const clock: ManualClock = createManualClock(Date.now());
  let events: ((c: FsChange) => void) | undefined;
  let watchers = 0;
  const remote = { failed: 0, ok: 0 };
  const ctx: WatchContext = {
    config, store, log, force: false, policy: { ...DEFAULT_BATCH_POLICY }, pollMs: undefined, fallbackPollMs: 2_000,
    metrics: createWatchMetrics(new Registry(), { queued: () => [], watches: () => 0 }),
    remoteFailed: () => { remote.failed++; },
    remoteOk: () => { remote.ok++; },
    inotifyLimit: () => {},
    clock,
    watchTree: (opts: TreeWatcherOptions) => {
      watchers++;
      events = opts.onChange;
      return { ready: Promise.resolve(), polling: false, watchCount: () => 1, close: async () => {} };
    },
  };
  const sync = new WorkspaceSync('w', ctx);
  cleanups.push(() => sync.stop(false).then(() => undefined));
  /** An event as the watcher would report it, after the file changed on disk. */
  const emit = (c: FsChange) => {
    if (!events) throw new Error('no watcher yet');
    events(c);
  };
  return { ws, clock, sync, emit, remote, watchers: () => watchers };
}

/** Until the sync in flight (if any) has ended: real file and store I/O, no timers involved. */
async function settled(sync: WorkspaceSync): Promise<void> {
  await vi.waitFor(() => { if (sync.next.kind === 'syncing') throw new Error('still syncing'); }, { timeout: 30_000, interval: 2 });
}

async function started(t: ReturnType<typeof setup>): Promise<void> {
  t.sync.start();
  await vi.waitFor(() => { if (t.watchers() === 0) throw new Error('no watcher yet'); });
  t.clock.advance(0);
  await settled(t.sync);
}

describe('WorkspaceSync on a manual clock', () => {
  it('reconciles at start, then syncs a change once the workspace has been quiet for quietMs', async () => {
    const store = createMemoryStore();
    const t = setup(store);
    await started(t);
    expect(t.sync.status).toBe('synced');
    expect((await readCommitted(store, PREFIX, 'w'))!.entries.size).toBe(12);
    expect(t.sync.next).toEqual({ kind: 'idle' });

    writeFileSync(path.join(t.ws, 'src/f0.ts'), 'changed\n');
    const at = t.clock.now();
    t.emit({ type: 'change', path: 'src/f0.ts', isDir: false });
    expect(t.sync.status).toBe('pending');
    expect(t.sync.next).toEqual({ kind: 'batching', at: at + DEFAULT_BATCH_POLICY.quietMs });
    t.clock.advance(DEFAULT_BATCH_POLICY.quietMs - 1);
    expect(t.sync.next.kind).toBe('batching');
    t.clock.advance(1);
    expect(t.sync.next.kind).toBe('syncing');
    await settled(t.sync);
    expect(t.sync.status).toBe('synced');
    const committed = await readCommitted(store, PREFIX, 'w');
    expect(committed!.commit.generation).toBe(2);
    expect(committed!.entries.get('src/f0.ts')).toMatchObject({ size: 'changed\n'.length });
  });

  it('holds deletes for the longer quiet, so a slow rm reaches the delete guard as one burst', async () => {
    const t = setup();
    await started(t);
    const at = t.clock.now();
    unlinkSync(path.join(t.ws, 'src/f1.ts'));
    t.emit({ type: 'delete', path: 'src/f1.ts', isDir: false });
    expect(t.sync.next).toEqual({ kind: 'batching', at: at + DEFAULT_BATCH_POLICY.deleteQuietMs });
  });

  it('backs off while S3 fails, doubling, and retries at once when S3 answers again', async () => {
    const store = withFaults(createMemoryStore());
    const t = setup(store);
    await started(t);
    const down = store.failWhen({ op: ['put', 'upload', 'copy'] }, () => unreachable());
    writeFileSync(path.join(t.ws, 'src/f2.ts'), 'two\n');
    t.emit({ type: 'change', path: 'src/f2.ts', isDir: false });
    t.clock.advance(DEFAULT_BATCH_POLICY.quietMs);
    await settled(t.sync);
    expect(t.sync.status).toBe('failing');
    expect(t.remote.failed).toBe(1);
    expect(t.sync.queued).toBe(1);
    const firstRetry = t.sync.next;
    expect(firstRetry).toEqual({ kind: 'backing-off', at: t.clock.now() + 500 });
    t.clock.advance(500);
    await settled(t.sync);
    expect(t.sync.next).toEqual({ kind: 'backing-off', at: t.clock.now() + 1_000 });

    down.remove();
    t.sync.retryNow();
    expect(t.sync.next.kind).toBe('batching');
    t.clock.advance(0);
    await settled(t.sync);
    expect(t.sync.status).toBe('synced');
    expect(t.sync.queued).toBe(0);
  });

  it('a refused workspace waits for a change, not for a timer, and rebuilds its watcher', async () => {
    const t = setup();
    await started(t);
    // Every file deleted at once: more than half of the workspace, refused by the delete guard.
    rmSync(path.join(t.ws, 'src'), { recursive: true });
    writeFileSync(path.join(t.ws, 'keep.txt'), 'k\n');
    t.emit({ type: 'delete', path: 'src', isDir: true });
    t.emit({ type: 'add', path: 'keep.txt', isDir: false });
    // The new file goes first; the deletes wait for the longer quiet.
    t.clock.advance(DEFAULT_BATCH_POLICY.quietMs);
    await settled(t.sync);
    expect(t.sync).toMatchObject({ status: 'pending', queued: 1 });
    t.clock.advance(DEFAULT_BATCH_POLICY.deleteQuietMs - DEFAULT_BATCH_POLICY.quietMs);
    await settled(t.sync);
    expect(t.sync.status).toBe('refused');
    expect(t.sync.reason).toMatch(/delete/i);
    expect(t.sync.next).toEqual({ kind: 'refused' });
    t.clock.advance(60 * 60_000);
    expect(t.sync.status).toBe('refused');

    // The user puts the files back: the change wakes it up; the watcher is rebuilt first.
    mkdirSync(path.join(t.ws, 'src'));
    for (let i = 0; i < 12; i++) writeFileSync(path.join(t.ws, `src/f${i}.ts`), `export const f${i} = ${i};\n`);
    const watchersBefore = t.watchers();
    t.emit({ type: 'add', path: 'src', isDir: true });
    expect(t.sync.next.kind).toBe('batching');
    t.clock.advance(DEFAULT_BATCH_POLICY.quietMs);
    await settled(t.sync);
    expect(t.sync.status).toBe('synced');
    expect(t.watchers()).toBe(watchersBefore + 1);
  });

  it('a vanished directory stops the loop until it is back, then reconciles', async () => {
    const t = setup();
    await started(t);
    await t.sync.missing();
    expect(t.sync.status).toBe('missing');
    expect(t.sync.next).toEqual({ kind: 'missing' });
    t.sync.rescan();
    expect(t.sync.next).toEqual({ kind: 'missing' });
    t.sync.resume();
    expect(t.sync.status).toBe('starting');
    // Nothing is read before the new watcher is in place.
    expect(t.sync.next).toEqual({ kind: 'starting' });
    await vi.waitFor(() => { if (t.watchers() < 2) throw new Error('no new watcher yet'); });
    t.clock.advance(0);
    await settled(t.sync);
    expect(t.sync.status).toBe('synced');
  });

  it('stop flushes what is queued', async () => {
    const store = createMemoryStore();
    const t = setup(store);
    await started(t);
    writeFileSync(path.join(t.ws, 'src/new.ts'), 'new\n');
    t.emit({ type: 'add', path: 'src/new.ts', isDir: false });
    expect(await t.sync.stop(true)).toBe(true);
    expect((await readCommitted(store, PREFIX, 'w'))!.entries.has('src/new.ts')).toBe(true);
    expect(t.sync.next).toEqual({ kind: 'stopped' });
  });
});
