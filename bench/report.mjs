#!/usr/bin/env node
// Writes docs/benchmarks.md from bench/results/*.json (the tables, targets met or not, the machine and versions, how
// long each lane took) and docs/scale.md from the scale lanes' results.
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scaleDoc } from './lib/scale-doc.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const load = (name) => {
  const f = path.join(repo, 'bench/results', `${name}.json`);
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : undefined;
};
const version = (cmd) => { try { return execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].trim(); } catch { return 'not installed'; } };
const fmtTarget = (name, t) => {
  if (!t) return [];
  const v = t.value === null || t.value === undefined ? 'n/a' : typeof t.value === 'number' ? `${t.value.toFixed(2)}${name.includes('RSS') ? '' : ' s'}` : t.value;
  const verdict = t.met === null || t.met === undefined ? 'not measured' : t.met ? '**met**' : `**not met**${t.why ? ` — ${t.why}` : ''}`;
  return [`| ${name} | ${t.target} | ${v} | ${verdict} |`];
};

const sections = [];
const targetRows = [];
const rawJson = [];
const laneRows = [];
const scaleByBackend = {};
const scaleFiles = (backend) => readdirSync(path.join(repo, 'bench/results'))
  .map((f) => new RegExp(`^scale-(\\d+)-${backend}\\.json$`).exec(f)).filter(Boolean).map((m) => Number(m[1])).sort((a, b) => a - b);
