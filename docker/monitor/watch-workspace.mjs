#!/usr/bin/env node
// The example monitor's update loop: keeps the copy of one workspace up to date with the read-only
// mount and restarts the app on every push. run-workspace.sh makes the first copy, checks it and
// installs dependencies, then hands over to this program (WATCH=1).
//
// How it learns of changes, without walking the tree:
//   EVENTS_URL set (the mount's `GET /events` on its --health-port): one event per push, with the
//     changed paths. It reconnects after a mount restart with `since=<workspace>:<generation>`, so
//     nothing is missed. Changed files are copied from `.snapshots/<ws>/<generation>/`, which is
//     immutable: the kernel's attribute cache cannot serve them stale, and a later push cannot mix in.
//   EVENTS_URL unset: `stat` of the workspace directory every POLL_SECONDS (its mtime is the time of
//     the push the mount shows), then an incremental copy (size and mtime, then bytes, compared) once the kernel's
//     attribute cache has expired (SETTLE_MS).
// Then: `npm install` only when package.json or a lockfile changed, and the app is restarted.
//
// Usage: watch-workspace.mjs WORKSPACE DEST COMMAND [ARG...]
// Environment: SOURCE_DIR (default /workspaces), EVENTS_URL, POLL_SECONDS (default 1), NPM_INSTALL
//   (1: default), STOP_SECONDS (grace before SIGKILL when restarting, default 5), SETTLE_MS (default 1100).
import { spawn } from 'node:child_process';
import {
  chmod, copyFile, lstat, mkdir, readdir, readFile, readlink, rm, stat, symlink, utimes,
} from 'node:fs/promises';
import path from 'node:path';

const [workspace, dest, ...command] = process.argv.slice(2);
if (!workspace || !dest || command.length === 0) {
  console.error('usage: watch-workspace.mjs WORKSPACE DEST COMMAND [ARG...]');
  process.exit(2);
}
const sourceDir = process.env.SOURCE_DIR || '/workspaces';
const eventsUrl = process.env.EVENTS_URL || '';
const pollMs = Number(process.env.POLL_SECONDS || 1) * 1000;
const npmInstall = (process.env.NPM_INSTALL || '1') === '1';
const stopMs = Number(process.env.STOP_SECONDS || 5) * 1000;
const settleMs = Number(process.env.SETTLE_MS || 1100);
const live = path.join(sourceDir, workspace);
// Never part of a synced workspace.
const FORBIDDEN = new Set(['node_modules', '.git', '.env']);
// npm's own output in the copy: kept when the workspace has none.
const NPM_OUTPUT = new Set(['node_modules', 'package-lock.json']);
const DEPENDENCY_FILES = new Set(['package.json', 'package-lock.json', 'npm-shrinkwrap.json']);

