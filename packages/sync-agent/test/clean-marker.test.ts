import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFilter, createLogger, headKey, resolveConfig, type ObjectStore } from '@workspace-sync/shared';
import { createMemoryStore, readCommitted, readCommittedFile, withFaults } from '@workspace-sync/testkit';
import { digestOfScan } from '../src/clean-marker.js';
import { pushWorkspace } from '../src/push.js';
import { scanWorkspace, type LocalEntry, type ScanResult } from '../src/scan.js';

const log = createLogger({ level: 'silent', name: 'test' });
const PREFIX = 'p/';

/** A walk that found `es`, in that order. */
function walked(es: LocalEntry[]): Pick<ScanResult, 'forEach'> {
  return {
    forEach(file, symlink) {
      for (const e of es) {
        if (e.type === 'file') file(e.path, e.size, e.mtimeMs, e.ctimeMs, e.ino, e.mode);
        else symlink(e.path, e.target, e.mtimeMs);
      }
    },
  };
}

describe('the stat digest', () => {
  const entries = (): LocalEntry[] => [
    { type: 'file', path: 'a.ts', size: 10, mtimeMs: 1_764_000_000_123.25, ctimeMs: 1_764_000_000_456.5, ino: 77, mode: 0o644 },
    { type: 'file', path: 'src/b.ts', size: 0, mtimeMs: 1, ctimeMs: 2, ino: 78, mode: 0o755 },
    { type: 'symlink', path: 'link', target: 'a.ts', mtimeMs: 3 },
  ];

  it('is the same from a real walk\'s columns as from the entries built from them', async () => {
    const ws = mkdtempSync(path.join(tmpdir(), 'wsync-walk-'));
    mkdirSync(path.join(ws, 'src/deep'), { recursive: true });
    writeFileSync(path.join(ws, 'a.ts'), 'a');
    writeFileSync(path.join(ws, 'src/deep/b.ts'), 'bb');
    chmodSync(path.join(ws, 'src/deep/b.ts'), 0o755);
    symlinkSync('src/deep/b.ts', path.join(ws, 'link'));
    const scan = await scanWorkspace(ws, createFilter({ root: path.dirname(ws), workspace: path.basename(ws) }));
    expect(scan.size).toBe(3);
    const st = statSync(path.join(ws, 'src/deep/b.ts'));
    expect(scan.entries.get('src/deep/b.ts')).toEqual({
      type: 'file', path: 'src/deep/b.ts', size: 2, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, mode: 0o755,
    });
    expect(scan.entries.get('link')).toMatchObject({ type: 'symlink', path: 'link', target: 'src/deep/b.ts' });
    expect(digestOfScan(scan)).toEqual(digestOfScan(walked([...scan.entries.values()])));
  });

  it('does not depend on the order of the walk', () => {
    const d = digestOfScan(walked(entries()));
    expect(d.files).toBe(3);
    expect(digestOfScan(walked(entries().reverse()))).toEqual(d);
  });

  it('moves with every field of every entry, and with an entry more or less', () => {
    const d = digestOfScan(walked(entries())).digest;
    const changes: Array<(e: LocalEntry[]) => void> = [
      (e) => { e[0]!.path = 'a.tsx'; },
      (e) => { (e[0] as { size: number }).size = 11; },
      (e) => { e[0]!.mtimeMs += 0.25; },
      (e) => { (e[0] as { ctimeMs: number }).ctimeMs += 1e-3; },
      (e) => { (e[0] as { ino: number }).ino = 79; },
      (e) => { (e[0] as { mode: number }).mode = 0o600; },
      (e) => { (e[2] as { target: string }).target = 'src/b.ts'; },
      (e) => { e[2]!.mtimeMs = 4; },
      // Two entries trading their stats: the sum of their hashes must not stay put.
      (e) => { const [x, y] = [e[0] as { ino: number }, e[1] as { ino: number }]; [x.ino, y.ino] = [y.ino, x.ino]; },
      (e) => { e.pop(); },
      (e) => { e.push({ type: 'file', path: 'c', size: 1, mtimeMs: 1, ctimeMs: 1, ino: 1, mode: 0o644 }); },
    ];
    const seen = new Set([d]);
    for (const change of changes) {
      const e = entries();
      change(e);
      const now = digestOfScan(walked(e)).digest;
      expect(seen.has(now)).toBe(false);
      seen.add(now);
    }
  });
});

