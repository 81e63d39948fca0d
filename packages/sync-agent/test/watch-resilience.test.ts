/**
 * `sync-agent watch` when things go wrong: S3 down for a while, SIGTERM with changes queued, kill -9
 * in the middle of a batch, the inotify watch limit. Real CLI, real filesystem, real S3 server.
 */
import { execFileSync } from 'node:child_process';
import { renameSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startCountingProxy, type EmbeddedS3 } from '@workspace-sync/testkit';
import { createHarness, useTestS3, waitFor, waitForContent, type Harness } from './watch-harness.js';

const server = useTestS3();
let s3: EmbeddedS3;
let h: Harness;

beforeEach(() => { s3 = server(); });
afterEach(async () => {
  await h?.cleanup();
  await s3.start(); // in case a test failed while the server was down
});

/** A user namespace where the inotify watch limit can be lowered for one process tree. */
const userns = (() => {
  try {
    execFileSync('unshare', ['--user', '--map-root-user', 'sh', '-c', 'echo 1 > /proc/sys/user/max_inotify_watches'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('sync-agent watch resilience', () => {
  it('queues changes while S3 is down, logs the outage once, and lands every change when it returns', async () => {
    h = createHarness(s3, 'outage');
    const files: Record<string, string> = {};
    for (let i = 0; i < 6; i++) { files[`src/f${i}.ts`] = `v1 ${i}`; h.write(`app/src/f${i}.ts`, `v1 ${i}`); }
    const agent = await h.startAgent();
    await waitForContent(h, 'app', files, 'the initial reconcile');

    await s3.stop();
    // Edits spread over a few batches while the server is down: edit, add, delete, rename.
    h.write('app/src/f0.ts', 'v2 0');
    files['src/f0.ts'] = 'v2 0';
    await agent.waitForLog((l) => /queued and retried/.test(l.msg), 'the outage to be noticed');
    h.write('app/src/new.ts', 'new');
    files['src/new.ts'] = 'new';
    unlinkSync(path.join(h.root, 'app/src/f1.ts'));
    delete files['src/f1.ts'];
    await waitFor(async () => (await agent.metric('sync_agent_queued_changes', { workspace: 'app' }))! >= 2, 'changes to queue up');
    renameSync(path.join(h.root, 'app/src/f2.ts'), path.join(h.root, 'app/src/moved.ts'));
    files['src/moved.ts'] = files['src/f2.ts']!;
    delete files['src/f2.ts'];
    h.write('app/src/f3.ts', 'v2 3');
    files['src/f3.ts'] = 'v2 3';
    const health = await agent.health();
    expect(health.status).toBe('degraded');
    expect(health.reasons.join()).toMatch(/S3 unreachable/);
    // Long enough for several retries with backoff.
    await waitFor(async () => ((await agent.metric('sync_agent_errors_total', { workspace: 'app', code: 'ENDPOINT_UNREACHABLE' })) ?? 0) >= 2, 'retries');

    await s3.start();
    await waitForContent(h, 'app', files, 'every change made during the outage to land', 60_000);
    await waitFor(async () => (await h.keys('app')).join() === Object.keys(files).sort().join(), 'the deleted and moved objects to go');
    await agent.waitForLog((l) => /reachable again/.test(l.msg), 'the recovery to be logged');
    expect(agent.logs.filter((l) => /queued and retried/.test(l.msg))).toHaveLength(1);
    expect(agent.logs.filter((l) => /reachable again/.test(l.msg))).toHaveLength(1);
    await waitFor(async () => (await agent.health()).status === 'ok', 'health to be ok again');
  });

  it('on SIGTERM syncs what is queued, writes the manifest and exits 0', async () => {
    h = createHarness(s3, 'sigterm');
    h.write('app/src/a.ts', 'a');
    // A batch would only close after 60 s on its own: whatever lands was flushed by the signal.
    const agent = await h.startAgent({ args: ['--debounce', '60s', '--max-delay', '60s', '--json'] });
    await waitForContent(h, 'app', { 'src/a.ts': 'a' }, 'the initial reconcile');
    const expected: Record<string, string> = { 'src/a.ts': 'a2' };
    h.write('app/src/a.ts', 'a2');
    for (let i = 0; i < 20; i++) { expected[`src/n${i}.ts`] = `n${i}`; h.write(`app/src/n${i}.ts`, `n${i}`); }
    await waitFor(async () => (await agent.metric('sync_agent_queued_changes', { workspace: 'app' })) === 21, 'all 21 changes to be queued');
    expect((await h.committed('app'))?.size).toBe(1);

    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    await waitForContent(h, 'app', expected, 'the flushed manifest', 5_000);
    const summary = JSON.parse(agent.stdout()) as { flushed: boolean; workspaces: Array<{ workspace: string; uploaded: number }> };
    expect(summary.flushed).toBe(true);
    expect(summary.workspaces).toEqual([expect.objectContaining({ workspace: 'app', uploaded: 22 })]);
  });

  it('exits at once on a second signal', async () => {
    h = createHarness(s3, 'twice');
    h.write('app/a.ts', 'a');
    const agent = await h.startAgent({ args: ['--debounce', '60s', '--max-delay', '60s'] });
    await s3.stop(); // the flush cannot finish: only the second signal ends the process
    h.write('app/a.ts', 'a2');
    await waitFor(async () => (await agent.metric('sync_agent_queued_changes', { workspace: 'app' })) === 1, 'the change to be queued');
    agent.proc.kill('SIGTERM');
    await agent.waitForLog((l) => l.msg.startsWith('stopping'), 'the first signal to be handled');
    agent.proc.kill('SIGTERM');
    expect(await agent.exited).toEqual({ code: 130, signal: null });
  });

  it('converges after kill -9 in the middle of a batch without uploading anything twice', async () => {
    h = createHarness(s3, 'kill9');
    const proxy = await startCountingProxy(s3.endpoint);
    try {
      h.write('app/readme.md', 'hi');
      const first = await h.startAgent({ endpoint: proxy.endpoint, args: ['--concurrency', '2'] });
      await waitForContent(h, 'app', { 'readme.md': 'hi' }, 'the initial reconcile');
      const expected: Record<string, string> = { 'readme.md': 'hi' };
      for (let i = 0; i < 300; i++) { expected[`src/f${i}.ts`] = `file ${i}`; h.write(`app/src/f${i}.ts`, `file ${i}`); }
      const uploads = () => proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes(`${h.prefix}app/src/`) && r.status === 200);
      await waitFor(() => uploads().length >= 60, 'the batch to be under way');
      first.proc.kill('SIGKILL');
      await first.exited;
      const landed = new Set(uploads().map((r) => r.path));
      expect(landed.size).toBeLessThan(300);

      proxy.reset();
      await h.startAgent({ endpoint: proxy.endpoint, args: ['--concurrency', '2'] });
      await waitForContent(h, 'app', expected, 'the restarted agent to converge', 60_000);
      const again = uploads().map((r) => r.path).filter((p) => landed.has(p));
      // Only an upload whose response came back in the instant before the kill (one per connection) can repeat.
      expect(again.length).toBeLessThanOrEqual(2);
      expect(uploads().length).toBeLessThanOrEqual(300 - landed.size + 2);
    } finally {
      await proxy.close();
    }
  });

  it.skipIf(!userns)('falls back to polling with one clear error when the inotify watch limit is reached', async () => {
    h = createHarness(s3, 'enospc');
    const files: Record<string, string> = {};
    for (let d = 0; d < 30; d++) for (let i = 0; i < 2; i++) { files[`d${d}/f${i}.ts`] = `${d}.${i}`; h.write(`app/d${d}/f${i}.ts`, `${d}.${i}`); }
    // 32 directories (one watch each), with room for 20 watches.
    const agent = await h.startAgent({ wrap: ['unshare', '--user', '--map-root-user', 'sh', '-c', 'echo 20 > /proc/sys/user/max_inotify_watches && exec "$@"', 'sh'] });
    await waitForContent(h, 'app', files, 'the initial reconcile');
    const errors = agent.logs.filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/fs\.inotify\.max_user_watches/);
    expect(errors[0]!.msg).toMatch(/polling/);
    expect((await agent.health()).reasons.join()).toMatch(/inotify watch limit/);

    h.write('app/d29/f1.ts', 'edited while polling');
    await waitForContent(h, 'app', { ...files, 'd29/f1.ts': 'edited while polling' }, 'an edit seen by polling');
    expect(agent.logs.filter((l) => l.level >= 50)).toHaveLength(1);
  });
});
