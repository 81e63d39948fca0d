import { afterAll, describe, expect, it } from 'vitest';
import { encodeManifest, isSyncError, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest } from '@workspace-sync/shared';
import { ManifestDecoder, decodeInline } from '../src/manifest-decoder.js';
import { gzipSync } from 'node:zlib';

const decoder = new ManifestDecoder();
afterAll(() => decoder.close());

function manifest(files: number): Manifest {
  return {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, workspace: 'ws', generation: 3, createdAt: '2024-01-01T00:00:00.000Z',
    writer: { host: 'h', agent: 'a' },
    entries: Array.from({ length: files }, (_, i) => ({
      path: `dir${i % 10}/f${i}.ts`, type: 'file' as const, size: i, mtimeMs: 1_000 + i, mode: 0o644, sha256: 'b'.repeat(64), etag: `e${i}`,
    })),
  };
}

describe('ManifestDecoder', () => {
  it('decodes large manifests in a worker to the same result as inline', async () => {
    const body = encodeManifest(manifest(3_000));
    expect(body.length).toBeGreaterThan(16 * 1024);
    const viaWorker = await decoder.decode(body, 'big');
    expect(viaWorker).toEqual(await decodeInline(body, 'big'));
    expect(viaWorker.entries).toHaveLength(3_000);
    // Small ones are decoded on this thread.
    expect((await decoder.decode(encodeManifest(manifest(3)), 'small')).entries).toHaveLength(3);
  });

  it('reports an invalid manifest as the same coded error, from the worker too', async () => {
    const big = manifest(2_000);
    const bad = gzipSync(Buffer.from(JSON.stringify({ ...big, entries: [...big.entries, { ...big.entries[0]!, path: '../escape' }] })));
    expect(bad.length).toBeGreaterThan(16 * 1024);
    const err = await decoder.decode(bad, 's3://b/m').catch((e: unknown) => e);
    expect(isSyncError(err, 'MANIFEST_INVALID')).toBe(true);
    expect((err as Error).message).toContain('manifest s3://b/m is invalid at entries.2000.path');
    expect((err as { hint?: string }).hint).toContain('push the workspace again');
  });
});
