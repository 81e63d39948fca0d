#!/usr/bin/env node
// Latency-bound lane: real S3 answers in 20-50 ms, loopback in under 1, so on loopback the server's
// CPU is the bound and round trips cost nothing. Here every request of every tool goes through
// testkit's fault proxy adding --latency ms (default 20) before it is handled:
//  - push of the 5k-file workspace (plus node_modules clutter): initial, no-op, one change —
//    sync-agent against rclone sync --transfers 32 and bare PUTs at concurrency 64;
//  - the pushed tree read through fuse-mount, rclone mount and s3fs: `find` cold, read-all cold,
//    a 64 MiB file cold (each capped at --cap seconds);
//  - `sync-agent restore --to` against `rclone copy --transfers 32` of the same workspace.
// Usage: node bench/latency.mjs [--latency 20] [--sources 5000] [--big-mib 64] [--runs 1] [--cap 120]
//   [--tools ours,rclone,s3fs]   (S3_BACKEND=rgw for Ceph RGW). Results: bench/results/latency-<backend>.json.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createFilter } from '@workspace-sync/shared';
import { startTestS3 } from '@workspace-sync/testkit';
import PQueue from 'p-queue';
import { buildWorkspace, median, RCLONE_EXCLUDES } from './lib/fixture.mjs';
import { mountOurs, mountRclone, mountS3fs } from './lib/mounts.mjs';
import { load, loadLog, run, sh } from './lib/proc.mjs';
import { rcloneEnv } from './lib/rclone.mjs';
import { startWire, storeFor } from './lib/wire.mjs';

