/** Commander options generated from the one OPTIONS table, so both CLIs spell flags identically. */
import type { Command } from 'commander';
import { optionsFor, type Scope } from './config.js';

/** Adds every option of `scope` (and --config) to `cmd`; values reach resolveConfig unparsed. */
export function addConfigOptions(cmd: Command, scope: Scope): Command {
  cmd.option('--config <file>', 'JSON config file (default: ./workspace-sync.config.json if present)');
  for (const opt of optionsFor(scope)) {
    const env = opt.env.length ? ` [env: ${opt.env.join(', ')}]` : '';
    if (opt.kind === 'list') {
      cmd.option(opt.flag, `${opt.help}${env}`, (v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    } else {
      cmd.option(opt.flag, `${opt.help}${env}`);
    }
  }
  return cmd;
}

/** The option values of `cmd` keyed as resolveConfig expects (commander already camelCases flags). */
export function configFlags(cmd: Command, scope: Scope): { flags: Record<string, unknown>; configFile: string | undefined } {
  const values = cmd.opts<Record<string, unknown>>();
  const flags: Record<string, unknown> = {};
  for (const opt of optionsFor(scope)) if (values[opt.key] !== undefined) flags[opt.key] = values[opt.key];
  return { flags, configFile: values.config as string | undefined };
}
