/** Commander options generated from the one OPTIONS table, so both CLIs spell flags identically. */
import type { Command } from 'commander';
import { optionsFor, type OptionDef, type OptionGroup, type Scope } from './config.js';
import { SyncError } from './errors.js';

/** The default as --help shows it; undefined when there is nothing to show (an empty list, no default). */
export function defaultText(opt: OptionDef): string | undefined {
  if (opt.defaultHelp !== undefined) return opt.defaultHelp;
  const value = opt.default?.();
  if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) return undefined;
  return String(value);
}

/**
 * Adds the options of `scope` (only those of `groups`, when given) and --config to `cmd`; values reach
 * resolveConfig unparsed. Help shows each option's default and environment variables. No commander
 * defaults are set: a flag that is not given must leave the environment and config file in charge.
 */
export function addConfigOptions(cmd: Command, scope: Scope, groups?: readonly OptionGroup[]): Command {
  cmd.option('--config <file>', 'JSON config file (default: ./workspace-sync.config.json if present)');
  for (const opt of optionsFor(scope)) {
    if (groups && !groups.includes(opt.group)) continue;
    const shown = defaultText(opt);
    const help = `${opt.help}${shown === undefined ? '' : ` (default: ${shown})`}${opt.env.length ? ` [env: ${opt.env.join(', ')}]` : ''}`;
    if (opt.kind === 'list') {
      cmd.option(opt.flag, help, (v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    } else {
      cmd.option(opt.flag, help);
    }
    for (const s of opt.shorthands ?? []) cmd.option(s.flag, s.help, (_v: unknown, prev: number | undefined) => (prev ?? 0) + 1);
  }
  return cmd;
}

/** The option values of `cmd` keyed as resolveConfig expects (commander already camelCases flags). */
export function configFlags(cmd: Command, scope: Scope): { flags: Record<string, unknown>; configFile: string | undefined } {
  const values = cmd.opts<Record<string, unknown>>();
  const flags: Record<string, unknown> = {};
  for (const opt of optionsFor(scope)) {
    if (values[opt.key] !== undefined) flags[opt.key] = values[opt.key];
    for (const s of opt.shorthands ?? []) {
      const count = values[s.name] as number | undefined;
      if (count === undefined) continue;
      if (flags[opt.key] !== undefined) {
        const given = [
          ...(values[opt.key] === undefined ? [] : [opt.flag.split(' ')[0]]),
          ...(opt.shorthands ?? []).filter((o) => values[o.name] !== undefined).map((o) => o.flag.split(',')[0]),
        ];
        throw new SyncError('USAGE', `${given.join(' and ')} both set ${opt.key}`, { hint: 'give one of them' });
      }
      flags[opt.key] = s.values[Math.min(count, s.values.length) - 1];
    }
  }
  return { flags, configFile: values.config as string | undefined };
}
