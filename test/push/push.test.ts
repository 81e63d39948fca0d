import { mkdirSync, rmSync, renameSync, statSync, utimesSync, writeFileSync, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, type ObjectStore } from '@workspace-sync/shared';
import { readCommitted, startTestS3, startCountingProxy, type EmbeddedS3, type CountingProxy } from '@workspace-sync/testkit';
import { listKeys, parseJson, readObject, runCli, setup, storeFor, SYNC_AGENT, writeTree } from '../helpers.js';

let s3: EmbeddedS3;
let store: ObjectStore;
let proxy: CountingProxy;
let n = 0;

beforeAll(async () => {
  s3 = await startTestS3();
  store = storeFor(s3);
  proxy = await startCountingProxy(s3.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await s3?.stop();
});

/** Each test gets its own prefix in the shared bucket, its own root and state dir. */
function fresh(name: string) {
  const prefix = `t${++n}-${name}/`;
  const ctx = setup(s3, name);
  const env = { ...ctx.env, S3_PREFIX: prefix, S3_ENDPOINT: proxy.endpoint };
  const push = async (...args: string[]) => runCli(SYNC_AGENT, ['push', ...args], env);
  const pushJson = async (...args: string[]) => {
    const r = await push('--json', ...args);
    return { ...r, json: r.stdout ? parseJson(r.stdout) : undefined };
  };
  const keys = async (ws = '') => (await listKeys(store, `${prefix}${ws}`)).map((k) => k.slice(prefix.length));
  const committed = async (ws: string) => {
    const c = await readCommitted(store, prefix, ws);
    if (!c) throw new Error(`workspace ${ws} has no commit`);
    return c;
  };
  return { ...ctx, prefix, env, push, pushJson, keys, committed };
}

const SEED_TREE = {
  'www/package.json': '{"name":"www"}',
  'www/public/index.html': '<h1>hi</h1>',
  'www/node_modules/react/index.js': 'module.exports = 1',
  'www/.git/HEAD': 'ref: refs/heads/main',
  'www/dist/bundle.js': 'bundle',
  'www/npm-debug.log': 'log',
  'www/.env': 'SECRET=1',
  'www/.env.local': 'SECRET=2',
  'www/build/out.o': 'o',
  'api/app.js': 'console.log(1)',
  'api/package.json': '{"name":"api"}',
  'api/node_modules/express/index.js': 'x',
  'api/__pycache__/a.pyc': 'c',
  'api/vendor/lib.php': 'v',
  'api/tool.pyc': 'c',
  'api/.DS_Store': 'd',
  'api/Thumbs.db': 't',
  'api/server.log': 'l',
};

describe('sync-agent push', () => {
  it('lands the seed example without any excluded file', async () => {
    const t = fresh('seed');
    writeTree(t.root, SEED_TREE);
    const r = await t.pushJson();
    expect(r.code, r.stderr).toBe(0);
    const keys = await t.keys();
    expect(keys.filter((k) => !k.startsWith('.sync/'))).toEqual(['api/app.js', 'api/package.json', 'www/package.json', 'www/public/index.html']);
    expect(keys).toEqual(expect.arrayContaining(['.sync/.heads/api', '.sync/.heads/www']));
    expect([...(await t.committed('www')).entries.keys()].sort()).toEqual(['package.json', 'public/index.html']);
    expect(r.json.totals.uploaded).toBe(4);
    const body = await readObject(store, `${t.prefix}www/public/index.html`);
    expect(body.toString()).toBe('<h1>hi</h1>');
    const info = await store.head(`${t.prefix}www/public/index.html`);
    expect(info?.metadata.sha256).toBe(sha256Hex('<h1>hi</h1>'));
    expect(info?.contentType).toMatch(/text\/html/);
  });

  it('honours nested .gitignore files with negation, and !.env.example over the defaults', async () => {
    const t = fresh('nested');
    writeTree(t.root, {
      '.gitignore': 'www/secret.txt\n',
      'www/.gitignore': '*.txt\n!keep.txt\n!.env.example\n',
      'www/a.txt': 'a',
      'www/keep.txt': 'k',
      'www/secret.txt': 's',
      'www/.env.example': 'X=',
      'www/.env': 'X=1',
      'www/docs/.gitignore': '!*.txt\nprivate/\n',
      'www/docs/b.txt': 'b',
      'www/docs/private/p.md': 'p',
      'www/gen/.gitignore': '*\n!.gitignore\n',
      'www/gen/out.js': 'o',
    });
    const r = await t.push();
    expect(r.code, r.stderr).toBe(0);
    expect(await t.keys('www/')).toEqual([
      'www/.env.example', 'www/.gitignore', 'www/docs/.gitignore', 'www/docs/b.txt', 'www/gen/.gitignore', 'www/keep.txt',
    ]);
    // `files` prints exactly what push syncs
    const f = await runCli(SYNC_AGENT, ['files', 'www'], t.env);
    expect(f.stdout.trim().split('\n')).toEqual([
      '.env.example', '.gitignore', 'docs/.gitignore', 'docs/b.txt', 'gen/.gitignore', 'keep.txt',
    ]);
    const z = await runCli(SYNC_AGENT, ['files', '-0', 'www'], t.env);
    expect(z.stdout.split('\0').filter(Boolean)).toHaveLength(6);
  });

  it('applies edits, deletes and renames (large files as server-side copies) on re-push', async () => {
    const t = fresh('edits');
    const big = 'x'.repeat(300_000);
    writeTree(t.root, { 'app/a.js': 'a1', 'app/b.js': 'b1', 'app/big.bin': big, 'app/dir/c.js': 'c' });
    expect((await t.push()).code).toBe(0);
    writeFileSync(path.join(t.root, 'app/a.js'), 'a2-longer');
    unlinkSync(path.join(t.root, 'app/b.js'));
    renameSync(path.join(t.root, 'app/big.bin'), path.join(t.root, 'app/moved.bin'));
    proxy.reset();
    const r = await t.pushJson();
    expect(r.code, r.stderr).toBe(0);
    const ws = r.json.workspaces[0];
    expect({ uploaded: ws.uploaded, copied: ws.copied, deleted: ws.deleted, unchanged: ws.unchanged })
      .toEqual({ uploaded: 1, copied: 1, deleted: 2, unchanged: 1 });
    expect(await t.keys('app/')).toEqual(['app/a.js', 'app/dir/c.js', 'app/moved.bin']);
    expect((await readObject(store, `${t.prefix}app/a.js`)).toString()).toBe('a2-longer');
    expect((await readObject(store, `${t.prefix}app/moved.bin`)).toString()).toBe(big);
    // the rename did not send the 300 kB again: one server-side copy from the immutable blob
    expect(proxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('moved.bin')).length).toBe(1);
    expect(ws.bytes).toBeLessThan(1000);
    const c = await t.committed('app');
    expect([...c.entries.keys()].sort()).toEqual(['a.js', 'dir/c.js', 'moved.bin']);
    expect(c.commit.generation).toBe(2);
    expect(c.commit.changes).toMatchObject({ added: 1, modified: 1, deleted: 2 });
  });

  it('detects a same-size edit, even with the mtime put back', async () => {
    const t = fresh('samesize');
    writeTree(t.root, { 'w/f.txt': 'aaaa' });
    const file = path.join(t.root, 'w/f.txt');
    // make the first hash non-racy so the state index would trust its stat
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    expect((await t.push()).code).toBe(0);
    writeFileSync(file, 'bbbb');
    utimesSync(file, old, old);
    const r = await t.pushJson();
    expect(r.json.workspaces[0].uploaded).toBe(1);
    expect((await readObject(store, `${t.prefix}w/f.txt`)).toString()).toBe('bbbb');
  });

  it('a no-op push sends no PUT and one request in all', async () => {
    const t = fresh('noop');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 300; i++) tree[`w/src/m${i % 17}/f${i}.ts`] = `export const v = ${i};`;
    writeTree(t.root, tree);
    expect((await t.push()).code).toBe(0);
    proxy.reset();
    const r = await t.pushJson();
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.count('PUT')).toBe(0);
    expect(proxy.count('POST')).toBe(0);
    expect(proxy.count('DELETE')).toBe(0);
    expect(proxy.requests).toHaveLength(1);
    expect(proxy.requests[0]).toMatchObject({ method: 'GET', status: 304 });
    expect(r.json.workspaces[0]).toMatchObject({ uploaded: 0, unchanged: 300, manifestWritten: false, trustedState: true });
  });

  it('re-push after kill -9 mid-push converges without re-uploading what landed', async () => {
    const t = fresh('kill');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 400; i++) tree[`w/f${i}.txt`] = `${i}`.repeat(20_000);
    writeTree(t.root, tree);
    proxy.reset();
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [SYNC_AGENT, 'push', '--concurrency', '4'], {
      env: { ...process.env, ...t.env, LOG_FORMAT: 'json' }, stdio: 'ignore',
    });
    const exited = new Promise((r) => child.once('exit', r));
    // kill once some objects have landed
    for (let i = 0; i < 400 && proxy.count('PUT', `${t.prefix}w/f`) < 60; i++) await new Promise((r) => setTimeout(r, 25));
    child.kill('SIGKILL');
    await exited;
    const firstPuts = proxy.count('PUT', `${t.prefix}w/f`);
    expect(firstPuts).toBeGreaterThan(0);
    expect(firstPuts).toBeLessThan(400);
    // nothing was committed: no head was written
    expect(proxy.count('PUT', '.sync/.heads/')).toBe(0);

    const r = await t.pushJson('--concurrency', '4');
    expect(r.code, r.stderr).toBe(0);
    const totalPuts = proxy.count('PUT', `${t.prefix}w/f`);
    // every file sent once, plus at most the requests in flight at the kill
    expect(totalPuts).toBeLessThanOrEqual(400 + 4);
    expect((await t.keys('w/')).length).toBe(400);
    expect((await t.committed('w')).entries.size).toBe(400);
    // and a third push has nothing to do
    const again = await t.pushJson();
    expect(again.json.workspaces[0]).toMatchObject({ uploaded: 0, copied: 0, deleted: 0, manifestWritten: false });
  });

  it('never deletes for an empty or missing workspace directory', async () => {
    const t = fresh('empty');
    writeTree(t.root, { 'w/a.js': 'a', 'w/b.js': 'b' });
    expect((await t.push()).code).toBe(0);
    const before = await t.keys();
    rmSync(path.join(t.root, 'w/a.js'));
    rmSync(path.join(t.root, 'w/b.js'));
    const empty = await t.push('w');
    expect(empty.code).toBe(4);
    expect(empty.stderr).toMatch(/no files to sync.*refusing to delete/);
    rmSync(path.join(t.root, 'w'), { recursive: true });
    const missing = await t.push('w');
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/does not exist/);
    const all = await t.push();
    expect(all.code).toBe(0);
    expect(await t.keys()).toEqual(before);
  });

  it('refuses deletes beyond --max-delete and the default fraction unless forced', async () => {
    const t = fresh('guard');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 30; i++) tree[`w/f${i}.txt`] = `${i}`;
    writeTree(t.root, tree);
    expect((await t.push()).code).toBe(0);
    for (let i = 0; i < 20; i++) rmSync(path.join(t.root, `w/f${i}.txt`));
    const refused = await t.push();
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/refusing to delete 20 of 30/);
    const limited = await t.push('--max-delete', '5');
    expect(limited.code).toBe(4);
    expect((await t.keys('w/')).length).toBe(30);
    const dry = await t.push('--dry-run', '--force');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/delete  w\/f0\.txt/);
    expect((await t.keys('w/')).length).toBe(30);
    const forced = await t.push('--max-delete', '20');
    expect(forced.code, forced.stderr).toBe(0);
    expect((await t.keys('w/')).length).toBe(10);
  });

  it('keeps unusual names intact: unicode, spaces, %, +, quotes, empty files', async () => {
    const t = fresh('names');
    const names = ['ünï cödé.txt', 'with space/a b.js', 'per%cent.txt', 'plus+sign.txt', 'q"uo\'te.txt', 'emoji-🚀.md', 'empty.txt', 'deep/empty2'];
    const tree: Record<string, string> = {};
    for (const nm of names) tree[`w/${nm}`] = nm.includes('empty') ? '' : `content of ${nm}`;
    writeTree(t.root, tree);
    const r = await t.push();
    expect(r.code, r.stderr).toBe(0);
    expect(await t.keys('w/')).toEqual(names.map((nm) => `w/${nm}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    for (const nm of names) expect((await readObject(store, `${t.prefix}w/${nm}`)).toString()).toBe(tree[`w/${nm}`]);
    // renames of such names still converge (a server may not support copying them: then it uploads)
    renameSync(path.join(t.root, 'w/plus+sign.txt'), path.join(t.root, 'w/plus+moved.txt'));
    expect((await t.push()).code).toBe(0);
    expect((await readObject(store, `${t.prefix}w/plus+moved.txt`)).toString()).toBe('content of plus+sign.txt');
  });

  it('records symlinks and the exec bit, and skips links that leave the workspace', async () => {
    const t = fresh('links');
    writeTree(t.root, {
      'w/bin/run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
      'w/src/a.js': 'a',
      'w/link.js': { symlink: 'src/a.js' },
      'w/dangling': { symlink: 'nope/missing' },
      'w/escape': { symlink: '../../etc/passwd' },
      'w/abs': { symlink: '/etc/passwd' },
    });
    const r = await t.pushJson();
    expect(r.code).toBe(1); // completed, with skipped entries
    expect(r.json.workspaces[0].skippedPaths.map((s: { path: string }) => s.path).sort()).toEqual(['abs', 'escape']);
    const byPath = (await t.committed('w')).entries;
    expect(byPath.get('bin/run.sh')).toMatchObject({ kind: 'file', mode: 0o755 });
    expect(byPath.get('src/a.js')).toMatchObject({ kind: 'file', mode: 0o644 });
    expect(byPath.get('link.js')).toMatchObject({ kind: 'symlink', target: 'src/a.js' });
    expect(byPath.get('dangling')).toMatchObject({ kind: 'symlink', target: 'nope/missing' });
    expect(byPath.has('escape')).toBe(false);
    const link = await store.head(`${t.prefix}w/link.js`);
    expect(link?.metadata['symlink-target']).toBe('src%2Fa.js');
    expect(Number(link?.metadata.mode) & 0o170000).toBe(0o120000);
  });

  it('reports special files as skipped, pushes the rest and exits 1', async () => {
    const t = fresh('fifo');
    writeTree(t.root, { 'w/a.js': 'a' });
    execFileSync('mkfifo', [path.join(t.root, 'w/pipe')]);
    const r = await t.pushJson();
    expect(r.code).toBe(1);
    expect(r.json.workspaces[0].skippedPaths).toEqual([{ path: 'pipe', reason: expect.stringMatching(/not a regular file/) }]);
    expect(await t.keys('w/')).toEqual(['w/a.js']);
  });

  it('falls back to a full compare when another machine pushed (never trusts a stale state)', async () => {
    const t = fresh('twomachines');
    writeTree(t.root, { 'w/a.js': 'a', 'w/b.js': 'b' });
    expect((await t.push()).code).toBe(0);
    // machine B: same bucket, its own checkout and state
    const other = path.join(t.base, 'other');
    writeTree(other, { 'w/a.js': 'A from B', 'w/c.js': 'c' });
    const b = await runCli(SYNC_AGENT, ['push', '--json'], { ...t.env, WORKSPACES_DIR: other, SYNC_STATE_DIR: path.join(t.base, 'state-b') });
    expect(b.code, b.stderr).toBe(0);
    expect(await t.keys('w/')).toEqual(['w/a.js', 'w/c.js']);
    // machine A pushes again: its state expects the old manifest, so it compares fully and restores its view
    const r = await t.pushJson();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.workspaces[0].trustedState).toBe(false);
    expect(await t.keys('w/')).toEqual(['w/a.js', 'w/b.js']);
    expect((await readObject(store, `${t.prefix}w/a.js`)).toString()).toBe('a');
  });

  it('adopts objects that already match after the local state is lost', async () => {
    const t = fresh('nostate');
    const tree: Record<string, string> = {};
    for (let i = 0; i < 50; i++) tree[`w/f${i}.txt`] = `file ${i}`;
    writeTree(t.root, tree);
    expect((await t.push()).code).toBe(0);
    rmSync(t.stateDir, { recursive: true });
    proxy.reset();
    const r = await t.pushJson();
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.workspaces[0]).toMatchObject({ uploaded: 0, trustedState: false, manifestWritten: false });
    expect(proxy.count('PUT')).toBe(0);
  });

  it('uploads a file over 100 MB in parts, with its sha256', async () => {
    const t = fresh('big');
    mkdirSync(path.join(t.root, 'w'), { recursive: true });
    const file = path.join(t.root, 'w/big.bin');
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE(i * 2654435761 >>> 0, i);
    writeFileSync(file, Buffer.concat(Array.from({ length: 101 }, (_, i) => { const c = Buffer.from(chunk); c[0] = i; return c; })));
    const size = statSync(file).size;
    proxy.reset();
    const r = await t.pushJson();
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.count('POST', 'uploads')).toBeGreaterThan(0); // multipart create/complete
    expect(proxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('partNumber')).length).toBeGreaterThan(1);
    const info = await store.head(`${t.prefix}w/big.bin`);
    expect(info?.size).toBe(size);
    const { createHash } = await import('node:crypto');
    const { readFileSync } = await import('node:fs');
    const expected = createHash('sha256').update(readFileSync(file)).digest('hex');
    expect(info?.metadata.sha256).toBe(expected);
    const entry = (await t.committed('w')).entries.get('big.bin');
    expect(entry).toMatchObject({ kind: 'file', size, sha256: expected, pack: undefined });
    expect(entry?.kind === 'file' && entry.chunks).toHaveLength(Math.ceil(size / (4 * 1024 * 1024)));
  });
});

describe('push output: dry runs, progress, logs', () => {
  it('-n lists the plan sorted by path (uploads and deletes together); --summary and big plans print the totals only', async () => {
    const t = fresh('plan');
    writeTree(t.root, { 'w/m.txt': 'm', 'w/z.txt': 'z', 'w/b/old.txt': 'old' });
    expect((await t.push()).code).toBe(0);
    rmSync(path.join(t.root, 'w/m.txt'));
    writeTree(t.root, { 'w/a.txt': 'a', 'w/n.txt': 'n', 'w/z.txt': 'z2' });
    const dry = await t.push('-n');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trim().split('\n')).toEqual([
      'upload  w/a.txt', 'delete  w/m.txt', 'upload  w/n.txt', 'upload  w/z.txt',
      expect.stringMatching(/^w: would upload 3 \(.+\), change 3 in the tree, delete 1, keep 1 \(dry run\)$/),
    ]);
    const summary = await t.push('--dry-run', '--summary');
    expect(summary.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^w: would upload 3 .*\(dry run\)$/)]);
    expect((await t.push('--summary')).code).toBe(2);
    expect(await t.keys('w/')).toEqual(['w/b/old.txt', 'w/m.txt', 'w/z.txt']);

    const many: Record<string, string> = {};
    for (let i = 0; i < 1001; i++) many[`big/f${String(i).padStart(4, '0')}.txt`] = `${i}`;
    writeTree(t.root, many);
    const big = await t.push('-n', 'big');
    expect(big.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^big: would upload 1001 .*\(dry run\) \(1001 paths not listed: more than 1000\)$/)]);
  });

  it('-P shows progress into a pipe, one plain line at a time; without it a pipe gets none', async () => {
    const t = fresh('progress');
    writeTree(t.root, { 'w/a.txt': 'a'.repeat(5000), 'w/b.txt': 'b' });
    const quiet = await t.push('--prefix', `${t.prefix}q/`);
    expect(quiet.stderr).not.toMatch(/\d+% \|/);
    const r = await t.push('-P');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => /^w \d+% \|/.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.at(-1)).toMatch(/^w 100% \| 2\/2 files \| .+ of .+ \| .+\/s$/);
    expect(r.stderr).not.toContain('\x1b[');
  });

  it('--log-format pretty gives people readable logs in a pipe, without colour codes; -q keeps warnings out', async () => {
    const t = fresh('pretty');
    writeTree(t.root, { 'w/a.txt': 'a', 'w/out': { symlink: '/etc/hostname' } });
    // The env says json (runCli sets LOG_FORMAT=json): the flag wins.
    const r = await t.push('--log-format', 'pretty');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: skipped: symlink points outside the workspace/m);
    expect(r.stderr).not.toMatch(/^\{"level"/m);
    expect(r.stderr).not.toContain('\x1b[');
    const json = await t.push();
    expect(json.stderr.split('\n').filter(Boolean).every((l) => l.startsWith('{"level":40'))).toBe(true);
    const quiet = await t.push('-q');
    expect(quiet.code).toBe(1);
    expect(quiet.stderr).toBe('');
    expect(quiet.stdout).toMatch(/^w: /);
    // No-op with -P: nothing to send, no progress line.
    expect((await t.push('-P')).stderr).not.toMatch(/\d+% \|/);
  });
});

describe('errors users hit', () => {
  it('unreachable endpoint: one line, a hint, exit 3', async () => {
    const t = fresh('unreach');
    writeTree(t.root, { 'w/a.js': 'a' });
    const r = await runCli(SYNC_AGENT, ['push'], { ...t.env, S3_ENDPOINT: 'http://127.0.0.1:9' });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^error: cannot reach S3 endpoint http:\/\/127\.0\.0\.1:9/m);
    expect(r.stderr).toMatch(/hint: check --endpoint/);
  });

  it('bad credentials: exit 3, secret never printed', async () => {
    const t = fresh('creds');
    writeTree(t.root, { 'w/a.js': 'a' });
    const r = await runCli(SYNC_AGENT, ['push'], { ...t.env, AWS_ACCESS_KEY_ID: 'NOSUCHKEY', AWS_SECRET_ACCESS_KEY: 'wrong-secret-value' });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/rejected the credentials/);
    expect(r.stderr).not.toContain('wrong-secret-value');
  });

  it('missing bucket: offers --create-bucket, which works', async () => {
    const t = fresh('nobucket');
    writeTree(t.root, { 'w/a.js': 'a' });
    const env = { ...t.env, S3_BUCKET: `nb-${Date.now()}` };
    const r = await runCli(SYNC_AGENT, ['push'], env);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/bucket "nb-\d+" does not exist/);
    expect(r.stderr).toMatch(/hint: create it \(sync-agent push --create-bucket does\)/);
    const ok = await runCli(SYNC_AGENT, ['push', '--create-bucket'], env);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('bad config: names the key and the expected form, exit 2', async () => {
    const t = fresh('badcfg');
    const r = await runCli(SYNC_AGENT, ['push', '--concurrency', 'lots'], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid value "lots" for concurrency \(from flag --concurrency\): expected an integer/);
    const cfg = path.join(t.base, 'cfg.json');
    writeFileSync(cfg, JSON.stringify({ bucket: 'Bad_Bucket' }));
    const r2 = await runCli(SYNC_AGENT, ['push', '--config', cfg], { ...t.env, S3_BUCKET: '' });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/for bucket \(from .*cfg\.json \(key "bucket"\)\)/);
  });

  it('unknown workspace: clear error, exit 4, nothing touched', async () => {
    const t = fresh('unknown');
    writeTree(t.root, { 'w/a.js': 'a' });
    const r = await t.push('nope');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/workspace "nope" does not exist/);
    const bad = await t.push('../etc');
    expect(bad.code).toBe(2);
    expect(await t.keys()).toEqual([]);
  });
});
