// Packs written by a real push to a real S3 server: contents, reuse across pushes, repacking, clean-up.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  createLogger, decodeManifest, manifestKey, packKey, packsPrefix, type AgentConfig, type Manifest, type ObjectStore,
} from '@workspace-sync/shared';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PACK_LIMITS, updatePacks, type PackLimits } from '../src/pack.js';
import { pushWorkspace } from '../src/push.js';
import { createHarness, useTestS3 } from './watch-harness.js';

const s3 = useTestS3();
const log = createLogger({ level: 'silent' });

function setup(name: string, files = 40) {
  const h = createHarness(s3(), name);
  const dir = mkdtempSync(path.join(tmpdir(), `wsync-pack-${name}-`));
  const root = path.join(dir, 'root');
  const write = (rel: string, content: string | Buffer) => {
    mkdirSync(path.dirname(path.join(root, 'ws', rel)), { recursive: true });
    writeFileSync(path.join(root, 'ws', rel), content);
  };
  for (let i = 0; i < files; i++) write(`src/f${String(i).padStart(2, '0')}.ts`, `export const v${i} = ${'x'.repeat(i * 37)};\n`);
  write('assets/large.bin', Buffer.alloc(300 * 1024, 7));
  write('empty.txt', '');
  const config: AgentConfig = {
    endpoint: s3().endpoint, region: 'us-east-1', bucket: s3().bucket, prefix: h.prefix, forcePathStyle: true,
    logLevel: 'silent', healthPort: undefined, root, stateDir: path.join(dir, 'state'), concurrency: 8, exclude: [],
    pack: true, maxDelete: undefined, multipartThreshold: 16 * 1024 ** 2,
  };
  const push = (over: Partial<AgentConfig> = {}, packLimits?: PackLimits) =>
    pushWorkspace({ config: { ...config, ...over }, store: h.store, log, workspace: 'ws', ...(packLimits ? { packLimits } : {}) });
  const manifest = async (): Promise<Manifest> => {
    const res = await h.store.get(manifestKey(h.prefix, 'ws'));
    if (res.notModified) throw new Error('unexpected 304');
    return decodeManifest(res.body, 'test');
  };
  const packKeys = async (store: ObjectStore = h.store) => {
    const keys: string[] = [];
    for await (const item of store.list(packsPrefix(h.prefix, 'ws'))) if (!('commonPrefix' in item)) keys.push(item.key);
    return keys.sort();
  };
  return { h, root, write, push, manifest, packKeys };
}

/** Every packed entry's bytes, cut from its pack, equal the file on disk. */
async function expectPackedBytes(t: ReturnType<typeof setup>, m: Manifest): Promise<number> {
  const bodies = await Promise.all((m.packs ?? []).map(async (p) => {
    const res = await t.h.store.get(packKey(t.h.prefix, 'ws', p.id));
    if (res.notModified) throw new Error('unexpected 304');
    expect(res.body.length).toBe(p.size);
    return res.body;
  }));
  let packed = 0;
  for (const e of m.entries) {
    if (e.type !== 'file' || !e.pack) continue;
    const [index, offset] = e.pack;
    expect(bodies[index]!.subarray(offset, offset + e.size).equals(readFileSync(path.join(t.root, 'ws', e.path))), e.path).toBe(true);
    packed++;
  }
  return packed;
}

describe('packs of small files', () => {
  it('are written by the first push, hold every small file and stay out of the workspace listing', async () => {
    const t = setup('first');
    await t.push();
    const m = await t.manifest();
    expect(m.packs).toHaveLength(1);
    expect(await expectPackedBytes(t, m)).toBe(40);
    const byPath = new Map(m.entries.map((e) => [e.path, e]));
    // Too large for a pack, and nothing to fetch: neither is packed.
    expect(byPath.get('assets/large.bin')).not.toHaveProperty('pack');
    expect(byPath.get('empty.txt')).not.toHaveProperty('pack');
    expect(await t.packKeys()).toEqual([packKey(t.h.prefix, 'ws', m.packs![0]!.id)]);
    expect((await t.h.keys('ws')).some((k) => k.includes('.pack'))).toBe(false);
  });

  it('keep serving unchanged files after an edit, and are rewritten once too many files left them', async () => {
    const t = setup('reuse');
    await t.push();
    const first = await t.manifest();
    const firstPack = first.packs![0]!.id;

    t.write('src/f00.ts', 'export const edited = 1;\n');
    await t.push();
    const second = await t.manifest();
    expect(second.packs!.map((p) => p.id)).toEqual([firstPack]);
    const edited = second.entries.find((e) => e.path === 'src/f00.ts')!;
    expect(edited).not.toHaveProperty('pack');
    expect(await expectPackedBytes(t, second)).toBe(39);

    // 10% of 40 small files: the fifth changed file tips it over.
    for (let i = 1; i <= 4; i++) t.write(`src/f0${i}.ts`, `export const edited${i} = ${i};\n`);
    await t.push();
    const third = await t.manifest();
    expect(third.packs!.map((p) => p.id)).not.toContain(firstPack);
    expect(await expectPackedBytes(t, third)).toBe(40);
    // The old pack went once the new manifest was committed.
    expect(await t.packKeys()).toEqual(third.packs!.map((p) => packKey(t.h.prefix, 'ws', p.id)).sort());
  });

  it('split at the pack size limit', async () => {
    const t = setup('split');
    await t.push({}, { ...DEFAULT_PACK_LIMITS, maxPack: 8 * 1024 });
    const m = await t.manifest();
    expect(m.packs!.length).toBeGreaterThan(2);
    for (const p of m.packs!) expect(p.size).toBeLessThanOrEqual(8 * 1024);
    expect(await expectPackedBytes(t, m)).toBe(40);
  });

  it('are not written for a handful of files', async () => {
    const t = setup('few', 5);
    await t.push();
    expect((await t.manifest()).packs).toBeUndefined();
    expect(await t.packKeys()).toEqual([]);
  });

  it('are removed with their references when packing is turned off', async () => {
    const t = setup('off');
    await t.push();
    expect(await t.packKeys()).toHaveLength(1);
    t.write('src/f00.ts', 'export const edited = 1;\n');
    await t.push({ pack: false });
    const m = await t.manifest();
    expect(m.packs).toBeUndefined();
    expect(m.entries.some((e) => e.type === 'file' && e.pack)).toBe(false);
    expect(await t.packKeys()).toEqual([]);
  });

  it('hold only bytes that match the entry: a file edited since its upload stays out', async () => {
    const t = setup('edited');
    await t.push({ pack: false });
    const m = await t.manifest();
    t.write('src/f07.ts', 'export const changedAfterUpload = true;\n');
    const out = await updatePacks(m.entries, { committed: undefined, packs: [] }, {
      store: t.h.store, prefix: t.h.prefix, workspace: 'ws', wsDir: path.join(t.root, 'ws'), log, enabled: true,
    });
    expect(out.written).toBe(1);
    const byPath = new Map(out.entries.map((e) => [e.path, e]));
    expect(byPath.get('src/f07.ts')).not.toHaveProperty('pack');
    expect(byPath.get('src/f08.ts')).toHaveProperty('pack');
    expect(await expectPackedBytes(t, { ...m, entries: out.entries, packs: out.packs })).toBe(39);
  });

  it('do not make a no-op push write anything', async () => {
    const t = setup('noop');
    await t.push();
    const before = await t.manifest();
    const r = await t.push();
    expect(r.manifestWritten).toBe(false);
    expect(r.requests).toBe(1);
    expect((await t.manifest()).generation).toBe(before.generation);
  });
});
