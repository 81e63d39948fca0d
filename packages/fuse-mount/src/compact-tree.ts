/**
 * A decoded directory held as columns instead of one object per entry: names in an array, numbers
 * in one Float64Array, every sha256 as 32 raw bytes in one Buffer, pack names by index into the
 * directory's own table. About 110 bytes an entry instead of about 240 (an object with a boxed
 * mtime, a 64-character hex string and its name): the mount keeps every directory in use, so this
 * is most of its memory per file. Entries are materialized (`at`, `find`) only when looked up or
 * listed, and nothing keeps them.
 */
import { compareUtf8, type TreeEntry } from '@workspace-sync/shared';

const FILE = 0;
const DIR = 1;
const SYMLINK = 2;
/** Numbers per entry: file [size, mtimeMs, offset], directory [offset, changedAtMs, length], symlink [0, mtimeMs, 0]. */
const STRIDE = 3;
const SHA_BYTES = 32;

export class CompactTree {
  readonly length: number;
  private readonly names: string[];
  private readonly kinds: Uint8Array;
  private readonly modes: Uint16Array;
  /** Index into `packNames` (a file's data pack, a directory's tree pack); -1: none. */
  private readonly packs: Int32Array;
  private readonly nums: Float64Array;
  private readonly shas: Buffer;
  private readonly packNames: string[];
  /** What few entries have besides: chunk hashes of large files, symlink targets, a directory's counts. */
  private readonly extra: Map<number, readonly string[] | string | readonly [files: number, bytes: number]>;

  /** `entries` must be sorted by name in UTF-8 byte order (format.ts checks that when decoding). */
  constructor(entries: readonly TreeEntry[]) {
    const n = entries.length;
    this.length = n;
    this.names = new Array<string>(n);
    this.kinds = new Uint8Array(n);
    this.modes = new Uint16Array(n);
    this.packs = new Int32Array(n).fill(-1);
    this.nums = new Float64Array(n * STRIDE);
    this.shas = Buffer.alloc(n * SHA_BYTES);
    this.packNames = [];
    this.extra = new Map();
    const packIndex = new Map<string, number>();
    const indexOf = (pack: string) => {
      let i = packIndex.get(pack);
      if (i === undefined) { i = this.packNames.push(pack) - 1; packIndex.set(pack, i); }
      return i;
    };
    entries.forEach((e, i) => {
      this.names[i] = e.name;
      const at = i * STRIDE;
      switch (e.kind) {
        case 'file':
          this.kinds[i] = FILE;
          this.modes[i] = e.mode;
          if (e.pack !== undefined) this.packs[i] = indexOf(e.pack);
          this.nums[at] = e.size;
          this.nums[at + 1] = e.mtimeMs;
          this.nums[at + 2] = e.offset;
          this.shas.write(e.sha256, i * SHA_BYTES, SHA_BYTES, 'hex');
          if (e.chunks) this.extra.set(i, e.chunks);
          break;
        case 'dir':
          this.kinds[i] = DIR;
          this.packs[i] = indexOf(e.ref[0]);
          this.nums[at] = e.ref[1];
          this.nums[at + 1] = e.changedAtMs;
          this.nums[at + 2] = e.ref[2];
          this.shas.write(e.ref[3], i * SHA_BYTES, SHA_BYTES, 'hex');
          this.extra.set(i, [e.files, e.bytes]);
          break;
        case 'symlink':
          this.kinds[i] = SYMLINK;
          this.nums[at + 1] = e.mtimeMs;
          this.extra.set(i, e.target);
          break;
      }
    });
  }

  /**
   * Bytes this directory holds, roughly (what the tree store's budget counts), never less: strings
   * as two bytes a character (V8 keeps non-Latin-1 names that way), and every chunk hash of a large
   * file as the 64-character string it is.
   */
  get bytes(): number {
    let total = 160 + this.length * (8 + 1 + 2 + 4 + STRIDE * 8 + SHA_BYTES);
    for (const name of this.names) total += 24 + name.length * 2;
    for (const x of this.extra.values()) total += typeof x === 'string' ? 24 + x.length * 2 : 32 + x.length * 96;
    return total;
  }

  /** Entry `i` in name order. */
  at(i: number): TreeEntry {
    const name = this.names[i]!;
    const at = i * STRIDE;
    const sha256 = this.shas.toString('hex', i * SHA_BYTES, (i + 1) * SHA_BYTES);
    switch (this.kinds[i]) {
      case FILE: {
        const pack = this.packs[i]!;
        return {
          name, kind: 'file', size: this.nums[at]!, mtimeMs: this.nums[at + 1]!, mode: this.modes[i]!, sha256,
          pack: pack < 0 ? undefined : this.packNames[pack], offset: this.nums[at + 2]!, chunks: this.extra.get(i) as readonly string[] | undefined,
        };
      }
      case DIR: {
        const [files, bytes] = this.extra.get(i) as readonly [number, number];
        return {
          name, kind: 'dir', ref: [this.packNames[this.packs[i]!]!, this.nums[at]!, this.nums[at + 2]!, sha256], changedAtMs: this.nums[at + 1]!, files, bytes,
        };
      }
      default:
        return { name, kind: 'symlink', target: this.extra.get(i) as string, mtimeMs: this.nums[at + 1]! };
    }
  }

  /** Name of entry `i`; `kindAt`, `modeAt`, `sizeAt` and `mtimeAt` read its other columns without building an entry (a listing). */
  nameAt(i: number): string {
    return this.names[i]!;
  }

  kindAt(i: number): TreeEntry['kind'] {
    const k = this.kinds[i];
    return k === FILE ? 'file' : k === DIR ? 'dir' : 'symlink';
  }

  /** Permission bits of a file (0 for the others). */
  modeAt(i: number): number {
    return this.modes[i]!;
  }

  /** A file's size, a symlink's target length in bytes; 0 for a directory. */
  sizeAt(i: number): number {
    switch (this.kinds[i]) {
      case FILE: return this.nums[i * STRIDE]!;
      case SYMLINK: return Buffer.byteLength(this.extra.get(i) as string);
      default: return 0;
    }
  }

  /** A file's or symlink's mtime, a directory's time of last change. */
  mtimeAt(i: number): number {
    return this.nums[i * STRIDE + 1]!;
  }

  /** The entry called `name` (binary search in UTF-8 byte order). */
  find(name: string): TreeEntry | undefined {
    let lo = 0;
    let hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareUtf8(this.names[mid]!, name);
      if (c === 0) return this.at(mid);
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Every entry, in name order. */
  entries(): TreeEntry[] {
    return Array.from({ length: this.length }, (_, i) => this.at(i));
  }
}
