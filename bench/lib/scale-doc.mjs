// docs/scale.md from the scale lanes' results: the measurements at each size, issue 12's targets,
// the 1,000-workspace mount, and a linear extrapolation to 1M files and 1,000 workspaces.

/** Issue 12's table: the figures of format v1 at 100k files, and the targets. */
const ISSUE = {
  toHead: { v1: '3.3 s / 7.1 s', target: 'p50 ≤ 300 ms, p99 ≤ 1 s' },
  toMount: { v1: '7.4 s / 11.7 s', target: 'p50 ≤ 800 ms, p90 ≤ 1.5 s' },
  bytesPerSave: { v1: '7.7 MB', target: '≤ 64 KB' },
  watchRss: { v1: '817 MiB', target: '≤ 250 MB' },
  pushRss: { v1: '624 MiB (5.2 KB/file)', target: '≤ 1 KB/file above baseline' },
  noop: { v1: '2.57 s', target: '≤ 1.0 s' },
  findCold: { v1: '2.0 s', target: '≤ 1.5 s' },
  mountRss: { v1: '487 MiB (3.3 KB/file)', target: '≤ 500 B/file, and bounded' },
  mountRssEdited: { v1: '963 MiB', target: '≤ 250 MB' },
};

const s = (v) => (v === undefined || v === null || Number.isNaN(v) ? 'n/a' : v >= 10 ? `${v.toFixed(1)} s` : `${v.toFixed(2)} s`);
const ms = (v) => (v === undefined ? 'n/a' : `${Math.round(v)} ms`);
const mib = (v) => (v === undefined || Number.isNaN(v) ? 'n/a' : `${v.toFixed(0)} MiB`);
const kib = (b) => (b === undefined || Number.isNaN(b) ? 'n/a' : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
const perFile = (mibAbove, files) => (mibAbove * 2 ** 20) / files;

/** The per-size figures one table row needs. */
function figures(r) {
  const w = r.watch ?? {};
  const p = r.push ?? {};
  const n = r.fixture.syncedFiles;
  return {
    n,
    toHead: w.toHeadMs, toMount: w.toMountMs, perSave: w.perSave,
    watchPeak: w.agentPeakMiB, watchStart: w.startSeconds,
    pushPeak: p.initial?.maxRssMiB, pushBase: p.baseline?.maxRssMiB,
    pushPerFile: p.initial ? perFile(p.initial.maxRssMiB - p.baseline.maxRssMiB, n) : undefined,
    initial: p.initial?.seconds, initialCpu: p.initial?.cpuSeconds, rcloneInitial: r.rclone?.initial?.seconds, bare: r.barePuts?.seconds,
    noop: p.noop?.seconds, noopCpu: p.noop?.cpuSeconds, rcloneNoop: r.rclone?.noop?.seconds,
    change: p.change?.seconds, changeRequests: p.change?.wire?.requests,
    noState: p.noState, findCold: r.mount?.findCold, rcloneFindCold: r.rcloneMount?.findCold,
    mountBefore: r.mount?.rssBeforeMiB, mountAfter: r.mount?.peakAfterFindMiB, mountPerFile: r.mount?.bytesPerFile,
    rcloneMountPerFile: r.rcloneMount?.bytesPerFile, mountEdited: w.mountRssDuringEditsMiB?.max,
    pollRequests: w.idlePolls?.requestsPerPoll, largestDir: r.fixture.largestDir,
    load: r.load?.summary,
  };
}

/** a + b·n through two points, evaluated at `at`. */
const line = (n1, v1, n2, v2, at) => (v1 === undefined || v2 === undefined ? undefined : v1 + ((v2 - v1) / (n2 - n1)) * (at - n1));

export function scaleDoc({ byBackend, date }) {
  const out = [];
  out.push(`# Scale

What one large workspace and many workspaces cost: memory, time, bytes and requests, measured by
\`bench/scale.mjs\` (one workspace: small source files in a nested tree, plus 10,000 files in
\`node_modules\` that are never synced) and \`bench/scale-workspaces.mjs\` (1,000 workspaces in one
mount), side by side with rclone where it has an equivalent. \`make bench\` runs both at 10,000 files
and at \`SCALE_FILES\` (default 100,000), then writes this page and [\`benchmarks.md\`](benchmarks.md)
(which has every other lane). Measured ${date} on 2 shared cores: the load each run saw is given;
CPU time, requests and bytes do not depend on it, wall times do. Requests and bytes are counted on
the wire by a proxy that every tool goes through.

The fixture (\`bench/lib/fixture.mjs\`, seeded): source files of 200 B – 8 KiB under
\`src/m<0-11>/m<0-7>/m<0-7>/\`, at depth 1, 2 or 3 alike, so the twelve top directories each hold a
twelfth of a third of all files directly (2,800 entries at 100k) — a harder shape for per-directory
tree objects than most repositories, where directories stay small as the tree grows.
`);
  for (const [backend, { scales, many }] of Object.entries(byBackend)) {
    if (!scales.length && !many) continue;
    const label = backend === 'rgw' ? 'Ceph RGW 16.2' : 'the embedded S3 server';
    const F = scales.map(figures);
    const big = F.at(-1);
    const head = `| figure (${label}) | ${F.map((f) => `${f.n.toLocaleString('en')} files`).join(' | ')} | issue 12 at 100k (format v1) | target at 100k |`;
    const sep = `|---|${F.map(() => '---|').join('')}---|---|`;
    const row = (name, fn, key) => `| ${name} | ${F.map((f) => fn(f)).join(' | ')} | ${key ? ISSUE[key].v1 : ''} | ${key ? ISSUE[key].target : ''} |`;
    if (F.length) {
      out.push(`## Measured on ${label}\n`);
      out.push([head, sep,
        row('watch: save → head republished, p50 / p90 / p99', (f) => (f.toHead ? `${ms(f.toHead.p50)} / ${ms(f.toHead.p90)} / ${ms(f.toHead.p99)}` : 'n/a'), 'toHead'),
        row('save → visible in a mount polling every 250 ms, p50 / p90', (f) => (f.toMount ? `${ms(f.toMount.p50)} / ${ms(f.toMount.p90)}` : 'n/a'), 'toMount'),
        row('bytes sent per one-file save, p50 (max)', (f) => (f.perSave ? `${kib(f.perSave.bytesUp.p50)} (${kib(f.perSave.bytesUp.max)})` : 'n/a'), 'bytesPerSave'),
        row('requests per one-file save', (f) => (f.perSave ? `${f.perSave.requests.p50}` : 'n/a')),
        row('watch peak RSS', (f) => mib(f.watchPeak), 'watchRss'),
        row('watch start on a pushed workspace', (f) => s(f.watchStart)),
        row('push peak RSS (above a one-file push)', (f) => (f.pushPeak ? `${mib(f.pushPeak)} (${f.pushPerFile.toFixed(0)} B/file)` : 'n/a'), 'pushRss'),
        row('initial push (rclone --transfers 32; bare PUTs ×64)', (f) => `${s(f.initial)} (${s(f.rcloneInitial)}; ${s(f.bare)})`),
        row('no-op push (rclone sync)', (f) => `${s(f.noop)}, ${s(f.noopCpu)} CPU (${s(f.rcloneNoop)})`, 'noop'),
        row('one-change push (requests)', (f) => `${s(f.change)} (${f.changeRequests ?? 'n/a'})`),
        row('push without a state index (requests)', (f) => (f.noState ? `${s(f.noState.seconds)} (${f.noState.wire.requests})` : 'n/a')),
        row('mount: `find` cold (rclone mount)', (f) => `${s(f.findCold)} (${s(f.rcloneFindCold)})`, 'findCold'),
        row('mount RSS after `find` (above start; rclone)', (f) => (f.mountAfter ? `${mib(f.mountAfter)} (${f.mountPerFile.toFixed(0)} B/file; rclone ${f.rcloneMountPerFile?.toFixed(0) ?? 'n/a'} B/file)` : 'n/a'), 'mountRss'),
        row('mount RSS while the workspace is edited', (f) => mib(f.mountEdited), 'mountRssEdited'),
        row('mount requests per poll (250 ms), idle', (f) => (f.pollRequests === undefined ? 'n/a' : f.pollRequests.toFixed(2))),
        row('load while measured', (f) => f.load ?? 'n/a'),
      ].join('\n'));
      out.push('');
      if (big.n < 100_000) {
        out.push(`No 100,000-file run on ${label} here (\`S3_BACKEND=${backend} node bench/scale.mjs --files 100000\` adds it). On the shared single-node Ceph cluster it was left out: its OSD keeps objects in RAM (memstore, 4 GiB shared by every test run) and frees deleted ones only at RGW's garbage collection, hours later; the lane writes about 1.3 GB.\n`);
      }
      const verdicts = scales.at(-1).targets ?? {};
      if (Object.keys(verdicts).length) {
        out.push(`Targets at ${big.n.toLocaleString('en')} files: ${Object.entries(verdicts).map(([k, t]) => `${k} ${t.met ? '**met**' : '**not met**'}`).join('; ')}.\n`);
      }
    }
    if (many) {
      out.push(`### ${many.workspaces} workspaces in one mount (${label})\n\n${many.markdown}\n`);
    }
    if (F.length >= 2) {
      const [a, b] = [F[0], F.at(-1)];
      const at = 1_000_000;
      const ex = (k) => line(a.n, a[k], b.n, b[k], at);
      const poll = many?.ours?.idlePoll;
      const pollSeconds = many ? Number.parseFloat(many.pollInterval) / (many.pollInterval.endsWith('ms') ? 1000 : 1) : 2;
      out.push(`## Extrapolated to 1,000,000 files and 1,000 workspaces (${label})

Straight lines through the ${a.n.toLocaleString('en')}- and ${b.n.toLocaleString('en')}-file measurements (memory and time
grow linearly with what is held or walked; requests per change do not grow at all):

| figure | at 1,000,000 files | how it scales |
|---|---|---|
| push peak RSS | ${mib(ex('pushPeak'))} | ${((b.pushPeak - a.pushPeak) * 2 ** 20 / (b.n - a.n)).toFixed(0)} B per file: the agent holds the whole snapshot and state index in memory |
| watch peak RSS | ${mib(ex('watchPeak'))} | ${((b.watchPeak - a.watchPeak) * 2 ** 20 / (b.n - a.n)).toFixed(0)} B per file |
| mount RSS after \`find\` over every file | ${mib(ex('mountAfter'))} | ${((b.mountAfter - a.mountAfter) * 2 ** 20 / (b.n - a.n)).toFixed(0)} B per file looked up. Decoded directories sit in an LRU bounded by its own estimate (48 MiB) and inode numbers are computed, not stored; a heap snapshot after \`find\` at 100k held 48 MiB live in all (~260 B per entry, mostly the decoded directories' names and hashes); the rest of the growth is V8 heap slack and malloc arenas |
| initial push | ${s(ex('initial'))} | linear in files and bytes; rclone ${s(ex('rcloneInitial'))} |
| no-op push | ${s(ex('noop'))} | one stat per file and one conditional GET |
| \`find\` cold | ${s(ex('findCold'))} | one FUSE lookup per entry; tree objects come one pack at a time |
| bytes per one-file save | ${b.perSave ? `bounded: ${kib(b.perSave.bytesUp.p50)} measured at ${b.n.toLocaleString('en')} (${kib(a.perSave.bytesUp.p50)} at ${a.n.toLocaleString('en')})` : 'n/a'} | the tree objects on the changed file's path plus the file twice (pack and plain object), the commit and the head. A directory of up to 256 entries is one tree object; a larger one is an index over content-defined parts (64 entries on average, at most 1,024), and a save rewrites only the part holding the file and the index. So the bytes follow the depth of the path, not the size of the workspace or of its directories (this fixture's top directories grow to ${b.largestDir.toLocaleString('en')} entries) |
| requests per one-file save | ${b.perSave?.requests.p50 ?? 'n/a'} | constant: data pack, plain object, tree pack, commit, head |
| mount requests per poll | ${poll ? `${Math.ceil(1000 / 1000)} LIST of the heads for 1,000 workspaces (measured ${poll.requestsPerPoll.toFixed(1)}), ${kib(poll.bytesDownPerPoll)} down` : '1 LIST per 1,000 workspaces'} | one LIST per 1,000 heads, plus one GET per head that changed and the tree objects on the changed paths when a directory is open |
`);
      if (poll) {
        const perSecond = poll.bytesDownPerPoll / pollSeconds;
        out.push(`For 1,000 workspaces a mount polling every ${many.pollInterval} reads ${kib(perSecond)}/s of listings while nothing
changes; 100 nodes with one mount each read ${kib(perSecond * 100)}/s and send ${(100 / pollSeconds).toFixed(0)} LIST requests a second.
`);
      }
    }
  }
  out.push(`## A deployment at this size

- **The data**: 1,000 workspaces of 10,000 files are 10 million plain objects plus, per workspace, a few
  packs per push, one tree pack and one commit per push, and one head. MinIO in distributed mode
  (erasure-coded, 4+ nodes), Ceph RGW (with bucket-index sharding: one bucket holds every workspace, and
  the heads listing is the hottest request) or S3 itself carry it; nothing in the format needs more than
  PUT, GET with ranges, LIST, DELETE and conditional PUT.
- **Writers**: one \`sync-agent watch\` per developer machine; a save costs a constant handful of requests
  (above) and the bytes of the changed file twice plus the trees on its path, so 1,000 developers saving
  once a minute are about 17 commits and 100 PUTs a second in all.
- **Readers**: one \`fuse-mount\` per node as a DaemonSet (\`docker/k8s/\`), shared by every pod on the node
  through a host path with mount propagation. Each mount costs one LIST of the heads per poll whatever
  the number of workspaces (per 1,000), and loads only the directories and files its pods open; its
  disk cache is keyed by content, so every pod and workspace sharing a file shares one copy.
- **Memory**: a mount that walks a whole 1M-file workspace holds the figure above; one that serves pods
  reading their own workspaces holds the directories those pods open. The agent holds its workspaces'
  snapshots: budget it per file (above) on the machines with the largest checkouts.
`);
  return `${out.join('\n')}\n`;
}
