#!/usr/bin/env node
/**
 * Runs the Meta Conversions API stand-in from the command line, for manual runs and the demo:
 *
 *   node packages/meta-sim/bin/meta-sim.ts --port 0 --pixel 123:TOKEN --latency 50
 *
 * Prints the base URL on the first line of stdout, then serves until SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startMetaSim, type MetaSimOptions } from '../src/index.ts';

const usage = `usage: meta-sim [--host 127.0.0.1] [--port 0] [--pixel PIXEL:TOKEN]... [--latency MS]
                [--api-version vNN.N] [--seed N] [--no-bodies] [--lenient-hashing] [--log]`;

function fail(message: string): never {
  process.stderr.write(`meta-sim: ${message}\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      pixel: { type: 'string', multiple: true },
      latency: { type: 'string' },
      'api-version': { type: 'string' },
      seed: { type: 'string' },
      'no-bodies': { type: 'boolean' },
      'lenient-hashing': { type: 'boolean' },
      log: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (e) {
  fail((e as Error).message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}

const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`);
  return n;
};

const options: MetaSimOptions = { pixels: [] };
if (values.host !== undefined) options.host = values.host;
const port = int('port', values.port);
if (port !== undefined) options.port = port;
const latency = int('latency', values.latency);
if (latency !== undefined) options.latencyMs = latency;
const seed = int('seed', values.seed);
if (seed !== undefined) options.seed = seed;
if (values['api-version'] !== undefined) options.apiVersion = values['api-version'];
if (values['no-bodies']) options.recordBodies = false;
if (values['lenient-hashing']) options.strictHashing = false;
if (values.log) options.logger = true;
for (const spec of values.pixel ?? []) {
  const sep = spec.indexOf(':');
  if (sep <= 0 || sep === spec.length - 1) fail(`--pixel expects PIXEL:TOKEN, got ${JSON.stringify(spec)}`);
  options.pixels!.push({ pixelId: spec.slice(0, sep), accessToken: spec.slice(sep + 1) });
}

const sim = await startMetaSim(options);
process.stdout.write(`${sim.url}\n`);
process.stderr.write(
  `meta-sim: POST ${sim.url}/{version}/{pixel}/events; control under ${sim.url}/_sim/ ` +
    `(${options.pixels!.length} pixel${options.pixels!.length === 1 ? '' : 's'})\n`,
);

const stop = (): void => {
  void sim.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
