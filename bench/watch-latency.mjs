#!/usr/bin/env node
// Watch benchmark: save → visible-in-S3 latency (p50/p99), idle CPU and RSS, and inotify watches of
// `sync-agent watch` on a workspace of 5k source files plus 100k node_modules files.
// "Visible" means the workspace's head commit (what a mount reads) has the new sha256 of the edited file.
// Usage (after pnpm build): node bench/watch-latency.mjs [--sources 5000] [--node-modules 100000] [--edits 200] [--idle 30]
//   (S3_BACKEND=rgw for Ceph RGW)
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createFilter, createObjectStore, createTreeReader, decodeCommit, headKey } from '@workspace-sync/shared';
import { startTestS3 } from '@workspace-sync/testkit';
import { buildWorkspace, median, percentile } from './lib/fixture.mjs';

const { values: args } = parseArgs({
  options: {
    sources: { type: 'string', default: '5000' }, 'node-modules': { type: 'string', default: '100000' },
    edits: { type: 'string', default: '200' }, idle: { type: 'string', default: '30' }, out: { type: 'string' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(repo, '.tmp/bench/watch');
const root = path.join(work, 'root');
const ws = path.join(root, 'app');
const agentBin = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');
const prefix = `watch-${Date.now()}/`;
const stateDir = path.join(work, 'state');
const backend = process.env.S3_BACKEND ?? 'embedded';

mkdirSync(ws, { recursive: true });
let t0 = performance.now();
const fixture = buildWorkspace(ws, { sources: Number(args.sources), nodeModules: Number(args['node-modules']) });
console.error(`fixture ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
rmSync(stateDir, { recursive: true, force: true });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const store = createObjectStore({
  endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
  credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY },
});

// The tree as the filter sees it: what may be watched, and the inodes of what must never be.
const tree = scanTree();

t0 = performance.now();
// As users run it: no --health-port (its default process metrics sample the event loop every 10 ms).
const agent = spawn(process.execPath, [agentBin, 'watch', '--root', root, '--state-dir', stateDir, '--prefix', prefix, '--log-level', 'info'], {
  env: { PATH: process.env.PATH, HOME: process.env.HOME, ...s3.env, LOG_FORMAT: 'json' },
  stdio: ['ignore', 'ignore', 'pipe'],
});
const logs = [];
createInterface({ input: agent.stderr }).on('line', (l) => { try { logs.push(JSON.parse(l)); } catch { process.stderr.write(`${l}\n`); } });
const watching = await until(() => logs.find((l) => l.msg === 'watching'), 600_000, 'the agent to reconcile and start watching');
const startupSeconds = (performance.now() - t0) / 1000;
const initialUploads = logs.find((l) => l.msg === 'reconciled')?.uploaded;
console.error(`watching after ${startupSeconds.toFixed(1)} s (initial reconcile uploaded ${initialUploads} files)`);
// V8 keeps collecting the initial reconcile's garbage for a few seconds: idle starts after that.
const settleSeconds = 10;
await sleep(settleSeconds * 1000);

// Watches: every inotify watch of the agent, and how many sit on something inside an excluded directory.
const watches = inotifyWatches(agent.pid);
const watchesUnderExcluded = watches.filter((ino) => tree.excludedInodes.has(ino)).length;

// Idle: nothing changes for --idle seconds.
const idleSeconds = Number(args.idle);
const cpu0 = cpuSeconds(agent.pid);
await sleep(idleSeconds * 1000);
const idleCpuPercent = ((cpuSeconds(agent.pid) - cpu0) / idleSeconds) * 100;
const idleRssMiB = rssMiB(agent.pid).rss;

// Latency: edit one random source file at a time; wait until the manifest lists its new sha256.
const files = tree.files.filter((f) => f.startsWith('src/'));
let seed = 7;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
const latencies = [];
const edits = Number(args.edits);
const firstEditLog = logs.length;
const key = headKey(prefix, 'app');
const reader = createTreeReader({ store, prefix, workspace: 'app' });
let etag;
let commit;
/** The sha256 the head's tree has for `rel`, reading only the directories on its path. */
const committedSha = async (rel) => {
  let ref = commit.root;
  const parts = rel.split('/');
  for (let i = 0; i < parts.length; i++) {
    const e = (await reader.read(ref)).find((x) => x.name === parts[i]);
    if (!e) return undefined;
    if (i === parts.length - 1) return e.kind === 'file' ? e.sha256 : undefined;
    if (e.kind !== 'dir') return undefined;
    ref = e.ref;
  }
  return undefined;
};
for (let i = 0; i < edits; i++) {
  const rel = files[Math.floor(rand() * files.length)];
  const abs = path.join(ws, rel);
  const content = `${readFileSync(abs, 'utf8')}// edit ${i} ${Date.now()}\n`;
  const sha = createHash('sha256').update(content).digest('hex');
  const start = performance.now();
  writeFileSync(abs, content);
  await until(async () => {
    const res = await store.get(key, etag ? { ifNoneMatch: etag } : {});
    if (res.notModified) return false;
    commit = decodeCommit(res.body, key);
    etag = res.etag;
    return (await committedSha(rel)) === sha;
  }, 30_000, `edit ${i} to become visible`, 5);
  latencies.push(performance.now() - start);
  await sleep(50 + rand() * 150); // a developer between two saves, shortened
}
const mem = rssMiB(agent.pid);
// The agent's own time per batch (from taking the batch to the head and state written): the rest of
// the latency is the quiet window, event delivery and this script's polling.
const syncMs = logs.slice(firstEditLog).filter((l) => l.msg === 'synced').map((l) => l.ms);

agent.kill('SIGTERM');
const exitCode = await new Promise((resolve) => agent.once('exit', (code) => resolve(code)));
await s3.stop();

const p50 = percentile(latencies, 50) / 1000;
const p99 = percentile(latencies, 99) / 1000;
const result = {
  benchmark: 'watch', backend,
  fixture: { ...fixture, syncedFiles: tree.files.length, dirsOutsideExcluded: tree.dirs, excludedDirs: tree.excludedDirs, excludedEntries: tree.excludedInodes.size },
  startupSeconds, initialUploads,
  latency: { edits, p50, p90: percentile(latencies, 90) / 1000, p99, max: Math.max(...latencies) / 1000, mean: latencies.reduce((a, b) => a + b, 0) / latencies.length / 1000, median: median(latencies) / 1000 },
  batchSyncMs: { batches: syncMs.length, p50: percentile(syncMs, 50), p99: percentile(syncMs, 99) },
  idle: { seconds: idleSeconds, afterSettleSeconds: settleSeconds, cpuPercent: idleCpuPercent, rssMiB: idleRssMiB },
  memory: { rssMiBAfterEdits: mem.rss, peakRssMiB: mem.hwm },
  watches: { inotify: watches.length, underExcluded: watchesUnderExcluded, reportedByAgent: watching.watches, dirsOutsideExcluded: tree.dirs, filesOutsideExcluded: tree.files.length },
  agentExitCode: exitCode,
  targets: {
    'p50 save → visible': { target: '≤ 0.3 s', value: p50, met: p50 <= 0.3 },
    'p99 save → visible': { target: '≤ 1 s', value: p99, met: p99 <= 1 },
    'watches under excluded dirs': { target: '0', value: String(watchesUnderExcluded), met: watchesUnderExcluded === 0 },
    'RSS (peak)': { target: '≤ 150 MB', value: `${mem.hwm.toFixed(0)} MiB`, met: mem.hwm * 1.048576 <= 150 },
  },
};
const ms = (s) => `${(s * 1000).toFixed(0)} ms`;
const markdown = [
  `| watch (${tree.files.length} files synced, ${fixture.nodeModules} in node_modules; ${backend}) | value | target |`,
  '|---|---|---|',
  `| save → visible in the head commit, p50 / p90 / p99 (${edits} edits) | ${ms(p50)} / ${ms(result.latency.p90)} / ${ms(p99)} | p50 ≤ 300 ms, p99 ≤ 1 s |`,
  `| of which the agent's sync of a batch (after the 100 ms quiet window), p50 / p99 | ${syncMs.length ? `${percentile(syncMs, 50)} ms / ${percentile(syncMs, 99)} ms` : 'n/a'} | |`,
  `| idle CPU over ${idleSeconds} s (from ${settleSeconds} s after the start) | ${idleCpuPercent.toFixed(2)} % of a core | |`,
  `| RSS idle / after edits / peak | ${idleRssMiB.toFixed(0)} / ${mem.rss.toFixed(0)} / ${mem.hwm.toFixed(0)} MiB | ≤ 150 MB |`,
  `| inotify watches (files + directories outside excluded dirs) | ${watches.length} (${tree.files.length} + ${tree.dirs}) | |`,
  `| inotify watches inside excluded dirs (${tree.excludedInodes.size} entries there) | ${watchesUnderExcluded} | 0 |`,
  `| start: walk, hash, upload ${initialUploads} files, watch | ${startupSeconds.toFixed(1)} s | |`,
].join('\n');
console.log(JSON.stringify(result, null, 2));
console.log(markdown);
mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
writeFileSync(args.out ?? path.join(repo, `bench/results/watch-${backend}.json`), `${JSON.stringify({ ...result, markdown }, null, 2)}\n`);

function scanTree() {
  const filter = createFilter({ root, workspace: 'app' });
  const out = { files: [], dirs: 1, excludedDirs: 0, excludedInodes: new Set() };
  const walkExcluded = (abs) => {
    for (const d of readdirSync(abs, { withFileTypes: true })) {
      const p = path.join(abs, d.name);
      out.excludedInodes.add(statSync(p).ino);
      if (d.isDirectory()) walkExcluded(p);
    }
  };
  const walk = (rel) => {
    for (const d of readdirSync(path.join(ws, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (filter.excludes(p, d.isDirectory())) {
        if (d.isDirectory()) { out.excludedDirs++; out.excludedInodes.add(statSync(path.join(ws, p)).ino); walkExcluded(path.join(ws, p)); }
        continue;
      }
      if (d.isDirectory()) { out.dirs++; walk(p); } else out.files.push(p);
    }
  };
  walk('');
  return out;
}

/** Inode numbers of every inotify watch the process holds (from /proc/<pid>/fdinfo). */
function inotifyWatches(pid) {
  const inodes = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let info;
    try { info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    for (const line of info.split('\n')) {
      const m = /^inotify wd:\S+ ino:([0-9a-f]+) /.exec(line);
      if (m) inodes.push(parseInt(m[1], 16));
    }
  }
  return inodes;
}

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
}

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)[1]);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function until(fn, timeoutMs, what, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (agent?.exitCode !== null && agent?.exitCode !== undefined) throw new Error(`the agent exited (${agent.exitCode}) while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
