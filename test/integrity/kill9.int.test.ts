/**
 * Random kill -9 trials over the real wire: a push of a 2,000-file workspace with edits of every kind
 * is killed at a random moment, then pushed again. After every trial the bucket must hold exactly the
 * workspace — checked with rclone's copy of the plain objects (an independent reader) and with the
 * committed tree read from its immutable objects — and a further push must find nothing to do.
 * KILL_TRIALS sets the number of trials (CI runs a few; the closing measurement runs 20).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '@workspace-sync/shared';
import { readCommitted, readCommittedFile, startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import { parseJson, runCli, setup, storeFor, SYNC_AGENT, tempDir } from '../helpers.js';

const TRIALS = Number(process.env.KILL_TRIALS ?? 4);
const haveRclone = spawnSync('rclone', ['version']).status === 0;

let s3: EmbeddedS3;
let store: ObjectStore;
beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
});
afterAll(async () => {
  await s3?.stop();
});

function rng(seed: number) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

function writeWorkspace(dir: string, rand: () => number): void {
  for (let i = 0; i < 2000; i++) {
    const p = path.join(dir, `d${i % 37}`, `s${i % 7}`, `f${i}.ts`);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, `export const v${i} = ${Math.floor(rand() * 1e9)};\n`.repeat(1 + (i % 40)));
  }
  writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 1));
  writeFileSync(path.join(dir, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
}

function editWorkspace(dir: string, rand: () => number, round: number): void {
  for (let k = 0; k < 150; k++) {
    const i = Math.floor(rand() * 2000);
    const p = path.join(dir, `d${i % 37}`, `s${i % 7}`, `f${i}.ts`);
    const r = rand();
    try {
      if (r < 0.6) writeFileSync(p, `edited in round ${round}: ${rand()}\n`);
      else if (r < 0.8) unlinkSync(p);
      else renameSync(p, `${p}.moved${round}`);
    } catch {
      // already deleted or moved by an earlier edit of this round
    }
  }
  writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, round % 250));
  chmodSync(path.join(dir, 'run.sh'), round % 2 ? 0o644 : 0o755);
}

/** rclone configured through its environment only; AWS_CA_BUNDLE (set on these machines) breaks its S3 backend. */
function rcloneEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  return {
    ...env, RCLONE_CONFIG_K9_TYPE: 's3', RCLONE_CONFIG_K9_PROVIDER: 'Other', RCLONE_CONFIG_K9_ENDPOINT: s3.endpoint,
    RCLONE_CONFIG_K9_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID, RCLONE_CONFIG_K9_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_K9_REGION: 'us-east-1', RCLONE_CONFIG_K9_FORCE_PATH_STYLE: 'true',
  };
}

describe.runIf(haveRclone)(`kill -9 at a random moment of a push (${TRIALS} trials)`, () => {
  it('always converges byte-exact, as rclone and the committed tree both see it', { timeout: 180_000 + TRIALS * 120_000 }, async () => {
    const t = setup(s3, 'kill9');
    const prefix = `kill9-${Date.now()}/`;
    const env = { ...t.env, S3_PREFIX: prefix };
    const ws = path.join(t.root, 'w');
    const rand = rng(2026);
    writeWorkspace(ws, rand);
    expect((await runCli(SYNC_AGENT, ['push'], env, { timeoutMs: 300_000 })).code).toBe(0);

    for (let trial = 1; trial <= TRIALS; trial++) {
      editWorkspace(ws, rand, trial);
      const child = spawn(process.execPath, [SYNC_AGENT, 'push', '--concurrency', '8'], { env: { ...process.env, ...env, LOG_FORMAT: 'json' }, stdio: 'ignore' });
      // Listening before the kill: a push that finishes first has already exited by then.
      const exited = new Promise((r) => child.once('exit', r));
      await new Promise((r) => setTimeout(r, 50 + rand() * 1500));
      child.kill('SIGKILL');
      await exited;

      const again = await runCli(SYNC_AGENT, ['push', '--json'], env, { timeoutMs: 300_000 });
      expect(again.code, again.stderr).toBe(0);
      const noop = await runCli(SYNC_AGENT, ['push', '--json'], env, { timeoutMs: 300_000 });
      expect(parseJson(noop.stdout).workspaces[0], `trial ${trial}: then a no-op`).toMatchObject({ uploaded: 0, copied: 0, deleted: 0, manifestWritten: false });

      // rclone's view of the plain objects equals the workspace, byte for byte.
      const copy = tempDir('kill9-rclone');
      const rc = spawnSync('rclone', ['copy', '--retries', '1', `k9:${s3.bucket}/${prefix}w`, copy], { env: rcloneEnv(), encoding: 'utf8', timeout: 120_000 });
      expect(rc.status, rc.stderr).toBe(0);
      const diff = spawnSync('diff', ['-r', '--no-dereference', ws, copy], { encoding: 'utf8' });
      expect(diff.stdout + diff.stderr, `trial ${trial}: rclone copy differs`).toBe('');
      rmSync(copy, { recursive: true, force: true });

      // The committed tree holds the same bytes, read from its immutable objects.
      const c = await readCommitted(store, prefix, 'w');
      const listed = spawnSync('find', ['.', '-type', 'f', '-printf', '%P\\n'], { cwd: ws, encoding: 'utf8' }).stdout.trim().split('\n').sort();
      expect([...c!.entries.keys()].sort(), `trial ${trial}: committed paths`).toEqual(listed);
      const entries = [...c!.entries.values()];
      for (let i = 0; i < entries.length; i += 32) {
        await Promise.all(entries.slice(i, i + 32).map(async (e) => {
          const body = await readCommittedFile(store, prefix, 'w', e);
          expect(body.equals(readFileSync(path.join(ws, e.path))), `trial ${trial}: ${e.path}`).toBe(true);
        }));
      }
    }
  });
});
