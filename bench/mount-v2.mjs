#!/usr/bin/env node
// fuse-mount on format v2 against format v1, same server, same run:
//  1. cold `find` and read-all of one workspace (default 5,000 files), v2 (fixture writer) vs v1 (sync-agent push);
//  2. requests per poll with many v2 workspaces (default 1,000), counted on the wire;
//  3. RSS of the mount after `find` over a large v2 workspace (default 100,000 files);
//  4. how long an uncached read takes to fail against an endpoint that accepts and never answers.
// Usage: node bench/mount-v2.mjs [--files 5000] [--workspaces 1000] [--big 100000]   (S3_BACKEND=rgw for Ceph)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createObjectStore, encodeCommit, encodeTree, headKey, sha256Hex, treePackKey } from '@workspace-sync/shared';
import { startCountingProxy, startTestS3, writeCommitFixture } from '@workspace-sync/testkit';

const { values: args } = parseArgs({
  options: { files: { type: 'string', default: '5000' }, workspaces: { type: 'string', default: '1000' }, big: { type: 'string', default: '100000' } },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(repo, '.tmp/bench/mount-v2');
const bin = path.join(repo, 'packages/fuse-mount/bin/fuse-mount.js');
const agent = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const store = createObjectStore({
  endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true,
  credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY },
});
const results = {};
const sh = (script) => {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`);
  return { out: r.stdout, s: (performance.now() - t0) / 1000 };
};

async function mount(prefix, name, env = {}, extra = []) {
  const mnt = path.join(work, `mnt-${name}`);
  const cache = path.join(work, `cache-${name}`);
  mkdirSync(mnt, { recursive: true });
  const child = spawn(process.execPath, [bin, mnt, '--prefix', prefix, '--cache-dir', cache, ...extra], {
    env: { ...process.env, ...s3.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fuse-mount exited with ${code}`)));
  });
  return {
    mnt,
    rssMiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024,
    stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM'); }),
  };
}

// 1. One workspace, v2 and v1.
const files = [];
let seed = 1;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
for (let i = 0; i < Number(args.files); i++) {
  const size = 200 + Math.floor(rand() * 20_000);
  files.push({ path: `src/m${i % 50}/d${i % 7}/file${i}.ts`, content: Buffer.alloc(size, `// file ${i}\n`) });
}
await writeCommitFixture(store, 'v2/', 'app', files);
const root = path.join(work, 'root');
for (const f of files) {
  mkdirSync(path.dirname(path.join(root, 'app', f.path)), { recursive: true });
  writeFileSync(path.join(root, 'app', f.path), f.content);
}
const pushed = spawnSync(process.execPath, [agent, 'push', '--root', root, '--state-dir', path.join(work, 'state'), 'app'], {
  env: { ...process.env, ...s3.env, S3_PREFIX: 'v1/', LOG_LEVEL: 'warn' }, encoding: 'utf8',
});
if (pushed.status !== 0) throw new Error(`push failed: ${pushed.stderr}`);
for (const [format, prefix] of [['v1', 'v1/'], ['v2', 'v2/']]) {
  const m = await mount(prefix, format);
  const find = sh(`find ${m.mnt}/app | wc -l`);
  const read = sh(`cd ${m.mnt}/app && find . -type f -print0 | xargs -0 cat | wc -c`);
  results[`${format}: cold find (${files.length} files)`] = `${find.s.toFixed(2)} s`;
  results[`${format}: read-all after it`] = `${read.s.toFixed(2)} s (${(Number(read.out) / 1e6).toFixed(1)} MB)`;
  await m.stop();
}

// 2. Requests per poll with many workspaces.
const n = Number(args.workspaces);
const tasks = [];
for (let i = 0; i < n; i++) {
  const ws = `w${String(i).padStart(5, '0')}`;
  const body = encodeTree([{ name: 'README', kind: 'symlink', target: 'x', mtimeMs: 0 }]);
  tasks.push(async () => {
    await store.put(treePackKey('many/', ws, '0123456789abcdef'), body);
    await store.put(headKey('many/', ws), encodeCommit({
      format: 'workspace-sync.commit', version: 2, workspace: ws, generation: 1, id: '00000000000000aa', parent: null,
      createdAt: new Date().toISOString(), writer: { host: 'bench', agent: 'bench' }, root: ['0123456789abcdef', 0, body.length, sha256Hex(body)],
      stats: { files: 1, dirs: 1, bytes: 0 }, changes: { added: 1, modified: 0, deleted: 0, bytes: 0, paths: { added: [], modified: [], deleted: [] }, truncated: false },
    }));
  });
}
for (let i = 0; i < tasks.length; i += 64) await Promise.all(tasks.slice(i, i + 64).map((t) => t()));
const proxy = await startCountingProxy(s3.endpoint);
const many = await mount('many/', 'many', { S3_ENDPOINT: proxy.endpoint }, ['--poll-interval', '1s']);
if (sh(`ls ${many.mnt} | wc -l`).out.trim() !== String(n)) throw new Error('not every workspace is listed');
proxy.reset();
await new Promise((r) => setTimeout(r, 10_500));
results[`requests per poll, ${n} workspaces (10 polls, nothing changed)`] = (proxy.requests.length / 10).toFixed(1);
await many.stop();
await proxy.close();

// 3. RSS after find over a large workspace.
const big = [];
for (let i = 0; i < Number(args.big); i++) big.push({ path: `pkg${i % 100}/src/d${i % 10}/f${i}.js`, content: `module.exports = ${i};\n` });
await writeCommitFixture(store, 'big/', 'huge', big);
const hm = await mount('big/', 'big');
const rssBefore = hm.rssMiB();
const bigFind = sh(`find ${hm.mnt}/huge -type f | wc -l`);
results[`find over ${big.length} files (v2, cold)`] = `${bigFind.s.toFixed(2)} s, ${bigFind.out.trim()} files`;
results['mount RSS before / after that find'] = `${rssBefore.toFixed(0)} / ${hm.rssMiB().toFixed(0)} MiB`;
await hm.stop();

// 4. EIO against a silent endpoint (a warm start serves the saved head; the file was never read).
const silent = createServer(() => undefined);
await new Promise((r) => silent.listen(0, '127.0.0.1', r));
const warm = await mount('v2/', 'eio', {}, ['--prefetch-concurrency', '0']);
sh(`cat ${warm.mnt}/app/src/m0/d0/file0.ts > /dev/null`);
await warm.stop();
const cold = await mount('v2/', 'eio', { S3_ENDPOINT: `http://127.0.0.1:${silent.address().port}` });
const t0 = performance.now();
const r = spawnSync('cat', [`${cold.mnt}/app/src/m1/d1/file1.ts`], { encoding: 'utf8' });
results['uncached read against a silent endpoint'] = `${/Input\/output error/.test(r.stderr) ? 'EIO' : `exit ${r.status}`} after ${((performance.now() - t0) / 1000).toFixed(2)} s`;
await cold.stop();
silent.close();

await s3.stop();
for (const [k, v] of Object.entries(results)) console.log(`${k}: ${v}`);
process.exit(0);
