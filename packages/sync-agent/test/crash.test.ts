/**
 * Crash at every step: a push is killed at each of its requests in turn, once before the request
 * reaches the server and once after it landed unanswered (SIGKILL either way). At every such point
 * the committed head must be fully readable, byte for byte; the next push must converge to the local
 * tree exactly (committed tree and plain objects), and the one after it must find nothing to do.
 * In process, on the in-memory store: every interleaving is deterministic.
 */
import { chmodSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, objectKey, resolveConfig, type ObjectStore } from '@workspace-sync/shared';
import { createMemoryStore, readCommitted, readCommittedFile, withFaults } from '@workspace-sync/testkit';
import { pushWorkspace } from '../src/push.js';

const log = createLogger({ level: 'silent', name: 'test' });
const PREFIX = 'p/';

function base(root: string): void {
  rmSync(root, { recursive: true, force: true });
  const w = path.join(root, 'w');
  for (let i = 0; i < 30; i++) {
    mkdirSync(path.join(w, `d${i % 4}`), { recursive: true });
    writeFileSync(path.join(w, `d${i % 4}/f${i}.ts`), `export const f${i} = ${i};\n`);
  }
  writeFileSync(path.join(w, 'big.bin'), Buffer.alloc(400_000, 7));
  writeFileSync(path.join(w, 'huge.bin'), Buffer.alloc(9 * 1024 * 1024, 3));
  writeFileSync(path.join(w, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
}

/** Edits of every kind: change, add, delete, rename (small and large), mode, a symlink, a directory replaced by a file. */
function edit(root: string): void {
  const w = path.join(root, 'w');
  writeFileSync(path.join(w, 'd0/f0.ts'), 'changed\n');
  writeFileSync(path.join(w, 'd1/new.ts'), 'new file\n');
  unlinkSync(path.join(w, 'd2/f2.ts'));
  renameSync(path.join(w, 'd3/f3.ts'), path.join(w, 'd3/renamed.ts'));
  renameSync(path.join(w, 'big.bin'), path.join(w, 'moved.bin'));
  writeFileSync(path.join(w, 'huge.bin'), Buffer.alloc(9 * 1024 * 1024, 4));
  writeFileSync(path.join(w, 'big2.bin'), Buffer.alloc(300_000, 9));
  chmodSync(path.join(w, 'run.sh'), 0o644);
  symlinkSync('d0/f0.ts', path.join(w, 'link'));
  rmSync(path.join(w, 'd2'), { recursive: true });
  writeFileSync(path.join(w, 'd2'), 'now a file\n');
}

function localFiles(root: string): Map<string, Buffer | { symlink: string }> {
  const out = new Map<string, Buffer | { symlink: string }>();
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(root, 'w', rel))) {
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path.join(root, 'w', p));
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) out.set(p, { symlink: readlinkSync(path.join(root, 'w', p)) });
      else out.set(p, readFileSync(path.join(root, 'w', p)));
    }
  };
  walk('');
  return out;
}

/** The head's commit is readable end to end: every file's stored bytes match its sha256. */
async function expectHeadReadable(store: ObjectStore): Promise<void> {
  const c = await readCommitted(store, PREFIX, 'w');
  if (!c) return;
  for (const e of c.entries.values()) if (e.kind === 'file') await readCommittedFile(store, PREFIX, 'w', e);
}

async function expectConverged(store: ObjectStore, root: string, what: string): Promise<void> {
  const want = localFiles(root);
  const c = await readCommitted(store, PREFIX, 'w');
  expect([...c!.entries.keys()].sort(), what).toEqual([...want.keys()].sort());
  for (const [p, v] of want) {
    const e = c!.entries.get(p)!;
    if (Buffer.isBuffer(v)) {
      expect(e.kind, `${what}: ${p}`).toBe('file');
      expect((await readCommittedFile(store, PREFIX, 'w', e)).equals(v), `${what}: committed ${p}`).toBe(true);
      const plain = await store.get(objectKey(PREFIX, 'w', p));
      expect(!plain.notModified && plain.body.equals(v), `${what}: plain ${p}`).toBe(true);
    } else {
      expect(e, `${what}: ${p}`).toMatchObject({ kind: 'symlink', target: v.symlink });
    }
  }
  const plainKeys: string[] = [];
  for await (const item of store.list(`${PREFIX}w/`)) if ('key' in item) plainKeys.push(item.key.slice(`${PREFIX}w/`.length));
  expect(plainKeys.sort(), `${what}: plain objects`).toEqual([...want.keys()].sort());
}

describe('crash at every step of a push', () => {
  it('leaves the head readable at every point and converges byte-exact on the next push', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wsync-crash-'));
    const root = path.join(dir, 'root');
    const stateDir = path.join(dir, 'state');
    const afterCrash = path.join(dir, 'state-after-crash');
    const configFor = (state: string) => resolveConfig('agent', {
      env: {}, cwd: dir, flags: { root, stateDir: state, prefix: PREFIX, concurrency: 3, multipartThreshold: '5M', gcEvery: 0 },
    });
    const push = (store: ObjectStore, state = stateDir) => pushWorkspace({ config: configFor(state), store, log, workspace: 'w' });

    // How many requests an uninterrupted second push makes.
    const prepare = async () => {
      const store = createMemoryStore({ bucket: 'b' });
      rmSync(stateDir, { recursive: true, force: true });
      base(root);
      await push(store);
      edit(root);
      return store;
    };
    const probe = withFaults(await prepare());
    await push(probe);
    const total = probe.calls.length;
    expect(total).toBeGreaterThan(10);

    let crashes = 0;
    for (let i = 0; i < total; i++) {
      for (const when of ['before', 'after'] as const) {
        const what = `crash ${when} request ${i}/${total}`;
        const store = await prepare();
        const faulty = withFaults(store);
        faulty.crashAt({ index: i, when });
        const outcome = await faulty.untilCrash(push(faulty));
        if (outcome.crashed) crashes++;
        // The state as the killed process left it. In process, the abandoned push may still run local
        // continuations (a real kill -9 would not): the next run gets a copy taken at the crash.
        rmSync(afterCrash, { recursive: true, force: true });
        cpSync(stateDir, afterCrash, { recursive: true });
        await expectHeadReadable(store);
        const recovery = await push(store, afterCrash);
        expect(recovery.skipped, what).toEqual([]);
        await expectConverged(store, root, what);
        const again = await push(store, afterCrash);
        expect({ uploaded: again.uploaded, copied: again.copied, deleted: again.deleted, committed: again.manifestWritten }, `${what}: then a no-op`)
          .toEqual({ uploaded: 0, copied: 0, deleted: 0, committed: false });
      }
    }
    expect(crashes).toBeGreaterThanOrEqual(total * 2 - 2);
    rmSync(dir, { recursive: true, force: true });
  });
});
