#!/usr/bin/env node
// Prints the one closing line CI reads, "N passed, N failed[, N skipped]", totalled over vitest JSON
// reports (scripts/lint.sh writes its result in the same shape). A report that is missing (its run
// never got that far) counts as one failure. Only prints: the callers decide their exit status.
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) { failed += 1; continue; }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
}
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
