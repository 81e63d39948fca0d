#!/usr/bin/env node
// Mount benchmark: the same pushed workspace (5k files + a 64 MiB file) read through fuse-mount,
// rclone mount (--vfs-cache-mode full) and s3fs, same server, same run; local disk as the limit.
// Usage: node bench/mount.mjs [--sources 5000] [--big-mib 64] [--runs 3] [--change-cap 30]   (S3_BACKEND=rgw for Ceph)
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startTestS3 } from '@workspace-sync/testkit';
import { buildWorkspace, median } from './lib/fixture.mjs';
import { mountOurs, mountRclone, mountS3fs } from './lib/mounts.mjs';

const { values: args } = parseArgs({
  options: {
    sources: { type: 'string', default: '5000' }, 'big-mib': { type: 'string', default: '64' },
    runs: { type: 'string', default: '3' }, 'change-cap': { type: 'string', default: '30' }, tools: { type: 'string', default: 'ours,rclone,s3fs' },
    out: { type: 'string' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(repo, '.tmp/bench/mount');
const root = path.join(work, 'root');
const agent = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');
const runs = Number(args.runs);
const changeCap = Number(args['change-cap']);
const backend = process.env.S3_BACKEND ?? 'embedded';

mkdirSync(path.join(root, 'app'), { recursive: true });
mkdirSync(path.join(root, 'big'), { recursive: true });
const fixture = buildWorkspace(path.join(root, 'app'), { sources: Number(args.sources), nodeModules: 0 });
buildWorkspace(path.join(root, 'big'), { sources: 1, nodeModules: 0, bigMiB: Number(args['big-mib']), seed: 7 });
// The file the change-visibility step edits exists from the start, so every tool sees the same tree.
mkdirSync(path.join(root, 'app/src/m0'), { recursive: true });
appendFileSync(path.join(root, 'app/src/m0/bench-change.ts'), '// edited by the benchmark\n');
// A fresh server every run: objects left by an earlier run would turn the initial push into a no-op.
rmSync(path.join(work, 's3'), { recursive: true, force: true });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const prefix = 'bench/';
const agentEnv = { ...process.env, ...s3.env, WORKSPACES_DIR: root, S3_PREFIX: prefix, SYNC_STATE_DIR: path.join(work, 'state'), LOG_LEVEL: 'warn' };
const push = () => {
  const r = spawnSync(process.execPath, [agent, 'push', '--concurrency', '32'], { env: agentEnv, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`push failed: ${r.stderr}`);
};
push();

const sh = (cmd) => {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return { s, out: r.stdout.trim() };
};
const q = (p) => `'${p.replace(/'/g, "'\\''")}'`;
const expectedFiles = Number(sh(`find ${q(path.join(root, 'app'))} -type f | wc -l`).out);

function measureTree(dir) {
  const findCold = sh(`find ${q(dir)}/app | wc -l`);
  const findWarm = sh(`find ${q(dir)}/app | wc -l`);
  const readCold = sh(`find ${q(dir)}/app -type f -print0 | xargs -0 cat | wc -c`);
  const readWarm = sh(`find ${q(dir)}/app -type f -print0 | xargs -0 cat | wc -c`);
  const bigCold = sh(`cat ${q(dir)}/big/assets/big.bin | wc -c`);
  const bigWarm = sh(`cat ${q(dir)}/big/assets/big.bin | wc -c`);
  const files = Number(sh(`find ${q(dir)}/app -type f | wc -l`).out);
  return { findCold: findCold.s, findWarm: findWarm.s, readCold: readCold.s, readWarm: readWarm.s, bigCold: bigCold.s, bigWarm: bigWarm.s, files, bytes: Number(readCold.out) };
}

let edit = 0;
/** Pushes an edit of one file and measures until the mount serves the new content. */
async function changeVisible(dir) {
  const rel = 'src/m0/bench-change.ts';
  const line = `// change ${++edit} ${Date.now()}\n`;
  appendFileSync(path.join(root, 'app', rel), line);
  const want = readFileSync(path.join(root, 'app', rel), 'utf8');
  push();
  const t0 = performance.now();
  while ((performance.now() - t0) / 1000 < changeCap) {
    const r = spawnSync('cat', [path.join(dir, 'app', rel)], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout === want) return (performance.now() - t0) / 1000;
    await new Promise((res) => setTimeout(res, 100));
  }
  return Infinity;
}

const mounters = {
  ours: (i) => mountOurs({ repo, s3, prefix, mnt: path.join(work, `mnt-ours-${i}`), cacheDir: path.join(work, `cache-ours-${i}`) }),
  rclone: (i) => mountRclone({ s3, prefix, mnt: path.join(work, `mnt-rclone-${i}`), cacheDir: path.join(work, `cache-rclone-${i}`) }),
  s3fs: (i) => mountS3fs({ s3, prefix, mnt: path.join(work, `mnt-s3fs-${i}`), cacheDir: path.join(work, `cache-s3fs-${i}`), work }),
};
const available = (tool) => tool === 'ours' || spawnSync(tool, ['--version'], { stdio: 'ignore' }).status === 0;

const results = {};
for (const tool of args.tools.split(',').filter(available)) {
  results[tool] = [];
  for (let i = 0; i < runs; i++) {
    const m = await mounters[tool](i);
    try {
      const tree = measureTree(m.mnt);
      if (tree.files !== expectedFiles) throw new Error(`${tool} shows ${tree.files} files, expected ${expectedFiles}`);
      // Visibility depends on where in the poll cycle a push lands: the median of three pushes.
      const first = await changeVisible(m.mnt);
      const samples = Number.isFinite(first) ? [first, await changeVisible(m.mnt), await changeVisible(m.mnt)] : [first];
      results[tool].push({ ...tree, changeVisible: median(samples), changeSamples: samples });
    } finally {
      await m.stop();
    }
  }
}
// Local disk as the limit (page cache warm after the first pass).
results.local = [];
for (let i = 0; i < runs; i++) results.local.push({ ...measureTree(root), changeVisible: 0 });
await s3.stop();

const keys = ['findCold', 'findWarm', 'readCold', 'readWarm', 'bigCold', 'bigWarm', 'changeVisible'];
const medians = Object.fromEntries(Object.entries(results).map(([t, rows]) => [t, Object.fromEntries(keys.map((k) => [k, median(rows.map((r) => r[k]))]))]));
const fmt = (v) => (v === undefined ? 'n/a' : v === Infinity ? `> ${changeCap} s` : `${v.toFixed(2)} s`);
const ratio = (a, b) => (a !== undefined && b !== undefined && b > 0 && Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : 'n/a');
const labels = { findCold: '`find` cold', findWarm: '`find` warm', readCold: 'read all cold', readWarm: 'read all warm', bigCold: `${args['big-mib']} MiB cold`, bigWarm: `${args['big-mib']} MiB warm`, changeVisible: 'remote change visible' };
const o = medians.ours ?? {};
const md = [
  `| mount (${expectedFiles} files + ${args['big-mib']} MiB; ${backend}; median of ${runs}) | fuse-mount | rclone mount | s3fs | local disk | fuse-mount / rclone |`,
  '|---|---|---|---|---|---|',
  ...keys.map((k) => `| ${labels[k]} | ${fmt(o[k])} | ${fmt(medians.rclone?.[k])} | ${fmt(medians.s3fs?.[k])} | ${k === 'changeVisible' ? '—' : fmt(medians.local[k])} | ${ratio(o[k], medians.rclone?.[k])} |`),
].join('\n');
const targets = {
  findCold: { target: '≤ 0.3 s', value: o.findCold, met: o.findCold <= 0.3 },
  readCold: {
    target: '≤ 0.5× rclone', value: o.readCold, rclone: medians.rclone?.readCold, met: medians.rclone ? o.readCold <= 0.5 * medians.rclone.readCold : null,
    why: `${(o.readCold / medians.rclone?.readCold).toFixed(2)}× rclone: on loopback a GET costs the server CPU, not latency, so a parallel prefetch is bounded by the server's own throughput on the 2 shared cores`,
  },
  readWarm: { target: '≤ 1.5 s', value: o.readWarm, met: o.readWarm <= 1.5 },
  changeVisible: { target: '≤ 2 s', value: o.changeVisible, met: o.changeVisible <= 2, why: 'a push lands anywhere in the 2 s poll cycle, so the worst case is the poll interval plus one manifest GET' },
};
console.log(md);
mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
writeFileSync(args.out ?? path.join(repo, `bench/results/mount-${backend}.json`), `${JSON.stringify({ benchmark: 'mount', backend, runs, fixture: { ...fixture, files: expectedFiles, bigMiB: Number(args['big-mib']) }, medians, raw: results, targets, markdown: md }, (k, v) => (v === Infinity ? null : v), 2)}\n`);
