#!/usr/bin/env node
// Many-workspace mount lane: one mount over --workspaces (default 1,000) format-v2 workspaces written
// with testkit's fixture writer (with their plain objects, so rclone mount reads the same tree), then
//  - the mount's start, `ls` of the root, requests and bytes per poll while nothing changes;
//  - `find` over every workspace cold and warm, and the mount's RSS after it (fuse-mount, rclone mount);
//  - a commit to one workspace: time until the mount serves it, and what that poll cost.
// Requests and bytes are counted on the wire by a proxy in front of the server.
// Usage: node bench/scale-workspaces.mjs [--workspaces 1000] [--files 20] [--poll 2s] [--tools ours,rclone]
//   (S3_BACKEND=rgw for Ceph RGW). Results: bench/results/scale-workspaces-<backend>.json.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startTestS3, writeCommitFixture } from '@workspace-sync/testkit';
import PQueue from 'p-queue';
import { mountOurs, mountRclone } from './lib/mounts.mjs';
import { load, loadLog, memory, sh, sleep, until } from './lib/proc.mjs';
import { startWire, storeFor } from './lib/wire.mjs';

const { values: args } = parseArgs({
  options: {
    workspaces: { type: 'string', default: '1000' }, files: { type: 'string', default: '20' },
    poll: { type: 'string', default: '2s' }, tools: { type: 'string', default: 'ours,rclone' }, out: { type: 'string' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const n = Number(args.workspaces);
const perWs = Number(args.files);
const backend = process.env.S3_BACKEND ?? 'embedded';
const work = path.join(repo, '.tmp/bench/scale-workspaces');
const pollSeconds = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(args.poll) ? Number.parseFloat(args.poll) / (args.poll.endsWith('ms') ? 1000 : 1) : 2;
const tools = new Set(args.tools.split(','));
const loads = loadLog();
const log = (msg) => console.error(`[workspaces ${n} ${backend} ${new Date().toISOString().slice(11, 19)} load ${load().load1}] ${msg}`);

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const store = storeFor(s3, s3.endpoint, 64);
const wire = await startWire(s3.endpoint);
const prefix = 'many/';
const wsName = (i) => `ws${String(i).padStart(5, '0')}`;
const filesOf = (i, generation = 1) => Array.from({ length: perWs }, (_, j) => ({
  path: j === 0 ? 'package.json' : `src/m${j % 4}/file${j}.ts`,
  content: `// ${wsName(i)} file ${j} generation ${generation}\n${'export const x = 1;\n'.repeat(5 + (j % 40))}`,
}));

loads.mark('start');
log(`writing ${n} workspaces of ${perWs} files`);
let t0 = performance.now();
const q = new PQueue({ concurrency: 8 });
for (let i = 0; i < n; i++) q.add(() => writeCommitFixture(store, prefix, wsName(i), filesOf(i), { plain: true, concurrency: 8 }));
await q.onIdle();
const writeSeconds = (performance.now() - t0) / 1000;
log(`written in ${writeSeconds.toFixed(1)} s`);

const result = { benchmark: 'scale-workspaces', backend, workspaces: n, filesPerWorkspace: perWs, pollInterval: args.poll, writeSeconds, ours: {}, rclone: {} };

if (tools.has('ours')) {
  wire.clear();
  t0 = performance.now();
  const m = await mountOurs({
    repo, s3: { ...s3, env: { ...s3.env, S3_ENDPOINT: wire.endpoint } }, prefix, mnt: path.join(work, 'mnt-ours'),
    cacheDir: path.join(work, 'cache-ours'), extraArgs: ['--poll-interval', args.poll],
  });
  const o = result.ours;
  try {
    o.readySeconds = (performance.now() - t0) / 1000;
    o.startWire = wire.since(0);
    const ls = await sh(`ls '${m.mnt}' | wc -l`);
    o.ls = { seconds: ls.seconds, entries: Number(ls.stdout.trim()) };
    if (o.ls.entries !== n) throw new Error(`the mount lists ${o.ls.entries} workspaces, expected ${n}`);
    await sleep(2000);
    o.rssIdleMiB = memory(m.pid).rssMiB;
    // Requests per poll while nothing changes.
    const polls = 10;
    let mark = wire.mark();
    await sleep(polls * pollSeconds * 1000);
    const idle = wire.since(mark);
    o.idlePoll = { polls, requestsPerPoll: idle.requests / polls, bytesDownPerPoll: idle.bytesDown / polls, byKind: idle.byKind };
    log(`ours: ${o.idlePoll.requestsPerPoll} requests per poll; find`);
    loads.mark('ours idle');
    mark = wire.mark();
    const cold = await sh(`find '${m.mnt}' | wc -l`, { timeoutMs: 600_000 });
    o.findWire = wire.since(mark);
    o.findCold = { seconds: cold.seconds, entries: Number(cold.stdout.trim()) };
    o.findWarm = { seconds: (await sh(`find '${m.mnt}' | wc -l`)).seconds };
    const mem = memory(m.pid);
    o.rssAfterFindMiB = mem.rssMiB;
    o.peakMiB = mem.peakMiB;
    o.bytesPerFile = ((mem.peakMiB - o.rssIdleMiB) * 2 ** 20) / (n * perWs);
    // A new commit of one workspace: until the mount serves it, and that poll's requests.
    const target = wsName(Math.floor(n / 2));
    const viaMount = path.join(m.mnt, target, 'src/m1/file1.ts');
    await readFile(viaMount);
    const next = filesOf(Math.floor(n / 2), 2);
    mark = wire.mark();
    await writeCommitFixture(store, prefix, target, next);
    const start = performance.now();
    await until(async () => (await readFile(viaMount, 'utf8')) === next[1].content, { timeoutMs: 30_000, everyMs: 10, what: 'the commit in the mount' });
    o.changeVisibleSeconds = (performance.now() - start) / 1000;
    await sleep(pollSeconds * 1000 * 2);
    o.changeWire = wire.since(mark);
    loads.mark('ours done');
  } finally {
    await m.stop();
  }
}

if (tools.has('rclone')) {
  log('rclone mount');
  wire.clear();
  const m = await mountRclone({ s3: { ...s3, endpoint: wire.endpoint }, prefix, mnt: path.join(work, 'mnt-rclone'), cacheDir: path.join(work, 'cache-rclone') });
  const r = result.rclone;
  try {
    const ls = await sh(`ls '${m.mnt}' | wc -l`);
    r.ls = { seconds: ls.seconds, entries: Number(ls.stdout.trim()) };
    await sleep(2000);
    r.rssIdleMiB = memory(m.pid).rssMiB;
    const mark = wire.mark();
    const cold = await sh(`find '${m.mnt}' | wc -l`, { timeoutMs: 600_000 });
    r.findWire = wire.since(mark);
    r.findCold = { seconds: cold.seconds, entries: Number(cold.stdout.trim()) };
    r.findWarm = { seconds: (await sh(`find '${m.mnt}' | wc -l`)).seconds };
    const mem = memory(m.pid);
    r.rssAfterFindMiB = mem.rssMiB;
    r.peakMiB = mem.peakMiB;
    r.bytesPerFile = ((mem.peakMiB - r.rssIdleMiB) * 2 ** 20) / (n * perWs);
    loads.mark('rclone done');
  } finally {
    await m.stop();
  }
}
await wire.close();
await s3.stop();
rmSync(path.join(work, 's3'), { recursive: true, force: true });

result.load = { entries: loads.entries, summary: loads.summary() };
const s = (v) => (v === undefined ? 'n/a' : `${v.toFixed(2)} s`);
const mb = (v) => (v === undefined ? 'n/a' : `${v.toFixed(0)} MiB`);
const o = result.ours;
const r = result.rclone;
result.markdown = [
  `| ${n} workspaces × ${perWs} files in one mount (${backend}; poll every ${args.poll}; one run; ${result.load.summary}) | fuse-mount | rclone mount |`,
  '|---|---|---|',
  `| mount ready (first poll: one LIST of the heads, then each head) | ${s(o.readySeconds)}, ${o.startWire?.requests ?? 'n/a'} requests | |`,
  `| \`ls\` of the root | ${s(o.ls?.seconds)} | ${s(r.ls?.seconds)} |`,
  `| requests per poll, nothing changed | ${o.idlePoll ? `${o.idlePoll.requestsPerPoll.toFixed(1)} (${(o.idlePoll.bytesDownPerPoll / 1024).toFixed(0)} KiB down)` : 'n/a'} | none (a listing lives for --dir-cache-time, so changes go unseen that long) |`,
  `| \`find\` over every workspace, cold / warm (${o.findCold?.entries ?? r.findCold?.entries ?? '?'} entries) | ${s(o.findCold?.seconds)} / ${s(o.findWarm?.seconds)} | ${s(r.findCold?.seconds)} / ${s(r.findWarm?.seconds)} |`,
  `| requests of the cold \`find\` | ${o.findWire ? `${o.findWire.requests} (${(o.findWire.bytesDown / 2 ** 20).toFixed(1)} MiB)` : 'n/a'} | ${r.findWire ? `${r.findWire.requests} (${(r.findWire.bytesDown / 2 ** 20).toFixed(1)} MiB)` : 'n/a'} |`,
  `| RSS idle / after \`find\` (peak) | ${mb(o.rssIdleMiB)} / ${mb(o.peakMiB)} (${o.bytesPerFile?.toFixed(0) ?? 'n/a'} B/file) | ${mb(r.rssIdleMiB)} / ${mb(r.peakMiB)} (${r.bytesPerFile?.toFixed(0) ?? 'n/a'} B/file) |`,
  `| a commit to one workspace → served by the mount | ${s(o.changeVisibleSeconds)} | — |`,
  `| requests from that commit to two polls later (the poll that sees it, the tree and content loads, one more poll) | ${o.changeWire ? `${o.changeWire.requests} (${(o.changeWire.bytesDown / 1024).toFixed(0)} KiB down)` : 'n/a'} | — |`,
].join('\n');
console.log(result.markdown);
mkdirSync(path.join(repo, 'bench/results'), { recursive: true });
writeFileSync(args.out ?? path.join(repo, `bench/results/scale-workspaces-${backend}.json`), `${JSON.stringify(result, null, 1)}\n`);
process.exit(0);
