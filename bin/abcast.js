#!/usr/bin/env node
// The `abcast` command: runs the compiled CLI (built into dist/ by `npm install`'s prepare).
import { run } from '../dist/cli/main.js';

await run(process.argv.slice(2));
