#!/usr/bin/env node
// Change signals of fuse-mount: how soon a push is known to a reader, and what an open event stream costs.
//  1. push → event: `sync-agent push` of a one-file edit returns (the head is published), then the
//     `generation` event naming that generation reaches a client of the mount's GET /events;
//  2. push → mtime: the same pushes, until `stat <mount>/<ws>` (a polling loop, every 5 ms) shows the
//     commit's time; measured with kernel notifications (--kernel-notify true, Linux 6.2+) and without;
//  3. idle cost: CPU time and context switches (all threads) of the mount over --idle seconds with no
//     event client, 1 client and 100 clients.
// Pushes start at a random phase of the poll interval, so the latencies spread over one interval.
// Usage (after pnpm build): node bench/events.mjs [--edits 40] [--poll 2s] [--idle 30] [--out FILE]   (S3_BACKEND=rgw for Ceph RGW)
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startTestS3 } from '@workspace-sync/testkit';
import { median, percentile } from './lib/fixture.mjs';

const { values: args } = parseArgs({
  options: { edits: { type: 'string', default: '40' }, poll: { type: 'string', default: '2s' }, idle: { type: 'string', default: '30' }, out: { type: 'string' } },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(repo, '.tmp/bench/events');
const agentBin = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');
const mountBin = path.join(repo, 'packages/fuse-mount/bin/fuse-mount.js');
const backend = process.env.S3_BACKEND ?? 'embedded';
const pollMs = /^(\d+)(ms|s)$/.exec(args.poll) ? Number(/^(\d+)/.exec(args.poll)[1]) * (args.poll.endsWith('ms') ? 1 : 1000) : 2000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

rmSync(work, { recursive: true, force: true });
const root = path.join(work, 'workspaces');
mkdirSync(path.join(root, 'app/src'), { recursive: true });
for (let i = 0; i < 200; i++) writeFileSync(path.join(root, `app/src/f${i}.js`), `export const v = ${i};\n`);
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const prefix = `events-${Date.now()}/`;
const env = { ...process.env, ...s3.env, S3_PREFIX: prefix, LOG_LEVEL: 'warn', LOG_FORMAT: 'json' };

function push() {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [agentBin, 'push', '--json', '--root', root, '--state-dir', path.join(work, 'state'), 'app'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`push exited with ${code}`))));
  });
}

async function startMount(name, extra) {
  const mnt = path.join(work, `mnt-${name}`);
  mkdirSync(mnt, { recursive: true });
  const child = spawn(process.execPath, [mountBin, mnt, '--poll-interval', args.poll, '--health-port', '0', '--cache-dir', path.join(work, `cache-${name}`), ...extra], {
    env: { ...env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let port;
  createInterface({ input: child.stderr }).on('line', (l) => {
    try { const r = JSON.parse(l); if (r.msg === 'mounted') port = r.healthPort; } catch { /* not JSON */ }
  });
  await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fuse-mount exited with ${code}`)));
  });
  while (!port) await sleep(10);
  return { mnt, pid: child.pid, url: `http://127.0.0.1:${port}/events`, stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) };
}

/** A client of /events that records when each generation's event arrived. */
async function follow(url) {
  const ctl = new AbortController();
  const res = await fetch(url, { signal: ctl.signal });
  const seen = new Map();
  void (async () => {
    const decoder = new TextDecoder();
    let text = '';
    try {
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data: '));
          if (block.includes('event: generation') && data) seen.set(JSON.parse(data.slice(6)).generation, performance.now());
        }
      }
    } catch { /* closed */ }
  })();
  return { seen, close: () => ctl.abort() };
}

async function latencies(name, extra) {
  await push();
  const m = await startMount(name, extra);
  const client = await follow(m.url);
  const toEvent = [];
  const toMtime = [];
  let seed = 11;
  const rand = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
  let lastMtime = (await stat(path.join(m.mnt, 'app'))).mtimeMs;
  for (let i = 0; i < Number(args.edits); i++) {
    await sleep(rand() * pollMs);
    writeFileSync(path.join(root, `app/src/f${i % 200}.js`), `export const v = ${Date.now()};\n`);
    const events = client.seen.size;
    await push();
    const t0 = performance.now();
    // The stat loop: what a polling watcher sees (every 5 ms).
    let mtimeAt;
    for (;;) {
      const mt = (await stat(path.join(m.mnt, 'app'))).mtimeMs;
      if (mt !== lastMtime) { lastMtime = mt; mtimeAt = performance.now(); break; }
      if (performance.now() - t0 > 20_000) throw new Error('no mtime change within 20 s');
      await sleep(5);
    }
    toMtime.push(mtimeAt - t0);
    // One push at a time, so one event per push.
    for (let waited = 0; client.seen.size === events; waited += 5) {
      if (waited > 20_000) throw new Error('no event within 20 s');
      await sleep(5);
    }
    toEvent.push(client.seen.get(Math.max(...client.seen.keys())) - t0);
  }
  client.close();
  await m.stop();
  const sum = (xs) => ({ p50: Math.round(median(xs)), p99: Math.round(percentile(xs, 99)), max: Math.round(Math.max(...xs)) });
  return { event: sum(toEvent), mtime: sum(toMtime) };
}

/** CPU seconds and context switches of every thread of `pid`. */
function usage(pid) {
  const [utime, stime] = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).map(Number);
  let switches = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const s = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
    switches += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(s)[1]) + Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(s)[1]);
  }
  return { cpu: (utime + stime) / 100, switches };
}

async function idleCost() {
  const m = await startMount('idle', []);
  await sleep(5_000);
  const seconds = Number(args.idle);
  const out = {};
  for (const clients of [0, 1, 100]) {
    const open = await Promise.all(Array.from({ length: clients }, () => follow(m.url)));
    await sleep(1_000);
    const a = usage(m.pid);
    await sleep(seconds * 1000);
    const b = usage(m.pid);
    out[`${clients} clients`] = { cpuPercent: Number((((b.cpu - a.cpu) / seconds) * 100).toFixed(2)), wakeupsPerSecond: Number(((b.switches - a.switches) / seconds).toFixed(1)) };
    for (const c of open) c.close();
  }
  await m.stop();
  return out;
}

const results = {
  backend, pollInterval: args.poll, edits: Number(args.edits),
  withKernelNotify: await latencies('notify', ['--kernel-notify', 'true']),
  withoutKernelNotify: await latencies('plain', ['--kernel-notify', 'false']),
  idle: await idleCost(),
};
console.log(JSON.stringify(results, null, 2));
if (args.out) {
  mkdirSync(path.dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(results, null, 2)}\n`);
}
await s3.stop();
