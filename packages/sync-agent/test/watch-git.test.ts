/**
 * `sync-agent watch` in a git work tree: `git add`, `git rm --cached` and a checkout rewrite the index,
 * and the paths whose tracked state changed are decided again. Real CLI, real git, embedded S3 server.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EmbeddedS3 } from '@workspace-sync/testkit';
import { createHarness, useTestS3, waitForContent, type Harness } from './watch-harness.js';

const server = useTestS3();
let s3: EmbeddedS3;
let h: Harness;

beforeEach(() => { s3 = server(); });
afterEach(async () => { await h?.cleanup(); });

function gitIn(dir: string) {
  const env = {
    PATH: process.env.PATH ?? '', HOME: dir, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com',
  };
  return (...args: string[]) => execFileSync('git', args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('sync-agent watch in a git work tree', () => {
  it('git add -f, git rm --cached and checkout change what is synced, without touching a file', async () => {
    h = createHarness(s3, 'gitindex');
    h.write('app/src/a.ts', 'a');
    h.write('app/src/build/gen.ts', 'gen1');
    h.write('app/debug.log', 'log');
    const git = gitIn(path.join(h.root, 'app'));
    git('init', '-q', '-b', 'main');
    git('add', 'src/a.ts');
    git('commit', '-qm', 'one');
    const agent = await h.startAgent();
    await waitForContent(h, 'app', { 'src/a.ts': 'a' }, 'the initial reconcile (build/ and *.log untracked: excluded)');

    git('add', '-f', 'src/build/gen.ts', 'debug.log');
    await waitForContent(h, 'app', { 'src/a.ts': 'a', 'src/build/gen.ts': 'gen1', 'debug.log': 'log' }, 'the newly tracked files');

    // Now tracked, the file under the ignored build/ is watched: an edit syncs.
    h.write('app/src/build/gen.ts', 'gen2');
    await waitForContent(h, 'app', { 'src/a.ts': 'a', 'src/build/gen.ts': 'gen2', 'debug.log': 'log' }, 'the edit of a tracked file under build/');

    git('rm', '-q', '--cached', 'debug.log');
    await waitForContent(h, 'app', { 'src/a.ts': 'a', 'src/build/gen.ts': 'gen2' }, 'the untracked log to leave the bucket');

    // A branch that tracks a vendored file; switching away deletes it, switching back restores it.
    git('commit', '-qm', 'gen');
    git('checkout', '-qb', 'vendored');
    h.write('app/vendor/lib/lib.go', 'package lib');
    git('add', '-f', 'vendor/lib/lib.go');
    git('commit', '-qm', 'vendor');
    await waitForContent(h, 'app', { 'src/a.ts': 'a', 'src/build/gen.ts': 'gen2', 'vendor/lib/lib.go': 'package lib' }, 'the vendored file');
    git('checkout', '-q', 'main');
    await waitForContent(h, 'app', { 'src/a.ts': 'a', 'src/build/gen.ts': 'gen2' }, 'the checkout of main');
    git('checkout', '-q', 'vendored');
    await waitForContent(h, 'app', { 'src/a.ts': 'a', 'src/build/gen.ts': 'gen2', 'vendor/lib/lib.go': 'package lib' }, 'the checkout back');

    // An index rewrite that changes nothing tracked (as `git status` refreshing stat data does): no sync follows.
    const syncs = () => agent.logs.filter((l) => l.msg === 'synced' || l.msg === 'batch changed nothing').length;
    let before = -1;
    while (before !== syncs()) { // the checkout's last events settle first
      before = syncs();
      await new Promise((r) => setTimeout(r, 1000));
    }
    git('update-index', '--index-version', '4');
    await new Promise((r) => setTimeout(r, 1500));
    expect(syncs()).toBe(before);
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
  });
});
