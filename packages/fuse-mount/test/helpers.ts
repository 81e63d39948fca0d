/** Fixtures shared by the fuse-mount tests: publishing a workspace the way sync-agent does, and the mount CLI as a child process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  MANIFEST_FORMAT, MANIFEST_VERSION, createLogger, createObjectStore, encodeManifest, manifestKey, objectKey, sha256Hex,
  type Logger, type Manifest, type ManifestEntry, type ObjectStore, type S3Settings,
} from '@workspace-sync/shared';
import type { EmbeddedS3 } from '@workspace-sync/testkit';
import { ContentCache } from '../src/content-cache.js';
import { RemoteStatus } from '../src/remote-status.js';
import { TreeStore } from '../src/tree-store.js';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'fuse-mount.js');

export const quietLogger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** A logger whose JSON lines the test can inspect. */
export function captureLogger(): { logger: Logger; lines: () => Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const out: string[] = [];
  const destination = new Writable({ write(chunk, _enc, cb) { out.push(chunk.toString()); cb(); } });
  const logger = createLogger({ level: 'debug', format: 'json', destination });
  return { logger, lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

/** How an in-process store (or the prefetch worker) reaches the test's server, with its credentials. */
export function settingsFor(s3: EmbeddedS3): S3Settings {
  return {
    endpoint: s3.endpoint, region: s3.env.AWS_REGION ?? 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
    credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! },
  };
}

export function storeFor(s3: EmbeddedS3): ObjectStore {
  return createObjectStore({ ...settingsFor(s3), maxAttempts: 1, requestTimeoutMs: 3_000 });
}

/**
 * Stops the test's server and removes its files. Only the embedded server's directory is the test's own: with
 * S3_BACKEND=rgw, `dir` is the Ceph cluster every test file of the run shares.
 */
export async function releaseS3(s3: EmbeddedS3 | undefined): Promise<void> {
  if (!s3) return;
  await s3.stop();
  if ((process.env.S3_BACKEND ?? 'embedded') === 'embedded') removeDir(s3.dir);
}

export type FixtureEntry =
  | { path: string; content: string | Buffer; mode?: number; mtimeMs?: number }
  | { path: string; symlink: string; mtimeMs?: number };

/** Uploads the objects, then the manifest last, like a push. Returns the manifest. */
export async function publish(store: ObjectStore, prefix: string, workspace: string, files: FixtureEntry[], generation = 1): Promise<Manifest> {
  const entries: ManifestEntry[] = [];
  for (const f of files) {
    const mtimeMs = f.mtimeMs ?? 1_700_000_000_000;
    if ('symlink' in f) {
      const { etag } = await store.put(objectKey(prefix, workspace, f.path), Buffer.from(f.symlink));
      entries.push({ path: f.path, type: 'symlink', target: f.symlink, mtimeMs, etag });
    } else {
      const body = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content);
      const { etag } = await store.put(objectKey(prefix, workspace, f.path), body);
      entries.push({ path: f.path, type: 'file', size: body.length, mtimeMs, mode: f.mode ?? 0o644, sha256: sha256Hex(body), etag });
    }
  }
  const manifest: Manifest = {
    format: MANIFEST_FORMAT, version: MANIFEST_VERSION, workspace, generation, createdAt: new Date().toISOString(),
    writer: { host: 'test', agent: 'fuse-mount-test' }, entries,
  };
  await store.put(manifestKey(prefix, workspace), encodeManifest(manifest));
  return manifest;
}

export function tempDir(label: string): string {
  return mkdtempSync(path.join(tmpdir(), `wsync-${label}-`));
}

export interface MountProcess {
  proc: ChildProcess;
  mountpoint: string;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process ends. */
  exited: Promise<number | string>;
}

