import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { MANIFEST_FORMAT, Registry, encodeManifest, manifestKey, startHealthServer, type Commit } from '@workspace-sync/shared';
import { createMemoryStore, writeCommitFixture, type CommitFixtureEntry } from '@workspace-sync/testkit';
import { EventHub, MAX_EVENT_PATHS, diffSnapshots } from '../src/events.js';
import { History } from '../src/history.js';
import { Poller } from '../src/poller.js';
import { RemoteStatus } from '../src/remote-status.js';
import { Tree, type FileNode, type Node } from '../src/tree.js';
import { openEvents, openTrees, quietLogger } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(opts: { heartbeatMs?: number; bufferEvents?: number } = {}) {
  const store = createMemoryStore();
  const prefix = '';
  const tree = new Tree();
  const status = new RemoteStatus();
  const t = await openTrees(store, prefix, status);
  cleanups.push(t.close);
  const poller = new Poller({ store, tree, trees: t.trees, prefix, pollInterval: 1_000, dirCacheTime: 60_000, status, logger: quietLogger });
  const history = new History({ store, prefix, trees: t.trees, status, logger: quietLogger, dirCacheTime: 0 });
  const hub = new EventHub({ tree, trees: t.trees, history, logger: quietLogger, ...opts });
  const server = await startHealthServer({
    port: 0, host: '127.0.0.1', registry: new Registry(), health: () => ({ status: 'ok', reasons: [] }),
    routes: { '/events': (req, res) => hub.handle(req, res) }, onClose: () => hub.close(),
  });
  cleanups.push(() => server.close());
  return { store, tree, poller, hub, url: `http://127.0.0.1:${server.port}/events` };
}

async function connect(url: string, headers: Record<string, string> = {}) {
  const c = await openEvents(url, headers);
  cleanups.push(() => c.close());
  return c;
}

const changes = (added: string[], modified: string[] = [], deleted: string[] = []): Commit['changes'] => ({
  added: added.length, modified: modified.length, deleted: deleted.length, bytes: 0, paths: { added, modified, deleted }, truncated: false,
});

const files = (m: Record<string, string>): CommitFixtureEntry[] => Object.entries(m).map(([path, content]) => ({ path, content }));

