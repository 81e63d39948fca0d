// Benchmark fixtures: a deterministic workspace with source files, node_modules clutter, assets and
// optionally one large file. Seeded, so every run measures the same tree.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';

function rng(seed) {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const GITIGNORE = 'coverage/\n';

/**
 * Writes <dir> with `sources` source files (200 B - 8 KiB) in nested folders, `nodeModules` files under
 * node_modules/, 20 assets (16-256 KiB), and a `bigMiB` file when asked. Returns the counts.
 */
export function buildWorkspace(dir, { sources = 5000, nodeModules = 20000, bigMiB = 0, seed = 42 } = {}) {
  const rand = rng(seed);
  // The marker sits beside the workspace so it is never part of what is synced or mounted.
  const marker = `${dir}.bench-fixture.json`;
  const spec = JSON.stringify({ sources, nodeModules, bigMiB, seed });
  if (existsSync(marker) && readFileSync(marker, 'utf8') === spec) {
    // Reused: the ignore file is written afresh, so no earlier run's edit of it changes what is synced.
    writeFileSync(path.join(dir, '.gitignore'), GITIGNORE);
    return JSON.parse(spec);
  }
  // A fixture of other sizes (or a half-written one) is rebuilt from scratch.
  rmSync(dir, { recursive: true, force: true });
  const write = (rel, size) => {
    const abs = path.join(dir, rel);
    mkdirSync(path.dirname(abs), { recursive: true });
    const line = `// ${rel}\nexport const value = ${Math.floor(rand() * 1e9)};\n`;
    writeFileSync(abs, line.repeat(Math.max(1, Math.ceil(size / line.length))).slice(0, size));
  };
  for (let i = 0; i < sources; i++) {
    const depth = 1 + Math.floor(rand() * 3);
    const parts = Array.from({ length: depth }, (_, d) => `m${Math.floor(rand() * (d === 0 ? 12 : 8))}`);
    write(`src/${parts.join('/')}/file${i}.ts`, 200 + Math.floor(rand() * 8000));
  }
  for (let i = 0; i < nodeModules; i++) write(`node_modules/pkg${i % 400}/lib/f${i}.js`, 100 + Math.floor(rand() * 2000));
  for (let i = 0; i < 20; i++) write(`assets/img${i}.bin`, 16384 + Math.floor(rand() * 240000));
  writeFileSync(path.join(dir, 'package.json'), '{"name":"bench","version":"1.0.0"}\n');
  writeFileSync(path.join(dir, '.gitignore'), GITIGNORE);
  if (bigMiB > 0) {
    const fd = openSync(path.join(dir, 'assets/big.bin'), 'w');
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < bigMiB; i++) { for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((rand() * 2 ** 32) >>> 0, j); writeSync(fd, chunk); }
    closeSync(fd);
  }
  writeFileSync(marker, spec);
  return JSON.parse(spec);
}

/** rclone filter flags equivalent to the default excludes (rclone does not read .gitignore). */
export const RCLONE_EXCLUDES = ['node_modules/**', '.git/**', '*.log', '.env*', 'dist/**', 'build/**', '__pycache__/**', 'vendor/**', '*.pyc', '.DS_Store', 'Thumbs.db']
  .flatMap((p) => ['--exclude', p]);

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
