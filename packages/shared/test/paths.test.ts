import { describe, expect, it } from 'vitest';
import {
  CONTROL_DIR, isSafeRelativePath, isValidWorkspaceName, manifestKey, objectKey, workspaceOfManifestKey, workspacePrefix,
} from '../src/paths.js';

describe('isSafeRelativePath', () => {
  it.each(['a', 'a/b/c', '.hidden', 'a/.b', '...', 'a..b', 'é/日本', 'a b', 'a\\b', '-', 'x'.repeat(255)])('accepts %j', (p) => {
    expect(isSafeRelativePath(p)).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['.', '.'],
    ['..', '..'],
    ['leading ..', '../a'],
    ['trailing ..', 'a/..'],
    ['inner ..', 'a/../b'],
    ['inner .', 'a/./b'],
    ['//', '//'],
    ['empty segment', 'a//b'],
    ['absolute', '/a'],
    ['trailing slash', 'a/'],
    ['NUL', 'a\0b'],
    ['256-byte segment', 'x'.repeat(256)],
    ['256-byte segment of 2-byte chars', 'é'.repeat(128)],
  ])('refuses %s', (_, p) => {
    expect(isSafeRelativePath(p)).toBe(false);
  });

  it('counts bytes, not characters: 127 × é + 1 byte is a 255-byte segment', () => {
    expect(isSafeRelativePath(`${'é'.repeat(127)}x`)).toBe(true);
  });

  it('bounds the whole path at 4096 bytes', () => {
    const seg = 'x'.repeat(255);
    const at4095 = Array.from({ length: 16 }, () => seg).join('/'); // 16 * 255 + 15
    expect(Buffer.byteLength(at4095)).toBe(4095);
    expect(isSafeRelativePath(at4095)).toBe(true);
    expect(isSafeRelativePath(`${at4095}/y`)).toBe(false);
  });
});

describe('isValidWorkspaceName', () => {
  it('is one safe segment that does not start with a dot', () => {
    expect(isValidWorkspaceName('ws-1')).toBe(true);
    expect(isValidWorkspaceName('é')).toBe(true);
    for (const bad of ['', '.', '..', CONTROL_DIR, '.ws', 'a/b', 'a\0', 'x'.repeat(256)]) {
      expect(isValidWorkspaceName(bad), bad).toBe(false);
    }
  });
});

describe('keys', () => {
  it('builds object, prefix and manifest keys', () => {
    expect(workspacePrefix('team/', 'ws')).toBe('team/ws/');
    expect(objectKey('team/', 'ws', 'a/b.txt')).toBe('team/ws/a/b.txt');
    expect(objectKey('', 'ws', 'x')).toBe('ws/x');
    expect(manifestKey('team/', 'ws')).toBe('team/.sync/ws/manifest.json.gz');
  });

  it('finds the workspace of a manifest key and refuses anything else', () => {
    expect(workspaceOfManifestKey('team/', manifestKey('team/', 'ws'))).toBe('ws');
    expect(workspaceOfManifestKey('', manifestKey('', 'ws'))).toBe('ws');
    expect(workspaceOfManifestKey('other/', manifestKey('team/', 'ws'))).toBeUndefined();
    expect(workspaceOfManifestKey('', '.sync/a/b/manifest.json.gz')).toBeUndefined();
    expect(workspaceOfManifestKey('', '.sync/.x/manifest.json.gz')).toBeUndefined();
    expect(workspaceOfManifestKey('', '.sync/ws/manifest.json')).toBeUndefined();
    expect(workspaceOfManifestKey('', 'ws/manifest.json.gz')).toBeUndefined();
  });
});
