/** Shared helpers for the end-to-end tests: CLI runs, file trees, bucket reads. */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createObjectStore, decodeManifest, manifestKey, type Manifest, type ObjectStore } from '@workspace-sync/shared';
import type { EmbeddedS3 } from '@workspace-sync/testkit';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SYNC_AGENT = path.join(REPO, 'packages/sync-agent/bin/sync-agent.js');

export interface CliResult { code: number | null; stdout: string; stderr: string }

export function runCli(bin: string, args: string[], env: Record<string, string>, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timed out: ${args.join(' ')}\n${stderr}`)); }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

export type TreeSpec = Record<string, string | Buffer | { content: string | Buffer; mode?: number } | { symlink: string }>;

/** Writes files (creating parent directories) under `dir`. */
export function writeTree(dir: string, spec: TreeSpec): void {
  for (const [rel, v] of Object.entries(spec)) {
    const abs = path.join(dir, rel);
    mkdirSync(path.dirname(abs), { recursive: true });
    if (typeof v === 'string' || Buffer.isBuffer(v)) writeFileSync(abs, v);
    else if ('symlink' in v) symlinkSync(v.symlink, abs);
    else {
      writeFileSync(abs, v.content);
      if (v.mode !== undefined) chmodSync(abs, v.mode);
    }
  }
}

export function tempDir(name: string): string {
  return mkdtempSync(path.join(tmpdir(), `wsync-${name}-`));
}

/** A fresh workspaces root and state dir, and the env that points the CLI at them and the server. */
export function setup(s3: EmbeddedS3, name: string) {
  const base = tempDir(name);
  const root = path.join(base, 'workspaces');
  const stateDir = path.join(base, 'state');
  mkdirSync(root, { recursive: true });
  const env = { ...s3.env, WORKSPACES_DIR: root, SYNC_STATE_DIR: stateDir };
  return { base, root, stateDir, env };
}

export function storeFor(s3: EmbeddedS3, endpoint = s3.endpoint): ObjectStore {
  return createObjectStore({
    endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
    credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! },
  });
}

export async function listKeys(store: ObjectStore, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of store.list(prefix)) if ('key' in item) keys.push(item.key);
  return keys.sort();
}

export async function readManifest(store: ObjectStore, workspace: string, prefix = ''): Promise<Manifest> {
  const res = await store.get(manifestKey(prefix, workspace));
  if (res.notModified) throw new Error('unexpected 304');
  return decodeManifest(res.body, workspace);
}

export async function readObject(store: ObjectStore, key: string): Promise<Buffer> {
  const res = await store.get(key);
  if (res.notModified) throw new Error('unexpected 304');
  return res.body;
}

export function parseJson<T = any>(stdout: string): T {
  return JSON.parse(stdout) as T;
}
