/**
 * Inode numbers derived from what a node is, not from a table: a hash of (namespace, path, kind),
 * where the namespace is the workspace (or one generation of it under `.snapshots/`). The same
 * path keeps its number across generations and restarts, and nothing grows with the number of
 * paths ever seen.
 *
 * Width: fuse-native hands st_ino to libfuse as one 32-bit integer (its stat array is a
 * Uint32Array), so 32 bits is all a number can carry, not the 53 a JS number could. With n live
 * nodes the expected number of colliding pairs is n²/2³³: about 1 in a 10,000-file workspace
 * mounted 860 times, ~1.2 among 100,000 nodes. A collision is harmless here: the kernel keys
 * its inodes by libfuse's node ids, not by st_ino; files report nlink 1, so cp, tar, rsync and du
 * never take two of them for hard links; git compares st_ino per path, which stays stable. What
 * remains: `find` warns of a loop if a directory collides with one of its own ancestors (odds
 * depth/2³² per directory), and `diff` skips comparing two paths that collide *and* agree in
 * size, mtime and mode. Snapshots use their own namespace, so a path and its older version never
 * share a number (diff -r of two generations compares every file).
 */
export const ROOT_INO = 1;

export type InodeKind = 'file' | 'dir' | 'symlink';

const KIND_SEED: Record<InodeKind, number> = { file: 0x9e3779b1, dir: 0x85ebca77, symlink: 0xc2b2ae3d };

/**
 * cyrb53's mixing (two 32-bit lanes over UTF-16 code units, murmur3-style finalizers), cut to 32
 * bits: as uniform as the collision figures above assume (test/inode.test.ts), and cheap: a `find`
 * over 100,000 entries asks for every one, and an md5 object per call was a seventh of the mount's
 * CPU there (20 times this).
 */
export function inodeOf(namespace: string, path: string, kind: InodeKind): number {
  return inodeOfChild(namespace, '', path, kind);
}

/**
 * `inodeOf(namespace, dir ? `${dir}/${name}` : name, kind)` without building the path: a listing
 * numbers every entry of a directory.
 */
export function inodeOfChild(namespace: string, dir: string, name: string, kind: InodeKind): number {
  let h1 = KIND_SEED[kind];
  let h2 = 0x41c6ce57 ^ h1;
  // namespace, a NUL (no name contains one, so pairs never run together), path.
  const a = namespace.length;
  const b = dir === '' ? a + 1 : a + 1 + dir.length + 1;
  const length = b + name.length;
  for (let i = 0; i < length; i++) {
    const code = i < a ? namespace.charCodeAt(i)
      : i === a ? 0
        : i < b ? (i === b - 1 ? 0x2f : dir.charCodeAt(i - a - 1))
          : name.charCodeAt(i - b);
    h1 = Math.imul(h1 ^ code, 2654435761);
    h2 = Math.imul(h2 ^ code, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const ino = (h1 ^ h2) >>> 0;
  // 0 is "no inode" and 1 the mount root.
  return ino < 2 ? ino + 2 : ino;
}
