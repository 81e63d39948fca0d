/**
 * Differential test of the .dockerignore rules against the real `docker` CLI: `docker build` with
 * the legacy builder packs the build context on the client, with moby's own patternmatcher, and
 * sends it to the daemon. A fake daemon on a unix socket answers /_ping and keeps the context tar,
 * whose file list is the reference. Skipped when no docker CLI is installed.
 *
 * The legacy builder and BuildKit (which the filter follows) match paths the same way and differ only
 * in pruning: with an exception holding a wildcard (`!**\/x`) BuildKit walks excluded directories and
 * the legacy builder does not. So exceptions here are literal paths. The CLI always sends the
 * Dockerfile and the .dockerignore; both are left out of the comparison.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFilter } from '../../src/filter/filter.js';
import { DOCKER_CASES, WS } from './filter-cases.js';
import { type TreeSpec, tempDir, walkIncluded, writeTree } from './walk-helper.js';

const run = promisify(execFile);

const hasDocker = (() => {
  try {
    execFileSync('docker', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasDocker)('.dockerignore agrees with the docker CLI', () => {
  const scratch = tempDir('docker');
  const sock = path.join(scratch.dir, 'docker.sock');
  /** Context tars received, by image tag. */
  const contexts = new Map<string, Buffer>();
  let server: http.Server;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => {
        res.setHeader('Api-Version', '1.47');
        res.setHeader('Ostype', 'linux');
        res.setHeader('Builder-Version', '1');
        const url = new URL(req.url ?? '/', 'http://docker');
        if (url.pathname.endsWith('/_ping')) {
          res.end('OK');
        } else if (url.pathname.endsWith('/build')) {
          contexts.set(url.searchParams.get('t') ?? '', Buffer.concat(body));
          res.setHeader('Content-Type', 'application/json');
          res.end(`${JSON.stringify({ aux: { ID: `sha256:${'0'.repeat(64)}` } })}\n`);
        } else {
          res.statusCode = 404;
          res.end('{"message":"not supported by the test daemon"}');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    scratch.remove();
  });

  let built = 0;
  /** Files docker puts in the build context of `dir`, minus the Dockerfile and .dockerignore. */
  async function dockerContext(dir: string): Promise<string[]> {
    const tag = `case${built++}`;
    await run('docker', ['build', '-q', '-t', tag, dir], {
      env: { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_BUILDKIT: '0', DOCKER_CONFIG: path.join(scratch.dir, 'config') },
    });
    const tar = path.join(scratch.dir, `${tag}.tar`);
    writeFileSync(tar, contexts.get(tag)!);
    const { stdout } = await run('tar', ['--quoting-style=literal', '-tf', tar]);
    return stdout.split('\n').filter((p) => p && !p.endsWith('/') && p !== 'Dockerfile' && p !== '.dockerignore').sort();
  }

  async function compare(label: string, tree: TreeSpec): Promise<string | undefined> {
    const root = path.join(scratch.dir, label);
    writeTree(root, { [`${WS}/Dockerfile`]: 'FROM scratch\n', ...tree });
    const theirs = await dockerContext(path.join(root, WS));
    const ours = walkIncluded(path.join(root, WS), createFilter({ root, workspace: WS, defaults: [] }))
      .filter((p) => p !== 'Dockerfile' && p !== '.dockerignore');
    if (JSON.stringify(ours) === JSON.stringify(theirs)) return undefined;
    return `${label}: .dockerignore ${JSON.stringify(tree[`${WS}/.dockerignore`])}\n  docker: ${JSON.stringify(theirs)}\n  ours:   ${JSON.stringify(ours)}`;
  }

  it('hand-written cases', async () => {
    const failures: string[] = [];
    for (const [i, c] of DOCKER_CASES.entries()) {
      // Git's defaults are not docker's business: drop the case that is about them.
      if (c.tree[`${WS}/node_modules/x`] !== undefined) continue;
      const f = await compare(`hand${i}`, c.tree);
      if (f) failures.push(f);
    }
    expect(failures.join('\n')).toBe('');
  });

  const NAMES = [
    'docs', 'a.md', 'b.md', 'README.md', 'keep.md', 'x', 'y', 'z', 'a', 'ab', 'sub', 'file(1).txt', 'file1.txt', 'c++', 'c',
    'a{b}', 'a|b', '$x', 'é', 'x y', '.hidden', 'deep', 'star*', 'q?', '[x]', 'a.txt', 'tmp', 'A.MD',
  ];
  const GLOBS = [
    '*', '*.md', '**', '**/*.md', '**/x', 'x/**', 'a/**/z', '?', 'a?', '[a-c]*', '[^a]*', 'doc?', '*/x', 'x/*', '**.md', 'deep/**/*',
    'a**', '\\*', 'star\\*', 'q\\?', '[x]', '\\[x]', '*.MD', '.*',
  ];
  const pick = <T>(rng: () => number, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;

  function genTree(rng: () => number, dir: string, depth: number, spec: TreeSpec): void {
    const names = new Set<string>();
    for (let k = Math.floor(rng() * (depth === 0 ? 7 : 5)) + (depth === 0 ? 2 : 0); k > 0; k--) names.add(pick(rng, NAMES));
    for (const name of names) {
      const p = `${dir}/${name}`;
      if (depth < 3 && rng() < 0.4) {
        spec[p] = null;
        genTree(rng, p, depth + 1, spec);
      } else {
        spec[p] = '';
      }
    }
  }

  function genLine(rng: () => number): string {
    const r = rng();
    if (r < 0.05) return '# comment';
    if (r < 0.1) return pick(rng, ['', '   ']);
    if (r < 0.3) {
      // Literal exceptions only (see the header).
      const segs = [pick(rng, NAMES), pick(rng, NAMES)].slice(0, rng() < 0.5 ? 1 : 2);
      return `!${rng() < 0.2 ? '/' : ''}${segs.join('/').replace(/[*?[\]\\^]/g, 'x')}`;
    }
    const segs = [rng() < 0.5 ? pick(rng, NAMES) : pick(rng, GLOBS)];
    if (rng() < 0.4) segs.push(rng() < 0.5 ? pick(rng, NAMES) : pick(rng, GLOBS));
    let line = segs.join('/');
    if (rng() < 0.1) line = `/${line}`;
    else if (rng() < 0.05) line = `./${line}`;
    if (rng() < 0.1) line += '/';
    if (rng() < 0.1) line = `  ${line}  `;
    return line;
  }

  it('random trees and .dockerignore files (seeded)', async () => {
    const seed = Number(process.env.DOCKER_FUZZ_SEED ?? 424242);
    let s = seed >>> 0;
    const rng = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 4294967296;
    };
    const failures: string[] = [];
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 60; i++) {
      const spec: TreeSpec = {};
      genTree(rng, WS, 0, spec);
      const lines = Array.from({ length: 1 + Math.floor(rng() * 5) }, () => genLine(rng));
      spec[`${WS}/.dockerignore`] = lines.join(rng() < 0.2 ? '\r\n' : '\n');
      jobs.push(compare(`rand${i}`, spec).then((f) => void (f && failures.push(f))));
      if (jobs.length === 4) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    expect(failures.length ? `DOCKER_FUZZ_SEED=${seed}\n${failures.join('\n')}` : '').toBe('');
  });
});
