/** `sync-agent files`: what a push would sync, for checking filters before pushing. */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { compareUtf8, createFilter, type AgentConfig } from '@workspace-sync/shared';
import { scanWorkspace, type Skipped } from './scan.js';
import { listWorkspaces } from './workspaces.js';

/**
 * `target` is a workspace name under the root, or any directory (its parent then plays the root, so
 * the parent's .gitignore applies). Without a target every workspace is listed as `<workspace>/<path>`.
 */
export async function listFiles(config: AgentConfig, target: string | undefined): Promise<{ paths: string[]; skipped: Skipped[] }> {
  const jobs: Array<{ root: string; workspace: string; show: (p: string) => string }> = [];
  if (target === undefined) {
    for (const ws of await listWorkspaces(config.root)) jobs.push({ root: config.root, workspace: ws, show: (p) => `${ws}/${p}` });
  } else {
    const asWorkspace = !target.includes('/') && target !== '.' && target !== '..'
      && (await stat(path.join(config.root, target)).catch(() => undefined))?.isDirectory();
    const dir = asWorkspace ? path.join(config.root, target) : path.resolve(target);
    jobs.push({ root: path.dirname(dir), workspace: path.basename(dir), show: (p) => p });
  }
  const paths: string[] = [];
  const skipped: Skipped[] = [];
  for (const job of jobs) {
    const filter = createFilter({ root: job.root, workspace: job.workspace, excludes: config.exclude });
    const res = await scanWorkspace(path.join(job.root, job.workspace), filter);
    for (const p of res.entries.keys()) paths.push(job.show(p));
    for (const s of res.skipped) skipped.push({ path: job.show(s.path), reason: s.reason });
  }
  return { paths: paths.sort(compareUtf8), skipped };
}
