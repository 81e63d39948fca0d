/**
 * Data packs are written a bounded number at a time: a server slower than the files filling the next
 * pack holds back reading, not memory.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, packsPrefix, resolveConfig, sha256Hex, type ObjectStore } from '@workspace-sync/shared';
import { createMemoryStore, readCommitted, readCommittedFile } from '@workspace-sync/testkit';
import { PackWriter } from '../src/packer.js';
import { pushWorkspace } from '../src/push.js';

const log = createLogger({ level: 'silent', name: 'test' });

/** The store, with every PUT under `slowPrefix` held `delayMs`, counting how many of them overlap. */
function slowPacks(inner: ObjectStore, slowPrefix: string, delayMs: number): ObjectStore & { peak: number; puts: number } {
  let now = 0;
  const s = {
    peak: 0,
    puts: 0,
    ...inner,
    list: inner.list.bind(inner),
    listUploads: inner.listUploads.bind(inner),
    async put(key: string, body: Buffer, opts?: Parameters<ObjectStore['put']>[2]) {
      if (!key.startsWith(slowPrefix)) return inner.put(key, body, opts);
      s.puts++;
      s.peak = Math.max(s.peak, ++now);
      try {
        await new Promise((r) => setTimeout(r, delayMs));
        return await inner.put(key, body, opts);
      } finally {
        now--;
      }
    },
  };
  return s;
}

describe('PackWriter', () => {
  it('room() waits while the bound of packs is being written and resumes as one lands', async () => {
    const gates: Array<() => void> = [];
    const inner = createMemoryStore({ bucket: 'b' });
    const store: ObjectStore = { ...inner, put: (key, body, opts) => new Promise((r) => gates.push(r)).then(() => inner.put(key, body, opts)) };
    const landed: string[] = [];
    const w = new PackWriter({ store, prefix: 'p/', workspace: 'w', landed: (p) => landed.push(p.name), packSize: 8, maxFlights: 2 });
    for (let i = 0; i < 3; i++) w.add(sha256Hex(`file ${i}`), Buffer.from(`content${i}`)); // 8 bytes each: two full packs sent, one open
    expect(gates).toHaveLength(2);
    let roomy = false;
    const room = w.room().then(() => { roomy = true; });
    await new Promise((r) => setTimeout(r, 10));
    expect(roomy).toBe(false);
    gates.shift()!();
    await room;
    expect(roomy).toBe(true);
    expect(landed).toHaveLength(1);
    const done = w.finish();
    await new Promise((r) => setTimeout(r, 0));
    while (gates.length) gates.shift()!();
    await done;
    expect(landed).toHaveLength(3);
  });

  it('hands a landed pack\'s locations to `landed` and forgets them: one location per file, held by the caller', async () => {
    const store = createMemoryStore({ bucket: 'b' });
    const landed: Array<[string, unknown]> = [];
    const w = new PackWriter({ store, prefix: 'p/', workspace: 'w', landed: (p) => landed.push(...p.members), packSize: 64 });
    const a = w.add(sha256Hex('a'), Buffer.from('aaaa'));
    const b = w.add(sha256Hex('b'), Buffer.from('bb'));
    // Until it lands, the same bytes added again are found where they already are.
    expect(w.add(sha256Hex('a'), Buffer.from('aaaa'))).toBe(a);
    expect(b).toMatchObject({ pack: a.pack, offset: 4 });
    await w.finish();
    expect(landed).toEqual([[sha256Hex('a'), a], [sha256Hex('b'), b]]);
    expect(landed[0]![1]).toBe(a);
    expect(w.locations.size).toBe(0);
  });

  it('a failed pack frees its place and finish() reports the failure', async () => {
    const inner = createMemoryStore({ bucket: 'b' });
    const store: ObjectStore = { ...inner, put: () => Promise.reject(new Error('refused')) };
    const w = new PackWriter({ store, prefix: 'p/', workspace: 'w', landed: () => {}, packSize: 8, maxFlights: 1 });
    w.add(sha256Hex('a'), Buffer.from('12345678'));
    w.add(sha256Hex('b'), Buffer.from('87654321'));
    await w.room();
    await expect(w.finish()).rejects.toThrow('refused');
  });
});

describe('a push against a server slow to take packs', () => {
  it('keeps at most four packs in flight and lands every byte', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wsync-packs-'));
    const root = path.join(dir, 'root');
    mkdirSync(path.join(root, 'w/src'), { recursive: true });
    const files = new Map<string, Buffer>();
    // 240 files of 200 KiB: twelve 4 MiB packs, filled far faster than a slow pack PUT completes.
    for (let i = 0; i < 240; i++) {
      const data = Buffer.alloc(200 * 1024, i);
      data.write(`file ${i}`);
      files.set(`src/f${i}.bin`, data);
      writeFileSync(path.join(root, 'w', `src/f${i}.bin`), data);
    }
    const inner = createMemoryStore({ bucket: 'b' });
    const store = slowPacks(inner, packsPrefix('p/', 'w'), 150);
    const config = resolveConfig('agent', { env: {}, cwd: dir, flags: { root, stateDir: path.join(dir, 'state'), prefix: 'p/', gcEvery: 0 } });

    const r = await pushWorkspace({ config, store, log, workspace: 'w' });
    expect(r.skipped).toEqual([]);
    expect(store.puts).toBeGreaterThanOrEqual(12);
    expect(store.peak).toBeLessThanOrEqual(4);
    const c = await readCommitted(inner, 'p/', 'w');
    expect(c!.entries.size).toBe(files.size);
    for (const [p, data] of files) expect((await readCommittedFile(inner, 'p/', 'w', c!.entries.get(p)!)).equals(data)).toBe(true);
  });
});
