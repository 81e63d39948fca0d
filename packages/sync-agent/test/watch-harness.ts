/**
 * Shared by the watch integration tests: a temp root and state dir, the real CLI spawned against the
 * embedded S3 server (or a counting proxy in front of it), and bounded waits on what the bucket shows.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createObjectStore, isSyncError, sha256Hex, type FlatEntry, type ObjectStore } from '@workspace-sync/shared';
import { readCommitted, startTestS3, type EmbeddedS3 } from '@workspace-sync/testkit';
import { afterAll, beforeAll } from 'vitest';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'sync-agent.js');

export interface LogLine { level: number; msg: string; [k: string]: unknown }

export interface Agent {
  proc: ChildProcess;
  logs: LogLine[];
  stdout(): string;
  /** stderr lines that are not JSON logs (CLI error messages). */
  stderrText(): string;
  /** Port of /healthz and /metrics (known once the agent logged "watching"). */
  healthPort(): number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  health(): Promise<{ status: string; reasons: string[] }>;
  waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, wait for the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface Harness {
  dir: string;
  root: string;
  stateDir: string;
  prefix: string;
  store: ObjectStore;
  write(rel: string, content: string | Buffer): void;
  /** Spawns `sync-agent watch`; resolves once it has reconciled every workspace. */
  startAgent(opts?: { args?: string[]; endpoint?: string; wrap?: string[]; waitReady?: boolean }): Promise<Agent>;
  /** The workspace's committed tree (path → entry), read from its head; undefined before the first commit. */
  committed(workspace: string): Promise<Map<string, FlatEntry> | undefined>;
  keys(workspace: string): Promise<string[]>;
  cleanup(): Promise<void>;
}

let counter = 0;

/** One S3 server for the calling test file (the embedded one, or Ceph RGW with S3_BACKEND=rgw), stopped after it. */
export function useTestS3(): () => EmbeddedS3 {
  let s3: EmbeddedS3 | undefined;
  beforeAll(async () => { s3 = await startTestS3(); });
  afterAll(async () => {
    await s3?.stop();
    // The embedded server's data directory is this file's own; an RGW cluster's belongs to the whole run.
    if (s3 && (process.env.S3_BACKEND ?? 'embedded') === 'embedded') rmSync(s3.dir, { recursive: true, force: true });
  });
  return () => s3!;
}

export function createHarness(s3: EmbeddedS3, name: string): Harness {
  const dir = mkdtempSync(path.join(tmpdir(), `wsync-watch-${name}-`));
  const root = path.join(dir, 'root');
  const stateDir = path.join(dir, 'state');
  mkdirSync(root, { recursive: true });
  const prefix = `${name}-${process.pid}-${++counter}/`;
  const store = createObjectStore({
    endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
    credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! },
  });
  const agents: Agent[] = [];

  const h: Harness = {
    dir, root, stateDir, prefix, store,
    write(rel, content) {
      const abs = path.join(root, rel);
      mkdirSync(path.dirname(abs), { recursive: true });
      writeFileSync(abs, content);
    },
    async startAgent(opts = {}) {
      const args = [
        BIN, 'watch', '--root', root, '--state-dir', stateDir, '--prefix', prefix, '--health-port', '0', '--log-level', 'debug',
        ...(opts.args ?? []),
      ];
      // Only what the agent needs: nothing from the developer's own AWS or sync settings leaks in.
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...s3.env, LOG_FORMAT: 'json' };
      if (opts.endpoint) env.S3_ENDPOINT = opts.endpoint;
      const [cmd, ...rest] = opts.wrap ? [...opts.wrap, process.execPath, ...args] : [process.execPath, ...args];
      const proc = spawn(cmd!, rest, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const agent = makeAgent(proc);
      agents.push(agent);
      if (opts.waitReady !== false) await agent.waitForLog((l) => l.msg === 'watching', 'the agent to start', 60_000);
      return agent;
    },
    async committed(workspace) {
      return (await readCommitted(store, prefix, workspace))?.entries;
    },
    async keys(workspace) {
      const out: string[] = [];
      const head = `${prefix}${workspace}/`;
      for await (const item of store.list(head)) if ('key' in item) out.push(item.key.slice(head.length));
      return out.sort();
    },
    async cleanup() {
      for (const a of agents) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL');
      await Promise.all(agents.map((a) => a.exited));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

function makeAgent(proc: ChildProcess): Agent {
  const logs: LogLine[] = [];
  let out = '';
  let stderrTail = '';
  const waiters = new Set<() => void>();
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      stderrTail = `${stderrTail}${line}\n`.slice(-4000);
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once('exit', (code, signal) => { for (const w of waiters) w(); resolve({ code, signal }); });
  });
  const agent: Agent = {
    proc, logs, exited,
    stdout: () => out,
    stderrText: () => stderrTail,
    healthPort() {
      const line = logs.find((l) => l.msg === 'watching');
      if (!line) throw new Error('the agent has not started yet');
      return line.healthPort as number;
    },
    async metric(name, labels = {}) {
      const text = await (await fetch(`http://127.0.0.1:${agent.healthPort()}/metrics`)).text();
      return readMetric(text, name, labels);
    },
    async health() {
      return (await (await fetch(`http://127.0.0.1:${agent.healthPort()}/healthz`)).json()) as { status: string; reasons: string[] };
    },
    waitForLog(pred, what, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs.find(pred);
          if (hit) { done(); resolve(hit); return; }
          if (proc.exitCode !== null || proc.signalCode !== null) {
            done();
            reject(new Error(`agent exited (${proc.exitCode ?? proc.signalCode}) while waiting for ${what}\n${stderrTail}${logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`));
          }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for ${what}\n${logs.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`)); }, timeoutMs);
        const done = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
  return agent;
}

/** The value of one sample in Prometheus text format. */
export function readMetric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Polls `fn` until it returns something truthy; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false | null> | T | undefined | false | null, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once the committed tree of `workspace` holds exactly `expected` (path → content). */
export async function waitForContent(h: Harness, workspace: string, expected: Record<string, string>, what: string, timeoutMs?: number): Promise<Map<string, FlatEntry>> {
  return waitFor(async () => {
    const m = await h.committed(workspace);
    if (!m || !sameContent(m, expected)) return undefined;
    return m;
  }, what, timeoutMs);
}

export function sameContent(m: ReadonlyMap<string, FlatEntry>, expected: Record<string, string>): boolean {
  const paths = Object.keys(expected);
  if (m.size !== paths.length) return false;
  return paths.every((p) => {
    const e = m.get(p);
    return e?.kind === 'file' && e.sha256 === sha256Hex(expected[p]!);
  });
}

export async function objectText(store: ObjectStore, key: string): Promise<string | undefined> {
  try {
    const res = await store.get(key);
    return res.notModified ? undefined : res.body.toString('utf8');
  } catch (err) {
    if (isSyncError(err, 'OBJECT_NOT_FOUND')) return undefined;
    throw err;
  }
}
