/**
 * The directory watcher on a real filesystem, in-process: one inotify watch per directory (none per
 * file, none under ignored directories), and the changes it reports for saves, atomic saves, deletes,
 * new directories, renames and replaced directories, with inotify and with polling.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FsChange } from '../src/coalesce.js';
import { watchTree, type TreeWatcher } from '../src/watcher.js';

const base = mkdtempSync(path.join(tmpdir(), 'wsync-watcher-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
let current: TreeWatcher | undefined;
afterEach(async () => { await current?.close(); current = undefined; });

function tree(files: Record<string, string>): string {
  const dir = path.join(base, `t${n++}`);
  mkdirSync(dir);
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), body);
  }
  return dir;
}

/** inotify watches this process holds, from /proc/self/fdinfo. */
function inotifyWatches(): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    try { count += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length; } catch { /* closed meanwhile */ }
  }
  return count;
}

async function start(dir: string, opts: { pollMs?: number; depth?: number; ignore?: RegExp } = {}) {
  const changes: FsChange[] = [];
  const errors: Error[] = [];
  current = watchTree({
    dir, pollMs: opts.pollMs, depth: opts.depth,
    ignored: (rel) => opts.ignore?.test(rel) ?? false,
    onChange: (c) => changes.push(c),
    onError: (e) => errors.push(e),
  });
  await current.ready;
  const seen = (c: string) => changes.some((x) => `${x.type} ${x.path}${x.isDir ? '/' : ''}` === c);
  return {
    watcher: current,
    changes,
    errors,
    /** Waits until every one of `expected` ("add a/b.txt", "delete d/") has been reported. */
    async waitFor(...expected: string[]) {
      for (let i = 0; i < 400 && !expected.every(seen); i++) await new Promise((r) => setTimeout(r, 25));
      expect(changes.map((x) => `${x.type} ${x.path}${x.isDir ? '/' : ''}`)).toEqual(expect.arrayContaining(expected));
    },
    reset() { changes.length = 0; },
  };
}

