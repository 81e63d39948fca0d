#!/usr/bin/env node
// Thin launcher so the bin exists before the first build; the CLI lives in dist/.
import { main } from "../dist/cli.js";
main(process.argv).then((code) => { process.exitCode = code; });
