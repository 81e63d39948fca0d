#!/usr/bin/env node
// Throughput of the test S3 server itself (the embedded one, or Ceph RGW with S3_BACKEND=rgw) on the
// requests a source-tree push and mount make: small PUTs, GETs and HEADs at a given concurrency, and
// full listings of the bucket 1,000 keys a page.
// Usage: node bench/s3-server.mjs [--objects 5000] [--size 2048] [--concurrency 32] [--runs 3] [--out FILE]
//        [--endpoint URL --bucket NAME]   (any other server, with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createObjectStore } from '@workspace-sync/shared';
import { startTestS3 } from '@workspace-sync/testkit';
import PQueue from 'p-queue';
import { median } from './lib/fixture.mjs';

const { values: args } = parseArgs({
  options: {
    objects: { type: 'string', default: '5000' }, size: { type: 'string', default: '2048' },
    concurrency: { type: 'string', default: '32' }, runs: { type: 'string', default: '3' }, out: { type: 'string' },
    endpoint: { type: 'string' }, bucket: { type: 'string', default: 'bench' },
  },
});
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(repo, '.tmp/bench/s3-server');
const n = Number(args.objects);
const concurrency = Number(args.concurrency);
const runs = Number(args.runs);
const backend = args.endpoint ?? process.env.S3_BACKEND ?? 'embedded';

rmSync(work, { recursive: true, force: true });
const s3 = args.endpoint
  ? { endpoint: args.endpoint, bucket: args.bucket, env: process.env, stop: async () => {} }
  : await startTestS3({ dir: path.join(work, 's3') });
const store = createObjectStore({
  endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, forcePathStyle: true, maxSockets: concurrency,
  credentials: { accessKeyId: s3.env.AWS_ACCESS_KEY_ID, secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY },
});
if (args.endpoint) await store.createBucket();
const body = Buffer.alloc(Number(args.size), 'x');
// Keys shaped like a source tree: a few hundred directories, a few files each.
const keyOf = (run, i) => `r${run}/src/m${i % 300}/d${i % 7}/file-${i}.ts`;

async function rate(fn) {
  const q = new PQueue({ concurrency });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) q.add(() => fn(i));
  await q.onIdle();
  return n / ((performance.now() - t0) / 1000);
}

async function listRate(prefix) {
  const t0 = performance.now();
  let count = 0;
  for await (const e of store.list(prefix)) if ('key' in e) count++;
  if (count !== n) throw new Error(`listed ${count} keys under ${prefix}, expected ${n}`);
  return count / ((performance.now() - t0) / 1000);
}

// Warm-up: the first requests of a fresh server (JIT, caches) are slower than the rest.
await rate((i) => store.put(`warmup/${i}`, body));

const rows = [];
for (let run = 0; run < runs; run++) {
  const put = await rate((i) => store.put(keyOf(run, i), body));
  const get = await rate((i) => store.get(keyOf(run, i)));
  const head = await rate((i) => store.head(keyOf(run, i)));
  const list = await listRate(`r${run}/`);
  rows.push({ put, get, head, list });
}
await s3.stop();
rmSync(work, { recursive: true, force: true });

const med = Object.fromEntries(['put', 'get', 'head', 'list'].map((k) => [k, median(rows.map((r) => r[k]))]));
const md = [
  `| S3 server (${backend}; ${n} objects of ${body.length} B; concurrency ${concurrency}; median of ${runs}) | per second |`,
  '|---|---|',
  `| PUT | ${med.put.toFixed(0)} |`,
  `| GET | ${med.get.toFixed(0)} |`,
  `| HEAD | ${med.head.toFixed(0)} |`,
  `| LIST (keys listed, 1,000 a page) | ${med.list.toFixed(0)} |`,
].join('\n');
console.log(md);
if (args.out) {
  mkdirSync(path.dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify({ benchmark: 's3-server', backend, objects: n, size: body.length, concurrency, runs, medians: med, raw: rows, markdown: md }, null, 2)}\n`);
}
