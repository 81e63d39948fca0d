import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compareUtf8, type TreeEntry } from '@workspace-sync/shared';
import { CompactTree } from '../src/compact-tree.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** Every kind and field the format has, including the edge values a column could lose. */
function sample(): TreeEntry[] {
  const entries: TreeEntry[] = [
    { name: 'a.ts', kind: 'file', size: 12, mtimeMs: 1_764_000_000_123.5, mode: 0o644, sha256: sha('a'), pack: 'p1', offset: 4096, chunks: undefined },
    { name: 'big.bin', kind: 'file', size: 9 * 1024 * 1024, mtimeMs: 0, mode: 0o755, sha256: sha('big'), pack: undefined, offset: 0, chunks: [sha('c0'), sha('c1'), sha('c2')] },
    { name: 'empty', kind: 'file', size: 0, mtimeMs: -86_400_000, mode: 0o7777, sha256: sha(''), pack: undefined, offset: 0, chunks: undefined },
    { name: 'huge-offset', kind: 'file', size: 1, mtimeMs: 1, mode: 0o600, sha256: sha('h'), pack: 'p2', offset: 2 ** 40 + 3, chunks: undefined },
    { name: 'lib', kind: 'dir', ref: ['t1', 77, 1234, sha('tree')], changedAtMs: 1_764_000_000_000, files: 42, bytes: 2 ** 35 },
    { name: 'link', kind: 'symlink', target: '../a.ts', mtimeMs: 1_764_000_000_999 },
    { name: 'same-pack', kind: 'file', size: 3, mtimeMs: 5, mode: 0o644, sha256: sha('s'), pack: 'p1', offset: 0, chunks: undefined },
    { name: 'é', kind: 'file', size: 2, mtimeMs: 6, mode: 0o644, sha256: sha('e'), pack: undefined, offset: 0, chunks: undefined },
    { name: '日本', kind: 'symlink', target: '', mtimeMs: 7 },
    { name: 'üp', kind: 'symlink', target: 'ü/日', mtimeMs: 8 },
  ];
  return entries.sort((x, y) => compareUtf8(x.name, y.name));
}

describe('CompactTree', () => {
  it('gives back every entry exactly as decoded, in order', () => {
    const entries = sample();
    const tree = new CompactTree(entries);
    expect(tree.length).toBe(entries.length);
    expect(tree.entries()).toEqual(entries);
    entries.forEach((e, i) => expect(tree.at(i)).toEqual(e));
  });

  it('reads a listing\'s columns without building entries', () => {
    const entries = sample();
    const tree = new CompactTree(entries);
    entries.forEach((e, i) => {
      expect(tree.nameAt(i)).toBe(e.name);
      expect(tree.kindAt(i)).toBe(e.kind);
      expect(tree.modeAt(i)).toBe(e.kind === 'file' ? e.mode : 0);
      expect(tree.sizeAt(i)).toBe(e.kind === 'file' ? e.size : e.kind === 'symlink' ? Buffer.byteLength(e.target) : 0);
      expect(tree.mtimeAt(i)).toBe(e.kind === 'dir' ? e.changedAtMs : e.mtimeMs);
    });
  });

  it('finds names by UTF-8 order and misses what is not there', () => {
    const entries = sample();
    const tree = new CompactTree(entries);
    for (const e of entries) expect(tree.find(e.name)).toEqual(e);
    for (const name of ['', 'a', 'a.tsx', 'zzz', 'É', '日', 'lib/a.ts']) expect(tree.find(name)).toBeUndefined();
    expect(new CompactTree([]).find('a')).toBeUndefined();
  });

  it('holds a 3,000-file directory in well under half the estimate per entry the object form needed', () => {
    const entries: TreeEntry[] = Array.from({ length: 3000 }, (_, i) => ({
      name: `file-${String(i).padStart(5, '0')}.ts`, kind: 'file', size: i, mtimeMs: 1_764_000_000_000 + i, mode: 0o644,
      sha256: sha(String(i)), pack: `pack${i % 3}`, offset: i * 100, chunks: undefined,
    }));
    const tree = new CompactTree(entries);
    expect(tree.entries()).toEqual(entries);
    // The old estimate was 320 bytes an entry; names of 14 characters make this about 130.
    expect(tree.bytes / entries.length).toBeLessThan(160);
  });

  it('counts what large files and long symlinks add to a directory', () => {
    const plain = new CompactTree(sample());
    const withChunks = new CompactTree(sample().map((e) => (e.kind === 'file' && e.chunks ? { ...e, chunks: Array.from({ length: 400 }, (_, i) => sha(String(i))) } : e)));
    expect(withChunks.bytes - plain.bytes).toBeGreaterThanOrEqual(397 * 80);
    const longLink = new CompactTree(sample().map((e) => (e.kind === 'symlink' ? { ...e, target: 'x'.repeat(4000) } : e)));
    expect(longLink.bytes - plain.bytes).toBeGreaterThanOrEqual(2 * 3990);
  });
});
