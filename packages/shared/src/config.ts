/**
 * One declarative table of every option both CLIs accept: its flag, env names, default and help.
 * Values are merged flags > env > config file > defaults, validated per key, then frozen.
 * The table is exported so docs and the docker tests read flag and env names from code.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import * as z from 'zod/mini';
import './zod.js';
import { SyncError } from './errors.js';
import { parseDuration, parseSize } from './units.js';

export type Scope = 'agent' | 'mount';

/**
 * What an option configures. Each command lists the groups it uses, so its --help shows only options
 * that change what it does (`files` takes no S3 options). Env and config-file values of every option of
 * the scope are still resolved: a shared config file works for every command.
 */
export type OptionGroup = 'log' | 's3' | 'health' | 'workspaces' | 'filter' | 'push' | 'history' | 'watch' | 'mount';

/** A short flag that sets the option to a fixed value, e.g. `-v` for `--log-level debug`. */
export interface Shorthand {
  /** Commander flag spec, e.g. `-v, --verbose`. */
  flag: string;
  /** Commander's name for it (the long flag in camelCase). */
  name: string;
  help: string;
  /** The value given once, twice… (repeating past the end keeps the last). */
  values: readonly string[];
}

export interface OptionDef {
  /** camelCase key, as in the config file. */
  key: string;
  /** Commander flag spec, e.g. `--bucket <name>`. */
  flag: string;
  env: readonly string[];
  help: string;
  scope: readonly Scope[];
  group: OptionGroup;
  /** The default as --help shows it, where the value itself does not say it (sizes, durations, "off"). */
  defaultHelp?: string;
  shorthands?: readonly Shorthand[];
  /** What a valid value looks like, for error messages. */
  expected: string;
  kind: 'string' | 'number' | 'boolean' | 'list';
  parse: (raw: unknown) => unknown;
  /** Paths in the config file are relative to the file, elsewhere to the working directory. */
  isPath?: boolean;
  default?: () => unknown;
}

function xdgCache(): string {
  return process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
}

const asString = (raw: unknown): string => {
  if (typeof raw !== 'string' || raw.trim() === '') throw new Error('empty');
  return raw.trim();
};
const asInt = (min: number, max: number) => (raw: unknown): number => {
  // Number('') is 0: a blank value must not pass for port 0.
  const n = typeof raw === 'number' ? raw : String(raw).trim() === '' ? NaN : Number(String(raw).trim());
  if (!Number.isInteger(n) || n < min || n > max) throw new Error('out of range');
  return n;
};
const asBool = (raw: unknown): boolean => {
  if (typeof raw === 'boolean') return raw;
  const s = String(raw).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw new Error('not a boolean');
};
const asList = (raw: unknown): string[] => {
  if (Array.isArray(raw)) return z.array(z.string()).parse(raw);
  // Env form: newline- or comma-separated; flags arrive as arrays already.
  return String(raw).split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
};
const asSize = (raw: unknown): number => parseSize(raw as string | number);
const asDuration = (raw: unknown): number => parseDuration(raw as string | number);

