import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  decodeCommit, decodeSplit, decodeTreeObject, encodeCommit, encodeSplitTree, encodeTree, sha256Hex, splitEntries,
  type Commit, type TreeEntry, type TreeRef,
} from '../src/index.js';

const file = (name: string): TreeEntry => ({
  name, kind: 'file', size: 1, mtimeMs: 1, mode: 0o644, sha256: sha256Hex(name), pack: '0123456789abcdef', offset: 0, chunks: undefined,
});
const names = (n: number, tag = 'f') => Array.from({ length: n }, (_, i) => `${tag}${String(i).padStart(6, '0')}.ts`);
const ref = (i: number): TreeRef => ['0123456789abcdef', i * 100, 100, sha256Hex(String(i))];
const gz = (v: unknown) => gzipSync(Buffer.from(JSON.stringify(v)));
const partBodies = (...lists: TreeEntry[][]) => lists.map((l, i) => ({ bytes: encodeTree(l), where: `part ${i}` }));

describe('splitEntries', () => {
  it('cuts by the names themselves: inserting one entry changes at most the parts next to it', () => {
    const before = splitEntries(names(5000).map((name) => ({ name })));
    expect(before.length).toBeGreaterThan(40);
    expect(before.length).toBeLessThan(160);
    expect(before.flat().map((e) => e.name)).toEqual(names(5000));
    const after = splitEntries([...names(5000), 'f002500.tsx'].sort().map((name) => ({ name })));
    const key = (p: Array<{ name: string }>) => p.map((e) => e.name).join('\n');
    const old = new Set(before.map(key));
    const changed = after.filter((p) => !old.has(key(p)));
    expect(changed.length).toBeGreaterThanOrEqual(1);
    expect(changed.length).toBeLessThanOrEqual(2);
  });

  it('bounds a part however the names hash', () => {
    // Names none of which ends a part by its hash (splitEntries itself is the oracle) still make parts of at most 1024.
    const endsPart = (name: string) => splitEntries([{ name }, { name: `${name}~` }]).length === 2;
    const hostile = names(4000).filter((n) => !endsPart(n)).slice(0, 3000);
    expect(hostile).toHaveLength(3000);
    const parts = splitEntries(hostile.map((name) => ({ name })));
    expect(parts.map((p) => p.length)).toEqual([1024, 1024, 952]);
  });
});

describe('split tree objects', () => {
  it('round-trips an index, and joins parts in order', () => {
    const parts = [ref(0), ref(1), ref(2)];
    expect(decodeTreeObject(encodeSplitTree(parts), 'x')).toEqual({ parts });
    const a = names(3).map(file);
    const b = names(3, 'g').map(file);
    expect(decodeTreeObject(encodeTree(a), 'x')).toEqual({ entries: a });
    expect(decodeSplit(partBodies(a, b), 'x').map((e) => e.name)).toEqual([...names(3), ...names(3, 'g')]);
  });

  it('refuses hostile indexes and parts with MANIFEST_INVALID', () => {
    const bad = (body: Buffer) => expect(() => decodeTreeObject(body, 'x')).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID' }));
    bad(gz({ t: ['0123456789abcdef'], s: [[0, 0, 10, sha256Hex('a')]] })); // one part is not a split
    bad(gz({ t: ['0123456789abcdef'], s: [[0, 0, 10, sha256Hex('a')], [1, 0, 10, sha256Hex('b')]] })); // pack index out of range
    bad(gz({ t: ['0123456789abcdef'], s: [[0, 0, 0, sha256Hex('a')], [0, 0, 10, sha256Hex('b')]] })); // empty ref
    bad(gz({ t: ['0123456789abcdef'], s: [[0, -1, 10, sha256Hex('a')], [0, 0, 10, 'nothex']] }));
    bad(gz({ t: ['../../etc'], s: [[0, 0, 10, sha256Hex('a')], [0, 0, 10, sha256Hex('b')]] }));
    bad(gz({ t: [], d: [], e: [], s: [] })); // both kinds at once
    bad(gz({ t: ['0123456789abcdef'], s: Array.from({ length: 70000 }, (_, i) => [0, i, 1, sha256Hex(String(i))]) }));
    // Parts that together would be more than a directory may hold, refused before any is fetched.
    bad(gz({ t: ['0123456789abcdef'], s: Array.from({ length: 5 }, (_, i) => [0, i, 60 * 1024 * 1024, sha256Hex(String(i))]) }));
    // An index where an ordinary tree (a part) is expected.
    const invalid = (fn: () => unknown, why: RegExp) => expect(fn).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringMatching(why) }));
    invalid(() => decodeSplit([{ bytes: encodeSplitTree([ref(0), ref(1)]), where: 'p' }, ...partBodies([file('z')])], 'x'), /split index where a part/);
    // Parts out of order, overlapping or empty.
    const a = names(3).map(file);
    invalid(() => decodeSplit(partBodies(a, a), 'x'), /out of order/);
    invalid(() => decodeSplit(partBodies(names(3, 'g').map(file), a), 'x'), /out of order/);
    invalid(() => decodeSplit(partBodies(a, []), 'x'), /empty/);
  });

  it('refuses file modes outside 0..0o7777 (a negative one would alias a valid one in 16 bits)', () => {
    const tree = (mode: number) => gz({ t: [], d: [], e: [['a', 'f', 1, 1, mode, sha256Hex('a'), -1, 0]] });
    expect(decodeTreeObject(tree(0o644), 'x').entries).toHaveLength(1);
    for (const mode of [-1, -65116, 0o10000, 1.5]) {
      expect(() => decodeTreeObject(tree(mode), 'x'), String(mode)).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringMatching(/file fields/) }));
    }
  });

  it('decodes a split directory within one budget: parts that inflate hugely are refused, not decoded', () => {
    // Each part is a few KiB compressed and 4 MiB of JSON; with a 10 MiB budget the third one is refused.
    const body = gzipSync(Buffer.from(JSON.stringify({ t: [], d: [], e: [], pad: 'ab'.repeat(2 * 1024 * 1024) })));
    expect(body.length).toBeLessThan(64 * 1024);
    const many = Array.from({ length: 1000 }, (_, i) => ({ bytes: body, where: `part ${i}` }));
    expect(() => decodeSplit(many, 'x', 10 * 1024 * 1024)).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringMatching(/^tree object part 2 is invalid: .*bytes left/) }));
  });
});

describe('commit versions', () => {
  const commit = (version: number): Buffer => {
    const c = {
      format: 'workspace-sync.commit', version, workspace: 'ws', generation: 1, id: '0123456789abcdef', parent: null,
      createdAt: '2026-12-01T00:00:00.000Z', writer: { host: 'h', agent: 'a' }, root: ref(0), stats: { files: 0, dirs: 0, bytes: 0 },
      changes: { added: 0, modified: 0, deleted: 0, bytes: 0, paths: { added: [], modified: [], deleted: [] }, truncated: false },
    };
    return encodeCommit(c as unknown as Commit);
  };
  it('reads version 2 (no split directories) and 3, and tells a newer one apart', () => {
    expect(decodeCommit(commit(2), 'c').version).toBe(2);
    expect(decodeCommit(commit(3), 'c').version).toBe(3);
    expect(() => decodeCommit(commit(4), 'c')).toThrow(expect.objectContaining({ code: 'MANIFEST_TOO_NEW' }));
    expect(() => decodeCommit(commit(1), 'c')).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID' }));
  });
});
