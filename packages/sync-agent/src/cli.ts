/**
 * `sync-agent`: parses, wires and prints. Results go to stdout (plain or --json), logs to stderr (pino).
 * Exit codes come from shared exitCodeFor (documented in the README).
 */
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError } from 'commander';
import {
  addConfigOptions, agentPolicy, compareUtf8, configFlags, createLogger, createObjectStore, createRegistry, errorProperties, exitCodeFor, ExitCodes, formatBytes,
  formatError, isSyncError, mountPolicy, POLICY_SERVERS, Registry, resolveConfig, s3SettingsFor, startHealthServer, SyncError,
  type AgentConfig, type Logger, type ObjectStore, type OptionGroup, type PolicyServer,
} from '@workspace-sync/shared';
import { explainPaths, formatExplanation, listFiles } from './files.js';
import { formatGc, formatLog, formatRestore, gcWorkspace, logWorkspace, restoreWorkspace } from './history-commands.js';
import { createProgress, progressMode } from './progress.js';
import { pushWorkspace, type PushReport } from './push.js';
import { AGENT_VERSION } from './version.js';
import { startWatch, type WatchSummary } from './watch-root.js';
import { checkWorkspaceName, listWorkspaces } from './workspaces.js';


interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** The option groups (config.ts) each command takes: its --help lists only options that change what it does. */
const GROUPS: Record<string, readonly OptionGroup[]> = {
  push: ['log', 's3', 'workspaces', 'filter', 'push', 'history'],
  watch: ['log', 's3', 'health', 'workspaces', 'filter', 'push', 'history', 'watch'],
  files: ['log', 'workspaces', 'filter'],
  log: ['log', 's3', 'workspaces'],
  restore: ['log', 's3', 'workspaces'],
  gc: ['log', 's3', 'workspaces', 'history'],
  policy: ['s3'],
};

/** A dry run lists every path up to this many; beyond, only the totals (--summary: always only the totals). */
const PLAN_LINES = 1000;