const BUCKET_RE = /^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export const OPTIONS: readonly OptionDef[] = [
  {
    key: 'endpoint', group: 's3', defaultHelp: 'AWS', flag: '--endpoint <url>', env: ['S3_ENDPOINT', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'],
    help: 'S3 endpoint URL for MinIO, Ceph or other S3-compatible servers',
    scope: ['agent', 'mount'], expected: 'an http(s) URL such as http://127.0.0.1:9000', kind: 'string',
    parse: (raw) => {
      const u = new URL(asString(raw));
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
      return u.toString().replace(/\/$/, '');
    },
  },
  {
    key: 'region', group: 's3', flag: '--region <region>', env: ['AWS_REGION', 'AWS_DEFAULT_REGION'],
    help: 'S3 region', scope: ['agent', 'mount'], expected: 'a region name such as us-east-1', kind: 'string',
    parse: (raw) => z.string().check(z.regex(/^[a-z0-9-]+$/)).parse(asString(raw)), default: () => 'us-east-1',
  },
  {
    key: 'bucket', group: 's3', flag: '--bucket <name>', env: ['S3_BUCKET'], help: 'bucket holding the workspaces',
    scope: ['agent', 'mount'], expected: 'a bucket name: 3-63 lowercase letters, digits, dots or hyphens', kind: 'string',
    parse: (raw) => z.string().check(z.regex(BUCKET_RE)).parse(asString(raw)), default: () => 'workspaces',
  },
  {
    key: 'prefix', group: 's3', defaultHelp: 'the bucket root', flag: '--prefix <prefix>', env: ['S3_PREFIX'], help: 'key prefix under which workspaces live',
    scope: ['agent', 'mount'], expected: 'a key prefix such as team-a/ (no "..", no empty segments)', kind: 'string',
    parse: (raw) => normalizePrefix(String(raw)), default: () => '',
  },
  {
    key: 'forcePathStyle', group: 's3', defaultHelp: 'on when --endpoint is set', flag: '--force-path-style <bool>', env: ['S3_FORCE_PATH_STYLE'],
    help: 'path-style addressing', scope: ['agent', 'mount'],
    expected: 'true or false', kind: 'boolean', parse: asBool,
  },
  {
    key: 'logLevel', group: 'log', flag: '--log-level <level>', env: ['LOG_LEVEL'], help: 'trace, debug, info, warn, error or silent',
    scope: ['agent', 'mount'], expected: 'one of trace, debug, info, warn, error, silent', kind: 'string',
    parse: (raw) => z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).parse(asString(raw)),
    default: () => 'info',
    shorthands: [
      { flag: '-v, --verbose', name: 'verbose', help: 'more log output: -v is --log-level debug, -vv trace', values: ['debug', 'trace'] },
      { flag: '-q, --quiet', name: 'quiet', help: 'log errors only (--log-level error)', values: ['error'] },
    ],
  },
  {
    key: 'logFormat', group: 'log', flag: '--log-format <format>', env: ['LOG_FORMAT'],
    help: 'json (one object per line) or pretty (for people)', scope: ['agent', 'mount'], expected: 'json or pretty', kind: 'string',
    parse: (raw) => z.enum(['json', 'pretty']).parse(asString(raw)), defaultHelp: 'pretty on a terminal, else json',
  },
  {
    key: 'healthPort', group: 'health', defaultHelp: 'off', flag: '--health-port <port>', env: ['HEALTH_PORT'], help: 'serve /healthz and /metrics on this port',
    scope: ['agent', 'mount'], expected: 'a TCP port 0-65535', kind: 'number', parse: asInt(0, 65535),
  },
  {
    key: 'healthAddress', group: 'health', flag: '--health-address <host>', env: ['HEALTH_ADDRESS'],
    help: 'address /healthz and /metrics listen on (0.0.0.0: every interface, as probes from outside a container need)',
    scope: ['agent', 'mount'], expected: 'an IP address or host name such as 127.0.0.1 or 0.0.0.0', kind: 'string',
    parse: (raw) => z.string().check(z.regex(/^[A-Za-z0-9.:-]+$/)).parse(asString(raw)), default: () => '127.0.0.1',
  },
  {
    key: 'caBundle', group: 's3', defaultHelp: 'the system CAs', flag: '--ca-bundle <file>', env: ['S3_CA_BUNDLE', 'AWS_CA_BUNDLE'],
    help: 'PEM file of the CA certificates an https:// endpoint is verified against, instead of the system ones (a private CA)',
    scope: ['agent', 'mount'], expected: 'a path to a PEM file', kind: 'string', isPath: true, parse: asString,
  },
  {
    key: 'insecureSkipTlsVerify', group: 's3', flag: '--insecure-skip-tls-verify', env: ['S3_INSECURE_SKIP_TLS_VERIFY'],
    help: 'development only: accept any certificate from an https:// endpoint (anyone on the path can read and change the data; logged as a warning)',
    scope: ['agent', 'mount'], expected: 'true or false', kind: 'boolean', parse: asBool, default: () => false,
  },
  {
    key: 'sse', group: 'push', defaultHelp: 'none requested', flag: '--sse <mode>', env: ['S3_SSE'],
    help: 'server-side encryption of what the agent writes: AES256 (SSE-S3) or aws:kms (SSE-KMS); refused when the server does not apply it',
    scope: ['agent'], expected: 'AES256 or aws:kms', kind: 'string', parse: (raw) => z.enum(['AES256', 'aws:kms']).parse(asString(raw)),
  },
  {
    key: 'sseKmsKeyId', group: 'push', defaultHelp: 'the server\'s default key', flag: '--sse-kms-key-id <id>', env: ['S3_SSE_KMS_KEY_ID'],
    help: 'KMS key for SSE-KMS (implies --sse aws:kms; on AWS the default is the aws/s3 key)',
    scope: ['agent'], expected: 'a KMS key id, alias or ARN', kind: 'string', parse: asString,
  },
  {
    key: 'sseCKeyFile', group: 's3', defaultHelp: 'off', flag: '--sse-c-key-file <file>', env: ['S3_SSE_C_KEY_FILE'],
    help: 'SSE-C: encrypt (agent) and read (mount) every object with the 256-bit key in this file, raw or base64; https only',
    scope: ['agent', 'mount'], expected: 'a path to a file holding a 32-byte key', kind: 'string', isPath: true, parse: asString,
  },
  {
    key: 'root', group: 'workspaces', flag: '--root <dir>', env: ['WORKSPACES_DIR'], help: 'directory whose subdirectories are workspaces',
    scope: ['agent'], expected: 'a directory path', kind: 'string', isPath: true, parse: asString,
    default: () => './workspaces',
  },
  {
    key: 'stateDir', group: 'push', flag: '--state-dir <dir>', env: ['SYNC_STATE_DIR'], help: 'where the local state index is kept',
    scope: ['agent'], expected: 'a directory path', kind: 'string', isPath: true, parse: asString,
    default: () => path.join(xdgCache(), 'workspace-sync', 'state'),
  },
  {
    key: 'concurrency', group: 's3', flag: '--concurrency <n>', env: ['SYNC_CONCURRENCY'], help: 'parallel S3 requests',
    scope: ['agent'], expected: 'an integer from 1 to 256', kind: 'number', parse: asInt(1, 256), default: () => 16,
  },
  {
    key: 'exclude', group: 'filter', flag: '--exclude <pattern>', env: ['SYNC_EXCLUDE'],
    help: 'extra gitignore-style pattern, highest precedence (repeatable)', scope: ['agent'],
    expected: 'a list of gitignore patterns', kind: 'list', parse: asList, default: () => [],
  },
  {
    key: 'include', group: 'filter', flag: '--include <pattern>', env: ['SYNC_INCLUDE'],
    help: 'sync what matches even where an ignore rule or default excludes it: a re-include (!PATTERN) of the highest precedence, after every --exclude (repeatable)',
    scope: ['agent'], expected: 'a list of gitignore patterns, none starting with "!"', kind: 'list',
    parse: (raw) => {
      const list = asList(raw);
      if (list.some((p) => p.startsWith('!'))) throw new Error('starts with !');
      return list;
    },
    default: () => [],
  },
  {
    key: 'excludeFrom', group: 'filter', flag: '--exclude-from <file>', env: ['SYNC_EXCLUDE_FROM'],
    help: 'read more --exclude patterns from this file, one per line in .gitignore syntax, before the --exclude patterns (repeatable)',
    scope: ['agent'], expected: 'a list of file paths', kind: 'list', isPath: true, parse: asList, default: () => [],
  },
  {
    key: 'gitIndex', group: 'filter', flag: '--git-index <bool>', env: ['SYNC_GIT_INDEX'],
    help: 'in a git work tree, sync tracked files whatever the ignore rules say, like git ls-files (false: ignore rules alone decide)',
    scope: ['agent'], expected: 'true or false', kind: 'boolean', parse: asBool, default: () => true,
  },
  {
    key: 'maxDelete', group: 'push', defaultHelp: 'more than half of a workspace', flag: '--max-delete <n>', env: ['SYNC_MAX_DELETE'],
    help: 'refuse a push that deletes more objects than this',
    scope: ['agent'], expected: 'a non-negative integer', kind: 'number', parse: asInt(0, Number.MAX_SAFE_INTEGER),
  },
  {
    key: 'multipartThreshold', group: 'push', defaultHelp: '16M', flag: '--multipart-threshold <size>', env: ['SYNC_MULTIPART_THRESHOLD'],
    help: 'files at least this big upload in parts (smaller ones in one PUT)', scope: ['agent'], expected: 'a size of at least 5M, such as 16M',
    kind: 'string', parse: (raw) => { const n = asSize(raw); if (n < 5 * 1024 ** 2) throw new Error('below 5M'); return n; },
    default: () => 16 * 1024 ** 2,
  },
  {
    key: 'requestTimeout', group: 's3', defaultHelp: '8s', flag: '--request-timeout <duration>', env: ['S3_REQUEST_TIMEOUT'],
    help: 'an S3 request silent this long fails and is retried (5 attempts in all): a silent endpoint is an error, never a hang',
    scope: ['agent'], expected: 'a duration from 100ms to 10m, such as 8s', kind: 'string',
    parse: (raw) => { const n = asDuration(raw); if (n < 100 || n > 600_000) throw new Error('out of range'); return n; },
    default: () => 8_000,
  },
  {
    key: 'keepGenerations', group: 'history', flag: '--keep-generations <n>', env: ['SYNC_KEEP_GENERATIONS'],
    help: 'history: the last N generations of every workspace stay restorable', scope: ['agent'],
    expected: 'an integer from 2 to 1000000', kind: 'number', parse: asInt(2, 1_000_000), default: () => 100,
  },
  {
    key: 'keepFor', group: 'history', defaultHelp: '7d', flag: '--keep-for <duration>', env: ['SYNC_KEEP_FOR'],
    help: 'history: every generation younger than this stays restorable', scope: ['agent'],
    expected: 'a duration such as 7d or 12h', kind: 'string', parse: asDuration, default: () => 7 * 86_400_000,
  },
  {
    key: 'gcGrace', group: 'history', defaultHelp: '1h', flag: '--gc-grace <duration>', env: ['SYNC_GC_GRACE'],
    help: 'garbage collection never removes anything younger than this (it protects pushes in flight)', scope: ['agent'],
    expected: 'a duration of at least 1m, such as 1h', kind: 'string',
    parse: (raw) => { const n = asDuration(raw); if (n < 60_000) throw new Error('below 1m'); return n; }, default: () => 3_600_000,
  },
  {
    key: 'gcEvery', group: 'history', flag: '--gc-every <n>', env: ['SYNC_GC_EVERY'],
    help: 'push and watch collect garbage after every N commits of a workspace (0: only `sync-agent gc`)', scope: ['agent'],
    expected: 'a non-negative integer', kind: 'number', parse: asInt(0, 1_000_000), default: () => 50,
  },
  {
    key: 'debounce', group: 'watch', defaultHelp: '100ms', flag: '--debounce <duration>', env: ['SYNC_DEBOUNCE'],
    help: 'watch: quiet time that closes a batch of changes', scope: ['agent'], expected: 'a duration such as 100ms',
    kind: 'string', parse: asDuration, default: () => 100,
  },
  {
    key: 'maxDelay', group: 'watch', defaultHelp: '1s', flag: '--max-delay <duration>', env: ['SYNC_MAX_DELAY'],
    help: 'watch: longest a batch stays open while changes keep coming', scope: ['agent'], expected: 'a duration such as 1s',
    kind: 'string', parse: asDuration, default: () => 1_000,
  },
  {
    key: 'rescanInterval', group: 'watch', defaultHelp: '5m', flag: '--rescan-interval <duration>', env: ['SYNC_RESCAN_INTERVAL'],
    help: 'watch: stat-based safety rescan of every workspace; 0 turns it off', scope: ['agent'], expected: 'a duration such as 5m, or 0',
    kind: 'string', parse: asDuration, default: () => 300_000,
  },
  {
    // `--poll` alone (true) polls every 2 s; false (an env or config value) keeps inotify.
    key: 'poll', group: 'watch', defaultHelp: 'off: inotify', flag: '--poll [interval]', env: ['SYNC_POLL'],
    help: 'watch: stat-poll instead of inotify (network filesystems), every interval (2s when none is given)', scope: ['agent'],
    expected: 'a duration above 0 such as 2s, or true or false', kind: 'string',
    parse: (raw) => {
      const s = String(raw).trim().toLowerCase();
      if (raw === true || ['true', 'on', 'yes'].includes(s)) return 2_000;
      if (raw === false || ['false', 'off', 'no'].includes(s)) return undefined;
      const n = asDuration(raw);
      if (n <= 0) throw new Error('not above 0');
      return n;
    },
  },
  {
    key: 'cacheDir', group: 'mount', flag: '--cache-dir <dir>', env: ['CACHE_DIR'], help: 'on-disk content cache',
    scope: ['mount'], expected: 'a directory path', kind: 'string', isPath: true, parse: asString,
    default: () => path.join(xdgCache(), 'workspace-sync', 'mount'),
  },
  {
    key: 'cacheMaxSize', group: 'mount', defaultHelp: '1G', flag: '--cache-max-size <size>', env: ['CACHE_MAX_SIZE'], help: 'disk cache budget',
    scope: ['mount'], expected: 'a size such as 1G', kind: 'string', parse: asSize, default: () => 1024 ** 3,
  },
  {
    key: 'cacheMaxAge', group: 'mount', defaultHelp: '1h', flag: '--cache-max-age <duration>', env: ['CACHE_MAX_AGE'],
    help: 'evict cached content unused for this long', scope: ['mount'], expected: 'a duration such as 1h',
    kind: 'string', parse: asDuration, default: () => 3_600_000,
  },
  {
    key: 'memCacheSize', group: 'mount', defaultHelp: '64M', flag: '--mem-cache-size <size>', env: ['MEM_CACHE_SIZE'],
    help: 'memory cache for small hot files', scope: ['mount'], expected: 'a size such as 64M', kind: 'string',
    parse: asSize, default: () => 64 * 1024 ** 2,
  },
  {
    key: 'dirCacheTime', group: 'mount', defaultHelp: '5m', flag: '--dir-cache-time <duration>', env: ['DIR_CACHE_TIME'],
    help: 'how long listings of prefixes without a manifest are trusted', scope: ['mount'],
    expected: 'a duration such as 5m', kind: 'string', parse: asDuration, default: () => 300_000,
  },
  {
    key: 'pollInterval', group: 'mount', defaultHelp: '2s', flag: '--poll-interval <duration>', env: ['POLL_INTERVAL'],
    help: 'how often manifests are checked for a new push', scope: ['mount'], expected: 'a duration such as 2s',
    kind: 'string', parse: asDuration, default: () => 2_000,
  },
  {
    key: 'prefetchConcurrency', group: 'mount', flag: '--prefetch-concurrency <n>', env: ['PREFETCH_CONCURRENCY'],
    help: 'parallel GETs when warming a workspace (whole data packs: two at a time)', scope: ['mount'], expected: 'an integer from 0 to 256',
    kind: 'number', parse: asInt(0, 256), default: () => 32,
  },
  {
    key: 'allowOther', group: 'mount', flag: '--allow-other', env: ['ALLOW_OTHER'], help: 'let other users (and containers) read the mount',
    scope: ['mount'], expected: 'true or false', kind: 'boolean', parse: asBool, default: () => false,
  },
  {
    key: 'defaultPermissions', group: 'mount', flag: '--default-permissions', env: ['DEFAULT_PERMISSIONS'],
    help: 'let the kernel check the mode bits, uid and gid shown for each file against the reading user (with --allow-other)',
    scope: ['mount'], expected: 'true or false', kind: 'boolean', parse: asBool, default: () => false,
  },
  {
    key: 'kernelNotify', group: 'mount', flag: '--kernel-notify <bool>', env: ['KERNEL_NOTIFY'],
    help: 'tell the kernel at once when a workspace changes, so `stat` of its directory shows a push without waiting for the attribute timeout (Linux 6.2 or later)',
    scope: ['mount'], expected: 'true or false', kind: 'boolean', parse: asBool, default: () => true,
  },
  {
    key: 'uid', group: 'mount', defaultHelp: 'the mounting user', flag: '--uid <uid>', env: ['MOUNT_UID'], help: 'owner shown for every file',
    scope: ['mount'], expected: 'a numeric user id', kind: 'number', parse: asInt(0, 2 ** 32 - 2),
  },
  {
    key: 'gid', group: 'mount', defaultHelp: 'the mounting group', flag: '--gid <gid>', env: ['MOUNT_GID'], help: 'group shown for every file',
    scope: ['mount'], expected: 'a numeric group id', kind: 'number', parse: asInt(0, 2 ** 32 - 2),
  },
];

