/** Shared helpers for the end-to-end tests: CLI runs, file trees, bucket reads. */
import { mkdirSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createObjectStore, decodeManifest, manifestKey, type Manifest, type ObjectStore } from '@workspace-sync/shared';
import { runProcess, tempDir as makeTempDir, type EmbeddedS3 } from '@workspace-sync/testkit';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SYNC_AGENT = path.join(REPO, 'packages/sync-agent/bin/sync-agent.js');

export interface CliResult { code: number | null; stdout: string; stderr: string }

export async function runCli(bin: string, args: string[], env: Record<string, string>, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  const env2 = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_FORMAT: 'json', ...env };
  const { code, stdout, stderr } = await runProcess(process.execPath, [bin, ...args], { env: env2, timeoutMs: opts.timeoutMs });
  return { code, stdout, stderr };
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
  return makeTempDir(name).dir;
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
