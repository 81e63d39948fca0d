#!/usr/bin/env node
// Thin launcher so the bin exists before the first build; the CLI is bundled into bundle/ (scripts/bundle.mjs).
import { main } from "../bundle/cli.js";
main(process.argv).then((code) => {
  process.exitCode = code;
  // Whatever still holds the event loop after a stop (a FUSE thread of a mount removed from outside,
  // a socket to a silent S3) must not keep the process alive.
  setTimeout(() => process.exit(code), 1_000).unref();
});
