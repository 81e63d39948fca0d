/**
 * pino to stderr: JSON when stderr is not a terminal (or LOG_FORMAT=json), readable on a TTY or with
 * format 'pretty' (colours on a terminal only, so a piped or teed log stays plain text).
 * Credentials never reach the log: known secret fields are redacted by path.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** Overrides the TTY check: 'json' or 'pretty'. */
  format?: string | undefined;
  destination?: NodeJS.WritableStream;
}

const REDACT_PATHS = [
  'secretAccessKey', '*.secretAccessKey', 'credentials', '*.credentials', 'accessKeyId', '*.accessKeyId',
  'headers.authorization', '*.headers.authorization', 'sessionToken', '*.sessionToken',
  // SSE-C: the key in S3Settings, in SDK input and in request headers.
  'encryption', '*.encryption', 'SSECustomerKey', '*.SSECustomerKey', 'CopySourceSSECustomerKey', '*.CopySourceSSECustomerKey',
  'headers["x-amz-server-side-encryption-customer-key"]', '*.headers["x-amz-server-side-encryption-customer-key"]',
];

export function createLogger(opts: LoggerOptions = {}): Logger {
  const destination = opts.destination ?? process.stderr;
  const tty = !!(destination as { isTTY?: boolean }).isTTY;
  const format = opts.format ?? process.env.LOG_FORMAT ?? (tty ? 'pretty' : 'json');
  const base = {
    level: (opts.level ?? 'info') as LevelWithSilent,
    base: opts.name ? { name: opts.name } : null,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (format === 'pretty') {
    return pino(base, pinoPretty({ destination: destination as NodeJS.WritableStream & { fd?: number }, colorize: tty, sync: true, ignore: 'pid,hostname,name', translateTime: 'HH:MM:ss.l' }));
  }
  return pino(base, destination);
}
