import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startTestS3 } from '@workspace-sync/testkit';
import { buildWorkspace } from './lib/fixture.mjs';
const work = '/tmp/qp'; const root = path.join(work, 'root'); const ws = path.join(root, 'app');
mkdirSync(ws, { recursive: true });
buildWorkspace(ws, { sources: 5000, nodeModules: 20000 });
rmSync(path.join(work, 's3'), { recursive: true, force: true });
const s3 = await startTestS3({ dir: path.join(work, 's3') });
const agent = process.env.AGENT ?? path.resolve('packages/sync-agent/bin/sync-agent.js');
const env = { ...process.env, ...s3.env, WORKSPACES_DIR: root, SYNC_STATE_DIR: path.join(work, 'state'), LOG_LEVEL: 'warn' };
const flags = process.argv.slice(2);
for (const [i, extra] of [[], [], [], ['--cpu-prof', '--cpu-prof-dir=/tmp/prof-init']].entries()) {
  rmSync(env.SYNC_STATE_DIR, { recursive: true, force: true });
  rmSync('/tmp/prof-init', { recursive: true, force: true });
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...extra, agent, 'push', 'app', '--concurrency', '32', '--prefix', `p${i}/`, ...flags], { env, encoding: 'utf8' });
  if (r.status) console.log(r.stderr);
  console.log(extra.length ? 'profiled' : 'plain', ((performance.now() - t0) / 1000).toFixed(2));
}
await s3.stop();
