/**
 * The scan in a git work tree (tracked paths under ignored directories are found through the index,
 * without listing those directories), `files`, and `files --why`. Real git, real files, in-process.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFilter, resolveConfig, type AgentConfig } from '@workspace-sync/shared';
import { main } from '../src/cli.js';
import { explainPaths, formatExplanation, listFiles, locate } from '../src/files.js';
import { scanWorkspace } from '../src/scan.js';

const base = mkdtempSync(path.join(tmpdir(), 'wsync-files-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

function git(dir: string, ...args: string[]): string {
  const env = {
    PATH: process.env.PATH ?? '', HOME: base, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com',
  };
  return execFileSync('git', args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function write(dir: string, files: Record<string, string>): void {
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    writeFileSync(path.join(dir, rel), body);
  }
}

/** A workspaces root with one workspace `app`, a git repository with tracked files the defaults match. */
function fixture(): { root: string; ws: string; config: AgentConfig } {
  const root = path.join(base, `root${n++}`);
  const ws = path.join(root, 'app');
  write(ws, {
    '.gitignore': 'coverage/\n!.env.example\n', '.env.example': 'A=1', 'src/index.ts': '',
    'src/exports/vite/build/index.js': 'tracked', 'lib/vendor/image-size/index.ts': 'tracked', 'node_modules/patched/index.js': 'tracked',
  });
  git(ws, 'init', '-q');
  git(ws, 'add', '-A');
  git(ws, 'add', '-f', 'src/exports/vite/build/index.js', 'lib/vendor/image-size/index.ts', 'node_modules/patched/index.js');
  write(ws, { 'node_modules/react/index.js': '', 'dist/out.js': '', 'debug.log': '', '.env': 'SECRET', 'coverage/lcov.info': '' });
  const config = resolveConfig('agent', { env: { WORKSPACES_DIR: root }, cwd: base });
  return { root, ws, config };
}

describe('scan in a git work tree', () => {
  it('keeps tracked files under ignored directories, and never lists those directories', async () => {
    const { root, ws } = fixture();
    // A trap a listing of node_modules would hit: a name that cannot be an object key (255 bytes that are
    // not UTF-8 decode to 765) is reported as skipped by any walk that lists the directory.
    writeFileSync(Buffer.concat([Buffer.from(`${ws}/node_modules/`), Buffer.alloc(255, 0xff)]), '');
    const filter = createFilter({ root, workspace: 'app' });
    const res = await scanWorkspace(ws, filter);
    expect([...res.entries.keys()].sort()).toEqual([
      '.env.example', '.gitignore', 'lib/vendor/image-size/index.ts', 'node_modules/patched/index.js', 'src/exports/vite/build/index.js', 'src/index.ts',
    ]);
    expect(res.skipped).toEqual([]);
    // A rescan of one ignored directory (what watch does for a changed directory) follows the index too.
    const sub = await scanWorkspace(ws, filter, 'node_modules');
    expect([...sub.entries.keys()]).toEqual(['node_modules/patched/index.js']);
    expect(sub.skipped).toEqual([]);
  });

  it('agrees with git ls-files --cached --others (defaults as core.excludesFile)', async () => {
    const { root, ws } = fixture();
    const defaults = path.join(base, `defaults${n++}`);
    writeFileSync(defaults, 'node_modules/\n.git/\n*.log\n.env*\ndist/\nbuild/\n__pycache__/\nvendor/\n*.pyc\n.DS_Store\nThumbs.db\n');
    const theirs = git(ws, '-c', `core.excludesFile=${defaults}`, 'ls-files', '--cached', '--others', '--exclude-standard').split('\n').filter(Boolean).sort();
    const ours = [...(await scanWorkspace(ws, createFilter({ root, workspace: 'app' }))).entries.keys()].sort();
    expect(ours).toEqual(theirs);
  });

  it('a tracked symlink stays a symlink; one leaving the workspace is reported and skipped', async () => {
    const { root, ws } = fixture();
    symlinkSync('../src/index.ts', path.join(ws, 'dist/entry.ts'));
    symlinkSync('/etc/hostname', path.join(ws, 'dist/outside'));
    git(ws, 'add', '-f', 'dist/entry.ts', 'dist/outside');
    const res = await scanWorkspace(ws, createFilter({ root, workspace: 'app' }));
    expect(res.entries.get('dist/entry.ts')).toMatchObject({ type: 'symlink', target: '../src/index.ts' });
    expect(res.entries.has('dist/out.js')).toBe(false);
    expect(res.skipped).toEqual([{ path: 'dist/outside', reason: 'symlink points outside the workspace (/etc/hostname)' }]);
  });

  it('--git-index false: the ignore rules alone decide', async () => {
    const { config } = fixture();
    const { paths } = await listFiles({ ...config, gitIndex: false }, 'app');
    expect(paths).toEqual(['.env.example', '.gitignore', 'src/index.ts']);
    expect((await listFiles(config, 'app')).paths).toContain('node_modules/patched/index.js');
  });
});

