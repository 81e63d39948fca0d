/** A progress bar on a terminal (files, bytes, rate); nothing otherwise. */
import cliProgress from 'cli-progress';
import { formatBytes } from '@workspace-sync/shared';

export interface Progress {
  start(workspace: string, files: number, bytes: number): void;
  bytes(n: number): void;
  file(): void;
  stop(): void;
}

export function createProgress(enabled: boolean): Progress {
  if (!enabled) return { start() {}, bytes() {}, file() {}, stop() {} };
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
      bar = new cliProgress.SingleBar({
        format: `${workspace} [{bar}] {percentage}% | {filesDone}/${totalFiles} files | {sent} of ${formatBytes(totalBytes)} | {rate}`,
        stream: process.stderr, hideCursor: true, clearOnComplete: true,
      }, cliProgress.Presets.shades_classic);
      bar.start(Math.max(totalBytes, 1), 0, payload());
    },
    bytes(n) { done += n; bar?.update(done, payload()); },
    file() { files++; bar?.update(done, payload()); },
    stop() { bar?.stop(); bar = undefined; },
  };
}
