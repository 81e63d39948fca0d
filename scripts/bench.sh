#!/usr/bin/env bash
# `make bench`: push, watch and mount benchmarks against rclone and s3fs on one server, then
# docs/benchmarks.md. BACKEND=s3rver (default) or rgw; sizes via SOURCES, NODE_MODULES, BIG_MIB, RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh rclone s3fs awscli

backend=${BACKEND:-s3rver}
runs=${RUNS:-3}
export S3_BACKEND=$backend
if [[ $backend == rgw ]]; then
  scripts/rgw.sh install
  scripts/rgw.sh start
  trap 'scripts/rgw.sh stop >/dev/null 2>&1 || true' EXIT
fi

node bench/push.mjs --sources "${SOURCES:-5000}" --node-modules "${NODE_MODULES:-20000}" --runs "$runs"
node bench/watch-latency.mjs --out "bench/results/watch-$backend.json"
node bench/mount.mjs --sources "${SOURCES:-5000}" --big-mib "${BIG_MIB:-64}" --runs "$runs"
node bench/report.mjs
