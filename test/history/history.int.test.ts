/**
 * History over the real wire: every push is a generation that `sync-agent log` lists and
 * `sync-agent restore` writes back byte for byte (modes, symlinks, mtimes), including files deleted
 * since; a restore never overwrites what it should not.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import { parseJson, runCli, setup, SYNC_AGENT, tempDir, writeTree } from '../helpers.js';

let s3: EmbeddedS3;
beforeAll(async () => { s3 = await startTestS3(); });
afterAll(async () => { await s3?.stop(); });

/** path → what a tree holds there: bytes and permission bits, or a symlink's target, and the mtime. */
function describeTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel))) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path.join(dir, p));
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) out.set(p, `link ${readlinkSync(path.join(dir, p))}`);
      else out.set(p, `file ${(st.mode & 0o777).toString(8)} ${Math.round(st.mtimeMs)} ${readFileSync(path.join(dir, p)).toString('base64')}`);
    }
  };
  walk('');
  return out;
}

describe('history', () => {
  it('restores every generation exactly as it was pushed, lists them, and brings back a deleted file', async () => {
    const t = setup(s3, 'history');
    const env = { ...t.env, S3_PREFIX: `hist-${Date.now()}/` };
    const ws = path.join(t.root, 'w');
    const pushed: Array<Map<string, string>> = [];
    const push = async () => {
      const r = await runCli(SYNC_AGENT, ['push', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      pushed.push(describeTree(ws));
    };

    writeTree(t.root, {
      'w/src/a.ts': 'a1', 'w/src/b.ts': 'b1', 'w/bin/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
      'w/big.bin': Buffer.alloc(600_000, 1), 'w/link': { symlink: 'src/a.ts' }, 'w/doomed.txt': 'gone soon',
    });
    await push();
    writeFileSync(path.join(ws, 'src/a.ts'), 'a2');
    renameSync(path.join(ws, 'src/b.ts'), path.join(ws, 'src/renamed.ts'));
    chmodSync(path.join(ws, 'bin/run.sh'), 0o644);
    await push();
    unlinkSync(path.join(ws, 'doomed.txt'));
    writeFileSync(path.join(ws, 'big.bin'), Buffer.alloc(600_000, 2));
    unlinkSync(path.join(ws, 'link'));
    mkdirSync(path.join(ws, 'link'));
    writeFileSync(path.join(ws, 'link/inside.txt'), 'was a symlink');
    await push();

    const log = await runCli(SYNC_AGENT, ['log', 'w', '--json'], env);
    expect(log.code, log.stderr).toBe(0);
    const generations = parseJson<Array<{ generation: number; head: boolean; changes: { added: number; modified: number; deleted: number } }>>(log.stdout);
    expect(generations.map((g) => g.generation)).toEqual([3, 2, 1]);
    expect(generations[0]!.head).toBe(true);
    expect(generations[2]!.changes).toMatchObject({ added: 6, modified: 0, deleted: 0 });
    expect(generations[1]!.changes).toMatchObject({ added: 1, modified: 2, deleted: 1 });

    for (let g = 1; g <= 3; g++) {
      const to = tempDir(`restore-${g}`);
      rmSync(to, { recursive: true });
      const r = await runCli(SYNC_AGENT, ['restore', 'w', '--generation', String(g), '--to', to], env);
      expect(r.code, r.stderr).toBe(0);
      expect(describeTree(to), `generation ${g}`).toEqual(pushed[g - 1]);
    }

    // Undo a delete: the newest generation that has the path.
    const undo = await runCli(SYNC_AGENT, ['restore', 'w', 'doomed.txt'], env);
    expect(undo.code, undo.stderr).toBe(0);
    expect(readFileSync(path.join(ws, 'doomed.txt'), 'utf8')).toBe('gone soon');

    // A restore never overwrites unasked: a non-empty target, or a path that differs here.
    const busy = tempDir('restore-busy');
    writeFileSync(path.join(busy, 'mine.txt'), 'mine');
    const refused = await runCli(SYNC_AGENT, ['restore', 'w', '--to', busy], env);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/is not empty/);
    writeFileSync(path.join(ws, 'src/a.ts'), 'local work');
    const differs = await runCli(SYNC_AGENT, ['restore', 'w', 'src/a.ts', '--generation', '1'], env);
    expect(differs.code).toBe(4);
    expect(readFileSync(path.join(ws, 'src/a.ts'), 'utf8')).toBe('local work');
    const forced = await runCli(SYNC_AGENT, ['restore', 'w', 'src/a.ts', '--generation', '1', '--force'], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(path.join(ws, 'src/a.ts'), 'utf8')).toBe('a1');

    // --at picks the newest generation at or before a time; a dry run writes nothing.
    const dry = tempDir('restore-dry');
    rmSync(dry, { recursive: true });
    const atNow = await runCli(SYNC_AGENT, ['restore', 'w', '--at', new Date().toISOString(), '--to', dry, '--dry-run', '--json'], env);
    expect(atNow.code, atNow.stderr).toBe(0);
    expect(parseJson(atNow.stdout)).toMatchObject({ generation: 3, dryRun: true });
    expect(() => readdirSync(dry)).toThrow();
  });

  it('says clearly when a workspace has no history or a generation is not retained', async () => {
    const t = setup(s3, 'nohistory');
    const env = { ...t.env, S3_PREFIX: `nohist-${Date.now()}/` };
    const none = await runCli(SYNC_AGENT, ['log', 'w'], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/has no history/);
    writeTree(t.root, { 'w/a.txt': 'a' });
    expect((await runCli(SYNC_AGENT, ['push'], env)).code).toBe(0);
    const missing = await runCli(SYNC_AGENT, ['restore', 'w', '--generation', '7', '--to', tempDir('x')], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/generation 7 .* is not retained/);
  });
});
