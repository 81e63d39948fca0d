/** `sync-agent files`: what a push would sync, and why a path is or is not synced, for checking filters before pushing. */
import { lstatSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import {
  compareUtf8, createFilter, isSafeRelativePath, isValidWorkspaceName, SyncError, type AgentConfig, type Filter, type PatternSource, type Rule, type Verdict,
} from '@workspace-sync/shared';
import { entryFor, scanWorkspace, type Skipped } from './scan.js';
import { listWorkspaces } from './workspaces.js';

export function workspaceFilter(config: AgentConfig, root: string, workspace: string): Filter {
  return createFilter({ root, workspace, excludes: config.exclude, gitIndex: config.gitIndex });
}

/**
 * `target` is a workspace name under the root, or any directory (its parent then plays the root, so
 * the parent's .gitignore applies). Without a target every workspace is listed as `<workspace>/<path>`.
 */
export async function listFiles(config: AgentConfig, target: string | undefined): Promise<{ paths: string[]; skipped: Skipped[] }> {
  const jobs: Array<{ root: string; workspace: string; show: (p: string) => string }> = [];
  if (target === undefined) {
    for (const ws of await listWorkspaces(config.root)) jobs.push({ root: config.root, workspace: ws, show: (p) => `${ws}/${p}` });
  } else {
    const isDir = async (p: string) => (await stat(p).catch(() => undefined))?.isDirectory() ?? false;
    const asWorkspace = !target.includes('/') && target !== '.' && target !== '..' && (await isDir(path.join(config.root, target)));
    const dir = asWorkspace ? path.join(config.root, target) : path.resolve(target);
    if (!asWorkspace && !(await isDir(dir))) throw unknownTarget(config.root, target, dir, await isDir(config.root));
    jobs.push({ root: path.dirname(dir), workspace: path.basename(dir), show: (p) => p });
  }
  const paths: string[] = [];
  const skipped: Skipped[] = [];
  for (const job of jobs) {
    const filter = workspaceFilter(config, job.root, job.workspace);
    const res = await scanWorkspace(path.join(job.root, job.workspace), filter);
    for (const p of res.entries.keys()) paths.push(job.show(p));
    for (const s of res.skipped) skipped.push({ path: job.show(s.path), reason: s.reason });
  }
  return { paths: paths.sort(compareUtf8), skipped };
}

/** `files TARGET` where TARGET is neither a workspace under the root nor a directory. */
function unknownTarget(root: string, target: string, dir: string, rootExists: boolean): SyncError {
  const asName = !target.includes('/') && isValidWorkspaceName(target);
  const where = asName ? `no workspace "${target}" under ${root}${rootExists ? '' : ' (which does not exist)'} and no directory ${dir}` : `no directory ${dir}`;
  return new SyncError('WORKSPACE_UNKNOWN', `files ${target}: ${where}`, {
    hint: rootExists
      ? 'give a workspace name (sync-agent files with no argument lists every workspace) or a directory path'
      : 'set --root or WORKSPACES_DIR to the directory holding your workspaces (default ./workspaces), or give a directory path',
  });
}

export interface Explanation {
  /** `<workspace>/<path>`, as `files` lists it. */
  shown: string;
  isDir: boolean;
  exists: boolean;
  verdict: Verdict;
  /** Why a path the rules keep is still not synced (a symlink leaving the workspace, a special file…). */
  skipped?: string;
}

/**
 * Where `given` lies: a path under the workspaces root as seen from the current directory, else a
 * `<workspace>/<path>` relative to the root (the form `files` prints).
 */
export function locate(root: string, given: string, cwd = process.cwd()): { workspace: string; rel: string } {
  const inRoot = (abs: string) => {
    const rel = path.relative(root, abs);
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep) : undefined;
  };
  const parts = inRoot(path.resolve(cwd, given)) ?? (path.isAbsolute(given) ? undefined : inRoot(path.join(root, given)));
  if (!parts || !isValidWorkspaceName(parts[0]!)) {
    throw new SyncError('USAGE', `${given} is not a path in a workspace under ${root}`, {
      hint: 'give paths as files prints them (<workspace>/<path>), or as paths inside the workspaces root',
    });
  }
  return { workspace: parts[0]!, rel: parts.slice(1).join('/') };
}

