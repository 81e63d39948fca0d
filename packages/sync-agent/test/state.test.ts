import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '@workspace-sync/shared';
import { emptyState, openStateStore } from '../src/state.js';
import { childrenOf, type ViewEntry } from '../src/view.js';

const dir = () => mkdtempSync(path.join(tmpdir(), 'wsync-state-'));
const entry = (content: string, etag?: string): ViewEntry => ({
  type: 'file', size: content.length, mtimeMs: 1, mode: 0o644, sha256: sha256Hex(content), pack: 'aaaaaaaaaaaaaaaa', offset: 0, chunks: undefined, etag,
});
const head = (generation: number) => ({ etag: `h${generation}`, stem: `${String(generation).padStart(12, '0')}-0123456789abcdef`, generation });
const rec = (sha: string) => ({ size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1, sha256: sha, hashedAtMs: 5 });

describe('state index', () => {
  it('says when its files were written since: identity', () => {
    const d = dir();
    const s = openStateStore(d, 'ws');
    expect(s.identity()).toBeUndefined();
    s.intent(['a']);
    const afterIntent = s.identity();
    expect(afterIntent).toBeDefined();
    expect(openStateStore(d, 'ws').identity()).toBe(afterIntent);
    s.plain('a', { etag: 'e', sha256: sha256Hex('a'), mode: 0o644 });
    const afterPlain = s.identity();
    expect(afterPlain).not.toBe(afterIntent);
    s.save(s.load()!);
    const afterSave = s.identity();
    expect(afterSave).not.toBe(afterPlain);
    // Saved again with the same content: the snapshot is a new file all the same.
    s.save(s.load()!);
    expect(s.identity()).not.toBe(afterSave);
  });

  it('replays the journal over the snapshot: commits, plain intents and results, content, deletes', () => {
    const d = dir();
    const s = openStateStore(d, 'ws');
    expect(s.load()).toBeUndefined();
    s.commit({
      upserts: new Map([['a', entry('a', 'ea')], ['b/c', entry('c', 'ec')]]), removes: new Set(), head: head(1),
      dirs: new Map([['', { ref: ['bbbbbbbbbbbbbbbb', 0, 10, sha256Hex('root')], changedAtMs: 1, files: 2, bytes: 2 }]]), children: new Map(),
      records: new Map([['a', rec(sha256Hex('a'))]]), recordRemoves: [], deletes: [],
    });
    s.intent(['a', 'x']);
    s.plain('a', { etag: 'ea2', sha256: sha256Hex('a'), mode: 0o644 });
    s.content(sha256Hex('new'), { pack: 'cccccccccccccccc', offset: 3, chunks: undefined });
    s.commit({
      upserts: new Map([['d', entry('d')]]), removes: new Set(['b/c']), head: head(2), dirs: new Map(), children: new Map(),
      records: new Map(), recordRemoves: ['b/c'], deletes: ['b/c'],
    });
    s.deleted(['b/c']);

    const st = openStateStore(d, 'ws').load()!;
    expect(st.view.head).toEqual(head(2));
    expect([...st.view.entries.keys()].sort()).toEqual(['a', 'd']);
    expect(childrenOf(st.view).get('')).toEqual(new Set(['a', 'd']));
    expect(st.view.bySha.get(sha256Hex('d'))).toBe('d');
    // 'a' was written (result recorded) but not part of a commit since: its plain state stays known apart from the view.
    expect(st.plain.get('a')).toEqual({ etag: 'ea2', sha256: sha256Hex('a'), mode: 0o644 });
    // 'x' got an intent and no result: unknown.
    expect(st.plain.has('x') && st.plain.get('x') === undefined).toBe(true);
    expect(st.pendingDeletes.size).toBe(0);
    expect(st.records.has('b/c')).toBe(false);
    expect(st.records.get('a')?.sha256).toBe(sha256Hex('a'));
  });

  it('keeps the part refs of split directories, through the journal and through a snapshot', () => {
    const d = dir();
    const s = openStateStore(d, 'ws');
    const parts: Array<[string, number, number, string]> = [['bbbbbbbbbbbbbbbb', 0, 5, sha256Hex('p0')], ['cccccccccccccccc', 5, 5, sha256Hex('p1')]];
    s.commit({
      upserts: new Map([['big/a', entry('a')]]), removes: new Set(), head: head(1), children: new Map(),
      dirs: new Map([
        ['', { ref: ['bbbbbbbbbbbbbbbb', 10, 10, sha256Hex('root')], changedAtMs: 1, files: 1, bytes: 1 }],
        ['big', { ref: ['bbbbbbbbbbbbbbbb', 20, 10, sha256Hex('index')], parts, changedAtMs: 1, files: 1, bytes: 1 }],
      ]),
      records: new Map(), recordRemoves: [], deletes: [],
    });
    const fromJournal = openStateStore(d, 'ws').load()!;
    expect(fromJournal.view.dirs.get('big')!.parts).toEqual(parts);
    expect(fromJournal.view.dirs.get('')!.parts).toBeUndefined();
    s.save(fromJournal);
    expect(openStateStore(d, 'ws').load()!.view.dirs.get('big')!.parts).toEqual(parts);
  });

  it('ignores a line torn by a crash, and keeps what came before it', () => {
    const d = dir();
    const s = openStateStore(d, 'ws');
    s.intent(['p']);
    appendFileSync(path.join(d, 'ws.journal'), '{"t":"w","p":"p","o":{"etag":');
    const st = openStateStore(d, 'ws').load()!;
    expect(st.plain.has('p')).toBe(true);
    expect(st.plain.get('p')).toBeUndefined();
  });

  it('drops content that landed too long ago to be reused (garbage collection may have removed it)', () => {
    const d = dir();
    writeFileSync(path.join(d, 'ws.journal'), `${JSON.stringify({ t: 'b', s: sha256Hex('old'), l: { pack: 'aaaaaaaaaaaaaaaa', offset: 0 }, at: Date.now() - 3_600_000 })}\n`);
    appendFileSync(path.join(d, 'ws.journal'), `${JSON.stringify({ t: 'b', s: sha256Hex('new'), l: { pack: 'aaaaaaaaaaaaaaaa', offset: 9 }, at: Date.now() })}\n`);
    const st = openStateStore(d, 'ws').load()!;
    expect([...st.pending.keys()]).toEqual([sha256Hex('new')]);
  });

  it('keeps when the oldest pending content landed, through a snapshot, until a commit names it', () => {
    const d = dir();
    const s = openStateStore(d, 'ws');
    const now = Date.now();
    s.save(emptyState());
    appendFileSync(path.join(d, 'ws.journal'), [
      { t: 'b', s: sha256Hex('later'), l: { pack: 'aaaaaaaaaaaaaaaa', offset: 0 }, at: now - 1_000 },
      { t: 'b', s: sha256Hex('earlier'), l: { pack: 'aaaaaaaaaaaaaaaa', offset: 5 }, at: now - 600_000 },
      // Landed after both, as a retried run's would: the time kept is still the oldest.
      { t: 'b', s: sha256Hex('last'), l: { pack: 'bbbbbbbbbbbbbbbb', offset: 0 }, at: now - 500 },
    ].map((l) => `${JSON.stringify(l)}\n`).join(''));
    const st = s.load()!;
    expect(st.pendingSince).toBe(now - 600_000);
    expect(st.pending.get(sha256Hex('earlier'))).toEqual({ pack: 'aaaaaaaaaaaaaaaa', offset: 5, chunks: undefined });
    // Folded into a snapshot: each entry is as old as the oldest, so none outlives its own time there.
    s.save(st);
    const again = openStateStore(d, 'ws').load()!;
    expect(again.pendingSince).toBe(now - 600_000);
    expect([...again.pending.keys()].sort()).toEqual([sha256Hex('earlier'), sha256Hex('later'), sha256Hex('last')].sort());
    s.commit({
      upserts: new Map(), removes: new Set(), dirs: new Map(), children: new Map(), head: head(1), records: new Map(), recordRemoves: [], deletes: [],
    });
    const committed = openStateStore(d, 'ws').load()!;
    expect(committed.pending.size).toBe(0);
    expect(committed.pendingSince).toBeUndefined();
  });

  it('removes the temporary files of a run killed while writing, never those of a run still writing', () => {
    const d = dir();
    const s = openStateStore(d, 'my ws');
    s.intent(['a']);
    // A process that has exited: its pid names no live process (until reused, when the file just waits).
    const exited = () => spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const [dead, dead2] = [exited(), exited()];
    const left = [`my%20ws.state.json.${dead}.tmp`, `my%20ws.clean.json.${dead}.tmp`];
    // A live writer's, another workspace's, and a gone pid's written just now (another container's writer, maybe).
    const kept = [`my%20ws.state.json.${process.ppid}.tmp`, `other.state.json.${dead}.tmp`, `my%20ws.state.json.${dead2}.tmp`, `my%20ws.state.json`];
    const old = new Date(Date.now() - 120_000);
    for (const f of [...left, ...kept.slice(0, 3)]) {
      writeFileSync(path.join(d, f), '{');
      if (f !== kept[2]) utimesSync(path.join(d, f), old, old);
    }
    s.save(s.load()!);
    expect(s.load()!.plain.has('a')).toBe(true);
    for (const f of left) expect(existsSync(path.join(d, f))).toBe(false);
    for (const f of kept) expect(existsSync(path.join(d, f))).toBe(true);
  });

  it('folds the journal into a snapshot and starts a new journal', () => {
    const d = dir();
    const s = openStateStore(d, 'ws');
    s.intent(['q']);
    const st = s.load()!;
    s.save(st);
    expect(existsSync(path.join(d, 'ws.journal'))).toBe(false);
    expect(JSON.parse(readFileSync(path.join(d, 'ws.state.json'), 'utf8')).plain).toEqual([['q', null]]);
    expect(openStateStore(d, 'ws').load()!.plain.has('q')).toBe(true);
  });

  it('is readable by its owner only: it names every file of the workspace', () => {
    const d = path.join(dir(), 'state', 'nested');
    const s = openStateStore(d, 'ws');
    s.intent(['q']);
    expect(statSync(d).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(d, 'ws.journal')).mode & 0o777).toBe(0o600);
    s.save(s.load()!);
    expect(statSync(path.join(d, 'ws.state.json')).mode & 0o777).toBe(0o600);
  });

  it('a state that cannot be written is removed, so no later run trusts it, and syncing goes on', () => {
    const d = dir();
    const s = openStateStore(d, 'ws');
    s.intent(['a']);
    s.save(s.load()!);
    // The state directory turns into something that cannot hold files (a full disk behaves alike).
    const blocked = path.join(d, 'blocked');
    writeFileSync(blocked, 'not a directory');
    const broken = openStateStore(path.join(blocked, 'sub'), 'ws');
    expect(() => broken.intent(['b'])).not.toThrow();
    expect(broken.broken).toBe(true);
    // The good store's files stay; the broken one has none to trust.
    expect(openStateStore(path.join(blocked, 'sub'), 'ws').load()).toBeUndefined();
  });
});
