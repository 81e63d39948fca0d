/**
 * Test helpers for the filter: build a tree on disk and list what a walker keeps, the way
 * sync-agent walks (lstat-based, never descends into an excluded directory, files and symlinks
 * are entries, directories are not listed).
 */
import { lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir as scratchDir, type TempDir } from '@workspace-sync/testkit';
import type { Filter } from '../../src/filter/filter.js';

/**
 * Sorted workspace-relative paths of the entries the filter keeps. Like the scan, a directory the
 * filter answers `trackedOnly` for is not listed: only the names the index has there are looked at.
 */
export function walkIncluded(wsDir: string, filter: Filter): string[] {
  const out: string[] = [];
  const visit = (rel: string): void => {
    const abs = rel === '' ? wsDir : path.join(wsDir, rel);
    for (const name of filter.trackedOnly(rel) ?? readdirSync(abs)) {
      const r = rel === '' ? name : `${rel}/${name}`;
      let st;
      try {
        st = lstatSync(path.join(abs, name));
      } catch {
        continue; // a tracked path deleted from the work tree
      }
      if (st.isDirectory()) {
        if (!filter.excludes(r, true)) visit(r);
      } else if (!filter.excludes(r, false)) {
        out.push(r);
      }
    }
  };
  visit('');
  return out.sort();
}

/**
 * A tree as a map of paths (relative to the directory it is written in) to contents:
 * a string is a file, `{ link }` a symlink, `null` an empty directory.
 */
export type TreeSpec = Record<string, string | { link: string } | null>;

export function writeTree(dir: string, spec: TreeSpec): void {
  for (const [rel, content] of Object.entries(spec)) {
    const abs = path.join(dir, rel);
    if (content === null) {
      mkdirSync(abs, { recursive: true });
      continue;
    }
    mkdirSync(path.dirname(abs), { recursive: true });
    if (typeof content === 'string') writeFileSync(abs, content);
    else symlinkSync(content.link, abs);
  }
}

/** A fresh temp dir on tmpfs (thousands of tiny files) and its removal. */
export function tempDir(label: string): TempDir {
  return scratchDir(`filter-${label}`, { scratch: true });
}
