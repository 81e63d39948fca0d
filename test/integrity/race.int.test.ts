/**
 * Two machines pushing one workspace at the same moment. The head is committed with a conditional
 * write, so exactly one of any two racing commits lands first and the other rebases over it (or
 * fails with CONFLICT). Whatever the interleaving: every commit in the history stays fully readable,
 * no generation is reused, the head's tree is exactly one machine's copy, and the plain objects
 * agree with it.
 */
import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectKey, type ObjectStore } from '@workspace-sync/shared';
import { readCommitted, readCommittedFile, readTree, startFaultProxy, startTestS3, type EmbeddedS3, type FaultProxy } from '@workspace-sync/testkit';
import { listKeys, parseJson, readObject, runCli, setup, storeFor, SYNC_AGENT, writeTree } from '../helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
/**
 * The racing pushes go through this, with a real server's latency on every request: on loopback a
 * push can end before the other process has even started, and then there is no race to test.
 */
let slow: FaultProxy;

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
  slow = await startFaultProxy(s3.endpoint);
  slow.latency(100);
});
afterAll(async () => {
  await slow?.close();
  await s3?.stop();
});

describe('two writers at once', () => {
  it('never lose a commit, never leave an unreadable entry, and leave the head exactly one machine\'s copy', async () => {
    for (let trial = 0; trial < 7; trial++) {
      const prefix = `race${trial}-${Date.now()}/`;
      const a = setup(s3, `race-a${trial}`);
      const b = setup(s3, `race-b${trial}`);
      const base: Record<string, string> = {};
      for (let i = 0; i < 60; i++) base[`w/src/f${i}.ts`] = `base ${i}`;
      writeTree(a.root, base);
      writeTree(b.root, base);
      const envA = { ...a.env, S3_PREFIX: prefix };
      const envB = { ...b.env, S3_PREFIX: prefix };
      expect((await runCli(SYNC_AGENT, ['push'], envA)).code).toBe(0);
      expect((await runCli(SYNC_AGENT, ['push'], envB)).code).toBe(0);

      // Both edit, add and delete different things, then push at the same time.
      const mine = (root: string, who: string) => {
        for (let i = 0; i < 20; i++) writeFileSync(path.join(root, `w/src/f${i}.ts`), `${who} edit ${i} of trial ${trial}`);
        for (let i = 0; i < 5; i++) writeFileSync(path.join(root, `w/src/${who}-new${i}.ts`), `${who} new ${i}`);
        for (let i = 50; i < 53; i++) rmSync(path.join(root, `w/src/f${i}.ts`));
      };
      mine(a.root, 'A');
      mine(b.root, 'B');
      const [ra, rb] = await Promise.all([
        runCli(SYNC_AGENT, ['push', '--json'], { ...envA, S3_ENDPOINT: slow.endpoint }),
        runCli(SYNC_AGENT, ['push', '--json'], { ...envB, S3_ENDPOINT: slow.endpoint }),
      ]);
      for (const r of [ra, rb]) {
        expect([0, 3], r.stderr).toContain(r.code);
        if (r.code === 3) expect(r.stderr).toMatch(/keeps being pushed by another writer/);
      }
      const reports = [ra, rb].filter((r) => r.code === 0).map((r) => parseJson(r.stdout).workspaces[0]);

      const head = await readCommitted(store, prefix, 'w');
      expect(head).toBeDefined();
      // Every commit in the bucket is readable end to end, and no two share a generation in the chain.
      const commitKeys = (await listKeys(store, `${prefix}.sync/w/commits/`));
      const generations = new Set<number>();
      for (let c = head!.commit as typeof head extends infer T ? T extends { commit: infer C } ? C | undefined : never : never; c;) {
        expect(generations.has(c.generation)).toBe(false);
        generations.add(c.generation);
        const tree = await readTree(store, prefix, 'w', c.root);
        for (const e of tree.values()) if (e.kind === 'file') await readCommittedFile(store, prefix, 'w', e);
        const parent = c.parent ? commitKeys.find((k) => k.endsWith(`/${c!.parent}.json`)) : undefined;
        c = parent ? JSON.parse((await readObject(store, parent)).toString()) : undefined;
      }
      expect(generations.size).toBe(3 + (reports.length === 2 ? 1 : 0));
      if (reports.length === 2) expect(reports.reduce((n, r) => n + r.conflicts, 0)).toBeGreaterThanOrEqual(1);

      // The head is exactly A's or B's copy, and the plain objects say the same.
      const writer = [...head!.entries.keys()].some((p) => p.includes('A-new')) ? 'A' : 'B';
      const root = writer === 'A' ? a.root : b.root;
      const expected = new Map<string, string>();
      for (let i = 0; i < 60; i++) if (i < 50 || i >= 53) expected.set(`src/f${i}.ts`, i < 20 ? `${writer} edit ${i} of trial ${trial}` : `base ${i}`);
      for (let i = 0; i < 5; i++) expected.set(`src/${writer}-new${i}.ts`, `${writer} new ${i}`);
      expect([...head!.entries.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [p, content] of expected) {
        expect((await readCommittedFile(store, prefix, 'w', head!.entries.get(p)!)).toString(), p).toBe(content);
      }
      // A later push by the head's writer finds the mirror right or repairs it; by then it equals the head.
      await runCli(SYNC_AGENT, ['push'], writer === 'A' ? envA : envB);
      for (const [p, content] of expected) expect((await readObject(store, objectKey(prefix, 'w', p))).toString(), p).toBe(content);
      expect((await listKeys(store, `${prefix}w/`)).length).toBe(expected.size);
      void root;
    }
  });
});
