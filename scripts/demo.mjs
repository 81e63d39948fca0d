#!/usr/bin/env node
// `make demo`: copies examples/workspaces next to some typical clutter (node_modules, .git, build
// output, logs, secrets), starts the embedded S3 server on loopback, pushes every workspace, pushes
// again (a no-op), then prints what landed in the bucket, what was left out, and why (files --why).
// `make demo-serve` (--serve) then keeps the server running and prints the commands to try against it,
// with an env file that sets everything they need. DEMO_DIR moves the demo out of .tmp/demo.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createObjectStore } from '@workspace-sync/shared';
import { startEmbeddedS3 } from '@workspace-sync/testkit';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const serve = process.argv.includes('--serve');
const work = path.resolve(process.env.DEMO_DIR || path.join(repo, '.tmp/demo'));
const root = path.join(work, 'workspaces');
const agent = path.join(repo, 'packages/sync-agent/bin/sync-agent.js');

rmSync(work, { recursive: true, force: true });
cpSync(path.join(repo, 'examples/workspaces'), root, { recursive: true, verbatimSymlinks: true });
// Each workspace is a git checkout of its sources (committed before the clutter arrives), so tracked
// files such as www/public/vendor/ are synced even where a default exclude (vendor/) matches.
const git = (ws, ...args) => execFileSync('git', ['-c', 'user.name=demo', '-c', 'user.email=demo@example.com', ...args], {
  cwd: path.join(root, ws), stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
});
for (const ws of ['www', 'api']) {
  git(ws, 'init', '-q');
  git(ws, 'add', '-A');
  git(ws, 'commit', '-qm', 'sources');
}
const clutter = {
  'www/node_modules/react/package.json': '{"name":"react"}',
  'www/node_modules/react/index.js': 'module.exports = {};',
  'www/node_modules/.bin/react-scripts': '#!/bin/sh',
  'www/dist/index.html': '<h1>built</h1>',
  'www/npm-debug.log': 'npm ERR! something',
  'www/.env': 'API_KEY=do-not-ship-me',
  'www/.env.local': 'API_KEY=also-secret',
  'www/.cache/babel.json': '{}',
  'api/node_modules/express/index.js': 'module.exports = () => {};',
  'api/coverage/lcov.info': 'TN:',
  'api/server.log': 'listening on 4000',
  'api/dev.sqlite': 'SQLite format 3',
  'api/.env': 'DATABASE_URL=postgres://secret',
  'api/__pycache__/helper.cpython-311.pyc': 'pyc',
  'api/.DS_Store': 'mac',
};
for (const [rel, body] of Object.entries(clutter)) {
  mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  writeFileSync(path.join(root, rel), body);
}

const s3 = await startEmbeddedS3({ dir: path.join(work, 's3') });
Object.assign(process.env, s3.env);
const env = { ...process.env, WORKSPACES_DIR: root, SYNC_STATE_DIR: path.join(work, 'state'), LOG_LEVEL: 'warn' };
const run = (title, args) => {
  console.log(`\n$ sync-agent ${args.join(' ')}    # ${title}`);
  const r = spawnSync(process.execPath, [agent, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  process.stdout.write(r.stdout);
  return r;
};

try {
  console.log(`embedded S3 server: ${s3.endpoint} (bucket "${s3.bucket}")`);
  console.log(`workspaces: ${root}`);
  const first = run('first push: everything is new', ['push']);
  if (first.status !== 0 && first.status !== 1) process.exit(first.status ?? 1);
  run('again: nothing changed, so nothing is sent', ['push']);

  const store = createObjectStore({ endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true });
  const keys = [];
  for await (const item of store.list('')) if ('key' in item) keys.push(item.key);
  console.log(`\nIn the bucket (s3://${s3.bucket}/), ${keys.length} objects:`);
  for (const k of keys) console.log(`  ${k}`);

  const synced = new Set(keys);
  const leftOut = [];
  const walk = (rel) => {
    for (const d of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(p);
      else if (!synced.has(p)) leftOut.push(p);
    }
  };
  walk('');
  const groups = new Map();
  for (const p of leftOut) {
    const m = /^([^/]+\/(?:node_modules|\.git|dist|build|coverage|__pycache__|\.cache)\/)/.exec(p);
    const g = m ? m[1] : p;
    groups.set(g, (groups.get(g) ?? 0) + 1);
  }
  console.log(`\nLeft out locally (${leftOut.length} files):`);
  for (const [g, count] of [...groups].sort()) console.log(`  ${g}${g.endsWith('/') ? ` (${count} file${count === 1 ? '' : 's'})` : ''}`);
  run('why is a file left out, and why is a tracked one under vendor/ kept?', ['files', '--why', 'www/npm-debug.log', 'www/public/vendor/confetti.js']);

  // Everything the commands below need, in one file to source: the server, its keys, the demo's
  // directories and the CLIs.
  const envFile = path.join(work, 'env.sh');
  const exports = {
    ...s3.env, WORKSPACES_DIR: root, SYNC_STATE_DIR: path.join(work, 'state'),
  };
  const quote = (v) => `'${String(v).replaceAll("'", "'\\''")}'`;
  writeFileSync(envFile, [
    '# The embedded S3 server of `make demo-serve` and the demo workspaces (written by scripts/demo.mjs).',
    ...Object.entries(exports).map(([k, v]) => `export ${k}=${quote(v)}`),
    `export PATH=${quote(path.join(repo, 'node_modules/.bin'))}:"$PATH"`,
    '',
  ].join('\n'));
  if (!serve) {
    console.log('\nThe S3 server stops now. To try the commands yourself against it: make demo-serve');
  } else {
    console.log(`\nThe embedded S3 server keeps running until Ctrl-C here. In another shell, from any directory:\n`);
    for (const line of [
      `. ${quote(envFile)}`,
      'sync-agent files www',
      'sync-agent files --why www/.env www/dist/index.html www/node_modules/react/index.js',
      'echo "export const answer = 42;" > "$WORKSPACES_DIR/www/src/answer.js"',
      'sync-agent push --dry-run',
      'sync-agent push',
      'sync-agent log www',
    ]) console.log(`  ${line}`);
    console.log(`\n${envFile} sets:\n${Object.entries(exports).map(([k, v]) => `  ${k}=${v}`).join('\n')}\n  PATH=${path.join(repo, 'node_modules/.bin')}:$PATH`);
    console.log('\nAlso: sync-agent watch   (keeps the bucket in step as you edit under $WORKSPACES_DIR; Ctrl-C stops it)');
    await new Promise((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }
} finally {
  await s3.stop();
}
