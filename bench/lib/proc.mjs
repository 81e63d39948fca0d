// Running the measured processes: wall time, CPU time and peak RSS of each (GNU time reads them from
// wait4, so they are exact for any program), memory of long-running ones from /proc, and the machine's
// load, which every result records because other engineers share these 2 cores.
// Processes are spawned asynchronously: a benchmark that keeps a proxy in its own event loop must
// never block that loop while a client talks through the proxy.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const GNU_TIME = '/usr/bin/time';

/**
 * Runs `cmd args` to its end. Returns { code, stdout, stderr, seconds, cpuSeconds, maxRssMiB }.
 * `ok` lists the exit codes that are not a failure (default [0]); `timeoutMs` kills it (code null).
 */
export async function run(cmd, args, { env = process.env, cwd, ok = [0], timeoutMs = 0, input } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-time-'));
  const out = path.join(dir, 'usage');
  const t0 = performance.now();
  const child = spawn(GNU_TIME, ['-o', out, '-f', '%U %S %M', cmd, ...args], { env, cwd, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (input !== undefined) child.stdin.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const timer = timeoutMs ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
  const code = await new Promise((resolve) => child.once('close', (c) => resolve(c)));
  clearTimeout(timer);
  const seconds = (performance.now() - t0) / 1000;
  let cpuSeconds;
  let maxRssMiB;
  try {
    const last = readFileSync(out, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
    cpuSeconds = last[0] + last[1];
    maxRssMiB = last[2] / 1024;
  } catch { /* killed before GNU time wrote anything */ }
  rmSync(dir, { recursive: true, force: true });
  if (!ok.includes(code)) throw new Error(`${path.basename(cmd)} ${args.slice(0, 3).join(' ')} exited with ${code}: ${stderr.slice(-2000)}`);
  return { code, stdout, stderr, seconds, cpuSeconds, maxRssMiB };
}

/** `sh -c script`, timed (for find, cat, xargs pipelines over a mount). */
export function sh(script, opts = {}) {
  return run('sh', ['-c', script], opts);
}

/** RSS now and its high-water mark, in MiB, of a running process. */
export function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}

/** User + system CPU seconds of a running process (all its threads). */
export function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The 1-minute load average and what it means on this machine's cores. */
export function load() {
  const [one, five] = os.loadavg();
  return { load1: Number(one.toFixed(2)), load5: Number(five.toFixed(2)), cores: os.cpus().length };
}

/** Records the load now under `label` (each lane keeps a list: start, between phases, end). */
export function loadLog() {
  const entries = [];
  return {
    entries,
    mark(label) { entries.push({ label, at: new Date().toISOString(), ...load() }); },
    /** "load 0.81–2.10 (2 cores)": the range seen over the lane. */
    summary() {
      const xs = entries.map((e) => e.load1);
      return xs.length ? `load ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} (1-min average, ${os.cpus().length} cores)` : 'load not recorded';
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Busy and total jiffies of all CPUs since boot (/proc/stat); iowait counts as busy: the disk is not quiet. */
function cpuTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3], total };
}

/**
 * Waits for a quiet machine before a timed run: dirty pages written back (`sync`), then the CPUs
 * at least 90% idle over two seconds in a row. A server still working through an initial push
 * (RGW's background work, the kernel's writeback of what it stored) is what a short run would
 * otherwise measure. Gives up after `timeoutMs`; returns how long it waited and the idle share last seen.
 */
export async function settle({ timeoutMs = 120_000 } = {}) {
  const t0 = performance.now();
  await run('sync', []);
  let quiet = 0;
  let idle = 0;
  while (performance.now() - t0 < timeoutMs) {
    const a = cpuTicks();
    await sleep(1000);
    const b = cpuTicks();
    idle = 1 - (b.busy - a.busy) / Math.max(1, b.total - a.total);
    quiet = idle >= 0.9 ? quiet + 1 : 0;
    if (quiet === 2) break;
  }
  return { waitedSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)), idle: Number(idle.toFixed(2)) };
}

/** Polls `fn` (sync or async) every `everyMs` until it returns something truthy. */
export async function until(fn, { timeoutMs = 30_000, everyMs = 10, what = 'a condition' } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
