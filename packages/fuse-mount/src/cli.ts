/**
 * `fuse-mount MOUNTPOINT [options]`: mounts the bucket read-only and stays in the foreground
 * (`--daemon`: in the background, returning once the mount answers).
 * stdout carries exactly one line, `ready <mountpoint>`, once the mount answers (scripts wait for
 * it); logs go to stderr. SIGINT/SIGTERM unmount and exit 0 within a few seconds whatever S3 is
 * doing, also during start-up; a second signal forces the exit. An unmount from outside
 * (`fusermount -u`) ends the process with 0 as well.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Command, CommanderError } from 'commander';
import {
  ExitCodes, addConfigOptions, configFlags, createLogger, exitCodeFor, formatError, isSyncError, resolveConfig, type Logger,
} from '@workspace-sync/shared';
import { startMount, type RunningMount } from './daemon.js';
import { unmountNow } from './mount.js';
import { mountOptionFlags } from './mount-options.js';
import { MOUNT_VERSION } from './version.js';

/** A stop that takes longer than this (a wedged unmount) is cut short: lazy unmount, exit. */
const STOP_DEADLINE_MS = 5_000;

/** Set in the environment of the background process `--daemon` starts. */
const DAEMON_CHILD = 'FUSE_MOUNT_DAEMON_CHILD';
/** How long `--daemon` waits for the background mount to answer (its own start-up deadlines are shorter). */
const DAEMON_READY_MS = 60_000;

export async function main(argv: string[]): Promise<number> {
  const program = new Command('fuse-mount')
    .description('Mount a workspace-sync bucket read-only over FUSE, in the foreground (or in the background with --daemon).\n'
      + 'Prints "ready <mountpoint>" on stdout once the mount answers; SIGINT/SIGTERM unmount it.')
    .version(MOUNT_VERSION)
    .argument('<mountpoint>', 'an empty directory to mount on')
    .option('-o, --option <opts>', 'mount options as mount(8) and rclone take them: allow_other, default_permissions, uid=N, gid=N, ro (repeatable, comma-separated)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--daemon', 'mount in the background: return once the mount answers, logging to --log-file')
    .option('--log-file <file>', 'with --daemon, where the background mount logs (default: fuse-mount.log in --cache-dir)')
    .exitOverride()
    .showHelpAfterError('(run fuse-mount --help to see every option)');
  addConfigOptions(program, 'mount');
  try {
    program.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCodes.OK : ExitCodes.USAGE;
    throw err;
  }
  const cli = program.opts<{ option: string[]; daemon?: boolean; logFile?: string }>();
  if (cli.daemon && process.env[DAEMON_CHILD] === undefined) {
    try {
      const { flags, configFile } = configFlags(program, 'mount');
      const config = resolveConfig('mount', { flags: { ...flags, ...mountOptionFlags(cli.option, flags) }, configFile });
      return await daemonize(argv.slice(2), path.resolve(cli.logFile ?? path.join(config.cacheDir, 'fuse-mount.log')));
    } catch (err) {
      process.stderr.write(`${formatError(err)}\n`);
      return exitCodeFor(err);
    }
  }

  let running: RunningMount | undefined;
  let logger: Logger | undefined;
  let signalled: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const starting = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger?.warn({ signal }, 'second signal: leaving without a clean shutdown');
      if (running) unmountNow(running.mountpoint);
      process.exit(ExitCodes.INTERRUPTED);
    }
    signalled = signal;
    starting.abort();
    wake?.();
  };
  const onCrash = (err: unknown) => {
    process.stderr.write(`${formatError(err)}\n`);
    // Never leave a dead mount behind ("transport endpoint is not connected").
    if (running) unmountNow(running.mountpoint);
    process.exit(ExitCodes.INTERNAL);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  try {
    const { flags, configFile } = configFlags(program, 'mount');
    const config = resolveConfig('mount', { flags: { ...flags, ...mountOptionFlags(cli.option, flags) }, configFile });
    logger = createLogger({ level: config.logLevel, name: 'fuse-mount', format: config.logFormat });
    try {
      running = await startMount(config, program.args[0]!, logger, starting.signal);
    } catch (err) {
      if (signalled && isSyncError(err, 'INTERRUPTED')) {
        logger.info({ signal: signalled }, 'start-up interrupted; nothing is mounted');
        return ExitCodes.OK;
      }
      throw err;
    }
    let gone = false;
    if (!signalled) {
      process.stdout.write(`ready ${running.mountpoint}\n`);
      // Under --daemon the reader of that line goes away; a later write must not kill the mount.
      if (process.env[DAEMON_CHILD] !== undefined) process.stdout.on('error', () => {});
      void running.gone.then(() => { gone = true; wake?.(); });
      await new Promise<void>((resolve) => { wake = resolve; });
    }
    const mount = running;
    if (gone) logger.info({ mountpoint: mount.mountpoint }, 'the mount is gone; stopping');
    else logger.info({ signal: signalled, mountpoint: mount.mountpoint }, 'unmounting');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), STOP_DEADLINE_MS); });
    const result = await Promise.race([mount.stop().then(() => 'done' as const), late]).finally(() => clearTimeout(timer));
    if (result === 'late') {
      logger.warn({ mountpoint: mount.mountpoint }, 'stopping took too long; unmounting lazily and leaving');
      unmountNow(mount.mountpoint);
    } else {
      logger.info(gone ? 'stopped' : 'unmounted');
    }
    return ExitCodes.OK;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return exitCodeFor(err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
  }
}

/**
 * `--daemon`: the same command again as a detached process that logs to `logFile`; this one returns
 * once it printed "ready" (printing it too), or relays why it failed, with its exit code.
 */
async function daemonize(args: string[], logFile: string): Promise<number> {
  mkdirSync(path.dirname(logFile), { recursive: true });
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    detached: true, stdio: ['ignore', 'pipe', log], env: { ...process.env, [DAEMON_CHILD]: '1' },
  });
  closeSync(log);
  const outcome = await new Promise<{ ready: string } | { code: number | null }>((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGTERM'); resolve({ code: null }); }, DAEMON_READY_MS);
    createInterface({ input: child.stdout! }).once('line', (line) => { clearTimeout(timer); resolve({ ready: line }); });
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code }); });
  });
  if ('ready' in outcome) {
    process.stdout.write(`${outcome.ready}\n`);
    process.stderr.write(`fuse-mount runs in the background (pid ${child.pid}); it logs to ${logFile}; fusermount -u or kill ${child.pid} stops it\n`);
    child.stdout!.destroy();
    child.unref();
    return ExitCodes.OK;
  }
  const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-5).join('\n');
  process.stderr.write(`${tail}\nfuse-mount: the background mount did not start (${outcome.code === null ? `no answer in ${DAEMON_READY_MS / 1000} s` : `exit ${outcome.code}`}); its log: ${logFile}\n`);
  return outcome.code ?? ExitCodes.REMOTE;
}
