import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// Thousands of tiny files: tmpfs is much faster to populate than a disk.
const SCRATCH = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

export interface TempDir {
  dir: string;
  remove(): void;
}

/**
 * A fresh directory for one test, and its removal. `scratch`: on tmpfs when there is one (fixtures
 * of many small files); otherwise under the OS temp directory, on the same filesystem as the rest.
 */
export function tempDir(label: string, opts: { scratch?: boolean } = {}): TempDir {
  const dir = mkdtempSync(path.join(opts.scratch ? SCRATCH : tmpdir(), `wsync-${label}-`));
  return { dir, remove: () => removeDir(dir) };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
