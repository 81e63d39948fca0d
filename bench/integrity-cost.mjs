#!/usr/bin/env node
// The cost of the integrity guarantees (issue 10), measured side by side in one run: the CLIs as they
// were before them (--baseline, default 1661b74: format v1, the state docs/benchmarks.md measured on
// 2026-11-22) against this checkout (format v2: immutable packs and blobs, verified trees, a commit
// and a conditional head per push, journaled plain objects), on the same server, alternating runs.
//  - push of the 5k-file workspace (20k in node_modules): initial, no-op, one change;
//  - the pushed tree read through each version's fuse-mount: `find` cold, read-all cold.
// Wall and CPU time, peak RSS, and requests and bytes on the wire (a counting proxy, no latency).
// The baseline is built once into .tmp/bench/baseline-<commit> (git archive, pnpm install --offline, build).
// Usage: node bench/integrity-cost.mjs [--baseline 1661b74] [--sources 5000] [--node-modules 20000] [--runs 3]
//   (S3_BACKEND=rgw for Ceph RGW). Results: bench/results/integrity-cost-<backend>.json.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startTestS3 } from '@workspace-sync/testkit';
import { buildWorkspace, median } from './lib/fixture.mjs';
import { mountOurs } from './lib/mounts.mjs';
import { load, loadLog, run, sh } from './lib/proc.mjs';
import { startWire } from './lib/wire.mjs';

const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string', default: '1661b74' }, sources: { type: 'string', default: '5000' },
    'node-modules': { type: 'string', default: '20000' }, runs: { type: 'string', default: '3' }, out: { type: 'string' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const backend = process.env.S3_BACKEND ?? 'embedded';
const runs = Number(args.runs);
const work = path.join(repo, '.tmp/bench/integrity-cost');
const root = path.join(work, 'root');
const ws = path.join(root, 'app');
const loads = loadLog();
const log = (msg) => console.error(`[integrity-cost ${backend} ${new Date().toISOString().slice(11, 19)} load ${load().load1}] ${msg}`);

const baselineCommit = execFileSync('git', ['rev-parse', '--short', `${args.baseline}^{commit}`], { cwd: repo, encoding: 'utf8' }).trim();
const baselineDir = path.join(repo, `.tmp/bench/baseline-${baselineCommit}`);
if (!existsSync(path.join(baselineDir, 'packages/fuse-mount/dist'))) {
  log(`building ${baselineCommit} in ${baselineDir}`);
  rmSync(baselineDir, { recursive: true, force: true });
  mkdirSync(baselineDir, { recursive: true });
  execFileSync('sh', ['-c', `git archive ${baselineCommit} | tar -x -C '${baselineDir}'`], { cwd: repo });
  execFileSync('pnpm', ['install', '--offline', '--frozen-lockfile', '--reporter=silent'], { cwd: baselineDir, stdio: 'inherit' });
  execFileSync('pnpm', ['build'], { cwd: baselineDir, stdio: ['ignore', 'ignore', 'inherit'] });
}
const versions = { before: baselineDir, now: repo };

mkdirSync(ws, { recursive: true });
const fixture = buildWorkspace(ws, { sources: Number(args.sources), nodeModules: Number(args['node-modules']) });
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
const rows = { before: [], now: [] };
for (let i = 0; i < runs; i++) {
  for (const [name, dir] of Object.entries(versions)) {
    log(`run ${i + 1}: ${name}`);
    const prefix = `${name}-${i}/`;
    const env = { ...process.env, ...viaWire.env, WORKSPACES_DIR: root, S3_PREFIX: prefix, SYNC_STATE_DIR: path.join(work, `state-${name}-${i}`), LOG_LEVEL: 'warn' };
    rmSync(env.SYNC_STATE_DIR, { recursive: true, force: true });
    const push = () => timed(() => run(process.execPath, [path.join(dir, 'packages/sync-agent/bin/sync-agent.js'), 'push', 'app', '--concurrency', '32'], { env }));
    const initial = await push();
    const noop = await push();
    appendFileSync(path.join(ws, 'src/m0/bench-edit.ts'), `// edit ${++edit}\n`);
    const change = await push();
    const m = await mountOurs({ repo: dir, s3: viaWire, prefix, mnt: path.join(work, `mnt-${name}`), cacheDir: path.join(work, `cache-${name}`) });
    let findCold;
    let readCold;
    try {
      findCold = await timed(() => sh(`find '${m.mnt}/app' | wc -l`));
      readCold = await timed(() => sh(`cd '${m.mnt}/app' && find . -type f -print0 | xargs -0 cat | wc -c`));
    } finally {
      await m.stop();
    }
    rows[name].push({ initial, noop, change, findCold, readCold });
  }
}
loads.mark('end');
await wire.close();
await s3.stop();
rmSync(path.join(work, 's3'), { recursive: true, force: true });

const keys = ['initial', 'noop', 'change', 'findCold', 'readCold'];
const fields = ['seconds', 'cpuSeconds', 'maxRssMiB', 'requests', 'bytesUp', 'bytesDown'];
const medians = Object.fromEntries(Object.entries(rows).map(([v, rs]) => [v, Object.fromEntries(keys.map((k) => [k, Object.fromEntries(fields.map((f) => [f, median(rs.map((r) => r[k][f]))]))]))]));
const B = medians.before;
const N = medians.now;
const x = (a, b) => (b ? `${(a / b).toFixed(2)}×` : 'n/a');
const mbs = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const labels = { initial: 'initial push', noop: 'no-op push', change: 'one-change push', findCold: 'mount: `find` cold', readCold: 'mount: read all cold' };
const isPush = (k) => ['initial', 'noop', 'change'].includes(k);
const md = [
  `| cost of the guarantees (${fixture.sources} sources + ${fixture.nodeModules} in node_modules; ${backend}; median of ${runs}, alternating; ${loads.summary()}) | before (${baselineCommit}, format v1): wall / CPU | now (format v2): wall / CPU | wall now / before | CPU now / before | requests before → now | bytes up / down before → now |`,
  '|---|---|---|---|---|---|---|',
  ...keys.map((k) => `| ${labels[k]} | ${B[k].seconds.toFixed(2)} s / ${isPush(k) ? `${B[k].cpuSeconds.toFixed(2)} s` : '—'} | ${N[k].seconds.toFixed(2)} s / ${isPush(k) ? `${N[k].cpuSeconds.toFixed(2)} s` : '—'} | ${x(N[k].seconds, B[k].seconds)} | ${isPush(k) ? x(N[k].cpuSeconds, B[k].cpuSeconds) : '—'} | ${B[k].requests} → ${N[k].requests} | ${isPush(k) ? `${mbs(B[k].bytesUp)} → ${mbs(N[k].bytesUp)}` : `${mbs(B[k].bytesDown)} → ${mbs(N[k].bytesDown)}`} |`),
  `| push peak RSS, initial | ${B.initial.maxRssMiB.toFixed(0)} MiB | ${N.initial.maxRssMiB.toFixed(0)} MiB | ${x(N.initial.maxRssMiB, B.initial.maxRssMiB)} | | | |`,
].join('\n');
console.log(md);
const result = { benchmark: 'integrity-cost', backend, runs, baseline: baselineCommit, fixture, raw: rows, medians, load: { entries: loads.entries, summary: loads.summary() }, markdown: md };
mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
writeFileSync(args.out ?? path.join(repo, `bench/results/integrity-cost-${backend}.json`), `${JSON.stringify(result, null, 1)}\n`);
process.exit(0);
