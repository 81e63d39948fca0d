#!/usr/bin/env bash
# Lints the packages' sources and the tests (eslint.config.js: typescript-eslint's type-checked rules, floating
# promises, exhaustive switches). Counts as one check in "N passed, N failed": the result goes to
# .tmp/lint.json in the shape of vitest's JSON report, for scripts/summary.mjs. Needs a build
# (make setup): packages see each other through their declarations in dist/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
mkdir -p .tmp

status=0
npx eslint --max-warnings 0 || status=$?
ok=$((status == 0 ? 1 : 0))
printf '{"numPassedTests":%d,"numFailedTests":%d,"numPendingTests":0,"numTodoTests":0}\n' "$ok" $((1 - ok)) >.tmp/lint.json
node scripts/summary.mjs .tmp/lint.json
exit "$status"
