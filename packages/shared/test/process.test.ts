import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../src/process.js';

describe('isProcessAlive', () => {
  it('is true for a running process and false once it has exited', () => {
    expect(isProcessAlive(process.pid)).toBe(true);
    const exited = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    expect(exited).toBeGreaterThan(0);
    expect(isProcessAlive(exited)).toBe(false);
  });
});
