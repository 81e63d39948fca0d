import { describe, expect, it } from 'vitest';
import { SyncError } from '@workspace-sync/shared';
import { mountOptionFlags } from '../src/mount-options.js';

describe('-o mount options', () => {
  it('maps mount(8) style options onto the flags, comma-separated or repeated', () => {
    expect(mountOptionFlags(['allow_other,uid=1000', 'gid=50', 'default_permissions'], {})).toEqual({
      allowOther: true, uid: '1000', gid: '50', defaultPermissions: true,
    });
  });

  it('accepts what every mount of this tool already is, and lets flags given by name win', () => {
    expect(mountOptionFlags(['ro,nodev,nosuid,noatime'], {})).toEqual({});
    expect(mountOptionFlags(['uid=1000'], { uid: '7' })).toEqual({});
  });

  it('refuses rw and unknown options with a usage error naming them', () => {
    const code = (values: string[]) => {
      try { mountOptionFlags(values, {}); return 'accepted'; } catch (err) { return err instanceof SyncError ? `${err.code}: ${err.message}` : String(err); }
    };
    expect(code(['ro,rw'])).toBe('USAGE: -o rw: fuse-mount mounts read-only; the bucket is written by sync-agent');
    expect(code(['vfs_cache_mode=full'])).toBe('USAGE: -o vfs_cache_mode=full: not a mount option fuse-mount knows');
    expect(code(['uid'])).toMatch(/^USAGE: -o uid: /);
    expect(code(['allow_other=1'])).toMatch(/^USAGE: -o allow_other=1: /);
  });
});
