#!/usr/bin/env node
// The filter on a monorepo checkout made to look like a developer's tree (SvelteKit-, Astro- and
// pnpm-like packages with tracked build/ and vendor/ source directories, a submodule, a pnpm
// node_modules, build output, logs, .env files), compared with git itself:
// `git ls-files --cached --others --exclude-standard` with the defaults as core.excludesFile (and the
// submodule listed the same way inside it). Prints counts and timings; exits 1 on any difference.
// Usage: node bench/monorepo-filter.mjs [--packages 30] [--node-modules 100000] [--index-entries 100000]
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createFilter, DEFAULT_EXCLUDES } from '@workspace-sync/shared';
import { scanWorkspace } from '@workspace-sync/sync-agent';

const { values: args } = parseArgs({
  options: {
    packages: { type: 'string', default: '30' }, 'node-modules': { type: 'string', default: '100000' },
    'index-entries': { type: 'string', default: '100000' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(repo, '.tmp/bench/monorepo');
const root = path.join(work, 'workspaces');
const ws = path.join(root, 'mono');
const defaultsFile = path.join(work, 'default-excludes');
const env = {
  ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', HOME: work, LC_ALL: 'C',
  GIT_AUTHOR_NAME: 'dev', GIT_AUTHOR_EMAIL: 'dev@example.com', GIT_COMMITTER_NAME: 'dev', GIT_COMMITTER_EMAIL: 'dev@example.com',
  GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'protocol.file.allow', GIT_CONFIG_VALUE_0: 'always',
};
const git = (cwd, ...a) => execFileSync('git', a, { cwd, env, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
const write = (dir, rel, body = '') => {
  mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  writeFileSync(path.join(dir, rel), body);
};
const ms = (t) => `${(performance.now() - t).toFixed(0)} ms`;

rmSync(work, { recursive: true, force: true });
mkdirSync(root, { recursive: true });
writeFileSync(defaultsFile, `${DEFAULT_EXCLUDES.join('\n')}\n`);

// ---- a second repository, added as a submodule: its own .gitignore, a tracked build/ directory
const docs = path.join(work, 'docs-src');
for (const f of ['.gitignore', 'src/index.md', 'src/guide/intro.md', 'build/render.js', 'build/theme/layout.js', 'vendor/highlight.js']) {
  write(docs, f, f === '.gitignore' ? '.cache/\n*.draft.md\n' : `// ${f}\n`);
}
git(docs, 'init', '-q');
git(docs, 'add', '-A');
git(docs, 'add', '-f', 'build', 'vendor');
git(docs, 'commit', '-qm', 'docs');

// ---- the monorepo's sources
const t0 = performance.now();
write(ws, '.gitignore', 'node_modules\n.turbo\ncoverage/\n.svelte-kit\n*.tsbuildinfo\n/dist\n');
for (const f of ['package.json', 'pnpm-workspace.yaml', 'turbo.json', '.env.example', 'README.md', '.github/workflows/ci.yml']) write(ws, f, '{}\n');
const packages = Number(args.packages);
for (let p = 0; p < packages; p++) {
  const pkg = `packages/pkg${p}`;
  write(ws, `${pkg}/package.json`, '{}');
  write(ws, `${pkg}/.gitignore`, p % 3 === 0 ? '/types\n*.local.ts\n' : 'dist\n');
  for (let i = 0; i < 60; i++) write(ws, `${pkg}/src/module${i % 6}/file${i}.ts`, `export const x = ${i};\n`);
  for (let i = 0; i < 8; i++) write(ws, `${pkg}/test/fixtures/app${i}/src/page.ts`, '');
  write(ws, `${pkg}/test/fixtures/app0/.env`, 'PUBLIC_FIXTURE=1\n'); // tracked fixtures the defaults match
  write(ws, `${pkg}/test/fixtures/app1/server.log`, 'fixture log\n');
}
// The directories of issue 11: tracked sources named like build output or vendored code.
for (const f of ['build_server.js', 'build_service_worker.js', 'utils.js']) write(ws, `packages/kit/src/exports/vite/build/${f}`, '');
for (let i = 0; i < 87; i++) write(ws, `packages/astro/src/assets/utils/vendor/image-size/types/t${i}.ts`, '');
for (const f of ['generate.ts', 'remote.ts']) write(ws, `packages/astro/src/assets/build/${f}`, '');
for (const f of ['index.ts', 'build.ts']) write(ws, `packages/commands/src/build/${f}`, '');
write(ws, 'tools/__pycache__/.keep', '');
git(ws, 'init', '-q');
git(ws, 'add', '-A');
git(ws, 'add', '-f', '.');
// A patched dependency committed under node_modules, as some repositories do.
write(ws, 'node_modules/.patched/left-pad/index.js', 'module.exports = () => {};\n');
git(ws, 'add', '-f', 'node_modules/.patched/left-pad/index.js');
git(ws, 'submodule', 'add', '-q', docs, 'docs');
git(ws, 'commit', '-qm', 'monorepo');

// ---- what a developer's tree has on top: pnpm's node_modules, build output, logs, secrets
const nm = Number(args['node-modules']);
const perPkg = 50;
for (let d = 0; d < nm / perPkg; d++) {
  const store = `node_modules/.pnpm/dep${d}@1.0.0/node_modules/dep${d}`;
  for (let i = 0; i < perPkg; i++) write(ws, `${store}/lib/f${i}.js`, '');
  if (d < 200) symlinkSync(`.pnpm/dep${d}@1.0.0/node_modules/dep${d}`, path.join(ws, `node_modules/dep${d}`));
}
for (let p = 0; p < packages; p++) {
  const pkg = `packages/pkg${p}`;
  mkdirSync(path.join(ws, `${pkg}/node_modules`), { recursive: true });
  symlinkSync('../../../node_modules/.pnpm/dep0@1.0.0/node_modules/dep0', path.join(ws, `${pkg}/node_modules/dep0`));
  for (let i = 0; i < 20; i++) write(ws, `${pkg}/dist/chunk${i}.js`, '');
  write(ws, `${pkg}/.turbo/turbo-build.log`, '');
  write(ws, `${pkg}/src/scratch.local.ts`, '');
}
for (const f of ['.env', '.env.local', 'npm-debug.log', 'pnpm-debug.log', 'coverage/lcov.info', '.svelte-kit/output/x.js',
  'packages/kit/build/client.js', 'packages/kit/src/exports/vite/build/debug.log', 'packages/astro/src/assets/build/untracked-output.js',
  'docs/.cache/page.html', 'docs/src/next.draft.md', 'docs/build/new-untracked.js', 'docs/notes.md', '.DS_Store']) write(ws, f, '');
console.log(`built ${ws} in ${ms(t0)}`);

// ---- git's answer
const countFiles = (dir) => readdirSync(dir, { withFileTypes: true }).reduce((n, d) => n + (d.isDirectory() ? countFiles(path.join(dir, d.name)) : 1), 0);
const lsFiles = (dir) => git(dir, '-c', `core.excludesFile=${defaultsFile}`, 'ls-files', '--cached', '--others', '--exclude-standard', '-z')
  .split('\0').filter(Boolean);
const exists = (dir, p) => { try { lstatSync(path.join(dir, p)); return true; } catch { return false; } };
const gitExact = (dir) => [...new Set(lsFiles(dir))].flatMap((p) => {
  const rel = p.replace(/\/$/, '');
  if (exists(dir, path.join(rel, '.git'))) return gitExact(path.join(dir, rel)).map((q) => `${rel}/${q}`);
  return exists(dir, p) ? [p] : [];
}).sort();
let t = performance.now();
const theirs = gitExact(ws);
const gitMs = ms(t);

// ---- ours
t = performance.now();
const filter = createFilter({ root, workspace: 'mono' });
const scan = await scanWorkspace(ws, filter);
const oursMs = ms(t);
const ours = [...scan.entries.keys()].sort();
const without = [...(await scanWorkspace(ws, createFilter({ root, workspace: 'mono', gitIndex: false }))).entries.keys()];
const e = new Set(theirs);
const a = new Set(ours);
const onlyGit = theirs.filter((p) => !a.has(p));
const onlyOurs = ours.filter((p) => !e.has(p));

console.log(`files on disk (without .git):   ${countFiles(ws) - countFiles(path.join(ws, '.git'))}`);
console.log(`tracked in the index:            ${git(ws, 'ls-files').split('\n').filter(Boolean).length} (+ ${git(path.join(ws, 'docs'), 'ls-files').split('\n').filter(Boolean).length} in the submodule)`);
console.log(`git ls-files --cached --others:  ${theirs.length} (${gitMs}, two git runs)`);
console.log(`sync-agent scan:                 ${ours.length} (${oursMs}), skipped: ${scan.skipped.length}`);
console.log(`  differences: only git ${onlyGit.length}, only ours ${onlyOurs.length}`);
console.log(`  tracked files the ignore rules alone would drop (--git-index false syncs ${without.length}): ${theirs.filter((p) => !without.includes(p)).length}`);
for (const p of [...onlyGit.slice(0, 10).map((x) => `only git: ${x}`), ...onlyOurs.slice(0, 10).map((x) => `only ours: ${x}`)]) console.log(`  ${p}`);

// ---- index load time on a large index (a synthetic 100k-entry one, in versions 2 and 4)
const entries = Number(args['index-entries']);
if (entries > 0) {
  const big = path.join(work, 'big-index');
  mkdirSync(big);
  git(big, 'init', '-q');
  const blob = git(big, 'hash-object', '-w', '--stdin').trim();
  const lines = Array.from({ length: entries }, (_, i) => `100644 ${blob}\tpackages/pkg${i % 300}/src/dir${(i >> 4) % 40}/file${i}.ts`).join('\n');
  execFileSync('git', ['update-index', '--index-info'], { cwd: big, env, input: lines });
  for (const version of ['2', '4']) {
    git(big, 'update-index', '--index-version', version);
    const times = [];
    for (let r = 0; r < 5; r++) {
      t = performance.now();
      const f = createFilter({ root: work, workspace: 'big-index' });
      f.excludes('packages/pkg1/node_modules', true); // the first lookup builds the directory map
      times.push(performance.now() - t);
    }
    times.sort((x, y) => x - y);
    console.log(`index v${version} with ${entries} entries: filter ready in ${times[2].toFixed(0)} ms (median of 5; ${times[0].toFixed(0)}-${times[4].toFixed(0)})`);
  }
}
process.exit(onlyGit.length + onlyOurs.length === 0 ? 0 : 1);