export async function main(argv: string[], io: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) }): Promise<number> {
  let code: number = ExitCodes.OK;
  const program = new Command('sync-agent')
    .description('Mirror developer workspaces into S3, filtered like git, as content-hashed deltas.')
    .version(AGENT_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: (str, write) => write(str) })
    // A mistyped flag gets the error and one line, not the whole help burying it.
    .showHelpAfterError('(sync-agent --help lists the commands)');
  /** A subcommand with its option groups; its usage errors point at its own --help. */
  const command = (name: string, define: (cmd: Command) => Command) =>
    addConfigOptions(define(program.command(name).showHelpAfterError(`(sync-agent ${name} --help lists its options)`)), 'agent', GROUPS[name]);

  command('push', (c) => c
    .argument('[workspace...]', 'workspaces to push (default: every directory under --root)')
    .description('push workspaces once: upload changes, publish the manifest, then delete removed files')
    .option('-n, --dry-run', 'print the plan (uploads and deletes, sorted by path; totals only past 1000 paths) and change nothing')
    .option('--summary', 'with --dry-run: print only each workspace\'s totals')
    .option('-P, --progress', 'show transfer progress even when stderr is not a terminal (one line a second), or with --json or -q')
    .option('--json', 'print a JSON summary on stdout')
    .option('--force', 'allow deletes beyond the safety limit')
    .option('--create-bucket', 'create the bucket if it does not exist'),
  ).action(async (names: string[], _opts, cmd: Command) => {
    code = await runPush(cmd, names, io);
  });

  command('watch', (c) => c
    .description('mirror every workspace continuously: reconcile each, then sync changes as they happen (SIGINT/SIGTERM flush and exit)')
    .option('--force', 'allow deletes beyond the safety limit')
    .option('--create-bucket', 'create the bucket if it does not exist')
    .option('--json', 'print a JSON summary on stdout when stopped'),
  ).action(async (_opts, cmd: Command) => {
    code = await runWatch(cmd, io);
  });

  command('files', (c) => c
    .argument('[target...]', 'a workspace name under --root, or a directory (default: every workspace); with --why, paths')
    .description('print the paths that would be synced, one per line, sorted; with --why, the rule that decides each given path')
    .option('-0, --null', 'separate paths with NUL instead of newline')
    .option('--why', 'for each path (<workspace>/<path>, or a path inside the root), print whether it is synced and the rule that decides it'),
  ).action(async (targets: string[], _opts, cmd: Command) => {
    const config = loadConfig(cmd);
    if (cmd.opts().why) {
      if (targets.length === 0) throw new SyncError('USAGE', 'files --why needs at least one path', { hint: 'e.g. sync-agent files --why www/dist/index.html' });
      for (const e of await explainPaths(config, targets)) io.out(`${formatExplanation(e, config)}\n`);
      code = ExitCodes.OK;
      return;
    }
    if (targets.length > 1) throw new SyncError('USAGE', 'files takes one workspace or directory', { hint: 'to ask about paths, add --why' });
    const { paths, skipped } = await listFiles(config, targets[0]);
    const sep = cmd.opts().null ? '\0' : '\n';
    io.out(paths.map((p) => p + sep).join(''));
    for (const s of skipped) io.err(`skipped ${s.path}: ${s.reason}\n`);
    code = skipped.length ? ExitCodes.PARTIAL : ExitCodes.OK;
  });

  command('log', (c) => c
    .argument('<workspace>', 'workspace whose history to show')
    .description('list the generations of a workspace, newest first: time, writer, files added/changed/deleted')
    .option('-n, --max-count <n>', 'show at most this many generations', '100')
    .option('--json', 'print JSON on stdout'),
  ).action(async (workspace: string, _opts, cmd: Command) => {
    const config = loadConfig(cmd);
    checkWorkspaceName(workspace, config.root);
    const opts = cmd.opts<{ maxCount: string; json?: boolean }>();
    const max = Number(opts.maxCount);
    if (!Number.isSafeInteger(max) || max < 1) throw new SyncError('USAGE', `--max-count must be a positive integer, not "${opts.maxCount}"`, { hint: 'e.g. -n 20' });
    const entries = await logWorkspace(storeFor(config, loggerFor(config)), config, workspace, max);
    io.out(opts.json ? `${JSON.stringify(entries, null, 2)}\n` : formatLog(workspace, entries));
  });

  command('restore', (c) => c
    .argument('<workspace>', 'workspace to restore')
    .argument('[path...]', 'only these files or directories (default: the whole workspace)')
    .description('write a generation of a workspace back to disk, byte for byte, with modes, symlinks and mtimes')
    .option('--generation <n>', 'the generation to restore (default: the latest)')
    .option('--at <time>', 'the newest generation at or before this time (ISO 8601, or a duration ago such as 2h)')
    .option('--to <dir>', 'write there instead of into the workspace directory')
    .option('--force', 'overwrite files that differ (and restore into a non-empty directory)')
    .option('-n, --dry-run', 'say what would be restored and write nothing')
    .option('--json', 'print a JSON summary on stdout'),
  ).action(async (workspace: string, paths: string[], _opts, cmd: Command) => {
    const config = loadConfig(cmd);
    checkWorkspaceName(workspace, config.root);
    const opts = cmd.opts<{ generation?: string; at?: string; to?: string; force?: boolean; dryRun?: boolean; json?: boolean }>();
    if (opts.generation !== undefined && opts.at !== undefined) throw new SyncError('USAGE', '--generation and --at cannot be combined', { hint: 'give one of them' });
    const log = loggerFor(config);
    const report = await restoreWorkspace(storeFor(config, log), config, workspace, {
      ...opts, paths: paths.map((p) => p.replace(/\/+$/, '')), force: !!opts.force, dryRun: !!opts.dryRun,
    }, log);
    io.out(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatRestore(report));
    code = report.failed.length ? ExitCodes.PARTIAL : ExitCodes.OK;
  });

  command('gc', (c) => c
    .argument('[workspace...]', 'workspaces to collect (default: every directory under --root)')
    .description('remove what no retained generation needs (see --keep-generations, --keep-for, --gc-grace)')
    .option('-n, --dry-run', 'say what would be removed and remove nothing')
    .option('--json', 'print a JSON summary on stdout'),
  ).action(async (names: string[], _opts, cmd: Command) => {
    const config = loadConfig(cmd);
    const opts = cmd.opts<{ dryRun?: boolean; json?: boolean }>();
    for (const n of names) checkWorkspaceName(n, config.root);
    const log = loggerFor(config);
    const store = storeFor(config, log);
    const reports = [];
    for (const ws of names.length ? names : await listWorkspaces(config.root)) reports.push(await gcWorkspace(store, config, ws, !!opts.dryRun, log));
    io.out(opts.json ? `${JSON.stringify(reports, null, 2)}\n` : reports.map(formatGc).join(''));
  });

  command('policy', (c) => c
    .argument('<role>', 'agent (reads and writes the given workspaces) or mount (reads every workspace)')
    .argument('[workspace...]', 'for agent: the workspaces it may write (* and ? match as in S3 policies)')
    .description('print the least-privilege S3 policy a process needs for --bucket and --prefix (docs/security.md)')
    .option('--server <server>', `where the policy goes: ${POLICY_SERVERS.join(', ')}`, 'aws')
    .option('--principal <arn>', 'print a bucket policy granting this user or role (AWS, Ceph RGW); without it, an identity policy'),
  ).action((role: string, workspaces: string[], _opts, cmd: Command) => {
    const config = loadConfig(cmd);
    const opts = cmd.opts<{ server: string; principal?: string }>();
    const policyOpts = { bucket: config.bucket, prefix: config.prefix, server: opts.server as PolicyServer, principal: opts.principal };
    if (role === 'agent') io.out(`${JSON.stringify(agentPolicy(workspaces, policyOpts), null, 2)}\n`);
    else if (role === 'mount' && workspaces.length === 0) io.out(`${JSON.stringify(mountPolicy(policyOpts), null, 2)}\n`);
    else throw new SyncError('USAGE', role === 'mount' ? 'a mount reads every workspace: policy mount takes no workspace' : `unknown role "${role}"`, {
      hint: 'sync-agent policy agent WORKSPACE... | sync-agent policy mount',
    });
  });

  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCodes.OK : ExitCodes.USAGE;
    io.err(`${formatError(err)}\n`);
    return exitCodeFor(err);
  }
}