export const CONFIG_FILE_NAME = 'workspace-sync.config.json';
export const CONFIG_ENV = 'WORKSPACE_SYNC_CONFIG';

export interface CommonConfig {
  endpoint: string | undefined;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  logLevel: string;
  logFormat: 'json' | 'pretty' | undefined;
  healthPort: number | undefined;
  healthAddress: string;
  caBundle: string | undefined;
  insecureSkipTlsVerify: boolean;
  sseCKeyFile: string | undefined;
}

/** Where a pattern of `AgentConfig.exclude` comes from, for `files --why`. */
export type PatternSource = { flag: '--exclude' | '--include' } | { flag: '--exclude-from'; file: string; line: number };

export interface AgentConfig extends CommonConfig {
  root: string;
  stateDir: string;
  concurrency: number;
  /**
   * The filter's highest layer, in order (the last matching pattern wins): the lines of every
   * --exclude-from file, then the --exclude patterns, then each --include as `!PATTERN`.
   */
  exclude: string[];
  /** Where each pattern of `exclude` comes from (same order). */
  excludeSources: PatternSource[];
  include: string[];
  excludeFrom: string[];
  gitIndex: boolean;
  requestTimeout: number;
  keepGenerations: number;
  keepFor: number;
  gcGrace: number;
  gcEvery: number;
  maxDelete: number | undefined;
  multipartThreshold: number;
  /** watch: batch quiet time, longest batch, safety rescan period (0: off), ms. */
  debounce: number;
  maxDelay: number;
  rescanInterval: number;
  /** watch: stat polling every this many ms instead of inotify; undefined: inotify. */
  poll: number | undefined;
  sse: 'AES256' | 'aws:kms' | undefined;
  sseKmsKeyId: string | undefined;
}

