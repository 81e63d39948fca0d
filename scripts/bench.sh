#!/usr/bin/env bash
# `make bench`: push, watch, mount and change-signal benchmarks against rclone, s3fs and aws s3 sync on one server,
# the latency-bound lane, the cost of the integrity guarantees, history (retention, restore) and scale (a
# large workspace at 10k files and at SCALE_FILES, 1,000 workspaces in one mount), then docs/benchmarks.md and
# docs/scale.md. BACKEND=embedded (default), rgw, or all (both, one after the other). Sizes: SOURCES,
# NODE_MODULES, BIG_MIB, RUNS; SCALE_FILES (default 100000; 0 skips the large run, 10000 makes a quick one),
# SCALE_WORKSPACES (default 1000), LATENCY_MS (default 20), GENERATIONS (default 100). Each lane's duration and
# the load it ran under go to bench/results/lanes-<backend>.jsonl. LANES="history scale" runs only those lanes (push, watch, mount,
# events, latency, integrity-cost, history, scale, scale-workspaces) and appends to that file; a run missing
# results for sections docs/benchmarks.md has writes bench/results/benchmarks.md instead (bench/report.mjs --replace overrides). Installs what it needs (rclone, s3fs, awscli,
# GNU time, Ceph). A Ceph cluster that was already running is left running.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh rclone s3fs awscli time

backends=${BACKEND:-embedded}
[[ $backends == all ]] && backends="embedded rgw"
runs=${RUNS:-3}
scale_files=${SCALE_FILES:-100000}
mkdir -p bench/results

# lane NAME CMD...: runs a lane (unless LANES leaves it out), appends its duration and the load before and after it.
lane() {
  local name=$1 t0=$SECONDS load0
  shift
  if [[ -n ${LANES:-} && " $LANES " != *" ${name%-[0-9]*} "* ]]; then return 0; fi
  load0=$(cut -d' ' -f1 /proc/loadavg)
  echo "bench: $backend: $name"
  "$@"
  printf '{"lane":"%s","seconds":%d,"load1Before":%s,"load1After":%s,"at":"%s"}\n' \
    "$name" $((SECONDS - t0)) "$load0" "$(cut -d' ' -f1 /proc/loadavg)" "$(date -u +%FT%TZ)" >>"bench/results/lanes-$backend.jsonl"
}

for backend in $backends; do
  case $backend in embedded | rgw) ;; *) echo "bench: BACKEND must be embedded, rgw or all, not \"$backend\"" >&2; exit 2 ;; esac
  export S3_BACKEND=$backend
  [[ -n ${LANES:-} ]] || : >"bench/results/lanes-$backend.jsonl"
  started_rgw=0
  if [[ $backend == rgw ]] && ! scripts/rgw.sh status >/dev/null 2>&1; then
    scripts/rgw.sh install
    scripts/rgw.sh start
    started_rgw=1
    trap 'scripts/rgw.sh stop >/dev/null 2>&1 || true' EXIT
  fi
  lane push node bench/push.mjs --sources "${SOURCES:-5000}" --node-modules "${NODE_MODULES:-20000}" --runs "$runs"
  lane watch node bench/watch-latency.mjs --out "bench/results/watch-$backend.json"
  lane mount node bench/mount.mjs --sources "${SOURCES:-5000}" --big-mib "${BIG_MIB:-64}" --runs "$runs"
  lane events node bench/events.mjs --out "bench/results/events-$backend.json"
  lane latency node bench/latency.mjs --latency "${LATENCY_MS:-20}" --sources "${SOURCES:-5000}" --big-mib "${BIG_MIB:-64}"
  lane integrity-cost node bench/integrity-cost.mjs --sources "${SOURCES:-5000}" --runs "$runs"
  lane history node bench/history.mjs --sources "${SOURCES:-5000}" --generations "${GENERATIONS:-100}" --runs "$runs"
  lane scale-10000 node bench/scale.mjs --files 10000
  if ((scale_files > 0 && scale_files != 10000)); then
    lane "scale-$scale_files" node bench/scale.mjs --files "$scale_files"
  fi
  lane scale-workspaces node bench/scale-workspaces.mjs --workspaces "${SCALE_WORKSPACES:-1000}"
  if ((started_rgw)); then
    scripts/rgw.sh stop
    trap - EXIT
  fi
done
node bench/report.mjs
