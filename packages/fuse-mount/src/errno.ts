/**
 * The one place that knows kernel error numbers. The core answers expected file-system outcomes
 * (no such entry, read-only) with these constants and throws SyncError for remote failures;
 * `errnoFor` turns whatever was thrown into the errno the kernel gets. Values are negative, as
 * fuse-native expects, and Linux's.
 */
import { errorProperties } from '@workspace-sync/shared';

export const ENOENT = -2;
export const EIO = -5;
export const EBADF = -9;
export const EACCES = -13;
export const ENOTDIR = -20;
export const EISDIR = -21;
export const EINVAL = -22;
export const EROFS = -30;
export const ESTALE = -116;

/** A negative number is an errno; core calls return it in place of a value. */
export function isErrno(value: unknown): value is number {
  return typeof value === 'number' && value < 0;
}

export function errnoFor(err: unknown): number {
  // The code's properties (shared/errors.ts) name the errno; everything else is an I/O error for
  // the reader, never ENOENT: a file that exists must not look deleted because a local cache file
  // vanished or S3 did not answer.
  switch (errorProperties(err)?.errno) {
    case 'EACCES':
      return EACCES;
    case 'ESTALE':
      return ESTALE;
    default:
      return EIO;
  }
}
