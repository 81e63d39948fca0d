/**
 * `sync-agent watch` against the integrity issue's findings, over real sockets through a fault
 * proxy: a symlink replaced by a directory in a batch that fails once, a file appended to without
 * pause, a slow `rm` of a whole workspace, and an object the server refuses every time.
 */
import { mkdirSync, unlinkSync, writeFileSync, appendFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readCommittedFile, startFaultProxy, type EmbeddedS3, type FaultProxy } from '@workspace-sync/testkit';
import { createHarness, useTestS3, waitFor, waitForContent, type Harness } from './watch-harness.js';

const server = useTestS3();
let s3: EmbeddedS3;
let h: Harness;
let proxy: FaultProxy | undefined;

beforeEach(() => { s3 = server(); });
afterEach(async () => {
  await h?.cleanup();
  await proxy?.close();
  proxy = undefined;
});

describe('sync-agent watch integrity', () => {
  it('a symlink replaced by a directory in a batch that fails once lands on the retry, directory and all', async () => {
    h = createHarness(s3, 'lnkdir');
    proxy = await startFaultProxy(s3.endpoint);
    h.write('app/keep.txt', 'keep');
    symlinkSync('keep.txt', path.join(h.root, 'app/lnk'));
    const agent = await h.startAgent({ endpoint: proxy.endpoint });
    await waitFor(async () => (await h.committed('app'))?.get('lnk')?.kind === 'symlink', 'the symlink to be committed');

    // Every request fails for a while: the batch fails and is retried.
    proxy.fault({ kind: 'error', status: 503, times: 12 });
    unlinkSync(path.join(h.root, 'app/lnk'));
    mkdirSync(path.join(h.root, 'app/lnk'));
    writeFileSync(path.join(h.root, 'app/lnk/r.txt'), 'x');
    await waitForContent(h, 'app', { 'keep.txt': 'keep', 'lnk/r.txt': 'x' }, 'the directory to replace the symlink', 60_000);
    // Plain objects of removed paths are deleted after the commit (design.md, step 6), and those
    // requests may still meet the failures: wait for them rather than race them.
    await waitFor(async () => (await h.keys('app')).join() === 'keep.txt,lnk/r.txt', 'the symlink\'s plain object to be deleted');
    await waitFor(async () => (await agent.health()).status === 'ok', 'health to be ok again');
  });

  it('a file appended to without pause is committed at least every max delay, each time one version it really had', async () => {
    h = createHarness(s3, 'append');
    h.write('app/log.txt', 'line 0\n');
    await h.startAgent({ args: ['--max-delay', '1s'] });
    await waitForContent(h, 'app', { 'log.txt': 'line 0\n' }, 'the initial reconcile');
    const file = path.join(h.root, 'app/log.txt');
    let n = 1;
    const seen = new Set<string>();
    const timer = setInterval(() => { appendFileSync(file, `line ${n++}\n`); }, 5);
    try {
      const deadline = Date.now() + 6_000;
      while (Date.now() < deadline) {
        const e = (await h.committed('app'))?.get('log.txt');
        if (e?.kind === 'file') seen.add(e.sha256);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      clearInterval(timer);
    }
    // About one commit per max delay while the writes go on (the fixed point would be 1).
    expect(seen.size).toBeGreaterThanOrEqual(3);
    const e = (await h.committed('app'))!.get('log.txt')!;
    const body = (await readCommittedFile(h.store, h.prefix, 'app', e)).toString();
    expect(body).toMatch(/^(line \d+\n)+$/);
    const lines = body.trimEnd().split('\n');
    lines.forEach((l, i) => expect(l).toBe(`line ${i}`));
  });

  it('a slow rm of a whole workspace reaches the guard as one burst: nothing is deleted', async () => {
    h = createHarness(s3, 'slowrm');
    const files: Record<string, string> = {};
    for (let i = 0; i < 60; i++) { files[`f${i}.txt`] = `${i}`; h.write(`app/f${i}.txt`, `${i}`); }
    h.write('app/stay.txt', 'stay');
    files['stay.txt'] = 'stay';
    const agent = await h.startAgent();
    await waitForContent(h, 'app', files, 'the initial reconcile');
    for (let i = 0; i < 60; i++) {
      unlinkSync(path.join(h.root, `app/f${i}.txt`));
      await new Promise((r) => setTimeout(r, 150));
    }
    const refusal = await agent.waitForLog((l) => l.code === 'DELETE_LIMIT', 'the delete guard to refuse the burst', 60_000);
    expect(refusal.msg).toMatch(/refusing to delete 60 of 61/);
    expect((await h.keys('app')).length).toBe(61);
    expect((await agent.health()).status).toBe('degraded');
  });

  it('an object the server refuses every time is reported and retried later; the rest of the workspace lands', async () => {
    h = createHarness(s3, 'refused');
    proxy = await startFaultProxy(s3.endpoint);
    h.write('app/a.txt', 'a');
    const agent = await h.startAgent({ endpoint: proxy.endpoint });
    await waitForContent(h, 'app', { 'a.txt': 'a' }, 'the initial reconcile');
    proxy.fault({ kind: 'error', status: 500, match: { method: 'PUT', path: '/app/bad.txt' } });
    h.write('app/bad.txt', 'bad');
    h.write('app/good.txt', 'good');
    await waitForContent(h, 'app', { 'a.txt': 'a', 'good.txt': 'good' }, 'the rest of the workspace to land', 60_000);
    await waitFor(async () => (await agent.health()).reasons.some((r) => /workspace app: 1 file\(s\) not synced/.test(r)), 'health to report the refused file');
    // Health names workspaces, never their files (docs/security.md); the log names it.
    expect(JSON.stringify(await agent.health())).not.toMatch(/bad\.txt/);
    await agent.waitForLog((l) => /bad\.txt/.test(JSON.stringify(l)) && /rejected/.test(JSON.stringify(l)), 'the log to name the refused file');
    // Another edit goes through at once: the refused object does not hold the workspace back.
    h.write('app/good.txt', 'good 2');
    await waitForContent(h, 'app', { 'a.txt': 'a', 'good.txt': 'good 2' }, 'a later edit');
  });
});
