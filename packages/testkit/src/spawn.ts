/**
 * Starts the embedded S3 server as a child process, so tests can stop it (a real outage: refused
 * connections) and start it again on the same port with the same data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { EMBEDDED_ACCESS_KEY, EMBEDDED_SECRET_KEY } from './server.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'embedded-s3.js');

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  dir: string;
  bucket: string;
  /** Environment for child processes (CLIs) to reach this server. */
  env: Record<string, string>;
  stop(): Promise<void>;
  /** Starts again on the same port with the same data. */
  start(): Promise<void>;
  readonly running: boolean;
}

export interface StartOptions {
  port?: number;
  dir?: string;
  bucket?: string;
  /** Create the bucket on start (default true). */
  createBucket?: boolean;
}

export async function startEmbeddedS3(opts: StartOptions = {}): Promise<EmbeddedS3> {
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'wsync-s3-'));
  const bucket = opts.bucket ?? 'workspaces';
  let child: ChildProcess | undefined;
  let port = opts.port ?? 0;

  const launch = async () => {
    const args = [CLI, '--port', String(port), '--dir', dir];
    if (opts.createBucket !== false) args.push('--bucket', bucket);
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    child = proc;
    // Never outlive the test process, even when it dies without cleaning up.
    const reap = () => proc.kill('SIGKILL');
    process.once('exit', reap);
    proc.once('exit', () => process.removeListener('exit', reap));
    const ready = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: proc.stdout! });
      rl.once('line', (line) => resolve(line));
      proc.once('exit', (code) => reject(new Error(`embedded S3 exited with ${code} before it was ready`)));
    });
    const m = /^ready http:\/\/[^:]+:(\d+)$/.exec(ready);
    if (!m) throw new Error(`unexpected output from embedded S3: ${ready}`);
    port = Number(m[1]);
  };

  await launch();
  const api: EmbeddedS3 = {
    get endpoint() { return `http://127.0.0.1:${port}`; },
    get port() { return port; },
    dir,
    bucket,
    get env() {
      return {
        AWS_ACCESS_KEY_ID: EMBEDDED_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: EMBEDDED_SECRET_KEY,
        AWS_REGION: 'us-east-1',
        S3_ENDPOINT: `http://127.0.0.1:${port}`,
        S3_BUCKET: bucket,
      };
    },
    get running() { return child !== undefined && child.exitCode === null && child.signalCode === null; },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      await new Promise<void>((resolve) => { c.once('exit', () => resolve()); c.kill('SIGKILL'); });
    },
    async start() {
      if (api.running) return;
      await launch();
    },
  };
  return api;
}
