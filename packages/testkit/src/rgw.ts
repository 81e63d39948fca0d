/**
 * Ceph RGW as a test's S3 server: the real-server tier. The cluster (mon, OSD, main gateway) is
 * started once per run by `scripts/rgw.sh start`; each startRgw() gets a gateway of its own on a free
 * port and a fresh bucket. Test files share the data, but one file's outage test (stop/start of its
 * gateway) cannot take down the server another file is using at the same time.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DeleteBucketPolicyCommand, PutBucketPolicyCommand, S3Client } from '@aws-sdk/client-s3';
import { createObjectStore } from '@workspace-sync/shared';
import type { EmbeddedS3 } from './spawn.js';

const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'rgw.sh');
const DEFAULT_DIR = '/tmp/workspace-sync-rgw';
const execFileAsync = promisify(execFile);

export interface RgwOptions {
  /** The cluster's directory as given to scripts/rgw.sh (default: RGW_DIR, else /tmp/workspace-sync-rgw). */
  dir?: string;
  /** Port of this test's gateway (default: a free one). */
  port?: number;
  /** Default: a fresh `t-<random>` bucket, so test files sharing the cluster never see each other's objects. */
  bucket?: string;
  /** Create the bucket on start (default true). */
  createBucket?: boolean;
  /** Also serve https on a port of its own (beast's ssl_endpoint) with this certificate and key. */
  tls?: { cert: string; key: string };
  /** More radosgw options for this gateway only, e.g. encryption settings. */
  args?: string[];
}

export interface RgwGateway extends EmbeddedS3 {
  /** https://127.0.0.1:PORT when started with `tls`. */
  httpsEndpoint: string | undefined;
  /**
   * How bucket policies name the user of `env` (scripts/rgw.sh's RGW_UID), who owns the bucket. It
   * still needs a grant to read objects other users wrote: each object belongs to its writer.
   */
  ownerArn: string;
}

let gatewaySeq = 0;

export async function startRgw(opts: RgwOptions = {}): Promise<RgwGateway> {
  const dir = opts.dir ?? process.env.RGW_DIR ?? DEFAULT_DIR;
  const cluster = readClusterEnv(dir);
  const bucket = opts.bucket ?? `t-${randomBytes(6).toString('hex')}`;
  const name = `t${process.pid}x${++gatewaySeq}`;
  const port = opts.port ?? await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const tlsPort = opts.tls ? await freePort() : undefined;
  const gatewayEnv: Record<string, string> = { RGW_EXTRA_ARGS: (opts.args ?? []).join(' ') };
  if (opts.tls) gatewayEnv.RGW_FRONTEND_EXTRA = `ssl_endpoint=127.0.0.1:${tlsPort} ssl_certificate=${opts.tls.cert} ssl_private_key=${opts.tls.key}`;
  const env = { ...cluster, S3_ENDPOINT: endpoint, S3_BUCKET: bucket };
  let pid: number | undefined;
  // Never outlive the test process, even when it dies without cleaning up. SIGTERM, not SIGKILL: a
  // gateway that exits gracefully takes its watch with it (see scripts/rgw.sh stop-rgw).
  const reap = () => { if (pid !== undefined) terminate(pid); };

  const launch = async () => {
    await rgwSh(['start-rgw', dir, name, String(port)], gatewayEnv);
    pid = Number(readFileSync(path.join(dir, 'run', `rgw.${name}.pid`), 'utf8'));
    process.removeListener('exit', reap);
    process.once('exit', reap);
  };

  await launch();
  if (opts.createBucket !== false) await createBucketAs(env, bucket);
  const api: RgwGateway = {
    endpoint,
    httpsEndpoint: tlsPort === undefined ? undefined : `https://127.0.0.1:${tlsPort}`,
    ownerArn: 'arn:aws:iam:::user/wsync',
    port,
    // The cluster directory is shared by every test: callers get a scratch directory of their own,
    // so cleaning up `dir` (as the embedded server's callers do) can never wipe the cluster.
    dir: mkdtempSync(path.join(tmpdir(), 'wsync-rgw-client-')),
    bucket,
    env,
    get running() { return pid !== undefined && isAlive(pid); },
    async stop() {
      if (pid === undefined) return;
      await rgwSh(['stop-rgw', dir, name]);
      process.removeListener('exit', reap);
      pid = undefined;
    },
    async start() {
      if (api.running) return;
      await launch();
    },
  };
  return api;
}

/** DIR/env, written by `scripts/rgw.sh start` once the cluster serves S3. */
function readClusterEnv(dir: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path.join(dir, 'env'), 'utf8');
  } catch {
    throw new Error(`no Ceph RGW cluster in ${dir} (no ${path.join(dir, 'env')}): start one with scripts/rgw.sh start ${dir}`);
  }
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

async function rgwSh(args: string[], env: Record<string, string> = {}): Promise<void> {
  try {
    await execFileAsync(SCRIPT, args, { timeout: 120_000, env: { ...process.env, ...env } });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`scripts/rgw.sh ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

export interface RgwUser {
  uid: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** How bucket policies name this user. */
  arn: string;
  /** Env for a CLI acting as this user. */
  env: Record<string, string>;
  remove(): Promise<void>;
}

/** A new RGW user with fresh keys (`radosgw-admin user create`); the uid gets a random suffix. */
export async function createRgwUser(name: string, opts: { dir?: string } = {}): Promise<RgwUser> {
  const dir = opts.dir ?? process.env.RGW_DIR ?? DEFAULT_DIR;
  const uid = `${name}-${randomBytes(4).toString('hex')}`;
  const accessKeyId = `${uid}-key`;
  const secretAccessKey = randomBytes(24).toString('hex');
  await radosgwAdmin(dir, ['user', 'create', `--uid=${uid}`, `--display-name=${uid}`, `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`]);
  return {
    uid, accessKeyId, secretAccessKey, arn: `arn:aws:iam:::user/${uid}`,
    env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey },
    remove: () => radosgwAdmin(dir, ['user', 'rm', `--uid=${uid}`]),
  };
}

/** Sets (or, with undefined, deletes) the bucket policy of the gateway's bucket, as its owner. */
export async function setBucketPolicy(s3: EmbeddedS3, policy: object | undefined): Promise<void> {
  const client = new S3Client({
    endpoint: s3.endpoint, region: s3.env.AWS_REGION ?? 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY! },
  });
  try {
    if (policy) await client.send(new PutBucketPolicyCommand({ Bucket: s3.bucket, Policy: JSON.stringify(policy) }));
    else await client.send(new DeleteBucketPolicyCommand({ Bucket: s3.bucket }));
  } finally {
    client.destroy();
  }
}

async function radosgwAdmin(dir: string, args: string[]): Promise<void> {
  try {
    await execFileAsync('radosgw-admin', ['-c', path.join(dir, 'ceph.conf'), ...args], { timeout: 60_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`radosgw-admin ${args.slice(0, 2).join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

async function createBucketAs(env: Record<string, string>, bucket: string): Promise<void> {
  await createObjectStore({
    endpoint: env.S3_ENDPOINT, region: env.AWS_REGION ?? 'us-east-1', bucket, forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID!, secretAccessKey: env.AWS_SECRET_ACCESS_KEY! },
  }).createBucket();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function terminate(pid: number): void {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
}
