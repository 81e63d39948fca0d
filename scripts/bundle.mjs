#!/usr/bin/env node
// Bundles each CLI (tsc output plus its dependencies) into a few files under packages/<pkg>/bundle/.
// Start-up time is most of a no-op push: resolving and compiling ~900 module files took 0.3 s,
// one bundle takes a fraction of that. fuse-mount's workers keep running from dist/ (they are
// located as `../dist/x.js`, which resolves the same from bundle/); fuse-native is a native addon
// and stays external.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
for (const pkg of ['sync-agent', 'fuse-mount']) {
  const dir = path.join(root, 'packages', pkg);
  // The bundle sits one level below the package, like dist/, so `../package.json` and `../dist/` resolve.
  const outdir = path.join(dir, 'bundle');
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: [path.join(dir, 'dist', 'cli.js')],
    outdir,
    bundle: true,
    splitting: true,
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
