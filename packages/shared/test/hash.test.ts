import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashFileStable, readFileStable, sha256Hex } from '../src/hash.js';

const dir = mkdtempSync(path.join(tmpdir(), 'hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hashFileStable and readFileStable', () => {
  // Around the size where small files switch from one synchronous read to streamed chunks.
  for (const size of [0, 1, 4096, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 17]) {
    it(`agree with the bytes of a ${size}-byte file`, async () => {
      const body = randomBytes(size);
      const file = path.join(dir, `f${size}`);
      writeFileSync(file, body);
      const hashed = await hashFileStable(file);
      const read = await readFileStable(file);
      expect(hashed.sha256).toBe(sha256Hex(body));
      expect(read.sha256).toBe(sha256Hex(body));
      expect(read.data.equals(body)).toBe(true);
      expect(hashed.stat.size).toBe(size);
    });
  }

  it('hashes each file afresh (the shared scratch buffer never leaks one file into the next)', async () => {
    const big = path.join(dir, 'big');
    const small = path.join(dir, 'small');
    writeFileSync(big, Buffer.alloc(1000, 7));
    writeFileSync(small, Buffer.from('ab'));
    await hashFileStable(big);
    expect((await hashFileStable(small)).sha256).toBe(sha256Hex('ab'));
  });

  it('reads into the caller\'s scratch buffer when the file fits, and into a buffer of its own when not', async () => {
    const scratch = Buffer.alloc(8, 0x78);
    const fits = path.join(dir, 'fits');
    const larger = path.join(dir, 'larger');
    writeFileSync(fits, Buffer.from('abc'));
    writeFileSync(larger, Buffer.from('0123456789'));
    const a = await readFileStable(fits, { scratch });
    expect(a.data.toString()).toBe('abc');
    expect(a.data.buffer).toBe(scratch.buffer);
    expect(a.sha256).toBe(sha256Hex('abc'));
    const b = await readFileStable(larger, { scratch });
    expect(b.data.toString()).toBe('0123456789');
    expect(b.data.buffer).not.toBe(scratch.buffer);
    // The earlier view was of the scratch buffer: still 'abc', the larger file never went there.
    expect(a.data.toString()).toBe('abc');
  });
});
