/**
 * `make demo-serve` (scripts/demo.mjs --serve): the demo runs, the server stays up, and the commands it
 * prints work as printed, pasted into a shell that has nothing but the env file they source.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'wsync-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('make demo-serve', () => {
  it('keeps the server running and prints commands that work as printed', async () => {
    const demo = spawn(process.execPath, [path.join(REPO, 'scripts/demo.mjs'), '--serve'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', DEMO_DIR: path.join(dir, 'demo') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    demo.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    // The indented block after "In another shell", up to the first blank line.
    const commands = await new Promise<string[]>((resolve, reject) => {
      const block: string[] = [];
      let inBlock = false;
      createInterface({ input: demo.stdout! }).on('line', (line) => {
        if (line.includes('In another shell')) { inBlock = true; return; }
        if (!inBlock) return;
        if (line.startsWith('  ')) block.push(line.slice(2));
        else if (block.length > 0) resolve(block);
      });
      void exited.then((code) => reject(new Error(`the demo exited with ${code} before printing its commands\n${stderr}`)));
    });
    try {
      expect(commands[0]).toMatch(/^\. '.*\/env\.sh'$/);
      expect(commands).toContain('sync-agent files www');
      // A shell with no S3 settings, no workspaces root and no CLI on its PATH (only node): the env file brings them all.
      const sh = spawnSync('sh', ['-ec', commands.join('\n')], {
        cwd: dir, env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: process.env.HOME ?? '/root', LOG_FORMAT: 'json' }, encoding: 'utf8',
      });
      expect(sh.status, sh.stderr).toBe(0);
      expect(sh.stdout).toContain('src/server.js\n');
      expect(sh.stdout).toContain('www/.env: excluded by .env* (defaults)');
      expect(sh.stdout).toContain('upload  www/src/answer.js');
      expect(sh.stdout).toMatch(/^www: 1 uploaded/m);
      expect(sh.stdout).toMatch(/^www#2 .*\(head\)$/m);
    } finally {
      demo.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });
});