describe('files --why', () => {
  it('names the deciding rule: defaults, .gitignore lines, .dockerignore lines, tracked, .git', async () => {
    const { ws, config } = fixture();
    write(ws, { '.dockerignore': '# docker\nsrc/index.ts\n', 'sub/.gitignore': '\n*.tmp\n', 'sub/a.tmp': '' });
    const lines = (await explainPaths(config, [
      'app/dist/out.js', 'app/debug.log', 'app/node_modules/patched/index.js', 'app/.env.example', 'app/src/index.ts',
      'app/sub/a.tmp', 'app/coverage', 'app/.git/config', 'app/README.md', 'app/lib/vendor/image-size/index.ts',
    ])).map((e) => formatExplanation(e, config));
    expect(lines).toEqual([
      'app/dist/out.js: excluded by dist/ (defaults) on the directory app/dist/',
      'app/debug.log: excluded by *.log (defaults)',
      'app/node_modules/patched/index.js: included: tracked by git, so node_modules/ (defaults) on the directory app/node_modules/ does not apply (ignore rules decide untracked files only)',
      'app/.env.example: included: tracked by git',
      'app/src/index.ts: excluded by src/index.ts (app/.dockerignore:2)',
      'app/sub/a.tmp: excluded by *.tmp (app/sub/.gitignore:2)',
      'app/coverage/: excluded by coverage/ (app/.gitignore:1)',
      'app/.git/config: excluded: .git is never synced',
      'app/README.md: included: no rule matches (does not exist)',
      'app/lib/vendor/image-size/index.ts: included: tracked by git, so vendor/ (defaults) on the directory app/lib/vendor/ does not apply (ignore rules decide untracked files only)',
    ]);
    git(ws, 'rm', '-q', '--cached', '.env.example');
    const [untracked] = await explainPaths(config, ['app/.env.example']);
    expect(formatExplanation(untracked!, config)).toBe('app/.env.example: included by !.env.example (app/.gitignore:2)');
  });

  it('takes paths inside the root relative to the current directory, or as <workspace>/<path>', () => {
    expect(locate('/w/root', 'app/x/y', '/elsewhere')).toEqual({ workspace: 'app', rel: 'x/y' });
    expect(locate('/w/root', 'x/y', '/w/root/app')).toEqual({ workspace: 'app', rel: 'x/y' });
    expect(locate('/w/root', '/w/root/app/z', '/')).toEqual({ workspace: 'app', rel: 'z' });
    expect(() => locate('/w/root', '/etc/passwd', '/')).toThrow(/not a path in a workspace/);
    expect(() => locate('/w/root', '.hidden/x', '/elsewhere')).toThrow(/not a path in a workspace/);
  });
});