export interface MountConfig extends CommonConfig {
  cacheDir: string;
  cacheMaxSize: number;
  cacheMaxAge: number;
  memCacheSize: number;
  dirCacheTime: number;
  pollInterval: number;
  prefetchConcurrency: number;
  allowOther: boolean;
  defaultPermissions: boolean;
  kernelNotify: boolean;
  uid: number | undefined;
  gid: number | undefined;
}

export interface ResolveInput {
  /** Values from the command line, keyed by option key; undefined means not given. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Explicit config file (from --config); otherwise $WORKSPACE_SYNC_CONFIG or ./workspace-sync.config.json. */
  configFile?: string;
}

export function optionsFor(scope: Scope): OptionDef[] {
  return OPTIONS.filter((o) => o.scope.includes(scope));
}

export function resolveConfig(scope: 'agent', input?: ResolveInput): Readonly<AgentConfig>;
export function resolveConfig(scope: 'mount', input?: ResolveInput): Readonly<MountConfig>;
export function resolveConfig(scope: Scope, input: ResolveInput = {}): Readonly<AgentConfig | MountConfig> {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const file = loadConfigFile(input.configFile ?? env[CONFIG_ENV], cwd);
  const out: Record<string, unknown> = {};
  for (const opt of optionsFor(scope)) {
    const source = pick(opt, input.flags ?? {}, env, file);
    if (!source) {
      out[opt.key] = opt.default?.();
      if (opt.isPath && typeof out[opt.key] === 'string') out[opt.key] = path.resolve(cwd, out[opt.key] as string);
      continue;
    }
    let value: unknown;
    try {
      value = opt.parse(source.raw);
    } catch (cause) {
      const shown = typeof source.raw === 'string' ? JSON.stringify(source.raw) : JSON.stringify(source.raw) ?? String(source.raw);
      throw new SyncError('CONFIG_INVALID', `invalid value ${shown} for ${opt.key} (from ${source.from}): expected ${opt.expected}`, {
        hint: `fix ${source.from}; run with --help to see every option`,
        cause,
      });
    }
    if (opt.isPath) {
      const base = source.base ?? cwd;
      value = Array.isArray(value) ? value.map((v: string) => path.resolve(base, v)) : path.resolve(base, value as string);
    }
    out[opt.key] = value;
  }
  if (out.forcePathStyle === undefined) out.forcePathStyle = out.endpoint !== undefined;
  if (scope === 'agent') Object.assign(out, patternLayer(out.excludeFrom as string[], out.exclude as string[], out.include as string[]));
  checkEncryption(out);
  return Object.freeze(out) as unknown as AgentConfig | MountConfig;
}

