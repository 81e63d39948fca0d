#!/usr/bin/env node
// Writes docs/benchmarks.md from bench/results/*.json: the tables, targets met or not, the machine and versions.
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
for (const backend of ['embedded', 'rgw']) {
  const push = load(`push-${backend}`);
  const mount = load(`mount-${backend}`);
  const watch = load(`watch-${backend}`);
  if (!push && !mount && !watch) continue;
  for (const r of [push, watch, mount]) if (r) rawJson.push(r);
  sections.push(`## ${backend === 'rgw' ? 'Ceph RGW 16.2 (a real S3 server, single node on loopback)' : 'Embedded S3 server (packages/testkit, on loopback)'}\n`);
  if (push) {
    sections.push(`### Push\n\n${push.markdown}\n`);
    for (const [k, t] of Object.entries(push.targets)) targetRows.push(...fmtTarget(`push ${k} (${backend})`, t));
  }
  if (watch) {
    sections.push(`### Watch\n\n${watch.markdown}\n`);
    for (const [k, t] of Object.entries(watch.targets ?? {})) targetRows.push(...fmtTarget(`watch ${k} (${backend})`, t));
  }
  if (mount) {
    sections.push(`### Mount\n\n${mount.markdown}\n`);
    for (const [k, t] of Object.entries(mount.targets)) targetRows.push(...fmtTarget(`mount ${k} (${backend})`, t));
  }
}

const md = `# Benchmarks

Measured side by side in one run on one machine, against the same server; each table gives the number of runs its medians are over.
Regenerate with \`make bench\` (or \`BACKEND=rgw make bench\`); raw JSON is in \`bench/results/\`.

Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}.
Versions: Node ${process.version}; ${version('rclone version')}; ${version("s3fs --version 2>&1 | head -1")}; ${version('radosgw --version')}.
Date: ${new Date().toISOString().slice(0, 10)}.

## Targets

| target | wanted | measured | verdict |
|---|---|---|---|
${targetRows.join('\n')}

${sections.join('\n')}
## Raw results

<details><summary>JSON of every run (also in bench/results/)</summary>

\`\`\`json
${JSON.stringify(rawJson.map(({ markdown, ...rest }) => rest), null, 1)}
\`\`\`

</details>
`;
mkdirSync(path.join(repo, 'docs'), { recursive: true });
writeFileSync(path.join(repo, 'docs/benchmarks.md'), md);
console.log(`wrote docs/benchmarks.md (${targetRows.length} targets)`);
