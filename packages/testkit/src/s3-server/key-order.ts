/**
 * Keys in S3's order: UTF-8 byte order, which is code point order. JavaScript compares UTF-16 code
 * units, which differs for characters above U+FFFF (surrogates, 0xD800-0xDFFF) against U+E000-U+FFFF:
 * `compareKeys` corrects exactly that case, without encoding the strings.
 */

export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates sort after U+E000-U+FFFF in code point order.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** A sorted set of keys with the lookups listings need; O(log n) search, O(n) insert (a memmove). */
export class SortedKeys {
  private readonly keys: string[] = [];

  /** Builds from keys in any order. */
  static of(keys: Iterable<string>): SortedKeys {
    const s = new SortedKeys();
    s.keys.push(...keys);
    s.keys.sort(compareKeys);
    return s;
  }

  get size(): number { return this.keys.length; }

  at(i: number): string | undefined { return this.keys[i]; }

  /** Index of the first key >= `k`. */
  lowerBound(k: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.keys[mid]!, k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first key > `k`. */
  upperBound(k: string): number {
    const i = this.lowerBound(k);
    return this.keys[i] === k ? i + 1 : i;
  }

  /** Index of the first key after every key that starts with `prefix`. */
  pastPrefix(prefix: string): number {
    let lo = this.lowerBound(prefix);
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]!.startsWith(prefix)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  add(k: string): void {
    const i = this.lowerBound(k);
    if (this.keys[i] !== k) this.keys.splice(i, 0, k);
  }

  delete(k: string): void {
    const i = this.lowerBound(k);
    if (this.keys[i] === k) this.keys.splice(i, 1);
  }
}
