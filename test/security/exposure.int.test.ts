/**
 * What the processes expose on the host: /healthz and /metrics listen on loopback unless told
 * otherwise and name workspaces, never their files; the FUSE mount's allow_other, uid/gid and
 * default_permissions decide which local users may read what, as docs/security.md says.
 */
import { chmodSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeManifest, manifestKey, MANIFEST_FORMAT, MANIFEST_VERSION, objectKey, sha256Hex, type ManifestEntry, type ObjectStore,
} from '@workspace-sync/shared';
import { startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import { storeFor } from '../helpers.js';
import { runAs, scratch, startMountCli, startWatchCli, waitFor, type Scratch } from './helpers.js';

const NOBODY = 65534;
const OTHER = 65533;
/** An address of this host that is not loopback (connections to it never leave the host), if it has one. */
const external = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

let s3: EmbeddedS3;
let t: Scratch;

beforeAll(async () => {
  s3 = await startTestS3();
  t = scratch('exposure');
  // Other users must reach the mount points: only the mount may stand in their way.
  chmodSync(t.base, 0o755);
  t.write('app', {
    'public.txt': { content: 'anyone may read this\n', mode: 0o644 },
    'private.txt': { content: 'owner only\n', mode: 0o600 },
    'run.sh': { content: '#!/bin/sh\necho ran\n', mode: 0o755 },
    'src/secret-plan.ts': 'export const plan = 1;\n',
  });
  const r = await t.agent(['push', 'app'], s3.env);
  expect(r.code, r.stderr).toBe(0);
  // The mount shows the modes its workspace's tree states; a format-v1 manifest, which every mount
  // reads, states them exactly however the mount's tree is built from the newer format.
  await publishV1(storeFor(s3), 'modes', [
    ['public.txt', 'anyone may read this\n', 0o644], ['private.txt', 'owner only\n', 0o600], ['run.sh', '#!/bin/sh\necho ran\n', 0o755],
  ]);
});

async function publishV1(store: ObjectStore, workspace: string, files: Array<[string, string, number]>): Promise<void> {
  const entries: ManifestEntry[] = [];
  for (const [rel, content, mode] of files) {
    const { etag } = await store.put(objectKey('', workspace, rel), Buffer.from(content));
    entries.push({ path: rel, type: 'file', size: Buffer.byteLength(content), mtimeMs: 1_700_000_000_000, mode, sha256: sha256Hex(content), etag });
  }
  await store.put(manifestKey('', workspace), encodeManifest({
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, workspace, generation: 1, createdAt: new Date().toISOString(),
    writer: { host: 'test', agent: 'exposure-test' }, entries,
  }));
}

afterAll(async () => {
  await s3?.stop();
  t?.remove();
});

async function reachable(host: string, port: number): Promise<boolean> {
  return fetch(`http://${host}:${port}/healthz`).then(() => true, () => false);
}

describe('/healthz and /metrics', () => {
  it('listen on loopback by default and name workspaces, not files', async () => {
    const w = await startWatchCli(t, s3.env);
    try {
      const port = w.logs.find((l) => l.msg === 'watching')!.healthPort as number;
      expect(w.logs.find((l) => l.msg === 'watching')!.healthAddress).toBe('127.0.0.1');
      expect(await reachable('127.0.0.1', port)).toBe(true);
      if (external) expect(await reachable(external, port)).toBe(false);
      const health = await waitFor(async () => { const h = await w.health(); return h.status === 'ok' && h; }, 'the reconcile');
      expect(JSON.stringify(health)).toMatch(/"workspace":"app"/);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/sync_agent_syncs_total\{workspace="app",kind="reconcile"\} 1/);
      for (const text of [JSON.stringify(health), metrics]) expect(text).not.toMatch(/public\.txt|private\.txt|secret-plan|run\.sh/);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });

  it.skipIf(!external)('listen on every interface with --health-address 0.0.0.0 (what container probes need)', async () => {
    const w = await startWatchCli(t, s3.env, ['--health-address', '0.0.0.0']);
    try {
      const port = w.logs.find((l) => l.msg === 'watching')!.healthPort as number;
      expect(await reachable(external!, port)).toBe(true);
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });

  it('the mount\'s listen on loopback by default too', async () => {
    const mount = await startMountCli(t.base, s3.env, ['--health-port', '0']);
    try {
      const port = (mount.logs().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; healthPort?: number })
        .find((l) => l.msg === 'mounted'))?.healthPort;
      expect(port).toBeGreaterThan(0);
      expect(await reachable('127.0.0.1', port!)).toBe(true);
      if (external) expect(await reachable(external, port!)).toBe(false);
    } finally {
      await mount.stop();
    }
  });
});

describe('who may read the FUSE mount', () => {
  const cat = (uid: number, mnt: string, rel: string) => runAs(uid, uid, ['cat', path.join(mnt, 'modes', rel)]);

  it('without --allow-other, no other user may even look (the kernel refuses before the mount sees it)', async () => {
    const m = await startMountCli(t.base, s3.env);
    try {
      expect((await cat(0, m.mnt, 'public.txt')).stdout).toBe('anyone may read this\n');
      const r = await cat(NOBODY, m.mnt, 'public.txt');
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Permission denied/);
    } finally {
      await m.stop();
    }
  });

  it('keeps its disk cache private: what --allow-other shows, the cache does not hand out', async () => {
    const m = await startMountCli(t.base, s3.env, ['--allow-other']);
    try {
      expect((await cat(NOBODY, m.mnt, 'private.txt')).stdout).toBe('owner only\n');
      expect(statSync(m.cacheDir).mode & 0o777).toBe(0o700);
      const r = await runAs(NOBODY, NOBODY, ['find', m.cacheDir, '-type', 'f']);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/Permission denied/);
    } finally {
      await m.stop();
    }
  });

  it('with --allow-other alone, every local user reads every file: mode bits are shown, not enforced', async () => {
    const m = await startMountCli(t.base, s3.env, ['--allow-other']);
    try {
      expect((await cat(NOBODY, m.mnt, 'private.txt')).stdout).toBe('owner only\n');
      expect((await cat(NOBODY, m.mnt, 'public.txt')).stdout).toBe('anyone may read this\n');
    } finally {
      await m.stop();
    }
  });

  it('with --default-permissions the kernel enforces the mode bits for the --uid/--gid the mount shows', async () => {
    const asRoot = await startMountCli(t.base, s3.env, ['--allow-other', '--default-permissions']);
    try {
      expect((await cat(NOBODY, asRoot.mnt, 'public.txt')).stdout).toBe('anyone may read this\n');
      const denied = await cat(NOBODY, asRoot.mnt, 'private.txt');
      expect(denied.code).not.toBe(0);
      expect(denied.stderr).toMatch(/Permission denied/);
      expect((await cat(0, asRoot.mnt, 'private.txt')).stdout).toBe('owner only\n');
    } finally {
      await asRoot.stop();
    }
    const asNobody = await startMountCli(t.base, s3.env, ['--allow-other', '--default-permissions', '--uid', String(NOBODY), '--gid', String(NOBODY)]);
    try {
      expect((await cat(NOBODY, asNobody.mnt, 'private.txt')).stdout).toBe('owner only\n');
      const other = await cat(OTHER, asNobody.mnt, 'private.txt');
      expect(other.code).not.toBe(0);
      expect(other.stderr).toMatch(/Permission denied/);
      expect((await runAs(OTHER, OTHER, [path.join(asNobody.mnt, 'modes', 'run.sh')])).stdout).toBe('ran\n');
    } finally {
      await asNobody.stop();
    }
  });
});
