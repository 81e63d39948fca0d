#!/usr/bin/env node
// Thin launcher so the bin exists before the first build; the CLI is bundled into bundle/ (scripts/bundle.mjs).
import { main } from "../bundle/cli.js";
main(process.argv).then((code) => { process.exitCode = code; });
