/**
 * The capi topology through the test driver: identify traits joined into later events of the same
 * visitor and of the same user on another device, the event's own traits first, merchants without
 * Meta skipped, events not forwarded ignored, the 7-day rule to capi.dlq, and the outbox record
 * format the forwarder reads (headers, the server event as JSON).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Serdes } from '@shopstream/streams';
import { TopologyTestDriver } from '@shopstream/streams/testing';
import { normalizeEvent, type IngestContext } from '../../src/contract/index.ts';
import { capiTopology } from '../../src/capi/topology.ts';
import { CAPI_HEADERS, CapiDlqCodes, type CapiDlqRecord } from '../../src/capi/outbox.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import { topicNames } from '../../src/topics.ts';

const T = topicNames();
const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
const UA = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let seq = 0;
/** A PipelineEvent as the pipeline writes it to events.filtered. */
function filtered(message: Record<string, unknown>, merchantId = 'shop', at = NOW - 60_000): PipelineEvent {
  const ctx: IngestContext = { merchantId, defaultCurrency: 'EUR', receivedAt: at + 1000, requestIp: '203.0.113.9' };
  const r = normalizeEvent({ messageId: `m-${seq++}`, timestamp: new Date(at).toISOString(), context: { userAgent: UA, page: { url: 'https://shop.example/p/1' } }, ...message }, ctx);
  assert.ok(r.ok, JSON.stringify(r));
  return {
    v: 1,
    event: r.event,
    enrichment: { device: { type: 'mobile', browser: 'Safari', os: 'iOS' }, trafficSource: 'direct', country: 'FR' } as unknown as PipelineEvent['enrichment'],
    session: { id: 's1', start: false, seq: 2 },
    bot: null,
    human: 'validated',
  };
}

function setup(enabled = new Set(['shop'])) {
  const outcomes: string[] = [];
  const driver = new TopologyTestDriver(
    capiTopology(T, { metaEnabled: (id) => enabled.has(id), now: () => NOW, onEvent: (m, o) => void outcomes.push(`${m}:${o}`) }),
    { wallClockMs: NOW },
  );
  const input = driver.createInputTopic(T.filtered, Serdes.string(), Serdes.json<PipelineEvent>());
  const outbox = driver.createOutputTopic(T.capiOutbox, Serdes.string(), Serdes.json<Record<string, unknown>>());
  const dlq = driver.createOutputTopic(T.capiDlq, Serdes.string(), Serdes.json<CapiDlqRecord>());
  const send = (pe: PipelineEvent) => input.pipeInput(pe.event.visitorId, pe, pe.event.receivedAt);
  return { driver, send, outbox, dlq, outcomes };
}

