import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { exitCodeFor, SyncError } from '../src/errors.js';
import { compareUtf8, decodeManifest, encodeManifest, type Manifest, MANIFEST_FORMAT, MANIFEST_VERSION } from '../src/manifest.js';

const SHA = 'a'.repeat(64);

function manifest(entries: unknown[] = [
  { path: 'b.txt', type: 'file', size: 3, mtimeMs: 1700000000000, mode: 0o644, sha256: SHA, etag: '"e1"' },
  { path: 'a/x.sh', type: 'file', size: 0, mtimeMs: 0, mode: 0o755, sha256: 'b'.repeat(64), etag: '"e2"' },
  { path: 'link', type: 'symlink', target: '../b.txt', mtimeMs: 1, etag: '"e3"' },
]): Manifest {
  return {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, workspace: 'ws', generation: 7, createdAt: '2025-01-01T00:00:00.000Z',
    writer: { host: 'h', agent: 'sync-agent/0.1.0' }, entries: entries as Manifest['entries'],
  };
}

const raw = (value: unknown): Buffer => gzipSync(Buffer.from(JSON.stringify(value)));

/** The SyncError decodeManifest throws for `body`. */
function decodeError(body: Buffer): SyncError {
  try {
    decodeManifest(body, 's3://b/.sync/ws/manifest.json.gz');
  } catch (e) {
    expect(e).toBeInstanceOf(SyncError);
    return e as SyncError;
  }
  throw new Error('decodeManifest accepted it');
}

