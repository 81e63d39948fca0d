#!/usr/bin/env node
// History lane (issue 13): what retention costs and how fast a workspace comes back.
//  1. Storage: the 5k-file fixture pushed, then --generations (100) pushes of typical edits (a few files
//     changed each time, now and then a file added, renamed or deleted); the bytes the bucket holds
//     for the history (.sync/: packs, trees, commits, head) and for the plain mirror, as multiples of
//     one copy of the workspace; then `sync-agent gc` with the default retention (and, after step 2, with 10 generations).
//  2. Restore: `sync-agent restore --to` of the latest generation (and of the middle one) against
//     `rclone copy` of the same workspace's plain prefix (--transfers 32), each checked against the
//     workspace with diff -r; wall, CPU, peak RSS, requests and bytes on the wire.
// Usage: node bench/history.mjs [--sources 5000] [--generations 100] [--runs 3]   (S3_BACKEND=rgw for Ceph RGW)
import { appendFileSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createFilter } from '@workspace-sync/shared';
import { startTestS3 } from '@workspace-sync/testkit';
import { buildWorkspace, median } from './lib/fixture.mjs';
import { load, loadLog, run } from './lib/proc.mjs';
import { rcloneEnv } from './lib/rclone.mjs';
import { startWire, storeFor, stored } from './lib/wire.mjs';

