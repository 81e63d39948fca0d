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
import { createHash } from 'node:crypto';

export const ROOT_INO = 1;

export type InodeKind = 'file' | 'dir' | 'symlink';

export function inodeOf(namespace: string, path: string, kind: InodeKind): number {
  const ino = createHash('md5').update(`${kind}\0${namespace}\0${path}`).digest().readUInt32LE(0);
  // 0 is "no inode" and 1 the mount root.
  return ino < 2 ? ino + 2 : ino;
}