describe('a push that finds nothing changed since the last one', () => {
  function setup() {
    const dir = mkdtempSync(path.join(tmpdir(), 'wsync-marker-'));
    const root = path.join(dir, 'root');
    const w = path.join(root, 'w');
    mkdirSync(path.join(w, 'src'), { recursive: true });
    for (let i = 0; i < 20; i++) writeFileSync(path.join(w, `src/f${i}.ts`), `export const f${i} = ${i};\n`);
    writeFileSync(path.join(w, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    // Old enough that no file is racily clean.
    const old = new Date(Date.now() - 60_000);
    for (const f of ['run.sh', ...readdirSync(path.join(w, 'src')).map((n) => `src/${n}`)]) utimesSync(path.join(w, f), old, old);
    const memory = createMemoryStore({ bucket: 'b' });
    const configFor = (state = path.join(dir, 'state'), r = root) => resolveConfig('agent', {
      env: {}, cwd: dir, flags: { root: r, stateDir: state, prefix: PREFIX, concurrency: 3, gcEvery: 0 },
    });
    const push = async (opts: { state?: string; root?: string; dryRun?: boolean } = {}) => {
      const store = withFaults(memory);
      const report = await pushWorkspace({ config: configFor(opts.state, opts.root), store: store as ObjectStore, log, workspace: 'w', dryRun: opts.dryRun });
      return { report, calls: store.calls.map((c) => `${c.op} ${c.key}`) };
    };
    const markers = () => readdirSync(path.join(dir, 'state'), { recursive: true }).map(String).filter((f) => f.endsWith('.clean.json'));
    const file = async (p: string) => {
      const c = (await readCommitted(memory, PREFIX, 'w'))!;
      return readCommittedFile(memory, PREFIX, 'w', c.entries.get(p)!);
    };
    return { dir, root, w, memory, push, markers, file };
  }

  it('answers with one conditional GET and the report a full no-op push gives, without loading the state', async () => {
    const t = setup();
    const first = await t.push();
    expect(first.report.marker).toBe(false);
    expect(first.report.uploaded).toBe(21);
    expect(t.markers()).toHaveLength(1);
    const head = (await readCommitted(t.memory, PREFIX, 'w'))!.etag;

    const second = await t.push();
    expect(second.report).toMatchObject({
      marker: true, uploaded: 0, copied: 0, deleted: 0, unchanged: 21, bytes: 0, hashed: 0, manifestWritten: false,
      manifestEtag: head, generation: 1, requests: 1, trustedState: true, skipped: [], changes: { added: 0, modified: 0, deleted: 0 },
    });
    expect(second.calls).toEqual([`get ${headKey(PREFIX, 'w')}`]);
    expect((await readCommitted(t.memory, PREFIX, 'w'))!.etag).toBe(head);

    // A dry run answers the same way, with an empty plan.
    const dry = await t.push({ dryRun: true });
    expect(dry.report).toMatchObject({ marker: true, plan: { uploads: [], changed: [], deletes: [], uploadBytes: 0 } });
  });

  it('goes the whole way when a file changed under the same size and mtime (its ctime moved)', async () => {
    const t = setup();
    await t.push();
    const f = path.join(t.w, 'src/f3.ts');
    const before = statSync(f);
    writeFileSync(f, 'export const f3 = 9;\n');
    utimesSync(f, before.atime, before.mtime);
    expect(statSync(f).size).toBe(before.size);
    const { report } = await t.push();
    expect(report).toMatchObject({ marker: false, uploaded: 1 });
    expect((await t.file('src/f3.ts')).toString()).toBe('export const f3 = 9;\n');
    expect((await t.push()).report.marker).toBe(true);
  });

  it('goes the whole way on a mode change, an added file and a removed one', async () => {
    const t = setup();
    await t.push();
    chmodSync(path.join(t.w, 'run.sh'), 0o644);
    expect((await t.push()).report).toMatchObject({ marker: false, changes: { modified: 1 } });
    expect((await readCommitted(t.memory, PREFIX, 'w'))!.entries.get('run.sh')).toMatchObject({ mode: 0o644 });
    writeFileSync(path.join(t.w, 'new.ts'), 'new\n');
    expect((await t.push()).report).toMatchObject({ marker: false, changes: { added: 1 } });
    unlinkSync(path.join(t.w, 'src/f0.ts'));
    expect((await t.push()).report).toMatchObject({ marker: false, changes: { deleted: 1 } });
    expect((await readCommitted(t.memory, PREFIX, 'w'))!.entries.has('src/f0.ts')).toBe(false);
  });

  it('goes the whole way when another writer committed, and when the state was written since', async () => {
    const t = setup();
    await t.push();
    // Another machine (its own root and state) commits to the same workspace.
    const other = path.join(t.dir, 'other');
    execFileSync('cp', ['-a', t.root, other]);
    writeFileSync(path.join(other, 'w/theirs.ts'), 'theirs\n');
    await t.push({ root: other, state: path.join(t.dir, 'other-state') });
    const ours = await t.push();
    expect(ours.report.marker).toBe(false);
    expect(ours.calls.length).toBeGreaterThan(1);

    // In sync again; then something else (a watch, another push) writes the state index.
    expect((await t.push()).report.marker).toBe(true);
    const stateDir = path.join(t.dir, 'state');
    const journal = readdirSync(stateDir, { recursive: true }).map(String).find((f) => f.endsWith('w.state.json'))!;
    appendFileSync(path.join(stateDir, journal.replace('.state.json', '.journal')), `${JSON.stringify({ t: 'i', p: ['src/f1.ts'] })}\n`);
    const after = await t.push();
    expect(after.report.marker).toBe(false);
  });

  it('leaves no marker when a file is racily clean, when an entry is skipped, or after a dry run', async () => {
    const t = setup();
    // An mtime later than the hash: the stat cache cannot vouch for the file, so neither can a marker.
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(path.join(t.w, 'src/f5.ts'), future, future);
    await t.push();
    expect(t.markers()).toEqual([]);
    expect((await t.push()).report.marker).toBe(false);

    const u = setup();
    await u.push({ dryRun: true });
    expect(existsSync(path.join(u.dir, 'state')) ? u.markers() : []).toEqual([]);
    await u.push();
    expect(u.markers()).toHaveLength(1);
    execFileSync('mkfifo', [path.join(u.w, 'pipe')]);
    const skipped = await u.push();
    expect(skipped.report.marker).toBe(false);
    expect(skipped.report.skipped.map((s) => s.path)).toEqual(['pipe']);
    expect(u.markers()).toEqual([]);
    expect((await u.push()).report.marker).toBe(false);
    rmSync(path.join(u.w, 'pipe'));
    await u.push();
    expect((await u.push()).report.marker).toBe(true);
  });
});