function loadConfig(cmd: Command): AgentConfig {
  const { flags, configFile } = configFlags(cmd, 'agent');
  return resolveConfig('agent', { flags, configFile });
}

function loggerFor(config: AgentConfig): Logger {
  return createLogger({ level: config.logLevel, name: 'sync-agent', format: config.logFormat });
}

function storeFor(config: AgentConfig, log: Logger) {
  return createObjectStore({ ...s3SettingsFor(config, log), maxSockets: config.concurrency * 2, requestTimeoutMs: config.requestTimeout });
}

async function runPush(cmd: Command, names: string[], io: Io): Promise<number> {
  const opts = cmd.opts<{ dryRun?: boolean; summary?: boolean; progress?: boolean; json?: boolean; force?: boolean; createBucket?: boolean }>();
  if (opts.summary && !opts.dryRun) throw new SyncError('USAGE', '--summary goes with --dry-run', { hint: 'sync-agent push --dry-run --summary' });
  const config = loadConfig(cmd);
  const log = loggerFor(config);
  const store = storeFor(config, log);
  if (opts.createBucket && !opts.dryRun) await store.createBucket();
  for (const n of names) checkWorkspaceName(n, config.root);
  const workspaces = names.length ? names : await listWorkspaces(config.root);
  if (workspaces.length === 0) log.warn({ root: config.root }, 'no workspaces found under the root');

  const progress = createProgress(progressMode({
    forced: !!opts.progress, quiet: !!opts.json || config.logLevel === 'error' || config.logLevel === 'silent', dryRun: !!opts.dryRun, isTTY: !!process.stderr.isTTY,
  }));
  const reports: PushReport[] = [];
  const failures: Array<{ workspace: string; error: SyncError }> = [];
  let worst: number = ExitCodes.OK;
  for (const workspace of workspaces) {
    try {
      const report = await pushWorkspace({
        config, store, log, workspace, dryRun: opts.dryRun, force: opts.force,
        onPlan: (p) => progress.start(workspace, new Set([...p.newContent, ...p.plainWrites].map((e) => e.path)).size, p.uploadBytes),
        onBytes: (n) => progress.bytes(n),
        onFile: () => progress.file(),
      });
      progress.stop();
      reports.push(report);
      for (const s of report.skipped) log.warn({ workspace, path: s.path }, `skipped: ${s.reason}`);
      if (report.skipped.length) worst = Math.max(worst, ExitCodes.PARTIAL);
      if (!opts.json) io.out(opts.dryRun ? formatPlan(report, opts.summary ? 0 : PLAN_LINES) : `${formatSummary(report)}\n`);
    } catch (err) {
      progress.stop();
      // Errors that concern one workspace are reported, and the others go on.
      if (!isSyncError(err) || errorProperties(err)?.scope !== 'workspace') throw err;
      failures.push({ workspace, error: err });
      worst = Math.max(worst, exitCodeFor(err));
      io.err(`${formatError(err)}\n`);
    }
  }
  if (opts.json) {
    io.out(`${JSON.stringify({
      ok: failures.length === 0 && worst === ExitCodes.OK,
      workspaces: reports.map((r) => ({ ...r, skipped: r.skipped.length, skippedPaths: r.skipped })),
      errors: failures.map((f) => ({ workspace: f.workspace, code: f.error.code, message: f.error.message, hint: f.error.hint })),
      totals: totals(reports),
    }, null, 2)}\n`);
  }
  return worst;
}

interface WatchFlags {
  force?: boolean; createBucket?: boolean; json?: boolean;
}