/**
 * --exclude-from files, --exclude and --include as one list of patterns, the way git layers
 * `ls-files -X FILE` and `-x PATTERN` (one layer, the last match wins), plus the re-includes.
 */
function patternLayer(files: string[], exclude: string[], include: string[]): { exclude: string[]; excludeSources: PatternSource[] } {
  const patterns: string[] = [];
  const sources: PatternSource[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new SyncError('CONFIG_INVALID', `cannot read exclude-from file ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, {
        hint: '--exclude-from / SYNC_EXCLUDE_FROM / "excludeFrom" name files of .gitignore-style patterns, one per line', cause,
      });
    }
    text.replace(/^\uFEFF/, '').split('\n').forEach((raw, i) => {
      // As in a .gitignore: CRLF endings, blank lines, comments and unescaped trailing spaces.
      const line = trimTrailingSpaces(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
      if (line === '' || line.startsWith('#')) return;
      patterns.push(line);
      sources.push({ flag: '--exclude-from', file, line: i + 1 });
    });
  }
  for (const p of exclude) { patterns.push(p); sources.push({ flag: '--exclude' }); }
  for (const p of include) { patterns.push(`!${p}`); sources.push({ flag: '--include' }); }
  return { exclude: patterns, excludeSources: sources };
}

/** git drops trailing spaces unless the last one is escaped with a backslash. */
function trimTrailingSpaces(s: string): string {
  let end = s.length;
  while (end > 0 && s[end - 1] === ' ' && s[end - 2] !== '\\') end--;
  return s.slice(0, end);
}

/** Combinations no single option can judge alone. */
function checkEncryption(out: Record<string, unknown>): void {
  const invalid = (message: string, hint: string) => new SyncError('CONFIG_INVALID', message, { hint });
  if (out.sseKmsKeyId !== undefined) {
    if (out.sse === 'AES256') throw invalid('--sse-kms-key-id needs --sse aws:kms, not AES256', 'drop one of them');
    out.sse = 'aws:kms';
  }
  if (out.sseCKeyFile === undefined) return;
  if (out.sse !== undefined) {
    throw invalid(`--sse ${out.sse as string} and --sse-c-key-file cannot be combined`, 'an object is encrypted one way: choose server-managed keys (--sse) or your own key (--sse-c-key-file)');
  }
  if (typeof out.endpoint === 'string' && out.endpoint.startsWith('http:')) {
    throw invalid(`--sse-c-key-file needs an https:// endpoint, not ${out.endpoint}: SSE-C sends the key with every request`,
      'serve the endpoint over TLS (see docs/security.md) and give its CA with --ca-bundle');
  }
}

