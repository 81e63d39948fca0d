#!/usr/bin/env bash
# Runs the whole test suite (unit + integration against the embedded S3 server and real FUSE mounts)
# and ends with one plain line: "N passed, N failed[, N skipped]".
# --rgw runs the integration suites again against a single-node Ceph RGW (a real S3 server).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tmp

backend=embedded
if [[ "${1:-}" == "--rgw" ]]; then backend=rgw; fi

results=".tmp/vitest-$backend.json"
rm -f "$results"
status=0
if [[ $backend == rgw ]]; then
  scripts/rgw.sh install
  scripts/rgw.sh start
  trap 'scripts/rgw.sh stop >/dev/null 2>&1 || true' EXIT
  # The suites that talk to S3; the pure unit suites gain nothing from a second server.
  S3_BACKEND=rgw npx vitest run --reporter=default --reporter=json --outputFile.json="$results" \
    test packages/fuse-mount/test packages/sync-agent/test packages/testkit/test || status=$?
else
  npx vitest run --reporter=default --reporter=json --outputFile.json="$results" || status=$?
fi

if [[ -f $results ]]; then
  # shellcheck disable=SC2016 # a JavaScript template literal, not shell
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const skipped = r.numPendingTests + r.numTodoTests;
    console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
  ' "$results"
else
  echo "0 passed, 1 failed"
  status=1
fi
exit "$status"
