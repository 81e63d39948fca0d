/**
 * Notices `git add`, `git rm`, commits and checkouts by watching the git index files a workspace's
 * filter read. Stat polling (one stat per file per interval) rather than inotify: git writes the index
 * by renaming a new file over it, which a watch on the old inode misses, and the `.git` directory
 * itself stays unwatched. Every rewrite is reported, including `git status` refreshing stat data:
 * the caller compares the tracked paths and ignores rewrites that change none.
 */
import { unwatchFile, watchFile, type Stats } from 'node:fs';

export interface IndexWatcher {
  /** Watch exactly these index files from now on. */
  set(files: readonly string[]): void;
  close(): void;
}

export function watchIndexFiles(onChange: () => void, intervalMs: number): IndexWatcher {
  const watched = new Map<string, (curr: Stats, prev: Stats) => void>();
  return {
    set(files) {
      const want = new Set(files);
      for (const [file, listener] of watched) {
        if (want.has(file)) continue;
        unwatchFile(file, listener);
        watched.delete(file);
      }
      for (const file of want) {
        if (watched.has(file)) continue;
        const listener = (curr: Stats, prev: Stats) => {
          if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) onChange();
        };
        // Not persistent: the watcher never keeps the process alive on its own.
        watchFile(file, { interval: intervalMs, persistent: false }, listener);
        watched.set(file, listener);
      }
    },
    close() {
      for (const [file, listener] of watched) unwatchFile(file, listener);
      watched.clear();
    },
  };
}
