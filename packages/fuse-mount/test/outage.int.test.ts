/**
 * The content cache on a real mount: eviction at --cache-max-size, and serving from cache while
 * S3 is stopped (then recovering by itself once it is back).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '@workspace-sync/shared';
import { startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import {
  eventually, forceUnmount, healthPortOf, isMounted, publish, releaseS3, removeDir, sh, spawnMount, storeFor, tempDir, type FixtureEntry, type MountProcess,
} from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
const mounts: MountProcess[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
});

afterAll(async () => {
  for (const m of mounts) {
    if (m.proc.exitCode === null) m.proc.kill('SIGKILL');
    forceUnmount(m.mountpoint);
  }
  await releaseS3(s3);
  for (const d of dirs) removeDir(d);
});

async function startMount(workspace: string, extra: string[]): Promise<{ mnt: string; cache: string; m: MountProcess }> {
  const mnt = tempDir('mnt');
  const cache = tempDir('cache');
  dirs.push(mnt, cache);
  const m = await spawnMount(mnt, ['--cache-dir', cache, '--poll-interval', '500ms', '--log-level', 'info', ...extra], s3.env);
  mounts.push(m);
  return { mnt: `${mnt}/${workspace}`, cache, m };
}

function blobBytes(cache: string): number {
  const root = path.join(cache, 'v1', 'blobs');
  let total = 0;
  for (const fan of readdirSync(root)) for (const f of readdirSync(path.join(root, fan))) total += statSync(path.join(root, fan, f)).size;
  return total;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('content cache on a real mount', () => {
  it('never grows past --cache-max-size, evicting as it goes', async () => {
    const files: FixtureEntry[] = Array.from({ length: 24 }, (_, i) => ({ path: `f${i}.bin`, content: randomBytes(40 * 1024) }));
    await publish(store, '', 'evict', files);
    const { mnt, cache, m } = await startMount('evict', ['--cache-max-size', '256K', '--prefetch-concurrency', '0']);
    const sums = await sh(`cd ${mnt} && sha256sum f*.bin`);
    expect(sums.code).toBe(0);
    for (const f of files) expect(sums.stdout).toContain(`${sha((f as { content: Buffer }).content)}  ${f.path}`);
    // 24 × 40 KiB went through a 256 KiB cache.
    const used = blobBytes(cache);
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(256 * 1024);
    m.proc.kill('SIGTERM');
    expect(await m.exited).toBe(0);
  });

  it('serves cached content and metadata with S3 stopped, fails uncached reads with EIO, and recovers', async () => {
    const small: FixtureEntry[] = Array.from({ length: 30 }, (_, i) => ({ path: `src/m${i}.txt`, content: randomBytes(2000 + i) }));
    const big = randomBytes(3 * 1024 * 1024);
    await publish(store, '', 'offline', [...small, { path: 'big.bin', content: big }]);
    const { mnt, m } = await startMount('offline', ['--health-port', '0']);
    const health = `http://127.0.0.1:${healthPortOf(m)}`;
    // Opening one file warms the workspace: the small files are prefetched, big.bin is not.
    expect((await sh(`head -c 10 ${mnt}/src/m0.txt | wc -c`)).stdout.trim()).toBe('10');
    const warmed = await eventually(async () => {
      const text = await (await fetch(`${health}/metrics`)).text();
      return Number(/^fuse_mount_prefetched_total (\d+)/m.exec(text)?.[1] ?? 0) >= small.length - 1;
    }, 30_000);
    expect(warmed).toBe(true);

    await s3.stop();
    const listing = await sh(`ls -R ${mnt} | wc -l`);
    expect(listing.code).toBe(0);
    const sums = await sh(`cd ${mnt} && sha256sum src/*.txt`);
    expect(sums.code).toBe(0);
    for (const f of small) expect(sums.stdout).toContain(`${sha((f as { content: Buffer }).content)}  ${f.path}`);
    // Never read and too big to prefetch: EIO, promptly (the sh timeout fails the test if it hangs).
    const uncached = await sh(`cat ${mnt}/big.bin > /dev/null`, 20_000);
    expect(uncached.code).not.toBe(0);
    expect(uncached.stderr).toContain('Input/output error');
    const degraded = await eventually(async () => {
      const res = await fetch(`${health}/healthz`);
      const body = (await res.json()) as { status: string };
      return res.status === 200 && body.status === 'degraded';
    }, 10_000);
    expect(degraded).toBe(true);

    await s3.start();
    const recovered = await eventually(async () => (await sh(`sha256sum ${mnt}/big.bin`)).stdout.startsWith(sha(big)), 20_000, 250);
    expect(recovered).toBe(true);
    expect(((await (await fetch(`${health}/healthz`)).json()) as { status: string }).status).toBe('ok');
    m.proc.kill('SIGTERM');
    expect(await m.exited).toBe(0);
    expect(isMounted(path.dirname(mnt))).toBe(false);
  });
});