describe('EventHub', () => {
  it('starts each stream with the state, then one event per generation with the paths of its commit', async () => {
    const { store, poller, url } = await setup();
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '1' }), { changes: changes(['a.js']) });
    await poller.pollOnce();
    const c = await connect(url);
    expect(c.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const state = await c.next();
    expect(state.event).toBe('state');
    expect(state.data).toMatchObject({ lost: false, workspaces: [{ workspace: 'www', kind: 'commit', generation: 1 }] });

    const pushed = await writeCommitFixture(store, '', 'www', files({ 'a.js': '2', 'src/b.js': 'b' }), { changes: changes(['src/b.js'], ['a.js']) });
    await poller.pollOnce();
    const ev = await c.next();
    expect(ev.event).toBe('generation');
    expect(ev.data).toMatchObject({
      workspace: 'www', kind: 'commit', generation: 2, previous: 1, commit: pushed.stem, time: pushed.commit.createdAt,
      changes: { added: ['src/b.js'], modified: ['a.js'], deleted: [], counts: { added: 1, modified: 1, deleted: 0 }, truncated: false },
    });
    expect(ev.id).toMatch(/^[0-9a-z]+\.1$/);
  });

  it('covers several pushes between two polls with one event: the net difference of the two trees', async () => {
    const { store, poller, url } = await setup();
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '1', 'gone.js': 'g', 'same.js': 's' }));
    await poller.pollOnce();
    const c = await connect(url);
    await c.next((f) => f.event === 'state');
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '1', 'same.js': 's', 'tmp.js': 't' }));
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '2', 'same.js': 's', 'lib/new.js': 'n' }));
    await poller.pollOnce();
    const ev = await c.next((f) => f.event === 'generation');
    expect(ev.data).toMatchObject({ generation: 3, previous: 1 });
    // tmp.js came and went between the polls: not a change the reader can see.
    expect(ev.data.changes).toEqual({
      added: ['lib/new.js'], modified: ['a.js'], deleted: ['gone.js'], counts: { added: 1, modified: 1, deleted: 1 }, truncated: false,
    });
  });

  it('caps the paths of an event and says so; the counts stay complete', async () => {
    const { store, poller, url } = await setup();
    await writeCommitFixture(store, '', 'big', files({ keep: 'k' }));
    await poller.pollOnce();
    const c = await connect(url);
    const many: Record<string, string> = { keep: 'k' };
    for (let i = 0; i < MAX_EVENT_PATHS + 5; i++) many[`f/${i}`] = String(i);
    await writeCommitFixture(store, '', 'big', files(many));
    await writeCommitFixture(store, '', 'big', files({ ...many, keep: 'k2' }));
    await poller.pollOnce();
    const ev = await c.next((f) => f.event === 'generation');
    expect(ev.data.changes.counts).toEqual({ added: MAX_EVENT_PATHS + 5, modified: 1, deleted: 0 });
    expect(ev.data.changes.added.length + ev.data.changes.modified.length).toBe(MAX_EVENT_PATHS);
    expect(ev.data.changes.truncated).toBe(true);
  });

  it('announces workspaces that appear and go away, and a first commit with its own paths', async () => {
    const { store, poller, url } = await setup();
    await poller.pollOnce();
    const c = await connect(url);
    expect((await c.next()).data.workspaces).toEqual([]);
    await writeCommitFixture(store, '', 'api', files({ 'x.ts': 'x' }), { changes: changes(['x.ts']) });
    await poller.pollOnce();
    expect(await c.next()).toMatchObject({ event: 'workspace-added', data: { workspace: 'api', kind: 'commit' } });
    expect(await c.next()).toMatchObject({ event: 'generation', data: { workspace: 'api', generation: 1, previous: null, changes: { added: ['x.ts'] } } });
    const keys: string[] = [];
    for await (const e of store.list('')) if ('key' in e && /(^|\/)api(\/|$)/.test(e.key)) keys.push(e.key);
    await store.deleteMany(keys);
    await poller.pollOnce();
    expect(await c.next()).toMatchObject({ event: 'workspace-removed', data: { workspace: 'api' } });
  });

  it('resumes from Last-Event-ID with what was missed, and says "lost" for an id it cannot resume', async () => {
    const { store, poller, url } = await setup();
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '1' }));
    await poller.pollOnce();
    const first = await connect(url);
    const state = await first.next();
    first.close();
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '2' }), { changes: changes([], ['a.js']) });
    await poller.pollOnce();
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '3' }), { changes: changes([], ['a.js']) });
    await poller.pollOnce();

    const again = await connect(url, { 'last-event-id': state.id! });
    const missed = [await again.next(), await again.next()];
    expect(missed.map((f) => [f.event, f.data.generation])).toEqual([['generation', 2], ['generation', 3]]);
    // From the middle: only what came after.
    const third = await connect(url, { 'last-event-id': missed[0]!.id! });
    expect((await third.next()).data.generation).toBe(3);

    const stranger = await connect(url, { 'last-event-id': 'zzz.4' });
    expect(await stranger.next()).toMatchObject({ event: 'state', data: { lost: true, workspaces: [{ workspace: 'www', generation: 3 }] } });
  });

  it('says "lost" once the event after a Last-Event-ID has left the bounded buffer', async () => {
    const { store, poller, url } = await setup({ bufferEvents: 2 });
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '0' }));
    await poller.pollOnce();
    const first = await connect(url);
    const state = await first.next();
    first.close();
    for (let i = 1; i <= 3; i++) {
      await writeCommitFixture(store, '', 'www', files({ 'a.js': String(i) }));
      await poller.pollOnce();
    }
    const again = await connect(url, { 'last-event-id': state.id! });
    expect(await again.next()).toMatchObject({ event: 'state', data: { lost: true } });
  });

  it('replays from the bucket history for ?since=<ws>:<generation>, then goes on live', async () => {
    const { store, poller, url } = await setup();
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '1', 'b.js': 'b' }));
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '2', 'b.js': 'b' }));
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '2', 'c.js': 'c' }));
    await writeCommitFixture(store, '', 'other', files({ 'o.js': 'o' }));
    await poller.pollOnce();
    const c = await connect(`${url}?workspace=www&since=www:1`);
    expect(await c.next()).toMatchObject({ event: 'state', data: { workspaces: [{ workspace: 'www', generation: 3 }] } });
    const replay = await c.next();
    expect(replay).toMatchObject({ event: 'generation', data: { workspace: 'www', generation: 3, previous: 1, replayed: true } });
    expect(replay.data.changes).toMatchObject({ added: ['c.js'], modified: ['a.js'], deleted: ['b.js'] });
    // Up to date: nothing to replay.
    const current = await connect(`${url}?since=www:3`);
    await current.next((f) => f.event === 'state');
    // A generation the bucket no longer has: paths unknown.
    const unknown = await connect(`${url}?since=www:2,www:7`);
    await unknown.next((f) => f.event === 'state');
    expect((await unknown.next()).data).toMatchObject({ generation: 3, previous: 7, changes: null });

    await writeCommitFixture(store, '', 'other', files({ 'o.js': 'o2' }));
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '4', 'c.js': 'c' }));
    await poller.pollOnce();
    // The filter: `other` never reaches this stream.
    expect((await c.next()).data).toMatchObject({ workspace: 'www', generation: 4 });
    expect((await current.next((f) => f.data.workspace === 'other')).data.generation).toBe(2);
    expect(c.frames.filter((f) => f.data?.workspace === 'other')).toEqual([]);
  });

  it('refuses a malformed since', async () => {
    const { url } = await setup();
    const res = await fetch(`${url}?since=www`);
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/since/);
  });

  it('reports v1 manifests with the paths of the difference of the two snapshots', async () => {
    const { store, poller, url } = await setup();
    const put = (generation: number, entries: Array<[string, string]>) => store.put(manifestKey('', 'old'), encodeManifest({
      format: MANIFEST_FORMAT, version: 1, workspace: 'old', generation, createdAt: new Date().toISOString(), writer: { host: 't', agent: 't' },
      entries: entries.map(([path, etag]) => ({ path, type: 'file', size: 1, mtimeMs: 1, mode: 0o644, sha256: etag.slice(1).repeat(64), etag })),
    }));
    await put(4, [['a', 'e1'], ['b', 'e2']]);
    await poller.pollOnce();
    const c = await connect(url);
    await c.next();
    await put(5, [['a', 'e1'], ['b', 'e3'], ['c', 'e4']]);
    await poller.pollOnce();
    expect((await c.next()).data).toMatchObject({
      workspace: 'old', kind: 'manifest', generation: 5, previous: 4, commit: null, changes: { added: ['c'], modified: ['b'], deleted: [] },
    });
  });

  it('sends a heartbeat comment on idle streams', async () => {
    const { poller, url } = await setup({ heartbeatMs: 50 });
    await poller.pollOnce();
    const c = await connect(url);
    await c.next();
    const t0 = Date.now();
    while (!c.frames.some((f) => f.comment === 'keep-alive')) {
      if (Date.now() - t0 > 3_000) throw new Error('no heartbeat');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('disconnects a client that does not read instead of buffering without bound', async () => {
    const { store, poller, hub, tree } = await setup();
    await writeCommitFixture(store, '', 'www', files({ 'a.js': '0' }));
    await poller.pollOnce();
    // A response whose peer never reads: everything written stays buffered.
    const res = Object.assign(new EventEmitter(), {
      destroyed: false, writableLength: 0,
      writeHead() { return this; },
      write(text: string) { this.writableLength += text.length; return false; },
      destroy() { this.destroyed = true; this.emit('close'); },
    });
    hub.handle({ url: '/events', headers: {} } as IncomingMessage, res as unknown as ServerResponse);
    expect(hub.clientCount).toBe(1);
    const many: Record<string, string> = {};
    for (let i = 0; i < MAX_EVENT_PATHS; i++) many[`some/longer/path/name/${i}.js`] = String(i);
    for (let g = 0; g < 60 && !res.destroyed; g++) {
      await writeCommitFixture(store, '', 'www', files({ ...many, 'a.js': String(g) }), { changes: changes(Object.keys(many)) });
      await poller.pollOnce();
      await new Promise((r) => setTimeout(r, 0));
    }
    expect(res.destroyed).toBe(true);
    expect(res.writableLength).toBeLessThan(1024 * 1024 + 64 * 1024);
    expect(hub.clientCount).toBe(0);
    expect(tree.get('www')).toBeDefined();
  });
});

describe('diffSnapshots', () => {
  const file = (etag: string, perm = 0o644): FileNode => ({
    kind: 'file', ino: 1, size: 1, mtimeMs: 1, srcMtimeMs: 1, perm, content: { format: 1, key: 'k', etag, sha256: undefined },
  });
  it('tells added, modified (content, mode, link target) and deleted files apart, and ignores directories', () => {
    const a = new Map<string, Node>([
      ['', { kind: 'dir', ino: 1, mtimeMs: 0, subdirs: 0 }], ['same', file('1')], ['content', file('1')], ['mode', file('1')],
      ['link', { kind: 'symlink', ino: 2, mtimeMs: 0, srcMtimeMs: 0, target: 'a' }], ['gone', file('1')], ['d', { kind: 'dir', ino: 3, mtimeMs: 0, subdirs: 0 }],
    ]);
    const b = new Map<string, Node>([
      ['', { kind: 'dir', ino: 1, mtimeMs: 9, subdirs: 0 }], ['same', file('1')], ['content', file('2')], ['mode', file('1', 0o755)],
      ['link', { kind: 'symlink', ino: 2, mtimeMs: 0, srcMtimeMs: 0, target: 'b' }], ['new', file('1')], ['d', file('1')],
    ]);
    expect(diffSnapshots({ nodes: a }, { nodes: b })).toEqual({
      added: ['d', 'new'], modified: ['content', 'link', 'mode'], deleted: ['gone'], counts: { added: 2, modified: 3, deleted: 1 }, truncated: false,
    });
  });
});
