/** Commander options from the table: groups, help text with defaults, and -v/-q as log levels. */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addConfigOptions, configFlags } from '../src/cli-options.js';
import { SyncError } from '../src/errors.js';

function parsed(args: string[], groups?: Parameters<typeof addConfigOptions>[2]) {
  const cmd = addConfigOptions(new Command('t').exitOverride().configureOutput({ writeErr: () => {} }), 'agent', groups);
  cmd.parse(['node', 't', ...args]);
  return configFlags(cmd, 'agent').flags;
}

describe('addConfigOptions / configFlags', () => {
  it('-v, -vv and -q set the log level; --log-level alone too', () => {
    expect(parsed(['-v']).logLevel).toBe('debug');
    expect(parsed(['-vv']).logLevel).toBe('trace');
    expect(parsed(['-v', '-v', '-v']).logLevel).toBe('trace');
    expect(parsed(['--quiet']).logLevel).toBe('error');
    expect(parsed(['--log-level', 'warn']).logLevel).toBe('warn');
    expect(parsed([]).logLevel).toBeUndefined();
  });

  it('refuses two ways of setting the log level at once', () => {
    for (const args of [['-v', '--log-level', 'info'], ['-q', '-v']]) {
      let err: unknown;
      try { parsed(args); } catch (e) { err = e; }
      expect(err, args.join(' ')).toBeInstanceOf(SyncError);
      expect((err as SyncError).code).toBe('USAGE');
    }
  });

  it('adds only the options of the groups given; repeatable lists collect', () => {
    expect(parsed(['--include', 'a', '--include', 'b', '--exclude-from', 'f'], ['filter'])).toMatchObject({ include: ['a', 'b'], excludeFrom: ['f'] });
    expect(() => parsed(['--bucket', 'b'], ['filter'])).toThrow(/unknown option '--bucket'/);
    expect(parsed(['--bucket', 'b'], ['s3']).bucket).toBe('b');
  });

  it('sets no commander defaults: options not given stay undefined, so env and config file decide', () => {
    const flags = parsed([]);
    expect(Object.values(flags).filter((v) => v !== undefined)).toEqual([]);
  });
});