/** Spawns the CLI and resolves once it printed its readiness line; rejects if it exits first. */
export async function spawnMount(mountpoint: string, args: string[], env: Record<string, string>): Promise<MountProcess> {
  const proc = spawn(process.execPath, [CLI, mountpoint, ...args], {
    env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const lines: string[] = [];
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (l) => lines.push(l));
  await new Promise<void>((resolve, reject) => {
    rl.once('line', () => resolve());
    void exited.then((code) => reject(new Error(`fuse-mount exited with ${code} before it was ready:\n${err}`)));
  });
  if (lines[0] !== `ready ${mountpoint}`) throw new Error(`unexpected readiness line: ${lines[0]}`);
  return { proc, mountpoint, stderr: () => err, exited };
}

/** The health port a mount started with `--health-port 0` reports in its "mounted" log line. */
export function healthPortOf(m: MountProcess): number {
  for (const line of m.stderr().split('\n')) {
    if (!line.startsWith('{')) continue;
    const rec = JSON.parse(line) as { msg?: string; healthPort?: number };
    if (rec.msg === 'mounted' && rec.healthPort) return rec.healthPort;
  }
  throw new Error(`no health port in the mount's log:\n${m.stderr()}`);
}

/** Lazy-unmounts `mountpoint` if anything is mounted there (cleanup that works even after a crash). */
export function forceUnmount(mountpoint: string): void {
  if (isMounted(mountpoint)) spawnSync('fusermount', ['-uz', mountpoint], { stdio: 'ignore' });
}

export function isMounted(mountpoint: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mountpoint);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs a shell command in a child process (never touch the mount synchronously from a process serving it). */
export function sh(script: string, timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`timed out: ${script}`)); }, timeoutMs);
    p.once('exit', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, stdout, stderr }); });
  });
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** A content cache in a fresh directory and a tree store over it; `close` removes both. */
export async function openTrees(store: ObjectStore, prefix: string, status = new RemoteStatus(), logger: Logger = quietLogger) {
  const dir = tempDir('trees-cache');
  const cache = await ContentCache.open({ dir, maxSize: 64 * 1024 * 1024, maxAge: 0, memSize: 1024 * 1024, logger });
  const trees = new TreeStore({ store, prefix, cache, status, logger });
  return { cache, trees, dir, close: async () => { await cache.close(); removeDir(dir); } };
}

export interface SwitchableProxy {
  endpoint: string;
  /** 'pass': forward to the target; 'silent': accept connections and never answer (open ones go quiet too). */
  mode: 'pass' | 'silent';
  close(): Promise<void>;
}

/** A TCP proxy in front of an S3 endpoint that can turn into a server that accepts and never answers. */
export async function startSwitchableProxy(target: string, mode: SwitchableProxy['mode'] = 'pass'): Promise<SwitchableProxy> {
  const t = new URL(target);
  const conns = new Set<{ client: Socket; upstream?: Socket }>();
  const server = createServer((client) => {
    const c: { client: Socket; upstream?: Socket } = { client };
    conns.add(c);
    client.on('error', () => undefined);
    client.on('close', () => { conns.delete(c); c.upstream?.destroy(); });
    if (api.mode === 'silent') return;
    const upstream = connect(Number(t.port), t.hostname);
    c.upstream = upstream;
    upstream.on('error', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  let current = mode;
  const api: SwitchableProxy = {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get mode() { return current; },
    set mode(m) {
      current = m;
      if (m !== 'silent') return;
      // Connections kept alive go quiet as well: requests on them are never answered.
      for (const c of conns) {
        c.client.unpipe();
        c.upstream?.unpipe();
        c.upstream?.destroy();
        c.upstream = undefined;
      }
    },
    close: () => new Promise<void>((resolve) => {
      for (const c of conns) { c.client.destroy(); c.upstream?.destroy(); }
      server.close(() => resolve());
    }),
  };
  return api;
}

/** Runs the CLI to completion (for start-up failures), with a timeout that fails the test instead of hanging. */
export function runMountCli(
  args: string[], env: Record<string, string>, timeoutMs = 60_000, onSpawn?: (proc: ChildProcess) => void,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    onSpawn?.(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`fuse-mount did not exit within ${timeoutMs} ms:\n${stderr}`)); }, timeoutMs);
    p.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, ms: Date.now() - t0 }); });
  });
}

export interface SseFrame { id: string | undefined; event: string; data: any; comment?: string }

/** An SSE client of the mount's /events: frames as they arrive; `next` takes the first one that matches. */
export async function openEvents(url: string, headers: Record<string, string> = {}) {
  const ctl = new AbortController();
  const res = await fetch(url, { headers, signal: ctl.signal });
  const frames: SseFrame[] = [];
  const waiters: Array<() => void> = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let text = '';
    try {
      for await (const chunk of res.body!) {
        text += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const f: SseFrame = { id: undefined, event: 'message', data: undefined };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) f.comment = line.slice(1).trim();
            else if (line.startsWith('id: ')) f.id = line.slice(4);
            else if (line.startsWith('event: ')) f.event = line.slice(7);
            else if (line.startsWith('data: ')) f.data = JSON.parse(line.slice(6));
          }
          if (f.comment !== undefined || f.data !== undefined) frames.push(f);
          for (const w of waiters.splice(0)) w();
        }
      }
    } catch {
      // aborted
    }
  })();
  /** The next frame (not a heartbeat) at index >= `from`. */
  const next = async (pred: (f: SseFrame) => boolean = () => true, timeoutMs = 5_000): Promise<SseFrame> => {
    const t0 = Date.now();
    for (;;) {
      const f = frames.find((x) => x.comment === undefined && pred(x));
      if (f) {
        frames.splice(frames.indexOf(f), 1);
        return f;
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`no matching event within ${timeoutMs} ms; have ${JSON.stringify(frames)}`);
      await new Promise<void>((r) => { waiters.push(r); setTimeout(r, 50); });
    }
  };
  return { res, frames, next, close: async () => { ctl.abort(); await done; } };
}
