/**
 * A map seen as a base map plus a few changes, without copying the base. Watch syncs each batch
 * against its whole local side (100,000 entries in a large workspace); copying that map per batch,
 * so a failed batch could leave it untouched, cost 70 ms and as much again in garbage collection.
 * The changes land in the base only through `commit`, once the batch succeeded.
 */
export interface MutableMap<K, V> extends ReadonlyMap<K, V> {
  set(key: K, value: V): this;
  delete(key: K): boolean;
}

const GONE = Symbol('gone');

export class Overlay<K, V> implements MutableMap<K, V> {
  private readonly changes = new Map<K, V | typeof GONE>();
  private count: number;

  constructor(private readonly base: Map<K, V>) {
    this.count = base.size;
  }

  get size(): number {
    return this.count;
  }

  get(key: K): V | undefined {
    const c = this.changes.get(key);
    if (c === GONE) return undefined;
    return c !== undefined || this.changes.has(key) ? c as V : this.base.get(key);
  }

  has(key: K): boolean {
    const c = this.changes.get(key);
    if (c !== undefined || this.changes.has(key)) return c !== GONE;
    return this.base.has(key);
  }

  set(key: K, value: V): this {
    if (!this.has(key)) this.count++;
    this.changes.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    if (!this.has(key)) return false;
    this.count--;
    if (this.base.has(key)) this.changes.set(key, GONE);
    else this.changes.delete(key);
    return true;
  }

  *entries(): MapIterator<[K, V]> {
    for (const [k, v] of this.base) {
      const c = this.changes.get(k);
      if (c === undefined && !this.changes.has(k)) yield [k, v];
      else if (c !== GONE) yield [k, c as V];
    }
    for (const [k, c] of this.changes) if (c !== GONE && !this.base.has(k)) yield [k, c];
  }

  *keys(): MapIterator<K> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }

  /** Writes the changes into the base map and returns it; the overlay is not used after. */
  commit(): Map<K, V> {
    for (const [k, c] of this.changes) {
      if (c === GONE) this.base.delete(k);
      else this.base.set(k, c);
    }
    this.changes.clear();
    return this.base;
  }
}
