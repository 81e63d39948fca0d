#!/usr/bin/env node
// Push benchmark: initial, no-op and one-change push of a 5k-file workspace (plus node_modules clutter)
// with sync-agent, rclone sync (--transfers 4 and 32), aws s3 sync and bare PUTs, side by side on one server.
// Usage: node bench/push.mjs [--sources 5000] [--node-modules 20000] [--runs 3]   (S3_BACKEND=rgw for Ceph)
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createObjectStore, createFilter } from '@workspace-sync/shared';
import { startTestS3 } from '@workspace-sync/testkit';
import PQueue from 'p-queue';
import { buildWorkspace, median, RCLONE_EXCLUDES } from './lib/fixture.mjs';
import { rcloneEnv } from './lib/rclone.mjs';

const { values: args } = parseArgs({
  options: { sources: { type: 'string', default: '5000' }, 'node-modules': { type: 'string', default: '20000' }, runs: { type: 'string', default: '3' }, out: { type: 'string' } },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(repo, '.tmp/bench/push');
const root = path.join(work, 'root');
const ws = path.join(root, 'app');
const agent = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');
const runs = Number(args.runs);

mkdirSync(ws, { recursive: true });
const fixture = buildWorkspace(ws, { sources: Number(args.sources), nodeModules: Number(args['node-modules']) });
const backend = process.env.S3_BACKEND ?? 'embedded';
// A fresh server every run: objects left by an earlier run would turn the initial push into a no-op.
rmSync(path.join(work, 's3'), { recursive: true, force: true });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
Object.assign(process.env, s3.env);
// Warm the server up first: a fresh server (its JIT, RGW's caches) answers its first few
// thousand requests slower, which would otherwise count against whichever tool runs first.
{
  const store = createObjectStore({ endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxSockets: 32 });
  const q = new PQueue({ concurrency: 32 });
  const body = Buffer.alloc(2048, 1);
  for (let i = 0; i < 3000; i++) q.add(() => store.put(`warmup/${i % 50}/f${i}.txt`, body));
  await q.onIdle();
}
const hasRclone = spawnSync('rclone', ['version'], { stdio: 'ignore' }).status === 0;
// Debian's awscli lands in /usr/bin; a version manager's shim earlier on PATH may not work.
const awsBin = ['/usr/bin/aws', 'aws'].find((b) => spawnSync(b, ['--version'], { stdio: 'ignore' }).status === 0);

const time = (fn) => { const t0 = performance.now(); const r = fn(); return { s: (performance.now() - t0) / 1000, r }; };
const check = (r, what) => { if (r.status !== 0 && r.status !== 1) throw new Error(`${what} failed (${r.status}): ${r.stderr}`); return r; };
let edit = 0;
const touchOne = () => appendFileSync(path.join(ws, 'src/m0/bench-edit.ts'), `// edit ${++edit}\n`);
mkdirSync(path.join(ws, 'src/m0'), { recursive: true });
touchOne();

function ours(run) {
  const env = { ...process.env, WORKSPACES_DIR: root, S3_PREFIX: `ours-${run}/`, SYNC_STATE_DIR: path.join(work, `state-${run}`), LOG_LEVEL: 'warn' };
  rmSync(env.SYNC_STATE_DIR, { recursive: true, force: true });
  const push = () => check(spawnSync(process.execPath, [agent, 'push', 'app', '--concurrency', '32'], { env, encoding: 'utf8' }), 'sync-agent push');
  const initial = time(push).s;
  const noop = time(push).s;
  touchOne();
  const change = time(push).s;
  return { initial, noop, change };
}

function rclone(run, transfers) {
  const env = rcloneEnv(s3);
  const dest = `bench:${s3.bucket}/rclone${transfers}-${run}/app`;
  const sync = () => check(spawnSync('rclone', ['sync', ws, dest, '--transfers', String(transfers), '--checkers', String(Math.max(8, transfers)), ...RCLONE_EXCLUDES], { env, encoding: 'utf8' }), 'rclone sync');
  const initial = time(sync).s;
  const noop = time(sync).s;
  touchOne();
  const change = time(sync).s;
  return { initial, noop, change };
}

/** `aws s3 sync` patterns match the whole relative path, `*` included slashes: the default excludes as such. */
const AWS_EXCLUDES = ['*node_modules/*', '.git/*', '*/.git/*', '*.log', '.env*', '*/.env*', 'dist/*', '*/dist/*', 'build/*', '*/build/*',
  '*__pycache__/*', 'vendor/*', '*/vendor/*', '*.pyc', '*.DS_Store', '*Thumbs.db'].flatMap((p) => ['--exclude', p]);

function awsSync(run) {
  const env = { ...process.env, AWS_DEFAULT_REGION: 'us-east-1' };
  delete env.AWS_CA_BUNDLE;
  const dest = `s3://${s3.bucket}/aws-${run}/app`;
  const sync = () => check(spawnSync(awsBin, ['s3', 'sync', ws, dest, '--endpoint-url', s3.endpoint, '--only-show-errors', ...AWS_EXCLUDES], { env, encoding: 'utf8' }), 'aws s3 sync');
  const initial = time(sync).s;
  const noop = time(sync).s;
  touchOne();
  const change = time(sync).s;
  return { initial, noop, change };
}

/** The raw bound: the same files as bare PUTs (ObjectStore.put) at high concurrency, no hashing, no filter walk cost. */
async function rawPuts(run) {
  const filter = createFilter({ root, workspace: 'app' });
  const files = [];
  const walk = (rel) => {
    for (const d of readdirSync(path.join(ws, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (filter.excludes(p, d.isDirectory())) continue;
      if (d.isDirectory()) walk(p); else files.push(p);
    }
  };
  walk('');
  const store = createObjectStore({ endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxSockets: 64 });
  const q = new PQueue({ concurrency: 64 });
  const t0 = performance.now();
  for (const f of files) q.add(() => store.put(`raw-${run}/app/${f}`, readFileSync(path.join(ws, f))));
  await q.onIdle();
  return { initial: (performance.now() - t0) / 1000, files: files.length };
}

/** Process start-up alone (Node, the AWS SDK, the CLI), which every sync-agent invocation pays. */
const startup = median(Array.from({ length: 5 }, () => time(() => spawnSync(process.execPath, [agent, '--version'])).s));

const results = { ours: [], rclone4: [], rclone32: [], aws: [], raw: [] };
for (let run = 0; run < runs; run++) {
  results.ours.push(ours(run));
  if (hasRclone) {
    results.rclone4.push(rclone(run, 4));
    results.rclone32.push(rclone(run, 32));
  }
  if (awsBin) results.aws.push(awsSync(run));
  results.raw.push(await rawPuts(run));
}
await s3.stop();

const med = (rows, k) => (rows.length ? median(rows.map((r) => r[k])) : undefined);
const summary = {};
for (const [name, rows] of Object.entries(results)) summary[name] = { initial: med(rows, 'initial'), noop: med(rows, 'noop'), change: med(rows, 'change') };
const syncedFiles = results.raw[0].files;
const fmt = (v) => (v === undefined ? 'n/a' : `${v.toFixed(2)} s`);
const ratio = (a, b) => (a !== undefined && b ? `${(a / b).toFixed(2)}×` : 'n/a');
const out = {
  benchmark: 'push', backend, runs, startupSeconds: startup, fixture: { ...fixture, syncedFiles, sizeMiB: +(dirSize(ws) / 2 ** 20).toFixed(1) },
  medians: summary, raw: results,
  targets: {
    noop: { target: '≤ 0.5 s', value: summary.ours.noop, met: summary.ours.noop <= 0.5, why: `process start-up alone is ${startup.toFixed(2)} s here` },
    change: { target: '≤ 0.6 s', value: summary.ours.change, met: summary.ours.change <= 0.6, why: `process start-up alone is ${startup.toFixed(2)} s here` },
    initial: { target: '≤ rclone --transfers 32', value: summary.ours.initial, rclone32: summary.rclone32.initial, met: summary.rclone32.initial === undefined ? null : summary.ours.initial <= summary.rclone32.initial,
      why: `${(summary.ours.initial / summary.rclone32.initial).toFixed(2)}× rclone 32; bare PUTs at concurrency 64 took ${summary.raw.initial.toFixed(2)} s on the 2 cores the client shares with the server` },
  },
};
const md = [
  `| push (${syncedFiles} files synced, ${fixture.nodeModules} in node_modules; ${backend}; median of ${runs}) | sync-agent | rclone --transfers 4 | rclone --transfers 32 | aws s3 sync | bare PUTs ×64 | sync-agent / rclone 32 |`,
  '|---|---|---|---|---|---|---|',
  ...['initial', 'noop', 'change'].map((k) => `| ${k === 'noop' ? 'no-op' : k === 'change' ? 'one change' : 'initial'} | ${fmt(summary.ours[k])} | ${fmt(summary.rclone4[k])} | ${fmt(summary.rclone32[k])} | ${fmt(summary.aws[k])} | ${k === 'initial' ? fmt(summary.raw.initial) : '—'} | ${ratio(summary.ours[k], summary.rclone32[k])} |`),
  '',
  `sync-agent process start-up alone (\`sync-agent --version\`): ${startup.toFixed(2)} s.`,
].join('\n');
console.log(md);
mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
writeFileSync(args.out ?? path.join(repo, `bench/results/push-${backend}.json`), `${JSON.stringify({ ...out, markdown: md }, null, 2)}\n`);

function dirSize(dir) {
  let total = 0;
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    if (d.name === 'node_modules') continue;
    const p = path.join(dir, d.name);
    total += d.isDirectory() ? dirSize(p) : statSync(p).size;
  }
  return total;
}