const { values: args } = parseArgs({
  options: {
    latency: { type: 'string', default: '20' }, sources: { type: 'string', default: '5000' }, 'node-modules': { type: 'string', default: '20000' },
    'big-mib': { type: 'string', default: '64' }, runs: { type: 'string', default: '1' }, cap: { type: 'string', default: '120' },
    tools: { type: 'string', default: 'ours,rclone,s3fs' }, out: { type: 'string' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const backend = process.env.S3_BACKEND ?? 'embedded';
const latency = Number(args.latency);
const runs = Number(args.runs);
const cap = Number(args.cap);
const work = path.join(repo, '.tmp/bench/latency');
const root = path.join(work, 'root');
const ws = path.join(root, 'app');
const agentBin = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');
const available = (tool) => tool === 'ours' || spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;
const tools = args.tools.split(',').filter(available);
const loads = loadLog();
const log = (msg) => console.error(`[latency ${latency} ms ${backend} ${new Date().toISOString().slice(11, 19)} load ${load().load1}] ${msg}`);

mkdirSync(ws, { recursive: true });
mkdirSync(path.join(root, 'big'), { recursive: true });
const fixture = buildWorkspace(ws, { sources: Number(args.sources), nodeModules: Number(args['node-modules']) });
buildWorkspace(path.join(root, 'big'), { sources: 1, nodeModules: 0, bigMiB: Number(args['big-mib']), seed: 7 });
mkdirSync(path.join(ws, 'src/m0'), { recursive: true });
appendFileSync(path.join(ws, 'src/m0/bench-edit.ts'), '// edited by the benchmark\n');
rmSync(path.join(work, 's3'), { recursive: true, force: true });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const wire = await startWire(s3.endpoint);
const viaWire = { ...s3, endpoint: wire.endpoint, env: { ...s3.env, S3_ENDPOINT: wire.endpoint } };
loads.mark('start');

const timed = async (fn) => {
  wire.clear();
  const r = await fn();
  const w = wire.since(0);
  return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, maxRssMiB: r.maxRssMiB, requests: w.requests, bytesUp: w.bytesUp, bytesDown: w.bytesDown };
};
let edit = 0;
const touch = () => appendFileSync(path.join(ws, 'src/m0/bench-edit.ts'), `// edit ${++edit}\n`);

// ---- push (with the latency on)
wire.latency(latency);
const push = { ours: [], rclone32: [], bare: [] };
const agentEnv = (run) => ({
  ...process.env, ...viaWire.env, WORKSPACES_DIR: root, S3_PREFIX: `ours-${run}/`, SYNC_STATE_DIR: path.join(work, `state-${run}`), LOG_LEVEL: 'warn',
});
const synced = listSynced();
for (let i = 0; i < runs; i++) {
  rmSync(path.join(work, `state-${i}`), { recursive: true, force: true });
  if (tools.includes('ours')) {
    log(`push run ${i + 1}: sync-agent`);
    const p = (ws_) => timed(() => run(process.execPath, [agentBin, 'push', ...ws_, '--concurrency', '32'], { env: agentEnv(i) }));
    const initial = await p(['app']);
    const noop = await p(['app']);
    touch();
    const change = await p(['app']);
    push.ours.push({ initial, noop, change });
    if (i === 0) await p(['big']); // what the mounts read below
  }
  if (tools.includes('rclone')) {
    log(`push run ${i + 1}: rclone`);
    const env = rcloneEnv(viaWire);
    const r = () => timed(() => run('rclone', ['sync', ws, `bench:${s3.bucket}/rclone-${i}/app`, '--transfers', '32', '--checkers', '32', ...RCLONE_EXCLUDES], { env }));
    const initial = await r();
    const noop = await r();
    touch();
    const change = await r();
    push.rclone32.push({ initial, noop, change });
  }
  log(`push run ${i + 1}: bare PUTs`);
  push.bare.push({ initial: await barePuts(i) });
}
loads.mark('after push');

// ---- mounts (the latency stays on): the tree sync-agent pushed in run 0, through each tool
const mount = {};
const mounters = {
  ours: () => mountOurs({ repo, s3: viaWire, prefix: 'ours-0/', mnt: path.join(work, 'mnt-ours'), cacheDir: path.join(work, 'cache-ours') }),
  rclone: () => mountRclone({ s3: viaWire, prefix: 'ours-0/', mnt: path.join(work, 'mnt-rclone'), cacheDir: path.join(work, 'cache-rclone') }),
  s3fs: () => mountS3fs({ s3: viaWire, prefix: 'ours-0/', mnt: path.join(work, 'mnt-s3fs'), cacheDir: path.join(work, 'cache-s3fs'), work }),
};
const capped = async (script) => {
  wire.clear();
  const r = await sh(script, { timeoutMs: cap * 1000, ok: [0, null, 1, 123, 137] });
  const w = wire.since(0);
  return { seconds: r.code === 0 ? r.seconds : null, capped: r.code !== 0, requests: w.requests, bytesDown: w.bytesDown, out: r.stdout.trim() };
};
for (const tool of tools) {
  mount[tool] = [];
  for (let i = 0; i < runs; i++) {
    log(`mount run ${i + 1}: ${tool}`);
    const m = await mounters[tool]();
    try {
      const findCold = await capped(`find '${m.mnt}/app' | wc -l`);
      const readCold = await capped(`cd '${m.mnt}/app' && find . -type f -print0 | xargs -0 cat | wc -c`);
      const bigCold = await capped(`cat '${m.mnt}/big/assets/big.bin' | wc -c`);
      mount[tool].push({ findCold, readCold, bigCold });
    } finally {
      await m.stop();
    }
  }
}
loads.mark('after mounts');

// ---- restore against rclone copy
const restore = { ours: [], rclone: [] };
for (let i = 0; i < runs; i++) {
  if (tools.includes('ours')) {
    log(`restore run ${i + 1}`);
    const to = path.join(work, `restore-${i}`);
    rmSync(to, { recursive: true, force: true });
    restore.ours.push(await timed(() => run(process.execPath, [agentBin, 'restore', 'app', '--to', to], { env: agentEnv(0) })));
    rmSync(to, { recursive: true, force: true });
  }
  if (tools.includes('rclone')) {
    const to = path.join(work, `rclone-copy-${i}`);
    rmSync(to, { recursive: true, force: true });
    restore.rclone.push(await timed(() => run('rclone', ['copy', `bench:${s3.bucket}/ours-0/app`, to, '--transfers', '32', '--checkers', '32'], { env: rcloneEnv(viaWire) })));
    rmSync(to, { recursive: true, force: true });
  }
}
wire.latency(0);
loads.mark('end');
await wire.close();
await s3.stop();
rmSync(path.join(work, 's3'), { recursive: true, force: true });

// ---- results
const med = (rows, f) => (rows?.length ? median(rows.map(f)) : undefined);
const medTimed = (rows, k) => (rows?.length ? Object.fromEntries(['seconds', 'cpuSeconds', 'requests', 'bytesUp', 'bytesDown'].map((f) => [f, med(rows, (r) => r[k][f])])) : undefined);
const medians = {
  push: Object.fromEntries(Object.entries(push).map(([t, rows]) => [t, Object.fromEntries(['initial', 'noop', 'change'].map((k) => [k, rows[0]?.[k] ? medTimed(rows, k) : undefined]))])),
  mount: Object.fromEntries(Object.entries(mount).map(([t, rows]) => [t, Object.fromEntries(['findCold', 'readCold', 'bigCold'].map((k) => [k, {
    seconds: rows.some((r) => r[k].capped) ? null : med(rows, (r) => r[k].seconds), requests: med(rows, (r) => r[k].requests), bytesDown: med(rows, (r) => r[k].bytesDown),
  }]))])),
  restore: Object.fromEntries(Object.entries(restore).map(([t, rows]) => [t, rows.length ? {
    seconds: med(rows, (r) => r.seconds), cpuSeconds: med(rows, (r) => r.cpuSeconds), requests: med(rows, (r) => r.requests), bytesDown: med(rows, (r) => r.bytesDown),
  } : undefined])),
};
const s = (v) => (v === undefined ? 'n/a' : v === null ? `> ${cap} s` : `${v.toFixed(2)} s`);
const x = (a, b) => (a != null && b ? `${(a / b).toFixed(2)}×` : 'n/a');
const rq = (v) => (v ? ` (${v.requests} req)` : '');
const P = medians.push;
const M = medians.mount;
const R = medians.restore;
const md = [
  `| push, ${latency} ms per request (${synced.files} files synced, ${fixture.nodeModules} in node_modules; ${backend}; median of ${runs}; ${loads.summary()}) | sync-agent | rclone --transfers 32 | bare PUTs ×64 | sync-agent / rclone |`,
  '|---|---|---|---|---|',
  ...['initial', 'noop', 'change'].map((k) => `| ${{ initial: 'initial', noop: 'no-op', change: 'one change' }[k]} | ${s(P.ours?.[k]?.seconds)}${rq(P.ours?.[k])} | ${s(P.rclone32?.[k]?.seconds)}${rq(P.rclone32?.[k])} | ${k === 'initial' ? s(P.bare?.initial?.seconds) : '—'} | ${x(P.ours?.[k]?.seconds, P.rclone32?.[k]?.seconds)} |`),
  '',
  `| mount, ${latency} ms per request (the tree above${Number(args['big-mib']) ? ` + ${args['big-mib']} MiB` : ''}; cap ${cap} s) | fuse-mount | rclone mount | s3fs | fuse-mount / rclone | fuse-mount / s3fs |`,
  '|---|---|---|---|---|---|',
  ...[['findCold', '`find` cold'], ['readCold', 'read all cold'], ['bigCold', `${args['big-mib']} MiB cold`]].map(([k, label]) =>
    `| ${label} | ${s(M.ours?.[k]?.seconds)}${rq(M.ours?.[k])} | ${s(M.rclone?.[k]?.seconds)}${rq(M.rclone?.[k])} | ${s(M.s3fs?.[k]?.seconds)}${rq(M.s3fs?.[k])} | ${x(M.ours?.[k]?.seconds, M.rclone?.[k]?.seconds)} | ${x(M.ours?.[k]?.seconds, M.s3fs?.[k]?.seconds)} |`),
  '',
  `| restore, ${latency} ms per request | sync-agent restore --to | rclone copy --transfers 32 | ratio |`,
  '|---|---|---|---|',
  `| ${synced.files} files | ${s(R.ours?.seconds)}${rq(R.ours)} | ${s(R.rclone?.seconds)}${rq(R.rclone)} | ${x(R.ours?.seconds, R.rclone?.seconds)} |`,
].join('\n');
console.log(md);
const result = { benchmark: 'latency', backend, latencyMs: latency, runs, cap, fixture: { ...fixture, syncedFiles: synced.files }, raw: { push, mount, restore }, medians, load: { entries: loads.entries, summary: loads.summary() }, markdown: md };
mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
writeFileSync(args.out ?? path.join(repo, `bench/results/latency-${backend}.json`), `${JSON.stringify(result, null, 1)}\n`);
process.exit(0);

function listSynced() {
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
  return { files: files.length, list: files };
}

/** The same files as bare PUTs at concurrency 64 through the delaying proxy: the bound for a latency-bound push. */
async function barePuts(i) {
  const store = storeFor(s3, wire.endpoint, 64);
  const q = new PQueue({ concurrency: 64 });
  wire.clear();
  const t0 = performance.now();
  for (const f of synced.list) q.add(async () => store.put(`bare-${i}/app/${f}`, await readFile(path.join(ws, f))));
  await q.onIdle();
  return { seconds: (performance.now() - t0) / 1000, requests: wire.since(0).requests };
}
