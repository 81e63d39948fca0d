/**
 * Transfer progress on stderr (files, bytes, rate): a bar redrawn in place on a terminal, or with
 * `push -P` into a pipe or file one plain line a second, as rclone's `-P` stats; nothing when off.
 */
import cliProgress from 'cli-progress';
import { formatBytes } from '@workspace-sync/shared';

export type ProgressMode = 'off' | 'terminal' | 'lines';

export interface Progress {
  start(workspace: string, files: number, bytes: number): void;
  bytes(n: number): void;
  file(): void;
  stop(): void;
}

/** The mode for a push: `forced` is -P; a dry run transfers nothing; a quiet or JSON run shows no bar unless forced. */
export function progressMode(opts: { forced: boolean; quiet: boolean; dryRun: boolean; isTTY: boolean }): ProgressMode {
  if (opts.dryRun) return 'off';
  if (opts.forced) return opts.isTTY ? 'terminal' : 'lines';
  return opts.isTTY && !opts.quiet ? 'terminal' : 'off';
}

export function createProgress(mode: ProgressMode, stream: NodeJS.WritableStream = process.stderr): Progress {
  if (mode === 'off') return { start() {}, bytes() {}, file() {}, stop() {} };
  let bar: cliProgress.SingleBar | undefined;
  let done = 0;
  let files = 0;
  let started = 0;
  const payload = () => {
    const secs = Math.max((performance.now() - started) / 1000, 0.001);
    return { sent: formatBytes(done), rate: `${formatBytes(done / secs)}/s`, filesDone: files };
  };
  return {
    start(workspace, totalFiles, totalBytes) {
      done = 0; files = 0; started = performance.now();
      if (totalFiles === 0) return; // nothing to send: no bar
      const counts = `{percentage}% | {filesDone}/${totalFiles} files | {sent} of ${formatBytes(totalBytes)} | {rate}`;
      bar = new cliProgress.SingleBar({
        // Lines in a log carry no bar graphic.
        format: mode === 'terminal' ? `${workspace} [{bar}] ${counts}` : `${workspace} ${counts}`,
        stream, hideCursor: mode === 'terminal', clearOnComplete: mode === 'terminal',
        noTTYOutput: mode === 'lines', notTTYSchedule: 1000,
      }, cliProgress.Presets.shades_classic);
      bar.start(Math.max(totalBytes, 1), 0, payload());
    },
    bytes(n) { done += n; bar?.update(done, payload()); },
    file() { files++; bar?.update(done, payload()); },
    stop() { bar?.stop(); bar = undefined; },
  };
}
