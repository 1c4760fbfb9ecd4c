/**
 * Durability on Kafka: a broker of its own (started by infra/kafka/start.sh on another port) is
 * killed with SIGKILL in the middle of a load, then started again. No request may get a 200 unless
 * its events are in events.raw once the broker is back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestBroker } from '../../../../infra/kafka/broker.ts';
import { connectKafkaLog } from '@shopstream/streams/kafka';
import type { Log } from '@shopstream/streams';
import { canonical, readTopic } from '../helpers.ts';
import { basic, collectorFixture, trackMessage, type CollectorFixture } from './fixture.ts';

const broker = new TestBroker(Number(process.env['SHOPSTREAM_DURABILITY_KAFKA_PORT'] ?? 19392));

describe('collector durability on Kafka (broker killed mid-load)', () => {
  let log: Log;
  let f: CollectorFixture;
  before(async () => {
    broker.start({ fresh: true });
    log = await connectKafkaLog({ bootstrapServers: broker.bootstrap, clientId: 'durability', requestTimeoutMs: 3000, connectTimeoutMs: 1000, retries: 2, retryDelayMs: 200 });
    f = await collectorFixture('kafka', { log, writeTimeoutMs: 4000 });
  });
  after(async () => {
    await f?.close().catch(() => {});
    await log?.close().catch(() => {});
    broker.stop();
  });

  it('every acknowledged event is in events.raw after the broker comes back', async () => {
    const acked = new Set<string>();
    const statuses = new Map<number, number>();
    let stop = false;
    let seq = 0;
    const client = async (c: number) => {
      while (!stop) {
        const batch = Array.from({ length: 20 }, () => trackMessage({ messageId: `d-${c}-${seq++}` }));
        const res = await f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: { batch } });
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode === 200) for (const m of batch) acked.add(m['messageId'] as string);
        else if (res.statusCode !== 503) assert.fail(`unexpected ${res.statusCode}: ${res.body}`);
        else await new Promise((r) => setTimeout(r, 100));
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(client));
    await waitUntil(() => acked.size >= 2000, 30_000);
    const before = acked.size;
    broker.kill();
    await new Promise((r) => setTimeout(r, 6_000));
    broker.start();
    await waitUntil(() => acked.size >= before + 2000, 60_000);
    stop = true;
    await load;

    assert.ok((statuses.get(503) ?? 0) > 0, `some requests were refused while the broker was down: ${JSON.stringify([...statuses])}`);
    const raw = await readTopic(log, f.topics.raw, (rs) => new Set(rs.map((r) => canonical(r)['messageId'])).size >= acked.size, 60_000);
    const inTopic = new Set(raw.map((r) => canonical(r)['messageId'] as string));
    const missing = [...acked].filter((id) => !inTopic.has(id));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${acked.size} acknowledged events are missing`);
  });
});

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}
