/**
 * A broker outage on Kafka: a broker of this test's own (infra/kafka/start.sh on another port) is
 * killed with SIGKILL while an exactly-once application with state runs, and started again. The
 * application does not stop: it keeps trying with back-off, drops its uncommitted work, rebuilds
 * its tasks from the last commit once the broker answers, and the outputs are exactly-once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { StreamsApp, StreamsBuilder, Serdes } from '../../src/index.ts';
import type { Log } from '../../src/index.ts';
import { connectKafkaLog } from '../../src/log/kafka/index.ts';
import { readTopic, unique, waitFor } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../../../..');
const PORT = Number(process.env['SHOPSTREAM_OUTAGE_KAFKA_PORT'] ?? 19396);
const env = { ...process.env, KAFKA_PORT: String(PORT), KAFKA_CONTROLLER_PORT: String(PORT + 1) };

function broker(action: 'start' | 'stop', extra: Record<string, string> = {}): void {
  execFileSync('bash', [join(ROOT, `infra/kafka/${action}.sh`)], { env: { ...env, ...extra }, stdio: ['ignore', 'ignore', 'inherit'], timeout: 180_000 });
}

function killBroker(): void {
  process.kill(Number(readFileSync(join(ROOT, `.cache/kafka/run-${PORT}/kafka.pid`), 'utf8').trim()), 'SIGKILL');
}

const S = Serdes.string();

describe('streams application through a broker outage (Kafka)', () => {
  let log: Log;
  before(async () => {
    broker('start', { KAFKA_FRESH: '1' });
    log = await connectKafkaLog({ bootstrapServers: `127.0.0.1:${PORT}`, clientId: 'outage', requestTimeoutMs: 3000, connectTimeoutMs: 1000, retries: 2, retryDelayMs: 200 });
  });
  after(async () => {
    await log?.close().catch(() => {});
    broker('stop');
  });

  it('goes on from the last commit once the broker is back: every record copied once, every count exact', { timeout: 180_000 }, async () => {
    const [input, copy, counts] = [unique('in'), unique('copy'), unique('counts')];
    await log.admin.createTopics([input, copy, counts].map((name) => ({ name, partitions: 2 })));
    const b = new StreamsBuilder();
    const s = b.stream(input, { keySerde: S, valueSerde: S });
    s.to(copy, { keySerde: S, valueSerde: S });
    s.groupByKey().count({ name: 'per-key' }).toStream().to(counts, { keySerde: S, valueSerde: Serdes.json<number>() });
    const dir = mkdtempSync(join(tmpdir(), 'shopstream-outage-'));
    const app = new StreamsApp(b.build(), { applicationId: unique('app'), log, stateDir: dir, commitIntervalMs: 100, instanceId: 'outage-1' });
    const KEYS = 50;
    const N = 40_000;
    const recoveries = async () => ((await app.metrics.recoveries.get()).values ?? []).reduce((a, v) => a + v.value, 0);
    const processed = async () => ((await app.metrics.recordsIn.get()).values ?? []).reduce((a, v) => a + v.value, 0);
    const producer = log.createProducer({ clientId: 'outage-pump' });
    try {
      await app.start();
      // Records keep coming before, during and after the outage; a send that fails is sent again
      // (it may have been written: the outputs are compared with what the input topic holds).
      const pump = (async () => {
        for (let i = 0; i < N; ) {
          const batch = Array.from({ length: 500 }, (_, j) => ({ topic: input, key: Buffer.from(`k${(i + j) % KEYS}`), value: Buffer.from(`v${i + j}`) }));
          try {
            await producer.send(batch);
            i += batch.length;
          } catch {
            await new Promise((r) => setTimeout(r, 500));
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await waitFor(async () => (await processed()) >= 5_000, 60_000, 'processing under way');
      killBroker();
      await waitFor(async () => (await recoveries()) > 0, 30_000, 'the application to notice the outage');
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal(app.state, 'running', 'the application keeps going through the outage');
      broker('start');
      await pump;
      const inputs = await readTopic(log, input, (rs) => rs.length >= N, 60_000);
      const want = inputs.map((r) => r.value!.toString()).sort();
      const wantCounts = new Map<string, number>();
      for (const r of inputs) wantCounts.set(r.key!.toString(), (wantCounts.get(r.key!.toString()) ?? 0) + 1);
      await readTopic(log, copy, (rs) => rs.length >= want.length, 120_000);
      await new Promise((r) => setTimeout(r, 1_000)); // anything copied twice would show now
      const copied = (await readTopic(log, copy, (rs) => rs.length >= want.length, 10_000)).map((r) => r.value!.toString()).sort();
      assert.equal(copied.length, want.length, 'every input record copied exactly once');
      assert.deepEqual(copied, want);
      const latest = new Map<string, number>();
      const same = () => latest.size === wantCounts.size && [...wantCounts].every(([k, n]) => latest.get(k) === n);
      await waitFor(async () => {
        for (const r of await readTopic(log, counts, (rs) => rs.length > 0, 10_000)) latest.set(r.key!.toString(), JSON.parse(r.value!.toString()) as number);
        return same();
      }, 30_000, 'the final counts');
      assert.ok(same());
      assert.equal(app.state, 'running');
      assert.ok((await recoveries()) > 0);
    } finally {
      await producer.close().catch(() => {});
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