const { values: args } = parseArgs({
  options: {
    sources: { type: 'string', default: '5000' }, generations: { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' }, out: { type: 'string' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const backend = process.env.S3_BACKEND ?? 'embedded';
const work = path.join(repo, '.tmp/bench/history');
const root = path.join(work, 'root');
const ws = path.join(root, 'app');
const agentBin = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');
const generations = Number(args.generations);
const runs = Number(args.runs);
const loads = loadLog();
const log = (msg) => console.error(`[history ${backend} ${new Date().toISOString().slice(11, 19)} load ${load().load1}] ${msg}`);

// The edits change the fixture: start from a fresh one every time.
rmSync(work, { recursive: true, force: true });
mkdirSync(ws, { recursive: true });
const fixture = buildWorkspace(ws, { sources: Number(args.sources), nodeModules: 0 });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const wire = await startWire(s3.endpoint);
const store = storeFor(s3);
const prefix = 'hist/';
const env = {
  ...process.env, ...s3.env, S3_ENDPOINT: wire.endpoint, WORKSPACES_DIR: root, S3_PREFIX: prefix,
  SYNC_STATE_DIR: path.join(work, 'state'), LOG_LEVEL: 'warn',
};
const agent = (argv, ok = [0]) => run(process.execPath, [agentBin, ...argv], { env, ok });
loads.mark('start');

const copy = () => {
  const filter = createFilter({ root, workspace: 'app' });
  let files = 0;
  let bytes = 0;
  const walk = (rel) => {
    for (const d of readdirSync(path.join(ws, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (filter.excludes(p, d.isDirectory())) continue;
      if (d.isDirectory()) walk(p);
      else { files++; bytes += statSync(path.join(ws, p)).size; }
    }
  };
  walk('');
  return { files, bytes };
};
const sources = () => {
  const out = [];
  const walk = (rel) => {
    for (const d of readdirSync(path.join(ws, rel), { withFileTypes: true })) {
      const p = `${rel}/${d.name}`;
      if (d.isDirectory()) walk(p); else out.push(p);
    }
  };
  walk('src');
  return out;
};

// ---- 1. storage over generations
log('initial push');
const first = await agent(['push', 'app', '--concurrency', '32']);
const oneCopy = copy();
const history = { initialPushSeconds: first.seconds, oneCopy, curve: [] };
const snapshot = async (generation) => {
  const sync = await stored(store, `${prefix}.sync/app/`);
  history.curve.push({ generation, syncBytes: sync.bytes, syncObjects: sync.objects });
  return sync;
};
history.afterFirst = await snapshot(1);

let seed = 3;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
const edits = { modified: 0, added: 0, renamed: 0, deleted: 0 };
const pushSeconds = [];
let lastPushAt = Date.now();
let files = sources().map((p) => path.join(ws, p));
log(`${generations} generations of typical edits`);
for (let g = 2; g <= generations + 1; g++) {
  // A typical save: 1-5 files edited (a line added), sometimes a file added, renamed or deleted.
  const n = 1 + Math.floor(rand() * 5);
  for (let i = 0; i < n; i++) {
    appendFileSync(files[Math.floor(rand() * files.length)], `export const edit${g}x${i} = ${Math.floor(rand() * 1e6)};\n`);
    edits.modified++;
  }
  if (g % 10 === 0) {
    writeFileSync(path.join(ws, `src/m${g % 12}/new-${g}.ts`), `// added in generation ${g}\n${'export const y = 2;\n'.repeat(100)}`);
    edits.added++;
  }
  if (g % 20 === 5) {
    const from = files[Math.floor(rand() * files.length)];
    renameSync(from, from.replace(/\.ts$/, `.renamed${g}.ts`));
    edits.renamed++;
  }
  if (g % 25 === 0) {
    unlinkSync(files[Math.floor(rand() * files.length)]);
    edits.deleted++;
  }
  files = sources().map((p) => path.join(ws, p));
  pushSeconds.push((await agent(['push', 'app'])).seconds);
  lastPushAt = Date.now();
  if (g % 10 === 1 || g === generations + 1) await snapshot(g);
}
loads.mark('after generations');
const finalCopy = copy();
const sync = await snapshot(generations + 1);
const plain = await stored(store, `${prefix}app/`);
const logOut = await agent(['log', 'app', '--json', '--max-count', '1000']);
const listed = JSON.parse(logOut.stdout);
Object.assign(history, {
  generations: generations + 1, edits, finalCopy, pushSecondsMedian: median(pushSeconds),
  listedGenerations: listed.length,
  sync, plain,
  overhead: {
    syncPerCopy: sync.bytes / oneCopy.bytes,
    withPlainPerCopy: (sync.bytes + plain.bytes) / oneCopy.bytes,
    perGenerationBytes: (sync.bytes - history.afterFirst.bytes) / generations,
  },
});
log('gc');
const gcDefault = await agent(['gc', 'app', '--json']);
history.afterGcDefault = await stored(store, `${prefix}.sync/app/`);
history.gcDefaultSeconds = gcDefault.seconds;
loads.mark('after gc');

// ---- 2. restore against rclone copy
const middle = Math.max(2, Math.floor(generations / 2) + 1);
const restore = { ours: [], oursMiddle: [], rclone: [] };
const timed = async (fn) => {
  wire.clear();
  const r = await fn();
  return { seconds: r.seconds, cpuSeconds: r.cpuSeconds, maxRssMiB: r.maxRssMiB, wire: wire.since(0) };
};
const same = async (dir) => {
  const d = await run('diff', ['-r', '-q', dir, ws], { ok: [0, 1] });
  return d.code === 0 ? 'identical' : `differs: ${d.stdout.split('\n').slice(0, 3).join('; ')}`;
};
const rEnv = rcloneEnv({ ...s3, endpoint: wire.endpoint });
for (let i = 0; i < runs; i++) {
  log(`restore run ${i + 1}`);
  const to = path.join(work, `restore-${i}`);
  const r = await timed(() => agent(['restore', 'app', '--to', to]));
  restore.ours.push({ ...r, check: await same(to) });
  const mid = path.join(work, `restore-mid-${i}`);
  restore.oursMiddle.push(await timed(() => agent(['restore', 'app', '--to', mid, '--generation', String(middle)])));
  const rc = path.join(work, `rclone-${i}`);
  const c = await timed(() => run('rclone', ['copy', `bench:${s3.bucket}/${prefix}app`, rc, '--transfers', '32', '--checkers', '32'], { env: rEnv }));
  restore.rclone.push({ ...c, check: await same(rc) });
  for (const d of [to, mid, rc]) rmSync(d, { recursive: true, force: true });
}
// Retention cut to 10 generations, once the restores above no longer need the older ones. gc never
// removes anything younger than its grace period (at least 1 minute): wait that long.
await new Promise((r) => setTimeout(r, Math.max(0, lastPushAt + 65_000 - Date.now())));
const gc10 = await agent(['gc', 'app', '--json', '--keep-generations', '10', '--keep-for', '1m', '--gc-grace', '1m']);
history.afterGcKeep10 = await stored(store, `${prefix}.sync/app/`);
history.gcKeep10Seconds = gc10.seconds;
loads.mark('end');
await wire.close();
await s3.stop();
rmSync(path.join(work, 's3'), { recursive: true, force: true });

const med = (rows, f) => median(rows.map(f));
const sum = Object.fromEntries(Object.entries(restore).map(([k, rows]) => [k, {
  seconds: med(rows, (r) => r.seconds), cpuSeconds: med(rows, (r) => r.cpuSeconds), maxRssMiB: med(rows, (r) => r.maxRssMiB),
  requests: med(rows, (r) => r.wire.requests), bytesDown: med(rows, (r) => r.wire.bytesDown), check: rows.map((r) => r.check).filter(Boolean),
}]));
const result = {
  benchmark: 'history', backend, runs, fixture, history, restore: { middleGeneration: middle, raw: restore, medians: sum },
  load: { entries: loads.entries, summary: loads.summary() },
};
const mbs = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const x = (a, b) => `${(a / b).toFixed(2)}×`;
const byKind = (s) => Object.entries(s.byKind).map(([k, v]) => `${k} ${v.objects} (${mbs(v.bytes)})`).join(', ');
const h = history;
const row = (label, r) => `| ${label} | ${r.seconds.toFixed(2)} s | ${r.cpuSeconds.toFixed(2)} s | ${r.maxRssMiB.toFixed(0)} MiB | ${r.requests} | ${mbs(r.bytesDown)} | ${x(r.seconds, sum.rclone.seconds)} |`;
result.markdown = [
  `| retention (${oneCopy.files} files, ${mbs(oneCopy.bytes)}; ${h.generations} generations: ${edits.modified} file edits, ${edits.added} added, ${edits.renamed} renamed, ${edits.deleted} deleted; ${backend}; ${result.load.summary}) | value |`,
  '|---|---|',
  `| history (.sync/) after the first push | ${mbs(h.afterFirst.bytes)} (${x(h.afterFirst.bytes, oneCopy.bytes)} one copy) |`,
  `| history after ${h.generations} generations | ${mbs(sync.bytes)} in ${sync.objects} objects = **${x(sync.bytes, oneCopy.bytes)} one copy**; ${byKind(sync)} |`,
  `| each further generation (mean) | ${(h.overhead.perGenerationBytes / 1024).toFixed(1)} KiB |`,
  `| plain mirror | ${mbs(plain.bytes)} (${plain.objects} objects) |`,
  `| everything the bucket holds for the workspace | ${x(sync.bytes + plain.bytes, oneCopy.bytes)} one copy |`,
  `| generations listed by \`sync-agent log\` | ${h.listedGenerations} |`,
  `| after \`sync-agent gc\` (defaults: 100 generations, 7 days) | ${mbs(h.afterGcDefault.bytes)} in ${h.afterGcDefault.objects} objects (${h.gcDefaultSeconds.toFixed(2)} s) |`,
  `| after \`sync-agent gc --keep-generations 10 --keep-for 1m --gc-grace 1m\` (a minute after the last push) | ${mbs(h.afterGcKeep10.bytes)} in ${h.afterGcKeep10.objects} objects = ${x(h.afterGcKeep10.bytes, oneCopy.bytes)} one copy (${h.gcKeep10Seconds.toFixed(2)} s) |`,
  `| push of one generation (median) | ${h.pushSecondsMedian.toFixed(2)} s |`,
  '',
  `| restore ${finalCopy.files} files (${backend}; median of ${runs}) | wall | CPU | peak RSS | requests | bytes down | / rclone copy |`,
  '|---|---|---|---|---|---|---|',
  row(`\`sync-agent restore --to\` (latest; ${sum.ours.check.join(', ')})`, sum.ours),
  row(`\`sync-agent restore --to --generation ${middle}\``, sum.oursMiddle),
  row(`\`rclone copy --transfers 32\` of the plain prefix (${sum.rclone.check.join(', ')})`, sum.rclone),
].join('\n');
console.log(result.markdown);
mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
writeFileSync(args.out ?? path.join(repo, `bench/results/history-${backend}.json`), `${JSON.stringify(result, null, 1)}\n`);
process.exit(0);
