/**
 * One error type for every failure a user can hit, with a stable code and a hint.
 * Bugs stay plain `Error`s. Exit codes are mapped here and only here (errno mapping lives in
 * fuse-mount's `errno.ts`, the one place that knows about the kernel).
 */

export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID',
  USAGE: 'USAGE',
  WORKSPACE_UNKNOWN: 'WORKSPACE_UNKNOWN',
  WORKSPACE_MISSING: 'WORKSPACE_MISSING',
  WORKSPACE_UNREADABLE: 'WORKSPACE_UNREADABLE',
  WORKSPACE_EMPTY: 'WORKSPACE_EMPTY',
  DELETE_LIMIT: 'DELETE_LIMIT',
  ENDPOINT_UNREACHABLE: 'ENDPOINT_UNREACHABLE',
  BAD_CREDENTIALS: 'BAD_CREDENTIALS',
  ACCESS_DENIED: 'ACCESS_DENIED',
  BUCKET_NOT_FOUND: 'BUCKET_NOT_FOUND',
  OBJECT_NOT_FOUND: 'OBJECT_NOT_FOUND',
  PRECONDITION_FAILED: 'PRECONDITION_FAILED',
  S3_ERROR: 'S3_ERROR',
  MANIFEST_INVALID: 'MANIFEST_INVALID',
  MANIFEST_TOO_NEW: 'MANIFEST_TOO_NEW',
  FILE_UNSTABLE: 'FILE_UNSTABLE',
  PARTIAL: 'PARTIAL',
  MOUNT_FAILED: 'MOUNT_FAILED',
  INTERRUPTED: 'INTERRUPTED',
  STATE_UNWRITABLE: 'STATE_UNWRITABLE',
  CONFLICT: 'CONFLICT',
  TARGET_NOT_EMPTY: 'TARGET_NOT_EMPTY',
  GENERATION_NOT_FOUND: 'GENERATION_NOT_FOUND',
  TLS_UNTRUSTED: 'TLS_UNTRUSTED',
  ENCRYPTION_UNSUPPORTED: 'ENCRYPTION_UNSUPPORTED',
  ENCRYPTION_KEY: 'ENCRYPTION_KEY',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface SyncErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class SyncError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: SyncErrorOptions = {}) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SyncError';
    this.code = code;
    this.hint = options.hint === undefined ? undefined : redact(options.hint);
  }
}

export function isSyncError(err: unknown, code?: ErrorCode): err is SyncError {
  return err instanceof SyncError && (code === undefined || err.code === code);
}

/** Documented in the README ("Exit codes"); keep the two in step. */
export const ExitCodes = {
  OK: 0,
  PARTIAL: 1,
  USAGE: 2,
  REMOTE: 3,
  REFUSED: 4,
  INTERRUPTED: 130,
  INTERNAL: 70,
} as const;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof SyncError)) return ExitCodes.INTERNAL;
  switch (err.code) {
    case 'CONFIG_INVALID':
    case 'USAGE':
    case 'WORKSPACE_UNKNOWN':
    case 'GENERATION_NOT_FOUND':
      return ExitCodes.USAGE;
    case 'ENDPOINT_UNREACHABLE':
    case 'BAD_CREDENTIALS':
    case 'ACCESS_DENIED':
    case 'BUCKET_NOT_FOUND':
    case 'OBJECT_NOT_FOUND':
    case 'PRECONDITION_FAILED':
    case 'S3_ERROR':
    case 'MANIFEST_INVALID':
    case 'MANIFEST_TOO_NEW':
    case 'MOUNT_FAILED':
    case 'CONFLICT':
    case 'TLS_UNTRUSTED':
    case 'ENCRYPTION_UNSUPPORTED':
    case 'ENCRYPTION_KEY':
      return ExitCodes.REMOTE;
    case 'WORKSPACE_MISSING':
    case 'WORKSPACE_UNREADABLE':
    case 'WORKSPACE_EMPTY':
    case 'DELETE_LIMIT':
    case 'STATE_UNWRITABLE':
    case 'TARGET_NOT_EMPTY':
      return ExitCodes.REFUSED;
    case 'FILE_UNSTABLE':
    case 'PARTIAL':
      return ExitCodes.PARTIAL;
    case 'INTERRUPTED':
      return ExitCodes.INTERRUPTED;
  }
}

/** One line for a terminal: what failed, then what to do. */
export function formatError(err: unknown): string {
  if (err instanceof SyncError) {
    return err.hint ? `error: ${err.message}\n  hint: ${err.hint}` : `error: ${err.message}`;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return `internal error: ${redact(e.stack ?? e.message)}\n  hint: this is a bug; please report it with the log above`;
}

/** Socket error codes that mean the endpoint could not be reached (or the connection broke): worth a retry. */
export const NETWORK_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // A value follows `=` or `:` (env, ini, JSON); a bare mention of the variable's name is not a secret.
  [/(aws_secret_access_key|secretAccessKey|secret_key|aws_session_token|sessionToken)(["']?\s*[=:]\s*["']?)[^\s"',}]+/gi, '$1$2[redacted]'],
  [/(X-Amz-Signature=|Signature=|Credential=|X-Amz-Security-Token=)[^&\s"]+/g, '$1[redacted]'],
  // An SSE-C key travels in headers (and the SDK's input as SSECustomerKey); its MD5 is no secret.
  [/(x-amz-(?:copy-source-)?server-side-encryption-customer-key|SSECustomerKey)(["']?\s*[=:]\s*["']?)[^\s"',}]+/gi, '$1$2[redacted]'],
  [/(\/\/[^/:@\s]+:)[^@/\s]+@/g, '$1[redacted]@'],
];

/** Strips anything that looks like a credential from text that may reach a terminal or a log. */
export function redact(text: string): string {
  let out = text;
  for (const [re, replacement] of SECRET_PATTERNS) out = out.replace(re, replacement);
  return out;
}
