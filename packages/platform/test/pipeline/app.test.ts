/**
 * The pipeline as a running application on the embedded log, fed through the collector: a
 * duplicate that arrives after a restart is still dropped (the de-duplication state survives), and
 * validated visitors' events reach events.filtered while a crawler's reach events.bots.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { StreamsApp } from '@shopstream/streams';
import { pipelineTopology, type PipelineEvent } from '../../src/pipeline/topology.ts';
import { hashUserAgent } from '../../src/contract/index.ts';
import { json, readTopic, tempDir } from '../helpers.ts';
import { basic, collectorFixture, trackMessage } from '../collector/fixture.ts';

describe('pipeline application (embedded log)', () => {
  it('decides events held before a restart even when no record arrives after it', async () => {
    const f = await collectorFixture('embedded');
    const state = tempDir();
    const start = () => {
      const app = new StreamsApp(pipelineTopology(f.topics, { graceMs: 500, holdCheckIntervalMs: 100 }), { applicationId: 'pipeline-quiet', log: f.log, stateDir: join(state.dir, 'state'), commitIntervalMs: 50 });
      return app.start().then(() => app);
    };
    try {
      let app = await start();
      const m = trackMessage({ anonymousId: 'never-validated' });
      assert.equal((await f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: { batch: [m] } })).statusCode, 200);
      await new Promise((r) => setTimeout(r, 200));
      await app.close(); // held, not yet decided
      app = await start();
      const bots = await readTopic(f.log, f.topics.bots, (rs) => rs.length >= 1, 10_000);
      assert.equal(bots.length, 1, 'the held event was decided after the restart, without new input');
      assert.equal((json(bots[0]!) as unknown as PipelineEvent).bot!.reason, 'not_validated');
      await app.close();
    } finally {
      await f.close();
      state.cleanup();
    }
  });

  it('drops a duplicate that arrives after a restart, and routes humans and bots', async () => {
    const f = await collectorFixture('embedded');
    const state = tempDir();
    const start = () => {
      const app = new StreamsApp(pipelineTopology(f.topics, { graceMs: 30_000 }), { applicationId: 'pipeline-test', log: f.log, stateDir: join(state.dir, 'state'), commitIntervalMs: 50 });
      return app.start().then(() => app);
    };
    const post = (batch: unknown[]) => f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: { batch } });
    try {
      const producer = f.log.createProducer();
      const now = Date.now();
      await producer.send([
        { topic: f.topics.validations, key: Buffer.from('human-1'), value: Buffer.from(JSON.stringify({ v: 1, merchantId: f.shopA.id, anonymousId: 'human-1', validatedAt: now - 1000, validUntil: now + 86_400_000, tokenId: 't1', uaHash: hashUserAgent((trackMessage()['context'] as { userAgent: string }).userAgent) })), timestamp: now - 1000 },
      ]);
      await producer.close();
      const first = trackMessage({ anonymousId: 'human-1' });
      const crawler = trackMessage({ anonymousId: 'bot-1', context: { userAgent: 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)' } });
      assert.equal((await post([first, crawler])).statusCode, 200);

      let app = await start();
      const out1 = await readTopic(f.log, f.topics.filtered, (rs) => rs.length >= 1);
      assert.deepEqual(out1.map((r) => (json(r) as unknown as PipelineEvent).event.messageId), [first['messageId']]);
      const bots = await readTopic(f.log, f.topics.bots, (rs) => rs.length >= 1);
      assert.equal((json(bots[0]!) as unknown as PipelineEvent).bot!.reason, 'user_agent');
      await app.close();

      // After the restart: the same message again (a client retry), then a new one.
      const second = trackMessage({ anonymousId: 'human-1' });
      assert.equal((await post([first, second])).statusCode, 200);
      app = await start();
      const out2 = await readTopic(f.log, f.topics.filtered, (rs) => rs.length >= 2);
      await new Promise((r) => setTimeout(r, 300));
      const all = await readTopic(f.log, f.topics.filtered, () => false, 300);
      assert.deepEqual(all.map((r) => (json(r) as unknown as PipelineEvent).event.messageId), [first['messageId'], second['messageId']]);
      assert.equal(out2.length, 2);
      await app.close();
    } finally {
      await f.close();
      state.cleanup();
    }
  });
});
