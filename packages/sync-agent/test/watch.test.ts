/**
 * `sync-agent watch` end to end: the real CLI, a real filesystem and the embedded S3 server over HTTP.
 * Every wait is bounded and polls the bucket; nothing asserts on wall-clock time.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startCountingProxy, type EmbeddedS3 } from '@workspace-sync/testkit';
import { createHarness, useTestS3, objectText, waitFor, waitForContent, type Harness } from './watch-harness.js';

const server = useTestS3();
let s3: EmbeddedS3;
let h: Harness;

beforeEach(() => { s3 = server(); });
afterEach(async () => { await h?.cleanup(); });

describe('sync-agent watch', () => {
  it('reconciles on start, then a save lands in the bucket; excluded directories are never watched', async () => {
    h = createHarness(s3, 'save');
    h.write('app/src/a.txt', 'one');
    h.write('app/.env', 'SECRET=1');
    // 300 directories under node_modules: none of them may cost a watch.
    for (let i = 0; i < 300; i++) h.write(`app/node_modules/pkg${i}/index.js`, `module.exports = ${i};`);
    const agent = await h.startAgent();
    await waitForContent(h, 'app', { 'src/a.txt': 'one' }, 'the initial reconcile');

    h.write('app/src/a.txt', 'two');
    await waitForContent(h, 'app', { 'src/a.txt': 'two' }, 'the save to be synced');
    expect(await objectText(h.store, `${h.prefix}app/src/a.txt`)).toBe('two');
    expect(await h.keys('app')).toEqual(['src/a.txt']);

    // Directories only: the root, app and app/src. No file has a watch of its own, nothing under node_modules.
    expect(await agent.metric('sync_agent_watches')).toBe(3);
    expect(inotifyWatches(agent.proc.pid!)).toBe(3);
    expect(await agent.metric('sync_agent_uploads_total', { workspace: 'app' })).toBe(2);
    expect(await agent.metric('sync_agent_last_sync_timestamp_seconds', { workspace: 'app' })).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(await agent.health()).toMatchObject({ status: 'ok', reasons: [] });
    expect(agent.logs.filter((l) => l.msg === 'synced')[0]).toMatchObject({ workspace: 'app', files: 1, bytes: 3 });

    expect(await agent.stop()).toEqual({ code: 0, signal: null });
  });

  it('handles editor atomic saves and vim swap files: temp files never land, leftovers do', async () => {
    h = createHarness(s3, 'atomic');
    const proxy = await startCountingProxy(s3.endpoint);
    try {
      h.write('app/src/a.txt', 'a1');
      h.write('app/src/b.txt', 'b1');
      await h.startAgent({ endpoint: proxy.endpoint });
      await waitForContent(h, 'app', { 'src/a.txt': 'a1', 'src/b.txt': 'b1' }, 'the initial reconcile');
      const src = path.join(h.root, 'app/src');

      // VS Code / JetBrains "safe write": a temp file renamed over the target.
      writeFileSync(path.join(src, '.a.txt.tmp-4711'), 'a2');
      renameSync(path.join(src, '.a.txt.tmp-4711'), path.join(src, 'a.txt'));
      // vim's :w with a swap file open: probe file 4913, backup b.txt~, new b.txt, backup removed, swap removed.
      writeFileSync(path.join(src, '.b.txt.swp'), 'swap');
      writeFileSync(path.join(src, '.b.txt.swx'), 'swap');
      writeFileSync(path.join(src, '4913'), '');
      unlinkSync(path.join(src, '4913'));
      renameSync(path.join(src, 'b.txt'), path.join(src, 'b.txt~'));
      writeFileSync(path.join(src, 'b.txt'), 'b2');
      unlinkSync(path.join(src, 'b.txt~'));
      unlinkSync(path.join(src, '.b.txt.swx'));
      unlinkSync(path.join(src, '.b.txt.swp'));

      await waitForContent(h, 'app', { 'src/a.txt': 'a2', 'src/b.txt': 'b2' }, 'both saves to be synced');
      for (const temp of ['.a.txt.tmp-4711', '.b.txt.swp', '.b.txt.swx', '4913', 'b.txt~']) {
        expect(proxy.count('PUT', `/app/src/${temp}`), temp).toBe(0);
      }
      expect(await h.keys('app')).toEqual(['src/a.txt', 'src/b.txt']);

      // A swap file that stays (vim still open) is a real file: it syncs, as `push` would sync it.
      writeFileSync(path.join(src, '.c.txt.swp'), 'still editing');
      await waitForContent(h, 'app', { 'src/a.txt': 'a2', 'src/b.txt': 'b2', 'src/.c.txt.swp': 'still editing' }, 'the leftover swap file');
    } finally {
      await proxy.close();
    }
  });

  it('turns a burst of 1000 files into few commits, all landing', async () => {
    h = createHarness(s3, 'burst');
    const proxy = await startCountingProxy(s3.endpoint);
    try {
      h.write('app/src/main.ts', 'main');
      await h.startAgent({ endpoint: proxy.endpoint });
      await waitForContent(h, 'app', { 'src/main.ts': 'main' }, 'the initial reconcile');
      proxy.reset();

      const expected: Record<string, string> = { 'src/main.ts': 'main' };
      for (let i = 0; i < 1000; i++) {
        h.write(`app/src/gen${i}.ts`, `export const v${i} = ${i};`);
        expected[`src/gen${i}.ts`] = `export const v${i} = ${i};`;
      }
      await waitForContent(h, 'app', expected, 'the 1000 files to be synced', 60_000);
      const headWrites = proxy.count('PUT', `.sync/.heads/app`);
      expect(headWrites).toBeGreaterThanOrEqual(1);
      expect(headWrites).toBeLessThanOrEqual(10);
      expect(proxy.count('PUT', `${h.prefix}app/src/gen`)).toBe(1000);
    } finally {
      await proxy.close();
    }
  });

  it('deletes a removed directory and moves renamed files and directories', async () => {
    h = createHarness(s3, 'moves');
    const expected: Record<string, string> = {};
    const put = (rel: string, content: string) => { h.write(`app/${rel}`, content); expected[rel] = content; };
    for (let i = 0; i < 12; i++) put(`src/keep${i}.ts`, `keep ${i}`);
    for (let i = 0; i < 6; i++) put(`src/lib/deep/l${i}.ts`, `lib ${i}`);
    for (let i = 0; i < 4; i++) put(`src/old/o${i}.ts`, `old ${i}`);
    put('src/a.txt', 'rename me');
    await h.startAgent();
    await waitForContent(h, 'app', expected, 'the initial reconcile');

    rmSync(path.join(h.root, 'app/src/lib'), { recursive: true });
    for (let i = 0; i < 6; i++) delete expected[`src/lib/deep/l${i}.ts`];
    renameSync(path.join(h.root, 'app/src/a.txt'), path.join(h.root, 'app/src/renamed.txt'));
    delete expected['src/a.txt'];
    expected['src/renamed.txt'] = 'rename me';
    renameSync(path.join(h.root, 'app/src/old'), path.join(h.root, 'app/src/new'));
    for (let i = 0; i < 4; i++) { delete expected[`src/old/o${i}.ts`]; expected[`src/new/o${i}.ts`] = `old ${i}`; }

    await waitForContent(h, 'app', expected, 'the deletes and renames to be synced');
    await waitFor(async () => (await h.keys('app')).join() === Object.keys(expected).sort().join(), 'the bucket to hold exactly the workspace');
    expect(await objectText(h.store, `${h.prefix}app/src/new/o2.ts`)).toBe('old 2');
  });

  it('re-evaluates a subtree when its .gitignore changes, both ways', async () => {
    h = createHarness(s3, 'gitignore');
    h.write('app/src/keep.txt', 'keep');
    h.write('app/src/secret.txt', 'secret');
    h.write('app/src/gen/out.js', 'generated');
    h.write('app/src/.gitignore', 'gen/\n');
    const agent = await h.startAgent();
    const base = { 'src/keep.txt': 'keep', 'src/.gitignore': 'gen/\n' };
    await waitForContent(h, 'app', { ...base, 'src/secret.txt': 'secret' }, 'the initial reconcile');

    // Newly ignored: leaves the bucket. Newly included: uploaded, and its directory is now watched.
    h.write('app/src/.gitignore', 'secret.txt\n');
    const swapped = { 'src/keep.txt': 'keep', 'src/.gitignore': 'secret.txt\n', 'src/gen/out.js': 'generated' };
    await waitForContent(h, 'app', swapped, 'secret.txt to leave and gen/ to arrive');
    await waitFor(async () => !(await h.keys('app')).includes('src/secret.txt'), 'the secret object to be deleted');
    h.write('app/src/gen/out.js', 'regenerated');
    await waitForContent(h, 'app', { ...swapped, 'src/gen/out.js': 'regenerated' }, 'an edit in the newly included directory');
    h.write('app/src/secret.txt', 'edited secret');
    h.write('app/src/keep.txt', 'kept');
    await waitForContent(h, 'app', { ...swapped, 'src/gen/out.js': 'regenerated', 'src/keep.txt': 'kept' }, 'an edit next to the ignored file');
    expect(await h.keys('app')).not.toContain('src/secret.txt');
    expect(agent.logs.some((l) => l.level >= 50)).toBe(false);
  });

  it('catches with the periodic rescan what no watcher reports', async () => {
    h = createHarness(s3, 'rescan');
    h.write('app/keep.txt', 'keep');
    h.write('app/secret.txt', 'secret');
    h.write('app/.git/info/exclude', '# nothing yet\n');
    const agent = await h.startAgent({ args: ['--rescan-interval', '1s'] });
    await waitForContent(h, 'app', { 'keep.txt': 'keep', 'secret.txt': 'secret' }, 'the initial reconcile');
    // .git/ is excluded, so never watched: only the rescan can see this filter change.
    h.write('app/.git/info/exclude', 'secret.txt\n');
    await waitForContent(h, 'app', { 'keep.txt': 'keep' }, 'the rescan to drop the newly excluded file');
    await waitFor(async () => (await h.keys('app')).join() === 'keep.txt', 'the object to be deleted');
    // The delete lands before the reconcile that issued it has saved its state and counted itself.
    const reconciles = await waitFor(async () => {
      const n = await agent.metric('sync_agent_syncs_total', { workspace: 'app', kind: 'reconcile' });
      return n !== undefined && n >= 2 ? n : undefined;
    }, 'the rescan to be counted as a reconcile');
    expect(reconciles).toBeGreaterThanOrEqual(2);
  });

  it('picks up a workspace created while running', async () => {
    h = createHarness(s3, 'newws');
    h.write('first/a.txt', 'a');
    await h.startAgent();
    await waitForContent(h, 'first', { 'a.txt': 'a' }, 'the first workspace');
    mkdirSync(path.join(h.root, 'second/src'), { recursive: true });
    h.write('second/src/x.ts', 'x');
    h.write('second/node_modules/dep/index.js', 'dep');
    await waitForContent(h, 'second', { 'src/x.ts': 'x' }, 'the new workspace to be reconciled');
    h.write('second/src/y.ts', 'y');
    await waitForContent(h, 'second', { 'src/x.ts': 'x', 'src/y.ts': 'y' }, 'an edit in the new workspace');
    // Not workspaces: files and dot-directories at the root.
    h.write('.hidden/z.txt', 'z');
    h.write('loose.txt', 'loose');
    h.write('first/b.txt', 'b');
    await waitForContent(h, 'first', { 'a.txt': 'a', 'b.txt': 'b' }, 'a later edit');
    expect(await h.committed('.hidden')).toBeUndefined();
  });

  it('deletes nothing when a workspace directory disappears, and syncs it again when it returns', async () => {
    h = createHarness(s3, 'vanish');
    const files: Record<string, string> = {};
    for (let i = 0; i < 5; i++) { files[`src/f${i}.ts`] = `f${i}`; h.write(`app/src/f${i}.ts`, `f${i}`); }
    h.write('other/o.txt', 'o');
    const agent = await h.startAgent();
    await waitForContent(h, 'app', files, 'the initial reconcile');
    const before = await h.keys('app');
    const headBefore = await h.store.head(`${h.prefix}.sync/.heads/app`);

    rmSync(path.join(h.root, 'app'), { recursive: true });
    await agent.waitForLog((l) => l.msg.startsWith('workspace directory disappeared'), 'the disappearance to be reported');
    const health = await agent.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons.join()).toMatch(/app.*disappeared/);
    // Other workspaces go on syncing meanwhile.
    h.write('other/o.txt', 'o2');
    await waitForContent(h, 'other', { 'o.txt': 'o2' }, 'the other workspace');
    expect(await h.keys('app')).toEqual(before);
    expect((await h.store.head(`${h.prefix}.sync/.heads/app`))?.etag).toBe(headBefore?.etag);

    // Back (a remounted disk): reconciled, nothing lost, edits made meanwhile land.
    for (const [rel, content] of Object.entries(files)) h.write(`app/${rel}`, content);
    h.write('app/src/f0.ts', 'f0 edited while away');
    await waitForContent(h, 'app', { ...files, 'src/f0.ts': 'f0 edited while away' }, 'the returned workspace to sync');
    await waitFor(async () => (await agent.health()).status === 'ok', 'health to be ok again');
  });
});

describe('sync-agent watch safety and usage', () => {
  it('deletes nothing when a workspace is emptied (an unmounted disk leaves an empty mount point)', async () => {
    h = createHarness(s3, 'emptied');
    const files: Record<string, string> = {};
    for (let i = 0; i < 4; i++) { files[`f${i}.txt`] = `f${i}`; h.write(`app/f${i}.txt`, `f${i}`); }
    const agent = await h.startAgent();
    await waitForContent(h, 'app', files, 'the initial reconcile');
    for (const name of readdirSync(path.join(h.root, 'app'))) rmSync(path.join(h.root, 'app', name), { recursive: true });
    const refusal = await agent.waitForLog((l) => l.code === 'WORKSPACE_EMPTY', 'the refusal');
    expect(refusal.level).toBe(50);
    expect((await agent.health()).reasons.join()).toMatch(/refusing to delete/);
    expect(await h.keys('app')).toEqual(Object.keys(files));
    await waitForContent(h, 'app', files, 'the commit to be unchanged', 1_000);
    // Files back: the workspace syncs again.
    h.write('app/f0.txt', 'f0 back');
    await waitForContent(h, 'app', { 'f0.txt': 'f0 back' }, 'the returned file to sync (the others stay deleted, as the user left them)');
  });

  it('rejects a bad duration with one clear line and exit 2', async () => {
    h = createHarness(s3, 'usage');
    const agent = await h.startAgent({ args: ['--debounce', 'soon'], waitReady: false });
    expect((await agent.exited).code).toBe(2);
    expect(agent.stderrText()).toMatch(/invalid value "soon" for --debounce: expected a duration/);
  });
});

/** inotify watches held by a process, from /proc/<pid>/fdinfo of its inotify descriptors. */
function inotifyWatches(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link = '';
    try { link = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    n += link.split('\n').filter((l) => l.startsWith('inotify wd:')).length;
  }
  return n;
}
