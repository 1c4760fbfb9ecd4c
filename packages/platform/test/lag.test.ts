/** watchLag: the lag of a group-consumer role, published like a streams application's. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { watchLag } from '../src/lag.ts';
import { openTestLog } from './helpers.ts';

it('lag = end offset − position per partition, under shopstream_streams_consumer_lag; partitions given up are removed', async () => {
  const { log, close } = await openTestLog('embedded');
  try {
    await log.admin.createTopics([{ name: 't', partitions: 2 }]);
    const producer = log.createProducer();
    await producer.send(Array.from({ length: 10 }, (_, i) => ({ topic: 't', partition: i % 2, key: null, value: Buffer.from('x') })));
    await producer.close();
    const registry = new Registry();
    let positions = [
      { topic: 't', partition: 0, offset: 1 },
      { topic: 't', partition: 1, offset: 5 },
    ];
    const stop = watchLag({ log, registry, application: 'shopstream-cubes', positions: () => positions, intervalMs: 20 });
    const values = async () => {
      const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'shopstream_streams_consumer_lag');
      return Object.fromEntries((m?.values ?? []).map((v) => [`${v.labels['application']}/${v.labels['topic']}/${v.labels['partition']}`, v.value]));
    };
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await values(), { 'shopstream-cubes/t/0': 4, 'shopstream-cubes/t/1': 0 });
    positions = [{ topic: 't', partition: 1, offset: 2 }];
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await values(), { 'shopstream-cubes/t/1': 3 });
    stop();
  } finally {
    await close();
  }
});
