import { describe, expect, it } from 'vitest';
import { inodeOf, inodeOfChild } from '../src/inode.js';

describe('inodeOf', () => {
  it('is a function of (namespace, path, kind) alone', () => {
    expect(inodeOf('app', 'src/a.ts', 'file')).toBe(inodeOf('app', 'src/a.ts', 'file'));
    expect(inodeOf('app', 'src', 'dir')).not.toBe(inodeOf('app', 'src', 'file'));
    expect(inodeOf('app', 'src', 'dir')).not.toBe(inodeOf('ap', 'psrc', 'dir'));
    expect(inodeOf('app', 'x', 'file')).not.toBe(inodeOf('app@000000000042', 'x', 'file'));
  });

  it('numbers a child without its path built: the same as inodeOf of the joined path, and unchanged values', () => {
    // Values of the numbering before inodeOfChild existed: a mount upgraded in place keeps its inodes.
    expect(inodeOf('app', 'src/a.ts', 'file')).toBe(1898323349);
    expect(inodeOf('app', '', 'dir')).toBe(2156537139);
    expect(inodeOf('.snapshots/ws/1', 'x/y/zé', 'symlink')).toBe(2362289933);
    for (const [ns, dir, name] of [['app', '', 'README.md'], ['app', 'src', 'a.ts'], ['w', 'a/b/c', 'd'], ['日本', 'é', 'ü'], ['app', 'x', '']]) {
      for (const kind of ['file', 'dir', 'symlink'] as const) {
        expect(inodeOfChild(ns!, dir!, name!, kind)).toBe(inodeOf(ns!, dir ? `${dir}/${name}` : name!, kind));
      }
    }
    // The separator counts: "a" + "/" + "bc" is not "ab" + "/" + "c".
    expect(inodeOfChild('app', 'a', 'bc', 'file')).not.toBe(inodeOfChild('app', 'ab', 'c', 'file'));
  });

  it('spreads 100,000 similar paths over 32 bits as evenly as the collision odds in its header assume', () => {
    const n = 100_000;
    const seen = new Set<number>();
    const highByte = new Array<number>(256).fill(0);
    let collisions = 0;
    let outOfRange = 0;
    for (let i = 0; i < n; i++) {
      const ino = inodeOf('app', `src/m${i % 880}/d${i % 37}/file-${i}.ts`, 'file');
      // 0 is no inode, 1 the mount root; fuse-native carries 32 bits.
      if (!Number.isInteger(ino) || ino < 2 || ino > 0xffff_ffff) outOfRange++;
      if (seen.has(ino)) collisions++;
      seen.add(ino);
      highByte[ino >>> 24]!++;
    }
    expect(outOfRange).toBe(0);
    // n²/2³³ ≈ 1.16 expected; 8 or more has odds below 1 in 10⁴ for a uniform hash.
    expect(collisions).toBeLessThan(8);
    // χ² over the top byte (255 degrees of freedom): far above ~330 means a lopsided spread.
    const mean = n / 256;
    expect(highByte.reduce((chi, count) => chi + (count - mean) ** 2 / mean, 0)).toBeLessThan(330);
  });
});
