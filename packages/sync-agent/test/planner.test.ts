import { describe, expect, it } from 'vitest';
import { sha256Hex, type ManifestEntry } from '@workspace-sync/shared';
import { checkDeleteGuard, planSync, toManifestEntry, type HashedEntry, type RemoteObject } from '../src/planner.js';

const file = (path: string, content: string, mode = 0o644, mtimeMs = 1000): HashedEntry =>
  ({ type: 'file', path, size: content.length, mtimeMs, mode, sha256: sha256Hex(content) });
const link = (path: string, target: string): HashedEntry => ({ type: 'symlink', path, target, mtimeMs: 1000, sha256: sha256Hex(target) });
const remoteOf = (e: HashedEntry, etag = `etag-${e.path}`): RemoteObject =>
  ({ path: e.path, type: e.type, sha256: e.sha256, etag, size: e.type === 'file' ? e.size : e.target.length });
const map = <T extends { path: string }>(xs: T[]) => new Map(xs.map((x) => [x.path, x]));
const committedOf = (xs: HashedEntry[]) => new Map<string, ManifestEntry>(xs.map((e) => [e.path, toManifestEntry(e, `etag-${e.path}`)]));

describe('planSync', () => {
  it('uploads everything and publishes when the remote is empty', () => {
    const local = [file('a.js', 'a'), link('l', 'a.js')];
    const plan = planSync(map(local), new Map(), undefined);
    expect(plan.uploads.map((e) => e.path).sort()).toEqual(['a.js', 'l']);
    expect(plan.uploadBytes).toBe(1 + 4);
    expect(plan.manifestChanged).toBe(true);
  });

  it('does nothing when the committed manifest already describes the snapshot', () => {
    const local = [file('a.js', 'a'), file('b/c.js', 'c', 0o755), link('l', 'a.js')];
    const plan = planSync(map(local), map(local.map((e) => remoteOf(e))), committedOf(local));
    expect(plan).toMatchObject({ uploads: [], copies: [], deletes: [], manifestChanged: false });
    expect(plan.unchanged).toHaveLength(3);
  });

  it('turns a rename into a server-side copy plus a delete', () => {
    const before = file('old/name.bin', 'payload');
    const after = file('new/name.bin', 'payload');
    const plan = planSync(map([after]), map([remoteOf(before)]), committedOf([before]));
    expect(plan.copies).toEqual([{ from: 'old/name.bin', entry: after }]);
    expect(plan.uploads).toEqual([]);
    expect(plan.deletes).toEqual(['old/name.bin']);
    expect(plan.copyBytes).toBe(7);
  });

  it('uploads empty files instead of copying them', () => {
    const plan = planSync(map([file('e2', '')]), map([remoteOf(file('e1', ''))]), undefined);
    expect(plan.copies).toEqual([]);
    expect(plan.uploads.map((e) => e.path)).toEqual(['e2']);
  });

  it('re-publishes the manifest for a mode or mtime change without transferring bytes', () => {
    const old = file('run.sh', '#!/bin/sh', 0o644);
    const now = file('run.sh', '#!/bin/sh', 0o755);
    const plan = planSync(map([now]), map([remoteOf(old)]), committedOf([old]));
    expect(plan.uploads).toEqual([]);
    expect(plan.manifestChanged).toBe(true);
    const touched = file('run.sh', '#!/bin/sh', 0o644, 2000);
    expect(planSync(map([touched]), map([remoteOf(old)]), committedOf([old])).manifestChanged).toBe(true);
  });

  it('uploads a same-size change and a file that became a symlink', () => {
    const old = [file('a', 'xxxx'), file('b', 'target')];
    const now = [file('a', 'yyyy'), link('b', 'target')];
    const plan = planSync(map(now), map(old.map((e) => remoteOf(e))), committedOf(old));
    expect(plan.uploads.map((e) => e.path).sort()).toEqual(['a', 'b']);
  });

  it('never trusts objects of unknown content', () => {
    const unknown: RemoteObject = { path: 'a', type: 'file', sha256: 'unknown:etag', etag: 'etag', size: 1 };
    const plan = planSync(map([file('a', 'a')]), map([unknown]), undefined);
    expect(plan.uploads.map((e) => e.path)).toEqual(['a']);
  });

  it('deletes objects that are gone locally, sorted', () => {
    const old = [file('z', 'z'), file('a', 'a'), file('m', 'm')];
    const plan = planSync(map([old[2]!]), map(old.map((e) => remoteOf(e))), committedOf(old));
    expect(plan.deletes).toEqual(['a', 'z']);
    expect(plan.manifestChanged).toBe(true);
  });
});

describe('checkDeleteGuard', () => {
  it('allows small deletes and refuses more than half of a workspace by default', () => {
    expect(() => checkDeleteGuard('w', 10, 12, { maxDelete: undefined, force: false })).not.toThrow();
    expect(() => checkDeleteGuard('w', 11, 12, { maxDelete: undefined, force: false })).toThrow(/refusing to delete 11 of 12/);
    expect(() => checkDeleteGuard('w', 40, 100, { maxDelete: undefined, force: false })).not.toThrow();
  });

  it('uses --max-delete when given, and --force overrides both', () => {
    expect(() => checkDeleteGuard('w', 3, 100, { maxDelete: 2, force: false })).toThrow(/--max-delete is 2/);
    expect(() => checkDeleteGuard('w', 90, 100, { maxDelete: 90, force: false })).not.toThrow();
    expect(() => checkDeleteGuard('w', 99, 100, { maxDelete: 0, force: true })).not.toThrow();
  });

  it('throws a coded error with a hint', () => {
    try {
      checkDeleteGuard('w', 50, 60, { maxDelete: undefined, force: false });
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: 'DELETE_LIMIT', hint: expect.stringContaining('--dry-run') });
    }
  });
});