/** `sync-agent files --why`: the verdict on each path and the rule behind it. */
export async function explainPaths(config: AgentConfig, given: readonly string[]): Promise<Explanation[]> {
  const filters = new Map<string, Filter>();
  const out: Explanation[] = [];
  for (const g of given) {
    const { workspace, rel } = locate(config.root, g);
    const wsDir = path.join(config.root, workspace);
    if (!(await stat(wsDir).catch(() => undefined))?.isDirectory()) {
      throw new SyncError('WORKSPACE_UNKNOWN', `${g}: there is no workspace ${workspace} (no directory ${wsDir})`, {
        hint: 'give paths as files prints them (<workspace>/<path>), or as paths inside the workspaces root',
      });
    }
    if (rel === '') {
      out.push({ shown: workspace, isDir: true, exists: true, verdict: { excluded: false, tracked: false, rule: undefined } });
      continue;
    }
    let filter = filters.get(workspace);
    if (!filter) filters.set(workspace, (filter = workspaceFilter(config, config.root, workspace)));
    const st = (() => { try { return lstatSync(path.join(wsDir, rel)); } catch { return undefined; } })();
    const isDir = st ? st.isDirectory() : g.endsWith('/');
    const e: Explanation = { shown: `${workspace}/${rel}`, isDir, exists: st !== undefined, verdict: filter.why(rel, isDir) };
    if (!isSafeRelativePath(rel)) e.skipped = 'name cannot be stored as an object key';
    else if (st && !isDir && !e.verdict.excluded) {
      const entry = await entryFor(wsDir, rel, st).catch((err: NodeJS.ErrnoException) => ({ reason: `cannot read (${err.code})` }));
      if ('reason' in entry) e.skipped = entry.reason;
    }
    out.push(e);
  }
  return out;
}

type ExplainConfig = Pick<AgentConfig, 'root'> & Partial<Pick<AgentConfig, 'exclude' | 'excludeSources'>>;

/**
 * Which --exclude-from line, --exclude or --include a rule of the highest layer is: the last entry with
 * its text (within a layer the last matching pattern wins, so of equal patterns the last one decides).
 */
function sourceOf(r: Rule, config: ExplainConfig): PatternSource | undefined {
  const i = config.exclude?.lastIndexOf(r.pattern) ?? -1;
  return i < 0 ? undefined : config.excludeSources?.[i];
}

function describeRule(r: Rule, config: ExplainConfig, ws: string): string {
  if (r.source === 'git') return r.dir ? `${r.pattern} (${ws}/${r.dir}/)` : r.pattern;
  const shownFile = (f: string) => (path.relative(config.root, f).startsWith('..') ? f : path.relative(config.root, f));
  let where: string;
  if (r.source === 'exclude') {
    const from = sourceOf(r, config);
    where = !from ? '--exclude' : from.flag === '--exclude-from' ? `${shownFile(from.file)}:${from.line}, --exclude-from` : from.flag;
  } else {
    where = r.file ? `${shownFile(r.file)}:${r.line}` : 'defaults';
  }
  // An include is shown as given, without the `!` it becomes in the layer.
  const pattern = r.source === 'exclude' && sourceOf(r, config)?.flag === '--include' ? r.pattern.slice(1) : r.pattern;
  return `${pattern} (${where})${r.dir ? ` on the directory ${ws}/${r.dir}/` : ''}`;
}

/** One line per path: `<path>: excluded by <pattern> (<source>)`, `included: tracked by git`, and so on. */
export function formatExplanation(e: Explanation, config: ExplainConfig): string {
  const slash = e.shown.indexOf('/');
  if (slash < 0) return `${e.shown}/: a workspace`;
  const v = e.verdict;
  const shown = e.isDir ? `${e.shown}/` : e.shown;
  const rule = v.rule && describeRule(v.rule, config, e.shown.slice(0, slash));
  const reincludes = v.rule?.pattern.startsWith('!') ?? false;
  let line: string;
  if (v.excluded && v.rule?.source === 'git') line = `${shown}: excluded: ${rule}`;
  else if (v.excluded) line = `${shown}: excluded by ${rule ?? 'the ignore rules'}`;
  else if (v.tracked && v.rule && !reincludes) line = `${shown}: included: tracked by git, so ${rule} does not apply (ignore rules decide untracked files only)`;
  else if (v.tracked) line = `${shown}: included: tracked by git`;
  else if (v.rule) line = `${shown}: included by ${rule}`;
  else line = `${shown}: included: no rule matches`;
  if (!e.exists) line += ' (does not exist)';
  if (e.skipped && !v.excluded) line += `, but skipped: ${e.skipped}`;
  return line;
}
