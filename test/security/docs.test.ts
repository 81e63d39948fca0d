/** docs/security.md gives policies to copy: each must be exactly what `sync-agent policy` prints for its arguments. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { agentPolicy, mountPolicy, normalizePrefix, type PolicyServer } from '@workspace-sync/shared';
import { REPO } from '../helpers.js';

const doc = readFileSync(path.join(REPO, 'docs/security.md'), 'utf8');
const blocks = [...doc.matchAll(/```json policy="([^"]+)"\n([\s\S]*?)\n```/g)].map((m) => ({ args: m[1]!, body: m[2]! }));

/** What `sync-agent policy ARGS` prints (the same functions the command calls). */
function printed(args: string): string {
  const { positionals, values } = parseArgs({
    args: args.split(' '), allowPositionals: true,
    options: { server: { type: 'string' }, principal: { type: 'string' }, bucket: { type: 'string' }, prefix: { type: 'string' } },
  });
  const [role, ...workspaces] = positionals;
  const opts = {
    bucket: values.bucket ?? 'workspaces', prefix: normalizePrefix(values.prefix ?? ''),
    server: (values.server ?? 'aws') as PolicyServer, principal: values.principal,
  };
  return JSON.stringify(role === 'agent' ? agentPolicy(workspaces, opts) : mountPolicy(opts), null, 2);
}

describe('docs/security.md', () => {
  it('shows the agent, mount and Ceph RGW policies exactly as sync-agent policy prints them', () => {
    expect(blocks.map((b) => b.args.split(' ')[0])).toEqual(['agent', 'mount', 'agent']);
    for (const b of blocks) expect(b.body, b.args).toBe(printed(b.args));
  });

  it('links only to its own sections that exist', () => {
    const anchors = new Set([...doc.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^\w\s-]/g, '').replace(/\s/g, '-')));
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const links = [...doc.matchAll(/\]\(#([\w-]+)\)/g), ...readme.matchAll(/docs\/security\.md#([\w-]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(1);
    for (const l of links) expect(anchors.has(l), l).toBe(true);
  });
});
