/**
 * chokidar over one directory tree, reporting normalized changes (tree-relative posix paths).
 * `ignored` is consulted before chokidar reads or watches anything, so an excluded directory costs no
 * watch and no readdir. chokidar's own editor heuristics (`atomic`, which drops `.swp` and `~` files
 * and delays unlinks) are off: the filter alone decides what syncs, and the batcher's quiet window
 * absorbs temp files, so `watch` and `push` agree on every path.
 */
import type { Stats } from 'node:fs';
import path from 'node:path';
import { FSWatcher } from 'chokidar';
import type { FsChange } from './coalesce.js';

export interface TreeWatcherOptions {
  /** Absolute directory to watch (a real path: symlinks inside are not followed). */
  dir: string;
  /** `rel` is relative to `dir`; `stats` (lstat) when chokidar has them. */
  ignored: (rel: string, stats: Stats | undefined) => boolean;
  /** Only the directory itself and its direct entries when 0. */
  depth?: number;
  /** Stat polling instead of inotify, every this many ms. */
  pollMs?: number | undefined;
  onChange: (change: FsChange) => void;
  onError: (err: NodeJS.ErrnoException) => void;
}

export interface TreeWatcher {
  /** Resolves once the initial walk is done and every watch is in place. */
  readonly ready: Promise<void>;
  readonly polling: boolean;
  /** Paths chokidar watches (one inotify watch or poller each). */
  watchCount(): number;
  close(): Promise<void>;
}

const EVENT_TYPES: Record<string, Pick<FsChange, 'type' | 'isDir'>> = {
  add: { type: 'add', isDir: false },
  addDir: { type: 'add', isDir: true },
  change: { type: 'change', isDir: false },
  unlink: { type: 'delete', isDir: false },
  unlinkDir: { type: 'delete', isDir: true },
};

/** A chokidar event as a change relative to `base`; undefined for the base itself or anything outside. */
export function toChange(event: string, absPath: string, base: string): FsChange | undefined {
  const kind = EVENT_TYPES[event];
  if (!kind) return undefined;
  const rel = relativeTo(base, absPath);
  return rel ? { ...kind, path: rel } : undefined;
}

/** Posix path of `absPath` under `base`; '' for the base, undefined outside it. */
export function relativeTo(base: string, absPath: string): string | undefined {
  const rel = path.relative(base, absPath);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return rel.split(path.sep).join('/');
}

export function watchTree(opts: TreeWatcherOptions): TreeWatcher {
  const polling = opts.pollMs !== undefined;
  const fsw = new FSWatcher({
    persistent: true,
    ignoreInitial: true,
    followSymlinks: false,
    atomic: false,
    ignorePermissionErrors: true,
    usePolling: polling,
    interval: opts.pollMs ?? 100,
    binaryInterval: opts.pollMs ?? 300,
    ...(opts.depth === undefined ? {} : { depth: opts.depth }),
    ignored: (abs: string, stats?: Stats) => {
      const rel = relativeTo(opts.dir, abs);
      if (rel === undefined) return true;
      return rel !== '' && opts.ignored(rel, stats);
    },
  });
  const ready = new Promise<void>((resolve) => fsw.once('ready', () => resolve()));
  fsw.on('all', (event, abs) => {
    const change = toChange(event, abs, opts.dir);
    if (change) opts.onChange(change);
  });
  fsw.on('error', (err) => opts.onError(err as NodeJS.ErrnoException));
  fsw.add(opts.dir);
  return {
    ready,
    polling,
    watchCount() {
      // Each watched path is listed once, as an entry of its parent directory.
      let n = 0;
      for (const children of Object.values(fsw.getWatched())) n += children.length;
      return n;
    },
    close: () => fsw.close(),
  };
}