for (const mode of ['inotify', 'polling'] as const) {
  const pollMs = mode === 'polling' ? 50 : undefined;

  describe(`watchTree (${mode})`, () => {
    it('reports saves, atomic saves (a temp file renamed over the target) and deletes', async () => {
      const dir = tree({ 'src/a.ts': 'a1', 'src/b.ts': 'b1', 'c.ts': 'c1' });
      const w = await start(dir, { pollMs });
      expect(w.changes).toEqual([]);
      writeFileSync(path.join(dir, 'src/a.ts'), 'a2 longer');
      writeFileSync(path.join(dir, 'src/.b.ts.tmp'), 'b2 longer');
      renameSync(path.join(dir, 'src/.b.ts.tmp'), path.join(dir, 'src/b.ts'));
      unlinkSync(path.join(dir, 'c.ts'));
      await w.waitFor('change src/a.ts', 'change src/b.ts', 'delete c.ts');
      // The temp file either was never seen (polling) or came and went.
      const temp = w.changes.filter((c) => c.path === 'src/.b.ts.tmp').map((c) => c.type);
      expect(temp.length === 0 || temp.at(-1) === 'delete').toBe(true);
      expect(w.errors).toEqual([]);

      // The target's new inode is still watched (through its directory): a second save is seen too.
      w.reset();
      writeFileSync(path.join(dir, 'src/b.ts'), 'b3 longer still');
      await w.waitFor('change src/b.ts');
    });

    it('reports new files in new nested directories, and watches those directories', async () => {
      const dir = tree({ 'a.ts': '' });
      const w = await start(dir, { pollMs });
      mkdirSync(path.join(dir, 'x/y/z'), { recursive: true });
      writeFileSync(path.join(dir, 'x/y/z/deep.ts'), 'deep');
      writeFileSync(path.join(dir, 'x/top.ts'), 'top');
      await w.waitFor('add x/', 'add x/y/', 'add x/y/z/', 'add x/y/z/deep.ts', 'add x/top.ts');
      expect(w.watcher.watchCount()).toBe(4);
      w.reset();
      writeFileSync(path.join(dir, 'x/y/z/deep.ts'), 'deeper');
      await w.waitFor('change x/y/z/deep.ts');
    });

    it('reports a renamed directory as its old subtree deleted and its new one added', async () => {
      const dir = tree({ 'old/o1.ts': '1', 'old/sub/o2.ts': '2', 'keep.ts': '' });
      const w = await start(dir, { pollMs });
      renameSync(path.join(dir, 'old'), path.join(dir, 'new'));
      await w.waitFor('delete old/', 'delete old/o1.ts', 'delete old/sub/o2.ts', 'add new/', 'add new/o1.ts', 'add new/sub/', 'add new/sub/o2.ts');
      expect(w.watcher.watchCount()).toBe(3);
      w.reset();
      // The moved directory is watched under its new name only.
      writeFileSync(path.join(dir, 'new/sub/o2.ts'), 'edited');
      await w.waitFor('change new/sub/o2.ts');
      expect(w.changes.filter((c) => c.path.startsWith('old/'))).toEqual([]);
    });

    it('reads a directory again when it is deleted and created anew under the same name', async () => {
      const dir = tree({ 'd/one.ts': '1', 'd/two.ts': '2' });
      const w = await start(dir, { pollMs });
      rmSync(path.join(dir, 'd'), { recursive: true });
      mkdirSync(path.join(dir, 'd'));
      writeFileSync(path.join(dir, 'd/three.ts'), '3');
      await w.waitFor('delete d/one.ts', 'delete d/two.ts', 'add d/three.ts');
      w.reset();
      writeFileSync(path.join(dir, 'd/three.ts'), '3 edited');
      await w.waitFor('change d/three.ts');
      expect(w.watcher.watchCount()).toBe(2);
    });

    it('a file replaced by a directory (and back) is a delete and an add', async () => {
      const dir = tree({ 'x': 'file' });
      const w = await start(dir, { pollMs });
      unlinkSync(path.join(dir, 'x'));
      mkdirSync(path.join(dir, 'x'));
      writeFileSync(path.join(dir, 'x/in.ts'), '');
      await w.waitFor('delete x', 'add x/', 'add x/in.ts');
      w.reset();
      rmSync(path.join(dir, 'x'), { recursive: true });
      writeFileSync(path.join(dir, 'x'), 'file again');
      await w.waitFor('delete x/', 'add x');
    });

    it('never reports, lists or watches what `ignored` excludes; symlinks are entries, not followed', async () => {
      const dir = tree({ 'src/a.ts': '', 'node_modules/p/index.js': '', 'node_modules/q/index.js': '' });
      symlinkSync(path.join(dir, 'node_modules'), path.join(dir, 'link'));
      const w = await start(dir, { pollMs, ignore: /^node_modules(\/|$)/ });
      expect(w.watcher.watchCount()).toBe(2);
      writeFileSync(path.join(dir, 'node_modules/p/index.js'), 'changed');
      mkdirSync(path.join(dir, 'node_modules/r'));
      writeFileSync(path.join(dir, 'src/a.ts'), 'changed');
      unlinkSync(path.join(dir, 'link'));
      await w.waitFor('change src/a.ts', 'delete link');
      expect(w.changes.filter((c) => c.path.startsWith('node_modules'))).toEqual([]);
      expect(w.changes.find((c) => c.path === 'link')).toEqual({ type: 'delete', path: 'link', isDir: false });
    });

    it('with depth 0, watches the directory alone and reports its direct entries', async () => {
      const dir = tree({ 'ws1/a.ts': '', '.gitignore': '' });
      const w = await start(dir, { pollMs, depth: 0 });
      expect(w.watcher.watchCount()).toBe(1);
      mkdirSync(path.join(dir, 'ws2'));
      writeFileSync(path.join(dir, 'ws2/b.ts'), '');
      writeFileSync(path.join(dir, 'ws1/a.ts'), 'not seen at depth 0');
      rmSync(path.join(dir, 'ws1'), { recursive: true });
      writeFileSync(path.join(dir, '.gitignore'), 'x');
      await w.waitFor('add ws2/', 'delete ws1/', 'change .gitignore');
      expect(w.changes.filter((c) => c.path.includes('/'))).toEqual([]);
    });

    it('reports nothing after close', async () => {
      const dir = tree({ 'a.ts': '' });
      const w = await start(dir, { pollMs });
      await w.watcher.close();
      writeFileSync(path.join(dir, 'a.ts'), 'late');
      writeFileSync(path.join(dir, 'b.ts'), 'late');
      await new Promise((r) => setTimeout(r, 300));
      expect(w.changes).toEqual([]);
    });
  });
}

describe('watchTree inotify watches', () => {
  it('puts one watch on each directory and none on files', async () => {
    const files: Record<string, string> = {};
    for (let d = 0; d < 12; d++) for (let f = 0; f < 25; f++) files[`pkg${d % 3}/dir${d}/f${f}.ts`] = `${d}.${f}`;
    for (let i = 0; i < 50; i++) files[`node_modules/m${i}/index.js`] = '';
    const dir = tree(files);
    const before = inotifyWatches();
    const w = await start(dir, { ignore: /^node_modules(\/|$)/ });
    // The root, pkg0..2 and dir0..11: 16 directories for 300 files.
    expect(w.watcher.watchCount()).toBe(16);
    expect(inotifyWatches() - before).toBe(16);
    await w.watcher.close();
    expect(inotifyWatches()).toBe(before);
  });
});
