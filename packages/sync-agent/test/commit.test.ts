/**
 * The commit point's decisions, on the in-memory store with the interleavings forced: a push that
 * loses the race to its head rebases over the other writer's commit (which stays in the history),
 * is refused when the rebase would delete too much of the other writer's tree, and gives up with
 * CONFLICT when it keeps losing. The same over the wire, with real racing processes:
 * test/integrity/race.int.test.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  commitKey, createLogger, decodeCommit, encodeCommit, exitCodeFor, headKey, isSyncError, objectKey, resolveConfig, type ObjectStore,
} from '@workspace-sync/shared';
import { createMemoryStore, readCommitted, readCommittedFile, tempDir, withFaults, type MemoryStore } from '@workspace-sync/testkit';
import { pushWorkspace } from '../src/push.js';

const log = createLogger({ level: 'silent' });
const PREFIX = 'p/';
const HEAD = headKey(PREFIX, 'w');
const cleanups: Array<() => void> = [];
afterEach(() => { for (const fn of cleanups.splice(0)) fn(); });

/** A machine: its own copy of workspace `w` and its own state index. */
function machine(name: string, files: Record<string, string>) {
  const tmp = tempDir(`commit-${name}`);
  cleanups.push(tmp.remove);
  const root = path.join(tmp.dir, 'root');
  const write = (rel: string, content: string) => {
    mkdirSync(path.dirname(path.join(root, 'w', rel)), { recursive: true });
    writeFileSync(path.join(root, 'w', rel), content);
  };
  for (const [rel, content] of Object.entries(files)) write(rel, content);
  const config = resolveConfig('agent', { env: {}, cwd: tmp.dir, flags: { root, stateDir: path.join(tmp.dir, 'state'), prefix: PREFIX, gcEvery: 0 } });
  const push = (store: ObjectStore) => pushWorkspace({ config, store, log, workspace: 'w' });
  return { write, push };
}

const BASE: Record<string, string> = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`src/f${i}.ts`, `base ${i}`]));

/** A and B both start from the same pushed base. */
async function twoMachines(mem: MemoryStore) {
  const a = machine('a', BASE);
  const b = machine('b', BASE);
  await a.push(mem);
  await b.push(mem);
  return { a, b };
}

async function plainText(store: ObjectStore, rel: string): Promise<string | undefined> {
  try {
    const res = await store.get(objectKey(PREFIX, 'w', rel));
    return res.notModified ? undefined : res.body.toString();
  } catch (err) {
    if (isSyncError(err, 'OBJECT_NOT_FOUND')) return undefined;
    throw err;
  }
}

describe('the commit point', () => {
  it('a push that loses the race to the head rebases over the other commit: both stay in the history, the head is its own tree', async () => {
    const mem = createMemoryStore();
    const { a, b } = await twoMachines(mem);
    const gen = (await readCommitted(mem, PREFIX, 'w'))!.commit.generation;
    a.write('src/f1.ts', 'A edit');
    a.write('src/a-new.ts', 'A new');
    b.write('src/f2.ts', 'B edit');

    // A stops at its head PUT; B pushes all the way meanwhile; then A goes on.
    const slowA = withFaults(mem);
    const hold = slowA.hangWhen({ op: 'put', key: HEAD });
    const pushA = a.push(slowA);
    await vi.waitFor(() => expect(slowA.calls.some((c) => c.op === 'put' && c.key === HEAD)).toBe(true));
    const rb = await b.push(mem);
    expect(rb.generation).toBe(gen + 1);
    hold.remove();
    slowA.release();
    const ra = await pushA;

    expect(ra).toMatchObject({ conflicts: 1, generation: gen + 2 });
    const head = (await readCommitted(mem, PREFIX, 'w'))!;
    expect(head.commit.generation).toBe(gen + 2);
    // B's commit is the parent, whole and readable.
    const bStem = head.commit.parent!;
    const bCommit = decodeCommit((await mem.get(commitKey(PREFIX, 'w', bStem)) as { body: Buffer }).body, bStem);
    expect(bCommit.generation).toBe(gen + 1);
    // The head's tree is exactly A's copy; the plain objects B wrote are written again to agree with it.
    const expected = { ...BASE, 'src/f1.ts': 'A edit', 'src/a-new.ts': 'A new' };
    expect([...head.entries.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [rel, content] of Object.entries(expected)) {
      expect((await readCommittedFile(mem, PREFIX, 'w', head.entries.get(rel)!)).toString(), rel).toBe(content);
      expect(await plainText(mem, rel), `plain ${rel}`).toBe(content);
    }
    // The commit's change list is relative to B's commit, the one it now follows.
    expect(head.commit.changes.paths).toEqual({ added: ['src/a-new.ts'], modified: ['src/f1.ts', 'src/f2.ts'], deleted: [] });
  });

  it('refuses a rebase that would delete most of what the other writer just pushed', async () => {
    const mem = createMemoryStore();
    const { a, b } = await twoMachines(mem);
    a.write('src/f1.ts', 'A edit');
    for (let i = 0; i < 40; i++) b.write(`gen/g${i}.ts`, `generated ${i}`);
    const slowA = withFaults(mem);
    const hold = slowA.hangWhen({ op: 'put', key: HEAD });
    const pushA = a.push(slowA).catch((e: unknown) => e);
    await vi.waitFor(() => expect(slowA.calls.some((c) => c.op === 'put' && c.key === HEAD)).toBe(true));
    await b.push(mem);
    const bHead = await mem.head(HEAD);
    hold.remove();
    slowA.release();
    const err = await pushA;
    expect(isSyncError(err, 'DELETE_LIMIT')).toBe(true);
    expect(exitCodeFor(err)).toBe(4);
    // The head is still B's, and B's files are all there.
    expect((await mem.head(HEAD))!.etag).toBe(bHead!.etag);
    expect(await plainText(mem, 'gen/g39.ts')).toBe('generated 39');
  });

  it('gives up with CONFLICT after five rebases when another writer keeps winning, then pushes once it stops', async () => {
    const mem = createMemoryStore();
    const { a, b } = await twoMachines(mem);
    b.write('src/f3.ts', 'B edit');
    await b.push(mem);
    const theirs = decodeCommit((await mem.get(HEAD) as { body: Buffer }).body, HEAD);
    a.write('src/f1.ts', 'A edit');
    // Every time A is about to publish, "another writer" has just published a commit of its own.
    let rounds = 0;
    const contested = withFaults(mem, {
      fail: (op, key) => {
        if (op === 'put' && key === HEAD) mem.setObject(HEAD, encodeCommit({ ...theirs, id: (++rounds).toString(16).padStart(16, '0') }));
        return undefined;
      },
    });
    const err = await a.push(contested).catch((e: unknown) => e);
    expect(isSyncError(err, 'CONFLICT')).toBe(true);
    expect(exitCodeFor(err)).toBe(3);
    expect(rounds).toBe(6);
    expect(decodeCommit((await mem.get(HEAD) as { body: Buffer }).body, HEAD).id).toBe((6).toString(16).padStart(16, '0'));

    const ok = await a.push(mem);
    const head = (await readCommitted(mem, PREFIX, 'w'))!;
    expect(head.commit.generation).toBe(ok.generation);
    expect((await readCommittedFile(mem, PREFIX, 'w', head.entries.get('src/f1.ts')!)).toString()).toBe('A edit');
  });
});