describe('the files command', () => {
  const run = async (args: string[], root: string) => {
    let out = '';
    let err = '';
    const saved = process.env.WORKSPACES_DIR;
    process.env.WORKSPACES_DIR = root;
    try {
      const code = await main(['node', 'sync-agent', 'files', ...args], { out: (s) => { out += s; }, err: (s) => { err += s; } });
      return { code, out, err };
    } finally {
      if (saved === undefined) delete process.env.WORKSPACES_DIR;
      else process.env.WORKSPACES_DIR = saved;
    }
  };

  it('--why prints one line per path; without paths, or with two targets and no --why, it is a usage error', async () => {
    const { root } = fixture();
    const why = await run(['--why', 'app/dist/out.js', 'app/src/exports/vite/build/index.js'], root);
    expect(why).toMatchObject({ code: 0, err: '' });
    expect(why.out.split('\n').filter(Boolean)).toHaveLength(2);
    expect(why.out).toContain('app/dist/out.js: excluded by dist/ (defaults)');
    expect((await run(['--why'], root)).code).toBe(2);
    expect((await run(['app', 'other'], root)).code).toBe(2);
    const listed = await run(['app', '--git-index', 'false'], root);
    expect(listed.out).not.toContain('node_modules/patched/index.js');
    expect((await run(['app'], root)).out).toContain('node_modules/patched/index.js');
  });

  it('a target that is neither a workspace nor a directory is a usage error naming both places, not a crash', async () => {
    const { root } = fixture();
    const r = await run(['www'], root);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`error: files www: no workspace "www" under ${root} and no directory ${path.resolve('www')}`);
    expect(r.err).toContain('hint: give a workspace name');
    expect(r.err).not.toContain('internal error');
    // No workspaces root either (the README's first example, run from an empty directory).
    const missing = await run(['www'], path.join(root, 'nope'));
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('(which does not exist)');
    expect(missing.err).toContain('hint: set --root or WORKSPACES_DIR');
    expect((await run(['no/such/dir'], root)).err).toContain(`no directory ${path.resolve('no/such/dir')}`);
  });

  it('--include re-includes over the defaults, .gitignore and --exclude, and --why says so', async () => {
    const { root } = fixture();
    const listed = await run(['app', '--include', '*.log', '--include', 'coverage/', '--exclude', 'debug.log'], root);
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out.split('\n')).toEqual(expect.arrayContaining(['debug.log', 'coverage/lcov.info']));
    expect(listed.out).not.toContain('dist/out.js');
    const why = await run(['--why', 'app/debug.log', 'app/coverage/lcov.info', 'app/dist/out.js', '--include', '*.log', '--include', 'coverage/'], root);
    expect(why.out.split('\n').filter(Boolean)).toEqual([
      'app/debug.log: included by *.log (--include)',
      'app/coverage/lcov.info: included: no rule matches',
      'app/dist/out.js: excluded by dist/ (defaults) on the directory app/dist/',
    ]);
    // A file under an excluded directory stays out, as in git: include the directory.
    const under = await run(['--why', 'app/dist/out.js', '--include', 'dist/out.js'], root);
    expect(under.out).toContain('excluded by dist/ (defaults) on the directory app/dist/');
    const bad = await run(['app', '--include', '!x'], root);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('none starting with "!"');
  });

  it('--exclude-from reads .gitignore-style lines (comments, CRLF, trailing spaces) before --exclude', async () => {
    const { root } = fixture();
    const file = path.join(root, '..', `patterns${n++}.txt`);
    writeFileSync(file, '# generated\r\n\r\nsrc/index.ts   \r\n!.env.example\nlib/\nnotes/\n');
    write(path.join(root, 'app'), { 'notes/todo.txt': 'untracked', 'notes.txt': 'untracked' });
    const listed = await run(['app', '--exclude-from', file], root);
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out).not.toContain('notes/todo.txt');
    expect(listed.out).toContain('notes.txt');
    // Tracked files stay synced, as with --exclude.
    expect(listed.out).toContain('src/index.ts');
    const why = await run(['--why', 'app/src/index.ts', 'app/lib', '--exclude-from', file, '--exclude', 'lib/', '--git-index', 'false'], root);
    expect(why.out.split('\n').filter(Boolean)).toEqual([
      `app/src/index.ts: excluded by src/index.ts (${file}:3, --exclude-from)`,
      'app/lib/: excluded by lib/ (--exclude)',
    ]);
    const missing = await run(['app', '--exclude-from', path.join(root, 'absent.txt')], root);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain(`cannot read exclude-from file ${path.join(root, 'absent.txt')} (ENOENT)`);
  });

  it('an unknown option is one error line and one hint, not the whole help', async () => {
    const { root } = fixture();
    const r = await run(['app', '--bucket', 'x'], root);
    expect(r.code).toBe(2);
    const lines = r.err.trim().split('\n');
    expect(lines[0]).toBe("error: unknown option '--bucket'");
    expect(lines.at(-1)).toBe('(sync-agent files --help lists its options)');
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(r.err).not.toContain('Options:');
  });

  it('-v and --log-level together are a usage error', async () => {
    const { root } = fixture();
    const r = await run(['app', '-v', '--log-level', 'warn'], root);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--log-level and -v both set logLevel');
  });
});

describe('help', () => {
  const help = async (args: string[]) => {
    let out = '';
    const code = await main(['node', 'sync-agent', ...args, '--help'], { out: (s) => { out += s; }, err: () => {} });
    return { code, out: out.replace(/\s+/g, ' ') };
  };

  it('lists for each command only the options it uses', async () => {
    const files = await help(['files']);
    expect(files.code).toBe(0);
    for (const f of ['--root', '--exclude', '--include', '--exclude-from', '--git-index', '--log-level', '--log-format', '-v, --verbose', '-q, --quiet']) expect(files.out, f).toContain(f);
    for (const f of ['--bucket', '--endpoint', '--state-dir', '--max-delete', '--concurrency', '--health-port', '--keep-for', '--dry-run']) expect(files.out, f).not.toContain(f);
    const push = (await help(['push'])).out;
    for (const f of ['--bucket', '--endpoint', '--state-dir', '--max-delete', '-n, --dry-run', '-P, --progress', '--summary', '--keep-for']) expect(push, f).toContain(f);
    expect(push).not.toContain('--health-port');
    expect((await help(['watch'])).out).toContain('--health-port');
    const log = (await help(['log'])).out;
    expect(log).toContain('--bucket');
    expect(log).not.toContain('--exclude');
  });

  it('shows every default and environment variable', async () => {
    const push = (await help(['push'])).out;
    for (const text of [
      'S3 region (default: us-east-1) [env: AWS_REGION, AWS_DEFAULT_REGION]',
      '(default: 16M) [env: SYNC_MULTIPART_THRESHOLD]',
      '(default: AWS) [env: S3_ENDPOINT',
      '(default: 16) [env: SYNC_CONCURRENCY]',
      '(default: 10s) [env: S3_REQUEST_TIMEOUT]',
      '(default: 7d) [env: SYNC_KEEP_FOR]',
      '(default: more than half of a workspace) [env: SYNC_MAX_DELETE]',
      '(default: ./workspaces) [env: WORKSPACES_DIR]',
    ]) expect(push, text).toContain(text);
  });
});

