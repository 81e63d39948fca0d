#!/usr/bin/env node
// Bundles each CLI (tsc output plus its dependencies) into a few files under packages/<pkg>/bundle/.
// Start-up time is most of a no-op push: resolving and compiling ~900 module files took 0.3 s,
// one bundle takes a fraction of that. fuse-mount's workers are entry points of their own, so a
// worker thread starts as fast; fuse-native is a native addon and stays external.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bundles = [
  { pkg: 'sync-agent', entry: 'cli.js', splitting: true },
  { pkg: 'fuse-mount', entry: 'cli.js', splitting: true },
  // Worker threads start from bundles of their own (see packages/fuse-mount/src/worker-url.ts), each
  // built alone: with shared chunks, a worker would load everything its imports reach (the
  // manifest decoder would load the AWS SDK).
  { pkg: 'fuse-mount', entry: 'manifest-worker.js', splitting: false },
  { pkg: 'fuse-mount', entry: 'prefetch-worker.js', splitting: false },
];

const outdirOf = (pkg) => path.join(root, 'packages', pkg, 'bundle');
for (const pkg of new Set(bundles.map((b) => b.pkg))) rmSync(outdirOf(pkg), { recursive: true, force: true });
for (const { pkg, entry, splitting } of bundles) {
  await build({
    entryPoints: [path.join(root, 'packages', pkg, 'dist', entry)],
    // One level below the package, like dist/, so `../package.json` resolves the same.
    outdir: outdirOf(pkg),
    bundle: true,
    splitting,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: ['fuse-native'],
    // CommonJS dependencies call require(); ESM output has none unless we provide it.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    sourcemap: 'linked',
    logLevel: 'warning',
  });
}
