import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_ENV, CONFIG_FILE_NAME, normalizePrefix, OPTIONS, optionsFor, resolveConfig, type ResolveInput } from '../src/config.js';
import { SyncError, exitCodeFor } from '../src/errors.js';
import { tempDir } from '@workspace-sync/testkit';

const scratch = tempDir('config');
afterAll(() => scratch.remove());

let n = 0;
/** A fresh working directory, optionally with a config file in it (or at `fileRel`). */
function cwdWith(config?: unknown, fileRel = CONFIG_FILE_NAME): { cwd: string; file: string } {
  const cwd = path.join(scratch.dir, `cwd${n++}`);
  const file = path.join(cwd, fileRel);
  mkdirSync(path.dirname(file), { recursive: true });
  if (config !== undefined) writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return { cwd, file };
}

/** The SyncError thrown by resolveConfig, or a failure. */
function configError(scope: 'agent' | 'mount', input: ResolveInput): SyncError {
  try {
    resolveConfig(scope as 'agent', input);
  } catch (e) {
    expect(e).toBeInstanceOf(SyncError);
    return e as SyncError;
  }
  throw new Error('resolveConfig did not throw');
}

describe('resolveConfig', () => {
  it('defaults, frozen, paths resolved against the working directory', () => {
    const { cwd } = cwdWith();
    const c = resolveConfig('agent', { env: {}, cwd });
    expect(c).toMatchObject({
      bucket: 'workspaces', region: 'us-east-1', prefix: '', concurrency: 16, exclude: [], gitIndex: true, logLevel: 'info',
      endpoint: undefined, forcePathStyle: false, multipartThreshold: 16 * 1024 ** 2, root: path.join(cwd, 'workspaces'),
    });
    expect(path.isAbsolute(c.stateDir)).toBe(true);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('precedence: flags > env > config file > defaults, per key', () => {
    const { cwd } = cwdWith({ bucket: 'from-file', concurrency: 4, region: 'eu-west-1', logLevel: 'warn' });
    const c = resolveConfig('agent', {
      cwd,
      env: { S3_BUCKET: 'from-env', SYNC_CONCURRENCY: '8' },
      flags: { bucket: 'from-flag', concurrency: undefined },
    });
    expect(c.bucket).toBe('from-flag');
    expect(c.concurrency).toBe(8);
    expect(c.region).toBe('eu-west-1');
    expect(c.logLevel).toBe('warn');
    expect(c.prefix).toBe('');
  });

  it('reads env names in table order and skips empty env values', () => {
    const { cwd } = cwdWith({ bucket: 'from-file' });
    const c = resolveConfig('agent', {
      cwd,
      env: { S3_BUCKET: '', AWS_ENDPOINT_URL: 'http://generic:1', S3_ENDPOINT: 'http://specific:2/' },
    });
    expect(c.bucket).toBe('from-file');
    expect(c.endpoint).toBe('http://specific:2');
  });

  it('parses lists, sizes and durations', () => {
    const { cwd } = cwdWith();
    const agent = resolveConfig('agent', { cwd, env: { SYNC_EXCLUDE: '*.tmp, build/\nfoo' }, flags: { multipartThreshold: '32M' } });
    expect(agent.exclude).toEqual(['*.tmp', 'build/', 'foo']);
    expect(agent.multipartThreshold).toBe(32 * 1024 ** 2);
    expect(resolveConfig('agent', { cwd, env: { SYNC_GIT_INDEX: 'false' } }).gitIndex).toBe(false);
    expect(resolveConfig('agent', { cwd, env: { SYNC_GIT_INDEX: 'false' }, flags: { gitIndex: 'on' } }).gitIndex).toBe(true);
    const mount = resolveConfig('mount', { cwd, env: { CACHE_MAX_SIZE: '2G', POLL_INTERVAL: '500ms', DIR_CACHE_TIME: '1m' } });
    expect(mount).toMatchObject({ cacheMaxSize: 2 * 1024 ** 3, pollInterval: 500, dirCacheTime: 60_000 });
    expect('concurrency' in mount).toBe(false);
    expect(optionsFor('mount').some((o) => o.key === 'exclude')).toBe(false);
  });

  it.each([
    ['a flag', { flags: { concurrency: '0' } }, 'concurrency', 'flag --concurrency'],
    ['an env var', { env: { SYNC_CONCURRENCY: 'many' } }, 'concurrency', 'env SYNC_CONCURRENCY'],
    ['a blank flag', { flags: { healthPort: '' } }, 'healthPort', 'flag --health-port'],
    ['a bucket name', { env: { S3_BUCKET: 'Bad_Bucket' } }, 'bucket', 'env S3_BUCKET'],
    ['a size', { flags: { multipartThreshold: '1M' } }, 'multipartThreshold', 'flag --multipart-threshold'],
    ['an endpoint', { env: { S3_ENDPOINT: 'ftp://x' } }, 'endpoint', 'env S3_ENDPOINT'],
    ['a boolean', { env: { S3_FORCE_PATH_STYLE: 'maybe' } }, 'forcePathStyle', 'env S3_FORCE_PATH_STYLE'],
    ['a prefix', { env: { S3_PREFIX: 'a//b' } }, 'prefix', 'env S3_PREFIX'],
  ])('a bad value from %s is CONFIG_INVALID naming the key and the source', (_, input, key, source) => {
    const { cwd } = cwdWith();
    const e = configError('agent', { cwd, env: {}, ...input });
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain(` for ${key} `);
    expect(e.message).toContain(`(from ${source})`);
    expect(e.message).toContain('expected');
    expect(e.hint).toBeTruthy();
    expect(exitCodeFor(e)).toBe(2);
  });

  it('a bad value from the config file names the file and the key', () => {
    const { cwd, file } = cwdWith({ pollInterval: 'soon' });
    const e = configError('mount', { cwd, env: {} });
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain('"soon"');
    expect(e.message).toContain(`${file} (key "pollInterval")`);
  });

  it('refuses an unknown config-file key', () => {
    const { cwd } = cwdWith({ bucket: 'ok-bucket', bukket: 'typo' });
    const e = configError('agent', { cwd, env: {} });
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain('unknown key "bukket"');
    expect(e.hint).toContain('bucket');
  });

  it('refuses a config file that is not a JSON object, or is missing when named', () => {
    for (const content of ['{not json', '[1,2]', 'null']) {
      const { cwd } = cwdWith(content);
      expect(configError('agent', { cwd, env: {} }).code, content).toBe('CONFIG_INVALID');
    }
    const { cwd } = cwdWith();
    const e = configError('agent', { cwd, env: {}, configFile: 'missing.json' });
    expect(e.message).toContain(path.join(cwd, 'missing.json'));
  });

  it('resolves relative paths in the config file against its directory, elsewhere against the working directory', () => {
    const { cwd, file } = cwdWith({ root: './ws', stateDir: '../state' }, 'conf/sync.json');
    const fromFile = resolveConfig('agent', { cwd, env: {}, configFile: 'conf/sync.json' });
    expect(fromFile.root).toBe(path.join(path.dirname(file), 'ws'));
    expect(fromFile.stateDir).toBe(path.join(cwd, 'state'));
    const viaEnv = resolveConfig('agent', { cwd, env: { [CONFIG_ENV]: 'conf/sync.json', WORKSPACES_DIR: 'rel' } });
    expect(viaEnv.root).toBe(path.join(cwd, 'rel'));
    expect(viaEnv.stateDir).toBe(path.join(cwd, 'state'));
    const viaFlag = resolveConfig('agent', { cwd, env: {}, configFile: 'conf/sync.json', flags: { root: 'x' } });
    expect(viaFlag.root).toBe(path.join(cwd, 'x'));
  });

  it('normalizes the prefix', () => {
    const { cwd } = cwdWith();
    expect(resolveConfig('agent', { cwd, env: { S3_PREFIX: 'team-a' } }).prefix).toBe('team-a/');
    expect(resolveConfig('agent', { cwd, env: { S3_PREFIX: '/team-a/sub/' } }).prefix).toBe('team-a/sub/');
  });

  it('turns path-style addressing on by default when an endpoint is set', () => {
    const { cwd } = cwdWith();
    expect(resolveConfig('mount', { cwd, env: {} }).forcePathStyle).toBe(false);
    expect(resolveConfig('mount', { cwd, env: { S3_ENDPOINT: 'http://127.0.0.1:9000' } }).forcePathStyle).toBe(true);
    expect(resolveConfig('mount', { cwd, env: { S3_ENDPOINT: 'http://127.0.0.1:9000', S3_FORCE_PATH_STYLE: 'false' } }).forcePathStyle).toBe(false);
    expect(resolveConfig('mount', { cwd, env: {}, flags: { forcePathStyle: true } }).forcePathStyle).toBe(true);
  });

  it('has one table entry per key, flag and env name', () => {
    const keys = OPTIONS.map((o) => o.key);
    const flags = OPTIONS.map((o) => o.flag.split(' ')[0]);
    const envs = OPTIONS.flatMap((o) => o.env);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(flags).size).toBe(flags.length);
    expect(new Set(envs).size).toBe(envs.length);
  });

  it('names every key as commander names its flag, or the flag would be dropped on the way to resolveConfig', () => {
    for (const o of OPTIONS) {
      const camel = o.flag.split(' ')[0]!.replace(/^--/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
      expect(o.key, o.flag).toBe(camel);
    }
  });
});

describe('the filter\'s command-line layer: --exclude-from, --exclude, --include', () => {
  it('joins exclude-from lines, excludes and includes (as re-includes) in that order, with their sources', () => {
    const { cwd, file } = cwdWith({ exclude: ['b/'], include: ['keep.log'], excludeFrom: ['pats.txt'] }, 'conf/sync.json');
    writeFileSync(path.join(path.dirname(file), 'pats.txt'), '\uFEFF# a comment\r\n*.tmp  \r\n\ntrailing\\ \n');
    const c = resolveConfig('agent', { cwd, env: {}, configFile: 'conf/sync.json' });
    const pats = path.join(path.dirname(file), 'pats.txt');
    expect(c.excludeFrom).toEqual([pats]);
    expect(c.exclude).toEqual(['*.tmp', 'trailing\\ ', 'b/', '!keep.log']);
    expect(c.excludeSources).toEqual([
      { flag: '--exclude-from', file: pats, line: 2 }, { flag: '--exclude-from', file: pats, line: 4 }, { flag: '--exclude' }, { flag: '--include' },
    ]);
    expect(c.include).toEqual(['keep.log']);
  });

  it('reads SYNC_INCLUDE and SYNC_EXCLUDE_FROM as comma-separated lists; flags win', () => {
    const { cwd } = cwdWith();
    writeFileSync(path.join(cwd, 'x.txt'), 'x\n');
    const c = resolveConfig('agent', { cwd, env: { SYNC_INCLUDE: 'a, b/', SYNC_EXCLUDE_FROM: 'x.txt' } });
    expect(c.exclude).toEqual(['x', '!a', '!b/']);
    expect(resolveConfig('agent', { cwd, env: { SYNC_INCLUDE: 'a' }, flags: { include: ['c'] } }).exclude).toEqual(['!c']);
  });

  it('refuses an include that starts with "!", and an unreadable exclude-from file', () => {
    const { cwd } = cwdWith();
    const bang = configError('agent', { cwd, env: { SYNC_INCLUDE: '!x' } });
    expect(bang.message).toContain('for include (from env SYNC_INCLUDE)');
    const missing = configError('agent', { cwd, env: {}, flags: { excludeFrom: ['nope.txt'] } });
    expect(missing.message).toBe(`cannot read exclude-from file ${path.join(cwd, 'nope.txt')} (ENOENT)`);
    expect(exitCodeFor(missing)).toBe(2);
  });

  it('logFormat: json or pretty from --log-format or LOG_FORMAT, unset by default', () => {
    const { cwd } = cwdWith();
    expect(resolveConfig('agent', { cwd, env: {} }).logFormat).toBeUndefined();
    expect(resolveConfig('agent', { cwd, env: { LOG_FORMAT: 'json' }, flags: { logFormat: 'pretty' } }).logFormat).toBe('pretty');
    expect(configError('agent', { cwd, env: { LOG_FORMAT: 'yaml' } }).message).toContain('expected json or pretty');
  });
});

describe('watch options', () => {
  it('debounce, max delay, rescan and poll come from flags, env or the config file like every option', () => {
    const { cwd } = cwdWith({ debounce: '250ms', rescanInterval: 0 });
    const c = resolveConfig('agent', { env: { SYNC_MAX_DELAY: '3s' }, cwd });
    expect(c).toMatchObject({ debounce: 250, maxDelay: 3_000, rescanInterval: 0, poll: undefined });
    expect(resolveConfig('agent', { env: {}, cwd: cwdWith().cwd })).toMatchObject({ debounce: 100, maxDelay: 1_000, rescanInterval: 300_000 });
  });

  it('poll: a bare --poll or true is every 2 s, false keeps inotify, 0 is refused', () => {
    const { cwd } = cwdWith();
    expect(resolveConfig('agent', { env: {}, cwd, flags: { poll: true } }).poll).toBe(2_000);
    expect(resolveConfig('agent', { env: {}, cwd, flags: { poll: '500ms' } }).poll).toBe(500);
    expect(resolveConfig('agent', { env: { SYNC_POLL: 'true' }, cwd }).poll).toBe(2_000);
    expect(resolveConfig('agent', { env: { SYNC_POLL: 'off' }, cwd }).poll).toBeUndefined();
    expect(resolveConfig('agent', { env: {}, cwd: cwdWith({ poll: false }).cwd }).poll).toBeUndefined();
    expect(configError('agent', { env: { SYNC_POLL: '0' }, cwd }).message).toMatch(/invalid value "0" for poll \(from env SYNC_POLL\)/);
    expect(configError('agent', { env: {}, cwd, flags: { debounce: 'soon' } }).message).toMatch(/for debounce \(from flag --debounce\): expected a duration/);
  });
});

describe('the options table', () => {
  it('every option has a group, and a shown default that means the real one', () => {
    for (const o of OPTIONS) {
      expect(o.group, o.key).toBeTruthy();
      const value = o.default?.();
      // Sizes and durations are shown in units: parsing the text gives the default back.
      if (o.defaultHelp !== undefined && typeof value === 'number') expect(o.parse(o.defaultHelp), o.key).toBe(value);
      // A default that cannot be shown as such must be described.
      if (value === undefined) expect(o.defaultHelp, o.key).toBeDefined();
    }
  });
});

describe('normalizePrefix', () => {
  it.each([
    ['', ''],
    ['  ', ''],
    ['/', ''],
    ['team-a', 'team-a/'],
    ['team-a/', 'team-a/'],
    ['//team-a/x', 'team-a/x/'],
  ])('%j → %j', (raw, prefix) => {
    expect(normalizePrefix(raw)).toBe(prefix);
  });

  it.each(['a//b', 'a/./b', '../a', 'a/..', 'a\0b', 'a//'])('refuses %j', (raw) => {
    expect(() => normalizePrefix(raw)).toThrow();
  });
});
