#!/usr/bin/env bash
# `make bench`: push, watch, mount and change-signal benchmarks against rclone, s3fs and aws s3 sync on one server,
# then docs/benchmarks.md. BACKEND=embedded (default), rgw, or all (both, one after the other);
# sizes via SOURCES, NODE_MODULES, BIG_MIB, RUNS. Installs what it needs (rclone, s3fs, awscli, Ceph).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh rclone s3fs awscli

backends=${BACKEND:-embedded}
[[ $backends == all ]] && backends="embedded rgw"
runs=${RUNS:-3}
for backend in $backends; do
  case $backend in embedded | rgw) ;; *) echo "bench: BACKEND must be embedded, rgw or all, not \"$backend\"" >&2; exit 2 ;; esac
  echo "bench: $backend"
  export S3_BACKEND=$backend
  if [[ $backend == rgw ]]; then
    scripts/rgw.sh install
    scripts/rgw.sh start
    trap 'scripts/rgw.sh stop >/dev/null 2>&1 || true' EXIT
  fi
  node bench/push.mjs --sources "${SOURCES:-5000}" --node-modules "${NODE_MODULES:-20000}" --runs "$runs"
  node bench/watch-latency.mjs --out "bench/results/watch-$backend.json"
  node bench/mount.mjs --sources "${SOURCES:-5000}" --big-mib "${BIG_MIB:-64}" --runs "$runs"
  node bench/events.mjs --out "bench/results/events-$backend.json"
  if [[ $backend == rgw ]]; then
    scripts/rgw.sh stop
    trap - EXIT
  fi
done
node bench/report.mjs