for (const backend of ['embedded', 'rgw']) {
  const push = load(`push-${backend}`);
  const mount = load(`mount-${backend}`);
  const watch = load(`watch-${backend}`);
  const latency = load(`latency-${backend}`);
  const cost = load(`integrity-cost-${backend}`);
  const history = load(`history-${backend}`);
  const scales = existsSync(path.join(repo, 'bench/results')) ? scaleFiles(backend).map((n) => load(`scale-${n}-${backend}`)) : [];
  const many = load(`scale-workspaces-${backend}`);
  if (![push, mount, watch, latency, cost, history, many, ...scales].some(Boolean)) continue;
  const lanes = existsSync(path.join(repo, `bench/results/lanes-${backend}.jsonl`))
    ? readFileSync(path.join(repo, `bench/results/lanes-${backend}.jsonl`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  // The load each lane ran under (the 1-minute average before and after it), from make bench's lane log.
  const loadOf = (name) => {
    const l = lanes.filter((e) => e.lane === name).at(-1);
    return l ? `\n\nLoad (1-minute average, 2 cores) before → after this lane: ${l.load1Before} → ${l.load1After} (${l.at}).` : '';
  };
  for (const r of [push, watch, mount, latency, cost, history, ...scales, many]) if (r) rawJson.push(r);
  sections.push(`## ${backend === 'rgw' ? 'Ceph RGW 16.2 (a real S3 server, single node on loopback)' : 'Embedded S3 server (packages/testkit, on loopback)'}\n`);
  if (push) {
    sections.push(`### Push\n\n${push.markdown}${loadOf('push')}\n`);
    for (const [k, t] of Object.entries(push.targets)) targetRows.push(...fmtTarget(`push ${k} (${backend})`, t));
    // Issue 12: the initial push near the wire's limit.
    const m = push.medians;
    if (m.rclone32?.initial && m.raw?.initial) {
      targetRows.push(...fmtTarget(`push initial ≤ 0.5× rclone 32 (${backend})`, { target: '≤ 0.5× rclone --transfers 32', value: `${(m.ours.initial / m.rclone32.initial).toFixed(2)}×`, met: m.ours.initial <= 0.5 * m.rclone32.initial }));
      targetRows.push(...fmtTarget(`push initial ≤ 1.15× bare PUTs (${backend})`, { target: '≤ 1.15× bare PUTs ×64', value: `${(m.ours.initial / m.raw.initial).toFixed(2)}×`, met: m.ours.initial <= 1.15 * m.raw.initial }));
    }
  }
  if (watch) {
    sections.push(`### Watch\n\n${watch.markdown}${loadOf('watch')}\n`);
    for (const [k, t] of Object.entries(watch.targets ?? {})) targetRows.push(...fmtTarget(`watch ${k} (${backend})`, t));
  }
  if (mount) {
    sections.push(`### Mount\n\n${mount.markdown}${loadOf('mount')}\n`);
    for (const [k, t] of Object.entries(mount.targets)) targetRows.push(...fmtTarget(`mount ${k} (${backend})`, t));
    const m = mount.medians;
    if (m.s3fs?.bigCold) targetRows.push(...fmtTarget(`mount ${mount.fixture.bigMiB} MiB cold ≤ s3fs (${backend})`, { target: '≤ s3fs', value: `${m.ours.bigCold.toFixed(2)} s (s3fs ${m.s3fs.bigCold.toFixed(2)} s)`, met: m.ours.bigCold <= m.s3fs.bigCold }));
    targetRows.push(...fmtTarget(`mount read all warm, 5k files (${backend})`, { target: '≤ 0.5 s', value: m.ours.readWarm, met: m.ours.readWarm <= 0.5 }));
  }
  if (latency) {
    sections.push(`### Latency-bound: ${latency.latencyMs} ms added to every request\n\nA delaying proxy (testkit's fault proxy, \`latency(ms)\`) in front of the server, for every tool alike: real S3 answers in 20–50 ms, loopback in under one, so this is where round trips, not the server's CPU, decide.\n\n${latency.markdown}\n`);
  }
  if (cost) {
    sections.push(`### Cost of the integrity guarantees\n\nThe CLIs built from ${cost.baseline} (format v1, before immutable objects, verified trees, conditional heads and journaled plain objects) against this checkout, same server, same run, alternating.\n\n${cost.markdown}\n`);
  }
  if (history) sections.push(`### History: retention and restore\n\n${history.markdown}\n`);
  for (const sc of scales) {
    sections.push(`### Scale: one workspace of ${sc.fixture.syncedFiles} files\n\n${sc.markdown}\n`);
    for (const [k, t] of Object.entries(sc.targets ?? {})) targetRows.push(...fmtTarget(`scale ${sc.fixture.sources / 1000}k: ${k} (${backend})`, t));
  }
  if (many) sections.push(`### Scale: ${many.workspaces} workspaces in one mount\n\n${many.markdown}\n`);
  scaleByBackend[backend] = { scales: scales.filter(Boolean), many };
  // A lane run again (LANES=…) counts once, with its latest run.
  const latest = [...new Map(lanes.map((l) => [l.lane, l])).values()];
  for (const l of latest) laneRows.push(`| ${backend} | ${l.lane} | ${(l.seconds / 60).toFixed(1)} min | ${l.load1Before} → ${l.load1After} | ${l.at} |`);
  if (latest.length) laneRows.push(`| ${backend} | **all lanes** | **${(latest.reduce((a, l) => a + l.seconds, 0) / 60).toFixed(1)} min** | | |`);
}

const md = `# Benchmarks

Measured side by side in one run on one machine, against the same server; each table gives the number of runs its medians are over,
and the newer lanes the machine's load while they ran (other engineers share its 2 cores: CPU time, requests and bytes are the
figures to trust when wall times are noisy). Regenerate with \`make bench\` (\`BACKEND=rgw\` or \`all\`; \`SCALE_FILES=10000\` for a
quick run); raw JSON is in \`bench/results/\`. The scale figures and their extrapolation: [\`docs/scale.md\`](scale.md).

Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}.
Versions: Node ${process.version}; ${version('rclone version')}; ${version("s3fs --version 2>&1 | head -1")}; ${version('radosgw --version')}.
Date: ${new Date().toISOString().slice(0, 10)}.

## Targets

| target | wanted | measured | verdict |
|---|---|---|---|
${targetRows.join('\n')}

${sections.join('\n')}
## How long \`make bench\` takes

Other engineers use the same 2 cores: the load (1-minute average) before and after each lane says how much of the machine a lane had.

| server | lane | duration | load before → after | finished |
|---|---|---|---|---|
${laneRows.join('\n')}

## Raw results

<details><summary>JSON of every run (also in bench/results/)</summary>

\`\`\`json
${JSON.stringify(rawJson.map(({ markdown, ...rest }) => rest), null, 1)}
\`\`\`

</details>
`;
// A run of some lanes on a machine without the others' results (LANES=…, a fresh clone) would drop the
// published sections it did not measure: it goes next to the results instead, unless --replace.
const sectionsOf = (text) => {
  const found = new Set();
  let server = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) server = line;
    else if (line.startsWith('### ')) found.add(`${server} / ${line}`);
  }
  return found;
};
const docFile = path.join(repo, 'docs/benchmarks.md');
const kept = sectionsOf(md);
const dropped = existsSync(docFile) ? [...sectionsOf(readFileSync(docFile, 'utf8'))].filter((s) => !kept.has(s)) : [];
const partial = dropped.length > 0 && !process.argv.includes('--replace');
const outFile = partial ? path.join(repo, 'bench/results/benchmarks.md') : docFile;
mkdirSync(path.dirname(outFile), { recursive: true });
writeFileSync(outFile, md);
console.log(`wrote ${path.relative(repo, outFile)} (${targetRows.length} targets)`);
if (partial) {
  console.log(`docs/benchmarks.md left as it is: this run has no results for ${dropped.length} of its sections (${dropped.map((d) => d.replace(/#+ /g, '')).join('; ')}); run those lanes too, or pass --replace`);
} else if (Object.values(scaleByBackend).some((b) => b.scales.length || b.many)) {
  writeFileSync(path.join(repo, 'docs/scale.md'), scaleDoc({ byBackend: scaleByBackend, date: new Date().toISOString().slice(0, 10) }));
  console.log('wrote docs/scale.md');
}
