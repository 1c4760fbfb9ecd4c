/**
 * `npm test`: type-checks, lints, makes sure a real Kafka broker is up (starting one with
 * infra/kafka/start.sh when nothing answers on KAFKA_BOOTSTRAP), runs every test file with
 * node:test, and stops the broker again if this run started it.
 *
 *   SHOPSTREAM_TEST_FILES='packages/streams/test/dsl/*.test.ts' npm test   runs a subset
 *   SHOPSTREAM_SKIP_CHECKS=1                                               skips tsc and eslint
 *   SHOPSTREAM_TEST_CONCURRENCY=1                                          one test file at a time (default 2)
 *
 * A test file whose header holds the tag `@shopstream-test alone` (it asserts wall-clock times, such
 * as the dashboard's under-1 s load) runs first, by itself, on an otherwise idle machine; the other
 * files then run SHOPSTREAM_TEST_CONCURRENCY at a time. Every file keeps to its own topics, groups,
 * folders and ports, so two at a time is safe, and it takes about a quarter off the wall time on two
 * cores.
 */
import { spawnSync } from 'node:child_process';
import { globSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bootstrap = process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
const [host, portText] = bootstrap.split(':');
const port = Number(portText);

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  return r.status ?? 1;
}

function reachable(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: host ?? '127.0.0.1', port }, () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

const bin = join(root, 'node_modules', '.bin');
if (process.env.SHOPSTREAM_SKIP_CHECKS !== '1') {
  console.log('› type-checking (tsc) …');
  if (run(join(bin, 'tsc'), ['-p', '.']) !== 0) process.exit(1);
  if (run(join(bin, 'tsc'), ['-p', 'packages/dashboard/tsconfig.json']) !== 0) process.exit(1);
  console.log('› linting (eslint) …');
  if (run(join(bin, 'eslint'), ['.']) !== 0) process.exit(1);
}

let started = false;
if (!(await reachable())) {
  console.log(`› no Kafka broker on ${bootstrap}: starting one (infra/kafka/start.sh) …`);
  if (run('bash', [join(root, 'infra/kafka/start.sh')], { ...process.env, KAFKA_PORT: String(port) }) !== 0) {
    console.error('✖ could not start the Kafka broker; see the message above (Java 17 and Maven Central are needed).');
    process.exit(1);
  }
  started = true;
}

const pattern = process.env.SHOPSTREAM_TEST_FILES ?? 'packages/*/test/**/*.test.ts';
const files = globSync(pattern, { cwd: root }).sort();
if (files.length === 0) {
  console.error(`✖ no test file matches ${pattern}`);
  process.exit(1);
}
const ALONE = '@shopstream-test alone';
const alone = files.filter((f) => readFileSync(join(root, f), 'utf8').slice(0, 2000).includes(ALONE));
const shared = files.filter((f) => !alone.includes(f));
const concurrency = process.env.SHOPSTREAM_TEST_CONCURRENCY ?? '2';
const testRun = (list: string[], n: string): number =>
  run(process.execPath, ['--test', `--test-concurrency=${n}`, '--test-timeout=300000', ...list], { ...process.env, KAFKA_BOOTSTRAP: bootstrap });

let status = 0;
if (alone.length > 0) {
  console.log(`› running ${alone.length} timing-sensitive test file(s) alone against Kafka on ${bootstrap}: ${alone.join(', ')} …`);
  status = testRun(alone, '1');
}
if (shared.length > 0) {
  console.log(`› running ${shared.length} test files, ${concurrency} at a time, against Kafka on ${bootstrap} …`);
  status = testRun(shared, concurrency) || status;
}
if (status !== 0) console.error('✖ tests failed; the failures are listed above (each file can be re-run with SHOPSTREAM_TEST_FILES=<path> npm test).');

if (started) {
  console.log('› stopping the Kafka broker this run started …');
  run('bash', [join(root, 'infra/kafka/stop.sh')], { ...process.env, KAFKA_PORT: String(port) });
}
process.exit(status);
