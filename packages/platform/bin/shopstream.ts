#!/usr/bin/env -S node --max-semi-space-size=64
// The `shopstream` command (npx shopstream …, or npm run shopstream -- …). Runs on the project's Node 22.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