describe('manifest', () => {
  it('round-trips, gzip-compressed, entries in UTF-8 byte order', () => {
    const m = manifest();
    const body = encodeManifest(m);
    expect(body.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const back = decodeManifest(body, 'test');
    expect(back.entries.map((e) => e.path)).toEqual(['a/x.sh', 'b.txt', 'link']);
    expect(back).toEqual({ ...m, entries: [...m.entries].sort((a, b) => compareUtf8(a.path, b.path)) });
  });

  it('sorts by UTF-8 bytes, as S3 lists keys, not by UTF-16 units', () => {
    // U+FFFD is EF BF BD, U+1F600 is F0 9F 98 80; in UTF-16 the surrogate D83D sorts first.
    expect(compareUtf8('\uFFFD', '😀')).toBeLessThan(0);
    expect('\uFFFD' < '😀').toBe(false);
    const back = decodeManifest(encodeManifest(manifest([
      { path: '😀', type: 'symlink', target: 'x', mtimeMs: 0, etag: '' },
      { path: '\uFFFD', type: 'symlink', target: 'x', mtimeMs: 0, etag: '' },
    ])), 'test');
    expect(back.entries.map((e) => e.path)).toEqual(['\uFFFD', '😀']);
  });

  it('refuses what is not gzip-compressed JSON', () => {
    expect(decodeError(Buffer.from('{"format":1}')).code).toBe('MANIFEST_INVALID');
    const e = decodeError(gzipSync(Buffer.from('not json')));
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toContain('s3://b/.sync/ws/manifest.json.gz');
  });

  it.each(['../x', '/abs', 'a//b', 'a/./b', 'a/..', '', 'a/', 'x\0y', 'x'.repeat(256)])('refuses the unsafe path %j', (p) => {
    const e = decodeError(raw(manifest([{ ...manifest().entries[0]!, path: p }])));
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toContain('entries.0.path');
  });

  it('refuses a path listed twice', () => {
    const entry = manifest().entries[0]!;
    const e = decodeError(raw(manifest([entry, { ...entry, etag: '"other"' }])));
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toContain('"b.txt" twice');
  });

  it.each([
    ['an upper-case sha256', { sha256: 'A'.repeat(64) }],
    ['a short sha256', { sha256: 'a'.repeat(63) }],
    ['a missing sha256', { sha256: undefined }],
    ['a negative size', { size: -1 }],
    ['a fractional size', { size: 1.5 }],
    ['a mode beyond 0o7777', { mode: 0o10000 }],
    ['an unknown type', { type: 'dir' }],
  ])('refuses %s', (_, patch) => {
    const e = decodeError(raw(manifest([{ ...manifest().entries[0]!, ...patch }])));
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toMatch(/invalid at entries\.0/);
  });

  it('refuses a symlink target with a NUL and a bad workspace name', () => {
    expect(decodeError(raw(manifest([{ path: 'l', type: 'symlink', target: 'a\0b', mtimeMs: 0, etag: '' }]))).code).toBe('MANIFEST_INVALID');
    for (const workspace of ['.sync', 'a/b', '']) {
      expect(decodeError(raw({ ...manifest(), workspace })).message, workspace).toContain('workspace');
    }
  });

  it('refuses another format', () => {
    const e = decodeError(raw({ ...manifest(), format: 'something-else' }));
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toContain('format');
  });

  it('tells a newer format version apart: MANIFEST_TOO_NEW, with an upgrade hint', () => {
    const e = decodeError(raw({ ...manifest(), version: MANIFEST_VERSION + 1, entries: [{ whatever: true }] }));
    expect(e.code).toBe('MANIFEST_TOO_NEW');
    expect(e.message).toContain(`version ${MANIFEST_VERSION + 1}`);
    expect(e.hint).toMatch(/upgrade/);
    expect(exitCodeFor(e)).toBe(3);
    expect(decodeError(raw({ ...manifest(), version: 0 })).code).toBe('MANIFEST_INVALID');
  });
});

describe('manifest edge cases', () => {
  const base = {
    format: 'workspace-sync.manifest', version: 1, workspace: 'w', generation: 1, createdAt: 'now',
    writer: { host: 'h', agent: 'a' },
  };
  const file = (path: string, mtimeMs = 1) => ({ path, type: 'file', size: 1, mtimeMs, mode: 0o644, sha256: 'a'.repeat(64), etag: 'e' });
  const gz = (o: unknown) => gzipSync(Buffer.from(JSON.stringify(o)));

  it('accepts files dated before 1970', () => {
    expect(decodeManifest(gz({ ...base, entries: [file('old.txt', -86_400_000)] }), 'm').entries[0]!.mtimeMs).toBe(-86_400_000);
  });

  it('refuses a path that is both a file and a directory', () => {
    expect(() => decodeManifest(gz({ ...base, entries: [file('a'), file('a/b')] }), 'm')).toThrow(/both as a file and as a directory/);
  });

  it('reads pack references, and refuses one outside its pack or to a pack that is not listed', () => {
    const packs = [{ id: 'c'.repeat(64), size: 2, etag: '"p"' }];
    const ok = decodeManifest(gz({ ...base, packs, entries: [{ ...file('a'), pack: [0, 1] }] }), 'm');
    expect(ok.packs).toEqual(packs);
    expect(ok.entries[0]).toMatchObject({ pack: [0, 1] });
    // Readers that predate packs see a valid manifest without them.
    expect(decodeManifest(gz({ ...base, entries: [file('a')] }), 'm').packs).toBeUndefined();
    expect(() => decodeManifest(gz({ ...base, packs, entries: [{ ...file('a'), pack: [0, 2] }] }), 'm')).toThrow(/outside its packs/);
    expect(() => decodeManifest(gz({ ...base, packs, entries: [{ ...file('a'), pack: [1, 0] }] }), 'm')).toThrow(/outside its packs/);
    expect(() => decodeManifest(gz({ ...base, packs: [{ ...packs[0], id: 'x' }], entries: [] }), 'm')).toThrow(/packs\.0\.id/);
  });

  it('says "too new" only for manifests of this format', () => {
    expect(() => decodeManifest(gz({ ...base, version: 2, entries: [] }), 'm')).toThrow(expect.objectContaining({ code: 'MANIFEST_TOO_NEW' }));
    expect(() => decodeManifest(gz({ ...base, format: 'other', version: 2, entries: [] }), 'm')).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID' }));
  });
});

describe('compareUtf8', () => {
  it('orders like Buffer.compare of the UTF-8 bytes, astral characters included', () => {
    const words = ['a', 'b', 'Z', '~', 'é', '\uE000', '\uFFFD', '😀', '😀a', 'a😀', 'ab', '', 'ａ', '\u07FF', '\u0800'];
    const byBytes = [...words].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...words].sort(compareUtf8)).toEqual(byBytes);
    for (const x of words) for (const y of words) expect(Math.sign(compareUtf8(x, y))).toBe(Math.sign(Buffer.compare(Buffer.from(x), Buffer.from(y))));
  });
});