const say = (msg) => console.log(`watch-workspace: ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- copying ----

/** Files up to this size are compared byte for byte before they count as changed. */
const COMPARE_MAX = 16 * 1024 * 1024;

/** Same bytes, link target and exec bit: then only the mtime is brought along, and nothing changed. */
async function sameContent(src, dst, s, d) {
  if (s.isSymbolicLink() || d.isSymbolicLink()) {
    return s.isSymbolicLink() && d.isSymbolicLink() && (await readlink(src)) === (await readlink(dst));
  }
  if (!d.isFile() || s.size !== d.size || s.size > COMPARE_MAX || (s.mode & 0o111) !== (d.mode & 0o111)) return false;
  return (await readFile(src)).equals(await readFile(dst));
}

/**
 * Copies one file or symlink (or removes it when the source has none); true when its content changed.
 * `force`: compare the content even when size and mtime match (the push said it changed).
 */
async function syncPath(from, rel, force = false) {
  if (rel.split('/').some((seg) => FORBIDDEN.has(seg) || seg === '..' || seg === '')) {
    say(`refusing ${rel}: node_modules, .git and .env never come from the mount`);
    return false;
  }
  const src = path.join(from, rel);
  const dst = path.join(dest, rel);
  const s = await lstat(src).catch(() => undefined);
  const d = await lstat(dst).catch(() => undefined);
  if (!s || s.isDirectory()) {
    if (!s && !d) return false;
    if (!s) {
      await rm(dst, { recursive: true, force: true });
      return true;
    }
    return false;
  }
  if (!force && d && s.isFile() && d.isFile() && d.size === s.size && Math.trunc(d.mtimeMs) === Math.trunc(s.mtimeMs)) return false;
  if (d && (await sameContent(src, dst, s, d))) {
    if (d.isFile()) await utimes(dst, s.atime, s.mtime);
    return false;
  }
  await mkdir(path.dirname(dst), { recursive: true });
  if (d) await rm(dst, { recursive: true, force: true });
  if (s.isSymbolicLink()) {
    await symlink(await readlink(src), dst);
    return true;
  }
  await copyFile(src, dst);
  // The copy is the app's own working tree: writable whatever modes the read-only mount reports.
  await chmod(dst, (s.mode & 0o777) | 0o200);
  await utimes(dst, s.atime, s.mtime);
  return true;
}

/** The whole workspace, compared by size and mtime (a catch-up, or a push whose paths are unknown). */
async function syncAll(from) {
  const changed = [];
  const seen = new Set();
  const walk = async (rel) => {
    for (const e of await readdir(path.join(from, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (FORBIDDEN.has(e.name)) continue;
      seen.add(r);
      if (e.isDirectory()) await walk(r);
      else if (await syncPath(from, r)) changed.push(r);
    }
  };
  await walk('');
  // What the source no longer has goes, except npm's output.
  const prune = async (rel) => {
    for (const e of await readdir(path.join(dest, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (NPM_OUTPUT.has(r)) continue;
      if (!seen.has(r)) {
        await rm(path.join(dest, r), { recursive: true, force: true });
        changed.push(r);
      } else if (e.isDirectory()) await prune(r);
    }
  };
  await prune('');
  return changed;
}

// ---- the app ----

let app;
let stopping = false;

function startApp() {
  say(`starting ${command.join(' ')} in ${dest}`);
  // Its own process group, so `npm start` and what it runs stop together.
  app = spawn(command[0], command.slice(1), { cwd: dest, stdio: 'inherit', detached: true });
  const mine = app;
  app.once('exit', (code, signal) => {
    if (app === mine && !stopping) say(`the app exited (${signal ?? code}); it starts again with the next push`);
    if (app === mine) app = undefined;
  });
}

async function stopApp() {
  const child = app;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  const kill = (sig) => { try { process.kill(-child.pid, sig); } catch { /* already gone */ } };
  kill('SIGTERM');
  const timer = setTimeout(() => kill('SIGKILL'), stopMs);
  await exited;
  clearTimeout(timer);
}

function npm() {
  return new Promise((resolve) => {
    say(`npm install in ${dest}`);
    const p = spawn('npm', ['install', '--no-audit', '--no-fund'], { cwd: dest, stdio: 'inherit' });
    p.once('exit', (code) => resolve(code));
    p.once('error', (err) => { say(`npm install failed: ${err.message}`); resolve(1); });
  });
}

/** Applies one batch of changes: copy, install when dependencies changed, restart. */
async function apply(label, changed) {
  if (changed.length === 0) {
    say(`${label}: the copy is already up to date`);
    return;
  }
  if (npmInstall && changed.some((p) => DEPENDENCY_FILES.has(p))) await npm();
  await stopApp();
  startApp();
  say(`restarted after ${label} (${changed.length} changed path${changed.length === 1 ? '' : 's'})`);
}

// ---- changes from the mount's event stream ----

let generation; // the last generation applied
const queue = [];
let draining = false;

async function drain() {
  if (draining) return;
  draining = true;
  try {
    while (queue.length > 0) {
      // Everything that arrived meanwhile is applied at once, from the newest generation.
      const batch = queue.splice(0);
      const last = batch[batch.length - 1];
      if (last.generation !== null && generation !== undefined && last.generation <= generation) continue;
      const known = batch.every((e) => e.changes && !e.changes.truncated);
      const from = last.commit ? path.join(sourceDir, '.snapshots', workspace, String(last.generation)) : live;
      if (!last.commit) await sleep(settleMs);
      let changed;
      try {
        // A missing snapshot must not read as "every path deleted".
        if (!(await stat(from)).isDirectory()) throw new Error(`${from} is not a directory`);
        if (known) {
          const paths = new Set(batch.flatMap((e) => [...e.changes.added, ...e.changes.modified, ...e.changes.deleted]));
          changed = [];
          for (const p of paths) if (await syncPath(from, p, true)) changed.push(p);
        } else {
          changed = await syncAll(from);
        }
      } catch (err) {
        // The snapshot went (garbage collection) or a path is unreadable: copy the live view whole.
        say(`copying generation ${last.generation} failed (${err.message}); copying ${live} whole`);
        await sleep(settleMs);
        changed = await syncAll(live);
      }
      if (last.generation !== null) generation = last.generation;
      const covered = last.previous !== null && last.generation !== null && last.generation - last.previous > 1
        ? `generations ${last.previous + 1}-${last.generation}` : `generation ${last.generation}`;
      await apply(covered, changed);
    }
  } finally {
    draining = false;
  }
}

async function onEvent(type, data) {
  if (type === 'state') {
    const ws = data.workspaces.find((w) => w.workspace === workspace);
    if (!ws) {
      say(`${workspace} is not in the mount (yet); waiting for it`);
      return;
    }
    if (generation === undefined) {
      // First contact: the copy run-workspace.sh made may predate this generation; catch up once.
      queue.push({ ...ws, previous: null, changes: null });
      void drain();
    }
    return;
  }
  if (type === 'workspace-removed' && data.workspace === workspace) say(`${workspace} was removed from the mount; the app keeps running`);
  if (type === 'generation' && data.workspace === workspace) {
    queue.push(data);
    void drain();
  }
}

async function followEvents() {
  for (;;) {
    const url = new URL(eventsUrl);
    url.searchParams.set('workspace', workspace);
    if (generation !== undefined) url.searchParams.set('since', `${workspace}:${generation}`);
    try {
      const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      say(`following ${url}`);
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of res.body) {
        text += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          let type = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) await onEvent(type, JSON.parse(data));
        }
      }
      say('the event stream ended; reconnecting');
    } catch (err) {
      say(`event stream unavailable (${err.cause?.code ?? err.message}); retrying`);
    }
    if (stopping) return;
    await sleep(1000);
  }
}

// ---- or by polling the workspace directory's mtime ----

async function pollMtime() {
  let last = (await stat(live)).mtimeMs;
  say(`polling the mtime of ${live} every ${pollMs} ms`);
  for (;;) {
    await sleep(pollMs);
    const now = await stat(live).then((s) => s.mtimeMs, () => undefined);
    if (now === undefined || now === last) continue;
    last = now;
    // The directory's attributes are fresh; its files' may be cached for up to a second more.
    await sleep(settleMs);
    await apply(`a push at ${new Date(now).toISOString()}`, await syncAll(live));
  }
}

// ---- main ----

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    stopping = true;
    void stopApp().then(() => process.exit(0));
  });
}
// run-workspace.sh's `cp -R` does not keep mtimes, which the incremental copies compare first: bring
// them along now (same bytes: only the mtime is set), before the app starts.
await syncAll(live);
startApp();
if (eventsUrl) void followEvents();
else void pollMtime().catch((err) => { console.error(`watch-workspace: ${err.message}`); process.exit(1); });
