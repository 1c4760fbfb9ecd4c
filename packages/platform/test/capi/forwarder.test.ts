/**
 * The capi forwarder against the local Graph API stand-in (@shopstream/meta-sim), on both logs:
 * batching per pixel, an invalid event isolated by splitting, retries through 5xx/429/throttles and
 * timeouts, one merchant with a bad token not holding up the others, acknowledged events not sent
 * again after a restart (the sent-id store), and the dead-letter reasons.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Log } from '@shopstream/streams';
import { startMetaSim, type MetaSim } from '@shopstream/meta-sim';
import { CapiForwarder, type CapiForwarderOptions } from '../../src/capi/forwarder.ts';
import { CAPI_HEADERS, CapiDlqCodes, type CapiDlqRecord } from '../../src/capi/outbox.ts';
import type { Merchant } from '../../src/merchants/model.ts';
import { ensurePlatformTopics, topicNames, type TopicNames } from '../../src/topics.ts';
import { Registry } from 'prom-client';
import { capturingLogger, openTestLog, unique, type LogKind } from '../helpers.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function merchant(id: string, pixelId: string, accessToken: string): Merchant {
  return { id, writeKeys: [`wk_${id}`], revokedWriteKeys: [], readTokens: [`rt_${id}`], timezone: 'UTC', currency: 'EUR', meta: { pixelId, accessToken }, createdAt: 0, updatedAt: 0 };
}

interface Sent {
  merchantId: string;
  eventId: string;
}

/** Writes outbox records as the capi topology does: the server event as JSON, merchant, id and time in headers. */
async function produceOutbox(log: Log, topics: TopicNames, merchantId: string, ids: readonly string[], ageMs = 60_000): Promise<Sent[]> {
  const producer = log.createProducer();
  try {
    const at = Date.now() - ageMs;
    await producer.send(
      ids.map((id, i) => {
        const event = {
          event_name: i % 3 === 0 ? 'Purchase' : 'ViewContent',
          event_time: Math.floor(at / 1000),
          event_id: id,
          action_source: 'website',
          event_source_url: `https://${merchantId}.example/p/${i}`,
          user_data: { em: [sha(`shopper${i}@example.com`)], client_user_agent: 'Mozilla/5.0 (X11; Linux x86_64)', client_ip_address: '203.0.113.7' },
          custom_data: { value: 19.99, currency: 'EUR', content_ids: [`sku-${i}`], content_type: 'product' },
        };
        return {
          topic: topics.capiOutbox,
          key: Buffer.from(`v:${merchantId}:visitor-${i % 13}`),
          value: Buffer.from(JSON.stringify(event)),
          headers: [
            [CAPI_HEADERS.merchant, Buffer.from(merchantId)],
            [CAPI_HEADERS.eventId, Buffer.from(id)],
            [CAPI_HEADERS.eventTime, Buffer.from(String(at))],
          ] as const,
        };
      }),
    );
  } finally {
    await producer.close();
  }
  return ids.map((eventId) => ({ merchantId, eventId }));
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Reads capi.dlq until `n` records arrived (read_committed). */
async function readDlq(log: Log, topics: TopicNames, n: number): Promise<CapiDlqRecord[]> {
  const reader = log.createReader();
  const out: CapiDlqRecord[] = [];
  try {
    reader.assign([0, 1].map((partition) => ({ topic: topics.capiDlq, partition, offset: 0 })));
    const deadline = Date.now() + 30_000;
    while (out.length < n && Date.now() < deadline) for (const r of await reader.poll(100)) out.push(JSON.parse(r.value!.toString('utf8')) as CapiDlqRecord);
    // Anything more than n would be a duplicate: read a little longer.
    for (const r of await reader.poll(300)) out.push(JSON.parse(r.value!.toString('utf8')) as CapiDlqRecord);
  } finally {
    await reader.close();
  }
  return out;
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

async function setup(kind: LogKind) {
  const { log, close } = await openTestLog(kind);
  const prefix = `${unique('capi')}.`;
  const topics = topicNames(prefix);
  await ensurePlatformTopics(log, { prefix, partitions: 2 });
  const sim = await startMetaSim({ logger: false });
  const merchants = new Map<string, Merchant>();
  const lookup = { byId: (id: string) => merchants.get(id) };
  const forwarders: CapiForwarder[] = [];
  const logs = capturingLogger();
  const registry = new Registry();
  const forwarder = async (extra: Partial<CapiForwarderOptions> = {}) => {
    const f = new CapiForwarder({
      log,
      topics,
      groupId: `${prefix}forwarder`,
      merchants: lookup,
      baseUrl: sim.url,
      apiVersion: 'v21.0',
      flushIntervalMs: 20,
      commitIntervalMs: 50,
      retryBaseMs: 20,
      retryMaxMs: 200,
      breaker: { failureThreshold: 3, openMs: 100, maxOpenMs: 400 },
      requestTimeoutMs: 1_000,
      logger: logs.logger,
      registry: forwarders.length === 0 ? registry : new Registry(),
      ...extra,
    });
    await f.start();
    forwarders.push(f);
    return f;
  };
  return {
    log,
    topics,
    sim,
    merchants,
    forwarder,
    logs,
    registry,
    async close() {
      for (const f of forwarders) await f.close(0).catch(() => undefined);
      await sim.close();
      await close();
    },
  };
}

function deliveredIds(sim: MetaSim, pixelId: string): string[] {
  return sim.events(pixelId).map((e) => (e.event as { event_id: string }).event_id);
}

for (const kind of ['embedded', 'kafka'] as LogKind[]) {
  describe(`capi forwarder (${kind})`, () => {
    it('batches per pixel, isolates invalid events by splitting, and a merchant with a bad token holds up nobody', { timeout: 120_000 }, async () => {
      const t = await setup(kind);
      try {
        t.sim.addPixel('px-good', 'token-good');
        t.sim.addPixel('px-mixed', 'token-mixed');
        t.sim.addPixel('px-locked', 'token-locked');
        t.merchants.set('good', merchant('good', 'px-good', 'token-good'));
        t.merchants.set('mixed', merchant('mixed', 'px-mixed', 'token-mixed'));
        t.merchants.set('locked', merchant('locked', 'px-locked', 'WRONG-token'));
        const invalid = ['mixed-17', 'mixed-333'];
        t.sim.inject({ kind: 'invalid_event', eventIds: invalid });
        await produceOutbox(t.log, t.topics, 'locked', ids('locked', 300));
        await produceOutbox(t.log, t.topics, 'good', ids('good', 2_500));
        await produceOutbox(t.log, t.topics, 'mixed', ids('mixed', 500));
        const f = await t.forwarder({ maxBatchSize: 200 });

        await waitFor('the good and mixed events', () => deliveredIds(t.sim, 'px-good').length === 2_500 && deliveredIds(t.sim, 'px-mixed').length === 498);
        assert.equal(deliveredIds(t.sim, 'px-locked').length, 0, 'nothing reaches a pixel with a wrong token');
        const dlq = await readDlq(t.log, t.topics, 2);
        assert.deepEqual(dlq.map((d) => (d.event as { event_id: string }).event_id).sort(), invalid);
        for (const d of dlq) {
          assert.equal(d.reason.code, CapiDlqCodes.INVALID_EVENT);
          assert.equal(d.reason.meta?.code, 100);
          assert.equal(d.merchantId, 'mixed');
          assert.equal(d.pixelId, 'px-mixed');
        }
        // The token is fixed: the breaker's next probe gets through, and the waiting events go.
        t.merchants.set('locked', merchant('locked', 'px-locked', 'token-locked'));
        await waitFor('the locked events after the fix', () => deliveredIds(t.sim, 'px-locked').length === 300);
        await f.settled();

        assert.deepEqual(new Set(deliveredIds(t.sim, 'px-good')), new Set(ids('good', 2_500)));
        assert.deepEqual(new Set(deliveredIds(t.sim, 'px-locked')), new Set(ids('locked', 300)));
        assert.deepEqual(t.sim.duplicates(), [], 'no event was delivered twice');
        const accepted = t.sim.requests().filter((r) => r.status === 200);
        assert.ok(accepted.every((r) => r.events <= 200), 'no request over maxBatchSize');
        assert.ok(accepted.filter((r) => r.pixelId === 'px-good').length >= 13, 'the good pixel got batches of up to 200');
        assert.ok(t.sim.requests().some((r) => r.pixelId === 'px-locked' && r.errorCode === 190), 'the wrong token was refused with code 190');
        // Tokens and personal data never reach logs or metrics.
        const metrics = await t.registry.metrics();
        assert.match(t.logs.text(), /capi: Meta did not take a request/, 'the failures were logged');
        assert.match(metrics, /shopstream_capi_events_total\{merchant="good",outcome="acknowledged"\} 2500/);
        for (const secret of ['token-good', 'token-mixed', 'token-locked', 'WRONG-token', sha('shopper1@example.com'), 'shopper1@example.com']) {
          assert.ok(!t.logs.text().includes(secret) && !metrics.includes(secret), `${secret} is in no log line and no metric`);
        }
      } finally {
        await t.close();
      }
    });

    it('retries 5xx, 429, throttles and timeouts with backoff; re-sends keep their event id', { timeout: 120_000 }, async () => {
      const t = await setup(kind);
      try {
        t.sim.addPixel('px', 'token');
        t.merchants.set('shop', merchant('shop', 'px', 'token'));
        t.sim.inject({ kind: 'server_error', count: 3 });
        t.sim.inject({ kind: 'rate_limit_429', count: 2 });
        t.sim.inject({ kind: 'throttle_17', count: 2 });
        t.sim.inject({ kind: 'throttle_613', count: 1 });
        t.sim.inject({ kind: 'timeout', count: 1 });
        t.sim.inject({ kind: 'timeout_after_accept', count: 1 });
        const all = ids('shop', 3_000);
        await produceOutbox(t.log, t.topics, 'shop', all);
        const f = await t.forwarder({ maxBatchSize: 500, requestTimeoutMs: 500 });
        await waitFor('every event', () => new Set(deliveredIds(t.sim, 'px')).size === all.length);
        await f.settled();
        assert.deepEqual(new Set(deliveredIds(t.sim, 'px')), new Set(all));
        const dups = t.sim.duplicates();
        // Only the batch whose answer was lost after Meta took it may arrive twice, under the same ids.
        assert.ok(dups.length <= 500, `${dups.length} re-sent events`);
        assert.ok(dups.every((d) => d.count === 2));
        const statuses = t.sim.requests().map((r) => r.status);
        assert.ok(statuses.filter((s) => s >= 500).length >= 3 && statuses.filter((s) => s === 429).length >= 2);
        assert.equal((await readDlq(t.log, t.topics, 0)).length, 0, 'nothing dead-lettered');
      } finally {
        await t.close();
      }
    });

    it('after a restart, events Meta acknowledged are not sent again, even behind a pixel that still fails', { timeout: 120_000 }, async () => {
      const t = await setup(kind);
      try {
        t.sim.addPixel('px-ok', 'token-ok');
        t.sim.addPixel('px-down', 'token-down');
        t.merchants.set('ok', merchant('ok', 'px-ok', 'token-ok'));
        t.merchants.set('down', merchant('down', 'px-down', 'token-down'));
        t.sim.inject({ kind: 'server_error', pixelId: 'px-down', count: 1_000_000 });
        // The failing merchant's events come first in every partition: the offsets cannot pass them.
        await produceOutbox(t.log, t.topics, 'down', ids('down', 100));
        await produceOutbox(t.log, t.topics, 'ok', ids('ok', 1_000));
        const first = await t.forwarder();
        await waitFor('the ok events', () => deliveredIds(t.sim, 'px-ok').length === 1_000);
        await new Promise((r) => setTimeout(r, 300)); // commits of the acknowledged ids (every 50 ms)
        await first.close(0);

        const second = await t.forwarder();
        await new Promise((r) => setTimeout(r, 1_000));
        assert.equal(deliveredIds(t.sim, 'px-ok').length, 1_000, 'no acknowledged event was sent again');
        assert.ok(second.pendingEvents >= 100 && second.pendingEvents < 1_000, 'the restart read the events behind the failing ones again, and skipped them');
        t.sim.clearFaults();
        await waitFor('the failing pixel to recover', () => deliveredIds(t.sim, 'px-down').length >= 100);
        await second.settled();
        assert.deepEqual(new Set(deliveredIds(t.sim, 'px-down')), new Set(ids('down', 100)));
        assert.deepEqual(t.sim.duplicates(), []);
      } finally {
        await t.close();
      }
    });

    it('dead letters: too old, retries exhausted, Meta disabled — each with its reason, nothing lost', { timeout: 120_000 }, async () => {
      const t = await setup(kind);
      try {
        t.sim.addPixel('px', 'token');
        t.merchants.set('old', merchant('old', 'px', 'token'));
        t.merchants.set('broken', merchant('broken', 'px-unknown', 'token'));
        t.merchants.set('gone', { ...merchant('gone', 'px', 'token'), meta: undefined } as Merchant);
        await produceOutbox(t.log, t.topics, 'old', ids('old', 5), 8 * 86_400_000);
        await produceOutbox(t.log, t.topics, 'broken', ids('broken', 20));
        await produceOutbox(t.log, t.topics, 'gone', ids('gone', 3));
        const f = await t.forwarder({ maxRetryMs: 300 });
        const dlq = await readDlq(t.log, t.topics, 28);
        await f.settled();
        const by = (code: string) => dlq.filter((d) => d.reason.code === code).map((d) => (d.event as { event_id: string }).event_id).sort();
        assert.deepEqual(by(CapiDlqCodes.TOO_OLD), ids('old', 5).sort());
        assert.deepEqual(by(CapiDlqCodes.RETRIES_EXHAUSTED), ids('broken', 20).sort());
        assert.deepEqual(by(CapiDlqCodes.DISABLED), ids('gone', 3).sort());
        assert.equal(dlq.length, 28);
        const exhausted = dlq.find((d) => d.reason.code === CapiDlqCodes.RETRIES_EXHAUSTED)!;
        assert.equal(exhausted.reason.meta?.error_subcode, 33, "Meta's error (unknown pixel) is kept");
        assert.ok(exhausted.attempts >= 2);
        assert.equal(t.sim.events().length, 0);
      } finally {
        await t.close();
      }
    });
  });
}
