#!/usr/bin/env node
// Where the time or the memory goes, from a V8 profile written by `node --cpu-prof` (.cpuprofile: self
// CPU time) or `node --heap-prof` (.heapprofile: sampled allocations still live when the process
// exited), summed by function and by area (a package of this repo, a dependency, Node's internals).
// Usage: node bench/profile-summary.mjs FILE [--top 25]
//   e.g. NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' sync-agent push app; node bench/profile-summary.mjs /tmp/prof/*.cpuprofile
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
const top = Number(args.top);

/** The area a script belongs to: this repo's package, a dependency, Node itself, or V8's own work. */
function area(url, name) {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const dep = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep && !dep[1].startsWith('@workspace-sync/')) return dep[1];
  const own = /packages\/([^/]+)\//.exec(url);
  if (own) return `@workspace-sync/${own[1]}`;
  if (url.startsWith('node:')) return 'node (internals)';
  return url.replace(/^file:\/\//, '');
}
const where = (cf) => `${cf.functionName || '(anonymous)'} ${(cf.url || '').replace(/^.*\/(packages|node_modules)\//, '$1/')}:${cf.lineNumber + 1}`;

function table(title, map, total, unit) {
  const rows = [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  console.log(`\n${title}`);
  for (const [k, v] of rows) console.log(`${(unit(v)).padStart(10)}  ${((v / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  console.log(`== ${file}`);
  if (profile.nodes && profile.samples) {
    // CPU profile: self time per node = its samples × the mean sampling interval.
    const dt = (profile.endTime - profile.startTime) / profile.samples.length / 1000;
    const count = new Map();
    for (const id of profile.samples) count.set(id, (count.get(id) ?? 0) + 1);
    const byFn = new Map();
    const byArea = new Map();
    let total = 0;
    for (const n of profile.nodes) {
      const ms = (count.get(n.id) ?? 0) * dt;
      if (!ms) continue;
      total += ms;
      byFn.set(where(n.callFrame), (byFn.get(where(n.callFrame)) ?? 0) + ms);
      const a = area(n.callFrame.url, n.callFrame.functionName);
      byArea.set(a, (byArea.get(a) ?? 0) + ms);
    }
    console.log(`CPU profile: ${(total / 1000).toFixed(2)} s sampled`);
    table('self time by area', byArea, total, (v) => `${v.toFixed(0)} ms`);
    table('self time by function', byFn, total, (v) => `${v.toFixed(0)} ms`);
  } else if (profile.head) {
    // Sampling heap profile: bytes still allocated per allocation site.
    const byFn = new Map();
    const byArea = new Map();
    let total = 0;
    const walk = (n) => {
      const bytes = n.selfSize ?? 0;
      if (bytes) {
        total += bytes;
        byFn.set(where(n.callFrame), (byFn.get(where(n.callFrame)) ?? 0) + bytes);
        const a = area(n.callFrame.url, n.callFrame.functionName);
        byArea.set(a, (byArea.get(a) ?? 0) + bytes);
      }
      for (const c of n.children ?? []) walk(c);
    };
    walk(profile.head);
    const mib = (v) => `${(v / 2 ** 20).toFixed(1)} MiB`;
    console.log(`heap profile: ${mib(total)} sampled live`);
    table('live bytes by area', byArea, total, mib);
    table('live bytes by allocation site', byFn, total, mib);
  } else {
    console.log('not a .cpuprofile or .heapprofile');
  }
}
