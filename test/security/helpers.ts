/** Helpers of the security suites: a workspaces root, CLI runs and a real FUSE mount as a given user. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { REPO, runCli, tempDir, writeTree, type CliResult, type TreeSpec } from '../helpers.js';

export const AGENT = path.join(REPO, 'packages/sync-agent/bin/sync-agent.js');
export const MOUNT = path.join(REPO, 'packages/fuse-mount/bin/fuse-mount.js');
export const BACKEND = process.env.S3_BACKEND ?? 'embedded';

export interface Scratch {
  base: string;
  root: string;
  write(workspace: string, spec: TreeSpec): void;
  /** `sync-agent ARGS` with `env` (and this root, a state directory of `state`'s name), minimal environment otherwise. */
  agent(args: string[], env: Record<string, string>, state?: string): Promise<CliResult>;
  remove(): void;
}

export function scratch(name: string): Scratch {
  const base = tempDir(name);
  const root = path.join(base, 'workspaces');
  mkdirSync(root, { recursive: true });
  return {
    base,
    root,
    write: (workspace, spec) => writeTree(path.join(root, workspace), spec),
    agent: (args, env, state = 'state') => runCli(AGENT, args, { WORKSPACES_DIR: root, SYNC_STATE_DIR: path.join(base, state), ...env }),
    remove: () => rmSync(base, { recursive: true, force: true }),
  };
}

/** The error lines of a CLI run (JSON logs filtered out). */
export function errorLines(r: CliResult): string {
  return r.stderr.split('\n').filter((l) => l && !l.startsWith('{')).join('\n');
}

export interface RunningMount {
  mnt: string;
  cacheDir: string;
  /** The mount's log lines (JSON). */
  logs: () => string;
  stop(): Promise<void>;
}

/** Starts `fuse-mount` on a fresh directory and waits for "ready"; rejects with its stderr if it exits first. */
export async function startMountCli(base: string, env: Record<string, string>, args: string[] = []): Promise<RunningMount> {
  const mnt = path.join(base, `mnt-${Math.random().toString(36).slice(2, 8)}`);
  const cacheDir = `${mnt}-cache`;
  mkdirSync(mnt, { recursive: true });
  const proc: ChildProcess = spawn(process.execPath, [MOUNT, mnt, '--cache-dir', cacheDir, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', (line) => (line === `ready ${mnt}` ? resolve() : reject(new Error(`unexpected: ${line}`))));
    void exited.then((code) => reject(Object.assign(new Error(`fuse-mount exited with ${code}: ${stderr}`), { code, stderr })));
  });
  return {
    mnt,
    cacheDir,
    logs: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
      // The mount is served by the child, so a synchronous call cannot deadlock on it.
      if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mnt} `)) execFileSync('fusermount', ['-uz', mnt], { stdio: 'ignore' });
    },
  };
}

/** Runs `argv` as another user (setpriv), with no supplementary groups. */
export function runAs(uid: number, gid: number, argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface Watch {
  logs: Array<{ level: number; msg: string; [k: string]: unknown }>;
  health(): Promise<{ status: string; reasons: string[]; [k: string]: unknown }>;
  healthText(): Promise<string>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** `sync-agent watch` on the scratch root with `env`, /healthz on a free loopback port; resolves once it is watching. */
export async function startWatchCli(t: Scratch, env: Record<string, string>, args: string[] = []): Promise<Watch> {
  const proc = spawn(process.execPath, [AGENT, 'watch', '--health-port', '0', '--log-level', 'debug', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_FORMAT: 'json', WORKSPACES_DIR: t.root, SYNC_STATE_DIR: path.join(t.base, 'watch-state'), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs: Watch['logs'] = [];
  let text = '';
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as Watch['logs'][number]);
    } catch {
      text += `${line}\n`;
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const started = await waitFor(() => logs.find((l) => l.msg === 'watching') ?? (proc.exitCode !== null ? 'exited' : undefined), 'watch to start', 60_000);
  if (started === 'exited') throw new Error(`sync-agent watch exited with ${proc.exitCode}: ${text}`);
  const url = `http://127.0.0.1:${started.healthPort as number}/healthz`;
  return {
    logs,
    health: async () => (await (await fetch(url)).json()) as Awaited<ReturnType<Watch['health']>>,
    healthText: async () => (await fetch(url)).text(),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** Polls `fn` every 100 ms until it returns something truthy; fails after `timeoutMs`. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false | null> | T | undefined | false | null, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