describe('capi topology', () => {
  it('writes a server event per forwarded event, with the headers the forwarder reads', () => {
    const t = setup();
    const pe = filtered({ type: 'track', event: 'Product Viewed', anonymousId: 'a1', properties: { product_id: 'sku-1', price: 19.99, currency: 'EUR' } });
    t.send(pe);
    const [r, ...rest] = t.outbox.readRecordsToList();
    assert.equal(rest.length, 0);
    assert.equal(r!.key, 'v:shop:a1');
    const headers = Object.fromEntries(r!.headers.map(([k, v]) => [k, v.toString('utf8')]));
    assert.deepEqual(headers, { [CAPI_HEADERS.merchant]: 'shop', [CAPI_HEADERS.eventId]: pe.event.messageId, [CAPI_HEADERS.eventTime]: String(pe.event.timestamp) });
    assert.equal(r!.value!['event_name'], 'ViewContent');
    assert.equal(r!.value!['event_id'], pe.event.messageId);
    assert.equal(r!.value!['event_time'], Math.floor(pe.event.timestamp / 1000));
    assert.deepEqual(t.outcomes, ['shop:outbox']);
  });

  it("joins the latest identify into later events of the visitor, and of the user on any device; the event's own traits win", () => {
    const t = setup();
    t.send(filtered({ type: 'identify', anonymousId: 'a1', userId: 'u-42', traits: { email: 'Jane.Doe@Example.com', firstName: 'Jane' } }));
    t.send(filtered({ type: 'identify', anonymousId: 'a1', userId: 'u-42', traits: { phone: '+33 6 12 34 56 78' } }));
    // Same browser, no user id: matched through the visitor.
    t.send(filtered({ type: 'page', anonymousId: 'a1', properties: { path: '/' } }));
    // Another device, with the user id: matched through the user.
    t.send(filtered({ type: 'track', event: 'Product Added', anonymousId: 'b9', userId: 'u-42', properties: { product_id: 'sku-2', price: 5, currency: 'EUR' } }));
    // Its own traits first.
    t.send(filtered({ type: 'track', event: 'Products Searched', anonymousId: 'a1', properties: { query: 'shoes' }, context: { userAgent: UA, traits: { email: 'other@example.com' } } }));
    // A stranger: no traits.
    t.send(filtered({ type: 'page', anonymousId: 'zz', properties: { path: '/' } }));
    const out = t.outbox.readRecordsToList().map((r) => ({ key: r.key, name: r.value!['event_name'], user: r.value!['user_data'] as Record<string, unknown> }));
    assert.deepEqual(out.map((o) => [o.key, o.name]), [
      ['v:shop:a1', 'PageView'],
      ['u:shop:u-42', 'AddToCart'],
      ['v:shop:a1', 'Search'],
      ['v:shop:zz', 'PageView'],
    ]);
    const jane = sha('jane.doe@example.com');
    assert.equal(out[0]!.user['em'], jane);
    assert.equal(out[0]!.user['fn'], sha('jane'));
    assert.ok(out[0]!.user['ph'] !== undefined, 'the second identify added the phone');
    assert.equal(out[0]!.user['external_id'], sha('u-42'), 'the user id of the identify becomes external_id');
    assert.equal(out[1]!.user['external_id'], sha('u-42'));
    assert.equal(out[1]!.user['em'], jane);
    assert.equal(out[2]!.user['em'], sha('other@example.com'));
    assert.equal(out[3]!.user['em'], undefined);
    assert.equal(out[3]!.user['client_user_agent'], UA);
    // No value of user_data other than the pass-through fields is readable.
    for (const o of out) {
      for (const [k, v] of Object.entries(o.user)) {
        if (['client_ip_address', 'client_user_agent', 'fbc', 'fbp'].includes(k)) continue;
        for (const x of Array.isArray(v) ? v : [v]) assert.match(String(x), /^[0-9a-f]{64}$/, `${k} is hashed`);
      }
    }
  });

  it('skips merchants without Meta and events Meta does not take', () => {
    const t = setup(new Set(['shop']));
    t.send(filtered({ type: 'track', event: 'Product Viewed', anonymousId: 'a1', properties: { product_id: 'sku-1', currency: 'EUR' } }, 'other-shop'));
    t.send(filtered({ type: 'track', event: 'Cart Viewed', anonymousId: 'a1', properties: { products: [], currency: 'EUR' } }));
    t.send(filtered({ type: 'track', event: 'Product Removed', anonymousId: 'a1', properties: { product_id: 'sku-1', currency: 'EUR' } }));
    assert.equal(t.outbox.isEmpty(), true);
    assert.equal(t.dlq.isEmpty(), true);
    assert.deepEqual(t.outcomes, ['other-shop:skipped']);
  });

  it('sends an event older than 7 days to capi.dlq with its reason, never to the outbox', () => {
    const t = setup();
    const old = filtered({ type: 'track', event: 'Order Completed', anonymousId: 'a1', properties: { order_id: 'o-1', total: 30, currency: 'EUR', products: [{ product_id: 'sku-1', price: 30, quantity: 1 }] } }, 'shop', NOW - 8 * 86_400_000);
    const fresh = filtered({ type: 'track', event: 'Order Completed', anonymousId: 'a1', properties: { order_id: 'o-2', total: 30, currency: 'EUR', products: [{ product_id: 'sku-1', price: 30, quantity: 1 }] } }, 'shop', NOW - 6 * 86_400_000);
    t.send(old);
    t.send(fresh);
    const dlq = t.dlq.readRecordsToList();
    assert.equal(dlq.length, 1);
    const d = dlq[0]!.value!;
    assert.equal(d.reason.code, CapiDlqCodes.TOO_OLD);
    assert.match(d.reason.message, /192 hours old/);
    assert.equal(d.merchantId, 'shop');
    assert.equal(d.eventTimeMs, old.event.timestamp);
    assert.equal((d.event as Record<string, unknown>)['event_id'], old.event.messageId);
    assert.deepEqual(t.outbox.readRecordsToList().map((r) => r.value!['event_id']), [fresh.event.messageId]);
    assert.deepEqual(t.outcomes, ['shop:too_old', 'shop:outbox']);
  });
});
