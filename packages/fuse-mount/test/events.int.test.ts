/**
 * Change signals end to end, with real `sync-agent push`es and a real mount: directory mtimes (what
 * `stat` and polling watchers see) and the /events stream, including a replay from the bucket's
 * history after the mount restarted.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCommit, headKey, type Commit } from '@workspace-sync/shared';
import { startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import {
  eventually, forceUnmount, healthPortOf, openEvents, releaseS3, removeDir, spawnMount, storeFor, tempDir, type MountProcess,
} from './helpers.js';

const AGENT = path.resolve(import.meta.dirname, '../../sync-agent/bin/sync-agent.js');

let s3: EmbeddedS3;
let base: string;
let root: string;
let mnt: string;
let mount: MountProcess | undefined;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  s3 = await startTestS3();
  base = tempDir('events');
  root = path.join(base, 'workspaces');
  mnt = path.join(base, 'mnt');
  mkdirSync(mnt);
  write({ 'package.json': '{"name":"app"}', 'src/a.js': 'a1', 'src/b.js': 'b1', 'docs/one.md': '1', 'docs/two.md': '2' });
  await push();
});

afterAll(async () => {
  for (const c of closers.splice(0)) await c();
  await stopMount();
  forceUnmount(mnt);
  await releaseS3(s3);
  removeDir(base);
});

function write(files: Record<string, string | null>): void {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(root, 'app', rel);
    if (content === null) {
      rmSync(file);
      continue;
    }
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}

function push(): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [AGENT, 'push', '--root', root, '--state-dir', path.join(base, 'state'), 'app'], {
      env: { ...process.env, ...s3.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`push exited with ${code}: ${err}`))));
  });
}

async function head(): Promise<Commit> {
  const res = await storeFor(s3).get(headKey('', 'app'));
  return decodeCommit(res.body, 'head');
}

async function startMount(): Promise<string> {
  mount = await spawnMount(mnt, ['--poll-interval', '500ms', '--health-port', '0', '--cache-dir', path.join(base, 'cache')], {
    ...s3.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info',
  });
  return `http://127.0.0.1:${healthPortOf(mount)}/events`;
}

async function stopMount(): Promise<void> {
  if (!mount) return;
  mount.proc.kill('SIGTERM');
  await mount.exited;
  mount = undefined;
}

async function connect(url: string, headers: Record<string, string> = {}) {
  const c = await openEvents(url, headers);
  closers.push(c.close);
  return c;
}

// The test process does not serve the mount, so it may stat it synchronously.
const mtime = (rel: string) => statSync(path.join(mnt, rel)).mtimeMs;

describe('change signals on a real mount, from real pushes', () => {
  it('directory mtimes: the workspace is its commit time, a directory moves only when something under it changed', async () => {
    const url = await startMount();
    const first = await head();
    const t1 = Date.parse(first.createdAt);
    expect(mtime('app')).toBe(t1);
    expect(mtime('app/src')).toBe(t1);
    expect(mtime('app/docs')).toBe(t1);
    const rootBefore = mtime('');

    const events = await connect(url);
    expect((await events.next()).data).toMatchObject({ workspaces: [{ workspace: 'app', generation: first.generation, commit: expect.any(String) }] });

    write({ 'src/a.js': 'a2', 'src/new/c.js': 'c' });
    await push();
    const second = await head();
    const t2 = Date.parse(second.createdAt);
    const ev = await events.next((f) => f.event === 'generation', 15_000);
    expect(ev.data).toMatchObject({
      workspace: 'app', generation: second.generation, previous: first.generation, time: second.createdAt,
      changes: { added: ['src/new/c.js'], modified: ['src/a.js'], deleted: [], truncated: false },
    });
    expect(statSync(path.join(mnt, '.snapshots/app', String(second.generation))).isDirectory()).toBe(true);
    // Within the kernel's attribute timeout at most (1 s at most; at once where the kernel takes notifications).
    expect(await eventually(async () => mtime('app') === t2, 5_000)).toBe(true);
    expect(mtime('app/src')).toBe(t2);
    expect(mtime('app/src/new')).toBe(t2);
    expect(mtime('app/docs')).toBe(t1);
    expect(mtime('')).toBeGreaterThan(rootBefore);

    // A deletion moves its directory too (and its ancestors), not its siblings.
    write({ 'docs/two.md': null });
    await push();
    const third = await head();
    const ev3 = await events.next((f) => f.event === 'generation', 15_000);
    expect(ev3.data.changes).toMatchObject({ added: [], modified: [], deleted: ['docs/two.md'] });
    // The generation an event names can be read at once, immutable, under .snapshots (what the example monitor copies from).
    expect(statSync(path.join(mnt, '.snapshots/app', String(third.generation))).isDirectory()).toBe(true);
    expect(await eventually(async () => mtime('app') === Date.parse(third.createdAt), 5_000)).toBe(true);
    expect(mtime('app/docs')).toBe(Date.parse(third.createdAt));
    expect(mtime('app/src')).toBe(t2);
  });

  it('a new workspace is announced, then its first generation with every path', async () => {
    const url = `http://127.0.0.1:${healthPortOf(mount!)}/events`;
    const events = await connect(url);
    await events.next((f) => f.event === 'state');
    mkdirSync(path.join(root, 'fresh'));
    writeFileSync(path.join(root, 'fresh', 'index.js'), 'x');
    await new Promise<void>((resolve, reject) => {
      const p = spawn(process.execPath, [AGENT, 'push', '--root', root, '--state-dir', path.join(base, 'state'), 'fresh'], {
        env: { ...process.env, ...s3.env, LOG_LEVEL: 'warn' }, stdio: 'ignore',
      });
      p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`push exited with ${code}`))));
    });
    expect(await events.next((f) => f.event === 'workspace-added', 15_000)).toMatchObject({ data: { workspace: 'fresh', kind: 'commit' } });
    expect((await events.next((f) => f.event === 'generation', 15_000)).data).toMatchObject({
      workspace: 'fresh', generation: 1, previous: null, changes: { added: ['index.js'] },
    });
  });

  it('after a mount restart, ?since= replays what changed from the bucket history, as one event', async () => {
    const before = await head();
    await stopMount();
    write({ 'src/b.js': 'b2', 'tmp.txt': 't' });
    await push();
    write({ 'tmp.txt': null, 'package.json': '{"name":"app","version":"2"}' });
    await push();
    const after = await head();
    expect(after.generation).toBe(before.generation + 2);
    const url = await startMount();
    const events = await connect(`${url}?workspace=app&since=app:${before.generation}`);
    expect((await events.next()).data.workspaces).toEqual([expect.objectContaining({ workspace: 'app', generation: after.generation })]);
    const replay = await events.next((f) => f.event === 'generation');
    expect(replay.data).toMatchObject({
      workspace: 'app', generation: after.generation, previous: before.generation, replayed: true,
      changes: { added: [], modified: ['package.json', 'src/b.js'], deleted: [] },
    });
  });
});