async function runWatch(cmd: Command, io: Io): Promise<number> {
  // A daemon that runs all day: V8 grows its heap far less eagerly (watch RSS: docs/benchmarks.md).
  setFlagsFromString('--optimize-for-size');
  const opts = cmd.opts<WatchFlags>();
  const config = loadConfig(cmd);
  const log = loggerFor(config);
  const store = storeFor(config, log);
  if (opts.createBucket) await store.createBucket();
  await checkRemote(store, log);

  // Default process metrics keep a timer sampling the event loop: only worth it when someone scrapes them.
  const registry = config.healthPort === undefined ? new Registry() : createRegistry('sync_agent_');
  const watch = await startWatch({
    config, store, log, registry, force: opts.force, rescanIntervalMs: config.rescanInterval, pollMs: config.poll,
    policy: { quietMs: config.debounce, maxDelayMs: Math.max(config.maxDelay, config.debounce) },
  });
  const health = config.healthPort === undefined
    ? undefined
    : await startHealthServer({ port: config.healthPort, host: config.healthAddress, prefix: config.prefix, registry, health: () => watch.health() });
  void watch.started.then(() => log.info({
    root: config.root, workspaces: watch.workspaces().length, watches: watch.watchCount(), healthPort: health?.port, healthAddress: health && config.healthAddress,
  }, 'watching'));

  const summary = await new Promise<WatchSummary>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(ExitCodes.INTERRUPTED);
      stopping = true;
      log.info({ signal }, 'stopping: syncing queued changes (send the signal again to exit at once)');
      void watch.stop().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await health?.close();
  if (opts.json) io.out(`${JSON.stringify(summary, null, 2)}\n`);
  else for (const w of summary.workspaces) io.out(`${w.workspace}: ${w.uploaded} uploaded, ${w.copied} copied, ${w.deleted} deleted (${formatBytes(w.bytes)}) in ${w.syncs} syncs, ${w.status}\n`);
  if (!summary.flushed) log.warn('some changes could not be synced before stopping; the next start reconciles them');
  return summary.flushed ? ExitCodes.OK : ExitCodes.PARTIAL;
}

/**
 * Wrong credentials or a missing bucket stop watch at once; an unreachable endpoint is an outage to
 * ride out. Access to each workspace is the workspace's own matter (reported, retried).
 */
async function checkRemote(store: ObjectStore, log: Logger): Promise<void> {
  try {
    await store.headBucket();
  } catch (err) {
    if (!isSyncError(err, 'ENDPOINT_UNREACHABLE')) throw err;
    log.warn({ hint: err.hint }, `${err.message}: watching anyway; changes are queued until it answers`);
  }
}

function totals(reports: PushReport[]) {
  const t = { uploaded: 0, copied: 0, deleted: 0, unchanged: 0, skipped: 0, bytes: 0, seconds: 0 };
  for (const r of reports) {
    t.uploaded += r.uploaded; t.copied += r.copied; t.deleted += r.deleted; t.unchanged += r.unchanged;
    t.skipped += r.skipped.length; t.bytes += r.bytes; t.seconds += r.seconds;
  }
  return t;
}

function formatSummary(r: PushReport): string {
  const parts = [`${r.uploaded} uploaded`, `${r.copied} copied`, `${r.deleted} deleted`, `${r.unchanged} unchanged`];
  if (r.skipped.length) parts.push(`${r.skipped.length} skipped`);
  const committed = r.manifestWritten ? `generation ${r.generation}` : 'no changes';
  return `${r.workspace}: ${parts.join(', ')} (${formatBytes(r.bytes)}, ${committed}) in ${r.seconds.toFixed(2)} s`;
}

/** A dry run's plan: one line per path, sorted by path, then the totals; only the totals past `maxLines` paths. */
function formatPlan(r: PushReport, maxLines: number): string {
  const p = r.plan!;
  const paths = [...p.uploads.map((u) => ['upload', u] as const), ...p.deletes.map((d) => ['delete', d] as const)]
    .sort((a, b) => compareUtf8(a[1], b[1]));
  const lines = paths.length <= maxLines ? paths.map(([op, rel]) => `${op}  ${r.workspace}/${rel}`) : [];
  const hidden = paths.length > maxLines && maxLines > 0 ? ` (${paths.length} paths not listed: more than ${maxLines})` : '';
  lines.push(`${r.workspace}: would upload ${p.uploads.length} (${formatBytes(p.uploadBytes)}), change ${p.changed.length} in the tree, delete ${p.deletes.length}, keep ${r.unchanged} (dry run)${hidden}`);
  return `${lines.join('\n')}\n`;
}
