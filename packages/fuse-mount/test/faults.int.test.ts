/**
 * Never a hang, always a clear answer, on a real mount: an S3 endpoint that accepts connections and
 * never answers (a proxy switched to silence), start-up against a silent or down endpoint with and
 * without a warm cache, and SIGTERM in the middle of all that.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '@workspace-sync/shared';
import { startTestS3, writeCommitFixture, type EmbeddedS3 } from '@workspace-sync/testkit';
import {
  eventually, forceUnmount, healthPortOf, isMounted, releaseS3, removeDir, runMountCli, sh, spawnMount, startSwitchableProxy, storeFor, tempDir,
  type MountProcess, type SwitchableProxy,
} from './helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
let silent: Server;
let silentEndpoint: string;
const mounts: MountProcess[] = [];
const proxies: SwitchableProxy[] = [];
const dirs: string[] = [];
let n = 0;

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
  // Accepts every connection and never says a word.
  silent = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
  silentEndpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const m of mounts) {
    if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
    forceUnmount(m.mountpoint);
  }
  for (const p of proxies) await p.close();
  silent.closeAllConnections?.();
  silent.close();
  await releaseS3(s3);
  for (const d of dirs) removeDir(d);
});

function dir(label: string): string {
  const d = tempDir(label);
  dirs.push(d);
  return d;
}

async function health(m: MountProcess): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${healthPortOf(m)}/healthz`);
  return ((await res.json()) as { status: string }).status;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await fn();
  return { value, ms: Date.now() - t0 };
}

const args = (prefix: string, cache: string) => ['--prefix', prefix, '--cache-dir', cache, '--poll-interval', '500ms', '--log-level', 'info', '--health-port', '0'];

describe('an S3 endpoint that accepts connections and never answers', () => {
  it('fails an uncached read with EIO within 5 s, turns healthz degraded, keeps serving what is cached, and stops on SIGTERM', async () => {
    const prefix = `f${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [
      { path: 'cached.txt', content: 'cached\n' }, { path: 'deep/a/b/uncached.txt', content: 'never read\n' },
    ]);
    const proxy = await startSwitchableProxy(s3.endpoint);
    proxies.push(proxy);
    const mnt = dir('mnt');
    const m = await spawnMount(mnt, [...args(prefix, dir('cache')), '--prefetch-concurrency', '0'], { ...s3.env, S3_ENDPOINT: proxy.endpoint });
    mounts.push(m);
    expect((await sh(`cat ${mnt}/ws/cached.txt && ls -R ${mnt}/ws > /dev/null && echo listed`)).stdout).toBe('cached\nlisted\n');
    expect(await health(m)).toBe('ok');

    proxy.mode = 'silent';
    const read = await timed(() => sh(`cat ${mnt}/ws/deep/a/b/uncached.txt`, 20_000));
    expect(read.value.code).not.toBe(0);
    expect(read.value.stderr).toContain('Input/output error');
    console.log(`uncached read against a silent endpoint: EIO after ${read.ms} ms`);
    expect(read.ms).toBeLessThan(5_000);
    expect(await eventually(async () => (await health(m)) === 'degraded', 6_000)).toBe(true);
    // Cached content and loaded metadata are still served.
    const cached = await timed(() => sh(`cat ${mnt}/ws/cached.txt && ls ${mnt}/ws/deep/a/b`, 20_000));
    expect(cached.value.stdout).toBe('cached\nuncached.txt\n');

    // SIGTERM while S3 is silent (and a reader may still be waiting): gone within a few seconds.
    const reader = sh(`cat ${mnt}/ws/deep/a/b/uncached.txt`, 20_000).catch(() => undefined);
    const stop = await timed(async () => { m.proc.kill('SIGTERM'); return m.exited; });
    await reader;
    expect(stop.value).toBe(0);
    console.log(`SIGTERM during an outage: exited after ${stop.ms} ms`);
    expect(stop.ms).toBeLessThan(8_000);
    expect(isMounted(mnt)).toBe(false);
  });
});

describe('start-up while S3 does not answer', () => {
  it('without a warm cache: exits with a clear error within 30 s, nothing mounted', async () => {
    for (const endpoint of [silentEndpoint, 'http://127.0.0.1:9']) {
      const mnt = dir('mnt');
      const r = await runMountCli([mnt, ...args(`f${++n}/`, dir('cache'))], { ...s3.env, S3_ENDPOINT: endpoint });
      expect(r.code).toBe(3);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/error: .*(cannot reach S3 endpoint|S3 did not answer)/);
      console.log(`start-up against ${endpoint === silentEndpoint ? 'a silent' : 'a down'} endpoint, cold: exit 3 after ${r.ms} ms`);
      expect(r.ms).toBeLessThan(30_000);
      expect(isMounted(mnt)).toBe(false);
    }
  });

  it('with a warm cache: serves the last commit it saw, degraded, for a silent and for a down endpoint', async () => {
    const prefix = `f${++n}/`;
    await writeCommitFixture(store, prefix, 'ws', [{ path: 'src/app.js', content: 'console.log(1);\n' }, { path: 'README', content: 'readme\n' }]);
    const cache = dir('cache');
    const warm = await spawnMount(dir('mnt'), args(prefix, cache), s3.env);
    mounts.push(warm);
    expect((await sh(`cat ${warm.mountpoint}/ws/src/app.js`)).stdout).toBe('console.log(1);\n');
    warm.proc.kill('SIGTERM');
    expect(await warm.exited).toBe(0);

    for (const endpoint of [silentEndpoint, 'http://127.0.0.1:9']) {
      const mnt = dir('mnt');
      const t0 = Date.now();
      const m = await spawnMount(mnt, args(prefix, cache), { ...s3.env, S3_ENDPOINT: endpoint });
      mounts.push(m);
      console.log(`start-up against ${endpoint === silentEndpoint ? 'a silent' : 'a down'} endpoint, warm: ready after ${Date.now() - t0} ms`);
      expect(m.stderr()).toContain('serving the workspaces cached by an earlier run');
      expect((await sh(`cat ${mnt}/ws/src/app.js && ls ${mnt}/ws`)).stdout).toBe('console.log(1);\nREADME\nsrc\n');
      // Never read before: EIO, promptly.
      const uncached = await timed(() => sh(`cat ${mnt}/ws/README`, 20_000));
      expect(uncached.value.stderr).toContain('Input/output error');
      expect(uncached.ms).toBeLessThan(5_000);
      expect(await health(m)).toBe('degraded');
      const stop = await timed(async () => { m.proc.kill('SIGTERM'); return m.exited; });
      expect(stop.value).toBe(0);
      expect(stop.ms).toBeLessThan(8_000);
    }
  });

  it('stops at once on SIGTERM during start-up, leaving nothing mounted', async () => {
    const mnt = dir('mnt');
    let child: ChildProcess | undefined;
    const p = runMountCli([mnt, ...args(`f${++n}/`, dir('cache'))], { ...s3.env, S3_ENDPOINT: silentEndpoint }, 60_000, (c) => { child = c; });
    await new Promise((r) => setTimeout(r, 1_500));
    child!.kill('SIGTERM');
    const r = await p;
    console.log(`SIGTERM during start-up: exited ${r.code} after ${r.ms} ms in all`);
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(6_000);
    expect(r.stderr).toContain('start-up interrupted');
    expect(isMounted(mnt)).toBe(false);
  });
});
