/**
 * `fuse-mount MOUNTPOINT [options]`: mounts the bucket read-only and stays in the foreground.
 * stdout carries exactly one line, `ready <mountpoint>`, once the mount answers (scripts wait for
 * it); logs go to stderr. SIGINT/SIGTERM unmount and exit 0 within a few seconds whatever S3 is
 * doing, also during start-up; a second signal forces the exit. An unmount from outside
 * (`fusermount -u`) ends the process with 0 as well.
 */
import { Command, CommanderError } from 'commander';
import {
  ExitCodes, addConfigOptions, configFlags, createLogger, exitCodeFor, formatError, isSyncError, resolveConfig, type Logger,
} from '@workspace-sync/shared';
import { startMount, type RunningMount } from './daemon.js';
import { unmountNow } from './mount.js';
import { MOUNT_VERSION } from './version.js';

/** A stop that takes longer than this (a wedged unmount) is cut short: lazy unmount, exit. */
const STOP_DEADLINE_MS = 5_000;

export async function main(argv: string[]): Promise<number> {
  const program = new Command('fuse-mount')
    .description('Mount a workspace-sync bucket read-only over FUSE, in the foreground.\n'
      + 'Prints "ready <mountpoint>" on stdout once the mount answers; SIGINT/SIGTERM unmount it.')
    .version(MOUNT_VERSION)
    .argument('<mountpoint>', 'an empty directory to mount on')
    .exitOverride()
    .showHelpAfterError('(run fuse-mount --help to see every option)');
  addConfigOptions(program, 'mount');
  try {
    program.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCodes.OK : ExitCodes.USAGE;
    throw err;
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
    const config = resolveConfig('mount', { flags, configFile });
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