interface Source { raw: unknown; from: string; base?: string }

function pick(opt: OptionDef, flags: Record<string, unknown>, env: NodeJS.ProcessEnv, file: LoadedFile | undefined): Source | undefined {
  const flagValue = flags[opt.key];
  if (flagValue !== undefined) return { raw: flagValue, from: `flag ${opt.flag.split(' ')[0]}` };
  for (const name of opt.env) {
    const v = env[name];
    if (v !== undefined && v !== '') return { raw: v, from: `env ${name}` };
  }
  if (file && opt.key in file.values) {
    return { raw: file.values[opt.key], from: `${file.path} (key "${opt.key}")`, base: path.dirname(file.path) };
  }
  return undefined;
}

interface LoadedFile { path: string; values: Record<string, unknown> }

function loadConfigFile(explicit: string | undefined, cwd: string): LoadedFile | undefined {
  const file = explicit ? path.resolve(cwd, explicit) : path.join(cwd, CONFIG_FILE_NAME);
  if (!explicit && !existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new SyncError('CONFIG_INVALID', `cannot read config file ${file}: ${(cause as Error).message}`, {
      hint: 'the config file must be a JSON object such as {"bucket": "workspaces"}',
      cause,
    });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new SyncError('CONFIG_INVALID', `config file ${file} is not a JSON object`, {
      hint: 'the config file must be a JSON object such as {"bucket": "workspaces"}',
    });
  }
  const known = new Set(OPTIONS.map((o) => o.key));
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) {
      throw new SyncError('CONFIG_INVALID', `unknown key "${key}" in config file ${file}`, {
        hint: `known keys: ${[...known].join(', ')}`,
      });
    }
  }
  return { path: file, values: parsed as Record<string, unknown> };
}

/** `team-a` → `team-a/`; `/x//y/` refused; empty stays empty (bucket root). */
export function normalizePrefix(raw: string): string {
  const trimmed = raw.trim().replace(/^\/+/, '');
  if (trimmed === '') return '';
  const withSlash = trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
  const segments = withSlash.slice(0, -1).split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\0'))) throw new Error('bad segment');
  return withSlash;
}
