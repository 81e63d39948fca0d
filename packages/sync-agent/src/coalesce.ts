/**
 * The changes of one workspace waiting to be synced, coalesced per path with the rules of VS Code's
 * watcher: add+delete = nothing, delete+add = change, add+change = add, change+delete = delete. Each
 * change is a transition (existed before? exists after?), so coalescing is composition and the order
 * of merging never matters, which is what lets a failed batch be put back under newer changes.
 *
 * A change under a pending directory is folded into it: syncing a directory re-reads its whole subtree.
 * Memory is bounded: past `limit` distinct paths the queue empties itself and reports an overflow, and
 * the caller re-reads the whole workspace instead.
 */

export type ChangeType = 'add' | 'change' | 'delete';

export interface FsChange {
  type: ChangeType;
  /** Workspace-relative posix path. */
  path: string;
  isDir: boolean;
}

export interface PendingChange extends FsChange {
  /** When the first and the last event of this path arrived (ms, caller's clock). */
  firstAt: number;
  lastAt: number;
}

/** Two changes of one path, in order, as one; undefined when they cancel out. */
export function combine(prev: ChangeType, next: ChangeType): ChangeType | undefined {
  if (prev === 'add') return next === 'delete' ? undefined : 'add';
  if (prev === 'delete') return next === 'delete' ? 'delete' : 'change';
  return next === 'delete' ? 'delete' : 'change';
}

const DEFAULT_QUEUE_LIMIT = 100_000;

export class ChangeQueue {
  private readonly pending = new Map<string, PendingChange>();
  /** Paths of pending directory changes, for folding. */
  private readonly dirs = new Set<string>();

  constructor(private readonly limit = DEFAULT_QUEUE_LIMIT) {}

  get size(): number {
    return this.pending.size;
  }

  values(): IterableIterator<PendingChange> {
    return this.pending.values();
  }

  /** Adds one change; false when the queue overflowed and emptied itself (re-read everything). */
  push(change: FsChange, now: number): boolean {
    return this.insert({ ...change, firstAt: now, lastAt: now });
  }

  /**
   * Removes and returns the changes `ready` accepts, minus those under a returned directory (its
   * subtree is read as a whole).
   */
  take(ready: (c: PendingChange) => boolean): PendingChange[] {
    const out: PendingChange[] = [];
    for (const c of this.pending.values()) if (ready(c)) out.push(c);
    for (const c of out) {
      this.pending.delete(c.path);
      this.dirs.delete(c.path);
    }
    const takenDirs = new Set(out.filter((c) => c.isDir).map((c) => c.path));
    return takenDirs.size ? out.filter((c) => !underAny(c.path, takenDirs)) : out;
  }

  /** Puts back changes taken for a sync that failed; they are older than anything pending now. */
  restore(changes: readonly PendingChange[]): boolean {
    const newer = [...this.pending.values()];
    this.clear();
    let ok = true;
    for (const c of [...changes].sort((a, b) => a.firstAt - b.firstAt)) ok = this.insert({ ...c }) && ok;
    for (const c of newer) ok = this.insert(c) && ok;
    return ok;
  }

  clear(): void {
    this.pending.clear();
    this.dirs.clear();
  }

  private insert(c: PendingChange): boolean {
    const ancestor = this.pendingAncestor(c.path);
    if (ancestor) {
      ancestor.firstAt = Math.min(ancestor.firstAt, c.firstAt);
      ancestor.lastAt = Math.max(ancestor.lastAt, c.lastAt);
      return true;
    }
    const prev = this.pending.get(c.path);
    if (prev) {
      const type = combine(prev.type, c.type);
      if (type === undefined) {
        this.pending.delete(c.path);
        this.dirs.delete(c.path);
        return true;
      }
      prev.type = type;
      prev.isDir ||= c.isDir;
      prev.firstAt = Math.min(prev.firstAt, c.firstAt);
      prev.lastAt = Math.max(prev.lastAt, c.lastAt);
      if (prev.isDir) this.dirs.add(c.path);
      return true;
    }
    this.pending.set(c.path, c);
    if (c.isDir) this.dirs.add(c.path);
    if (this.pending.size > this.limit) {
      this.clear();
      return false;
    }
    return true;
  }

  private pendingAncestor(p: string): PendingChange | undefined {
    if (this.dirs.size === 0) return undefined;
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
      const dir = p.slice(0, i);
      if (this.dirs.has(dir)) return this.pending.get(dir);
    }
    return undefined;
  }
}

function underAny(p: string, dirs: ReadonlySet<string>): boolean {
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (dirs.has(p.slice(0, i))) return true;
  return false;
}
