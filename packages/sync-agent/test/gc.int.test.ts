/**
 * Garbage collection on a real server: what retained generations use stays (byte-exact restores),
 * what only dropped generations used goes, and a push in flight never loses what it is about to
 * commit. Time is moved forward by giving gc a later clock, not by waiting.
 */
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobKey, commitsPrefix, createLogger, createObjectStore, headKey, resolveConfig, sha256Hex, type ObjectStore } from '@workspace-sync/shared';
import { readCommitted, readCommittedFile, startTestS3, withFaults, type EmbeddedS3 } from '@workspace-sync/testkit';
import { collectGarbage } from '../src/gc.js';
import { pushWorkspace } from '../src/push.js';

const log = createLogger({ level: 'silent', name: 'test' });
const HOUR = 3_600_000;
let s3: EmbeddedS3;
let store: ObjectStore;
let n = 0;

beforeAll(async () => {
  s3 = await startTestS3();
  store = createObjectStore({
    endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
    credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! },
  });
});
afterAll(async () => { await s3?.stop(); });

function workspace() {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsync-gc-'));
  const root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'w'), { recursive: true });
  const prefix = `gc${++n}-${Date.now()}/`;
  const config = resolveConfig('agent', { env: {}, cwd: dir, flags: { root, stateDir: path.join(dir, 'state'), prefix, gcEvery: 0 } });
  const write = (rel: string, content: string | Buffer) => writeFileSync(path.join(root, 'w', rel), content);
  return { dir, root, prefix, config, write, push: (s: ObjectStore = store) => pushWorkspace({ config, store: s, log, workspace: 'w' }) };
}

async function commitStems(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const item of store.list(commitsPrefix(prefix, 'w'))) if ('key' in item) out.push(item.key.split('/').pop()!.replace(/\.json$/, ''));
  return out.sort();
}

describe('gc', () => {
  it('keeps what retained generations use and removes what only dropped ones used', async () => {
    const w = workspace();
    const onlyInTwo = Buffer.alloc(500_000, 2);
    w.write('keep.txt', 'keep');
    w.write('big.bin', Buffer.alloc(500_000, 1));
    await w.push();
    w.write('big.bin', onlyInTwo);
    await w.push();
    for (let g = 3; g <= 6; g++) {
      w.write('big.bin', Buffer.alloc(500_000, g));
      w.write(`f${g}.txt`, `file of generation ${g}`);
      await w.push();
    }
    expect(await commitStems(w.prefix)).toHaveLength(6);

    // Two hours later, keeping the last 2 generations and nothing by age.
    const report = await collectGarbage({
      store, prefix: w.prefix, workspace: 'w', keepGenerations: 2, keepForMs: 0, graceMs: HOUR, dryRun: false, log, now: Date.now() + 2 * HOUR,
    });
    expect(report.commitsKept).toBe(2);
    expect(report.commitsDeleted).toBe(4);
    expect((await commitStems(w.prefix)).map((s) => Number(s.slice(0, 12)))).toEqual([5, 6]);
    expect(await store.head(blobKey(w.prefix, 'w', sha256Hex(onlyInTwo)))).toBeUndefined();

    // The head is whole, byte for byte.
    const c = await readCommitted(store, w.prefix, 'w');
    for (const e of c!.entries.values()) {
      expect((await readCommittedFile(store, w.prefix, 'w', e)).equals(readFileSync(path.join(w.root, 'w', e.path))), e.path).toBe(true);
    }
    // A second run finds nothing more to do; a dry run never deletes.
    const again = await collectGarbage({ store, prefix: w.prefix, workspace: 'w', keepGenerations: 2, keepForMs: 0, graceMs: HOUR, dryRun: false, log, now: Date.now() + 2 * HOUR });
    expect(again.objectsDeleted).toBe(0);
    rmSync(w.dir, { recursive: true, force: true });
  });

  it('keeps the parts of a split directory that later generations still share with dropped ones', async () => {
    const w = workspace();
    mkdirSync(path.join(w.root, 'w', 'big'));
    for (let i = 0; i < 600; i++) w.write(`big/f${i}.ts`, `export const v${i} = ${i};\n`);
    await w.push();
    for (let g = 2; g <= 5; g++) { w.write(`big/f${g * 7}.ts`, `// generation ${g}\n`); await w.push(); }
    const report = await collectGarbage({
      store, prefix: w.prefix, workspace: 'w', keepGenerations: 2, keepForMs: 0, graceMs: HOUR, dryRun: false, log, now: Date.now() + 2 * HOUR,
    });
    expect(report.commitsDeleted).toBe(3);
    // Most parts were written by generation 1, whose commit is gone: the head still reads whole.
    const c = await readCommitted(store, w.prefix, 'w');
    expect(c!.entries.size).toBe(600);
    for (const e of c!.entries.values()) {
      expect((await readCommittedFile(store, w.prefix, 'w', e)).equals(readFileSync(path.join(w.root, 'w', e.path))), e.path).toBe(true);
    }
    rmSync(w.dir, { recursive: true, force: true });
  });

  it('never removes anything younger than the grace period, whatever the retention', async () => {
    const w = workspace();
    for (let g = 1; g <= 4; g++) { w.write('a.txt', `v${g}`); await w.push(); }
    const report = await collectGarbage({ store, prefix: w.prefix, workspace: 'w', keepGenerations: 2, keepForMs: 0, graceMs: HOUR, dryRun: false, log });
    expect(report.objectsDeleted).toBe(0);
    expect(await commitStems(w.prefix)).toHaveLength(4);
  });

  it('is safe while a push is in flight: the push commits a tree whose every object is there', async () => {
    const w = workspace();
    w.write('a.txt', 'one');
    await w.push();
    for (let i = 0; i < 50; i++) w.write(`new${i}.txt`, `new file ${i}`);
    w.write('big.bin', Buffer.alloc(700_000, 9));
    // The push uploads everything, then waits at its head write while gc runs.
    const faulty = withFaults(store);
    faulty.hangWhen({ op: 'put', key: headKey(w.prefix, 'w') });
    const pushing = w.push(faulty);
    while (!faulty.calls.some((c) => c.op === 'put' && c.key === headKey(w.prefix, 'w'))) await new Promise((r) => setTimeout(r, 20));
    const report = await collectGarbage({ store, prefix: w.prefix, workspace: 'w', keepGenerations: 2, keepForMs: 0, graceMs: HOUR, dryRun: false, log });
    expect(report.objectsDeleted).toBe(0);
    faulty.release();
    await pushing;
    const c = await readCommitted(store, w.prefix, 'w');
    expect(c!.entries.size).toBe(52);
    for (const e of c!.entries.values()) await readCommittedFile(store, w.prefix, 'w', e);
  });
});
