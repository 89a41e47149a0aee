#!/usr/bin/env -S node --import tsx
// Operator CLI entry: `npx rds-failover <command>` / `npm run drill`. Everything lives in src/cli/program.ts.
import { runCli } from '../src/cli/program.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
