/**
 * One error type for every failure a user can hit, with a stable code and a hint.
 * Bugs stay plain `Error`s. Exit codes are mapped here and only here (errno mapping lives in
 * fuse-mount's `errno.ts`, the one place that knows about the kernel).
 */

/**
 * Every code a user can hit, with its properties: the process exit code, its scope (`usage`: the
 * command line or config; `workspace`: one workspace, the others go on; `remote`: S3 or the bucket;
 * `local`: this machine; `partial`: done, with files skipped), whether it is an **outage** (S3 not
 * answering: retried with backoff, logged once), whether `watch` **holds** the workspace until the
 * user changes something (retrying would only fail again), and the errno a FUSE reader gets (mapped
 * to a number in fuse-mount's errno.ts, the one place that knows kernel numbers).
 */
export const ERROR_PROPERTIES = {
  CONFIG_INVALID: { exit: 2, scope: 'usage' },
  USAGE: { exit: 2, scope: 'usage' },
  WORKSPACE_UNKNOWN: { exit: 2, scope: 'workspace' },
  GENERATION_NOT_FOUND: { exit: 2, scope: 'usage' },
  WORKSPACE_MISSING: { exit: 4, scope: 'workspace' },
  WORKSPACE_UNREADABLE: { exit: 4, scope: 'workspace', held: true },
  WORKSPACE_EMPTY: { exit: 4, scope: 'workspace', held: true },
  DELETE_LIMIT: { exit: 4, scope: 'workspace', held: true },
  CONFLICT: { exit: 3, scope: 'workspace' },
  ENDPOINT_UNREACHABLE: { exit: 3, scope: 'remote', outage: true },
  S3_ERROR: { exit: 3, scope: 'remote', outage: true },
  BAD_CREDENTIALS: { exit: 3, scope: 'remote', errno: 'EACCES' },
  // A per-workspace policy denies one workspace and allows the others: report it and go on with them.
  ACCESS_DENIED: { exit: 3, scope: 'workspace', errno: 'EACCES' },
  BUCKET_NOT_FOUND: { exit: 3, scope: 'remote' },
  OBJECT_NOT_FOUND: { exit: 3, scope: 'remote' },
  // The object no longer matches the view a reader's handle was built from.
  PRECONDITION_FAILED: { exit: 3, scope: 'remote', errno: 'ESTALE' },
  MANIFEST_INVALID: { exit: 3, scope: 'remote' },
  MANIFEST_TOO_NEW: { exit: 3, scope: 'remote' },
  /** A workspace the mount lists but whose metadata it has not been able to load yet. */
  VIEW_UNAVAILABLE: { exit: 3, scope: 'remote' },
  MOUNT_FAILED: { exit: 3, scope: 'local' },
  STATE_UNWRITABLE: { exit: 4, scope: 'local' },
  TARGET_NOT_EMPTY: { exit: 4, scope: 'local' },
  FILE_UNSTABLE: { exit: 1, scope: 'partial' },
  PARTIAL: { exit: 1, scope: 'partial' },
  INTERRUPTED: { exit: 130, scope: 'usage' },
  /** The endpoint's certificate does not verify: never retried, never accepted silently. */
  TLS_UNTRUSTED: { exit: 3, scope: 'remote' },
  /** The server does not apply the encryption asked for (or refuses it). */
  ENCRYPTION_UNSUPPORTED: { exit: 3, scope: 'remote' },
  /** An SSE-C key missing or not the one the object was written with; a KMS key that cannot be used. */
  ENCRYPTION_KEY: { exit: 3, scope: 'remote', errno: 'EACCES' },
} as const satisfies Record<string, ErrorProperties>;

export interface ErrorProperties {
  exit: 1 | 2 | 3 | 4 | 130;
  scope: 'usage' | 'workspace' | 'remote' | 'local' | 'partial';
  outage?: boolean;
  held?: boolean;
  errno?: 'EACCES' | 'ESTALE';
}

export const ErrorCodes = Object.fromEntries(Object.keys(ERROR_PROPERTIES).map((k) => [k, k])) as { [K in keyof typeof ERROR_PROPERTIES]: K };

export type ErrorCode = keyof typeof ERROR_PROPERTIES;

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
  return err instanceof SyncError ? ERROR_PROPERTIES[err.code].exit : ExitCodes.INTERNAL;
}

/** The properties of a coded error; undefined for anything else (a bug). */
export function errorProperties(err: unknown): ErrorProperties | undefined {
  return err instanceof SyncError ? ERROR_PROPERTIES[err.code] : undefined;
}

/** S3 not answering (or failing on every request): retry with backoff, report once. */
export function isOutage(err: unknown): boolean {
  return errorProperties(err)?.outage === true;
}

/** The same, for a code that crossed a thread boundary as a string. */
export function isOutageCode(code: string): boolean {
  return (ERROR_PROPERTIES as Record<string, ErrorProperties>)[code]?.outage === true;
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
  [/(\/\/[^/:@\s]+:)[^@/\s]+@/g, '$1[redacted]@'],
  // An SSE-C key travels in headers (and the SDK's input as SSECustomerKey); its MD5 is no secret.
  [/(x-amz-(?:copy-source-)?server-side-encryption-customer-key|SSECustomerKey)(["']?\s*[=:]\s*["']?)[^\s"',}]+/gi, '$1$2[redacted]'],
];

/** Strips anything that looks like a credential from text that may reach a terminal or a log. */
export function redact(text: string): string {
  let out = text;
  for (const [re, replacement] of SECRET_PATTERNS) out = out.replace(re, replacement);
  return out;
}
