/** The pipeline topology through the test driver: every rule of docs/pipeline.md. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Serdes } from '@shopstream/streams';
import { TopologyTestDriver } from '@shopstream/streams/testing';
import { checkEnvelope, hashUserAgent, rawRecordHeaders, type IngestContext } from '../../src/contract/index.ts';
import { MAX_HELD_PER_VISITOR, pipelineTopology, type PipelineEvent, type PipelineRejection } from '../../src/pipeline/topology.ts';
import { topicNames } from '../../src/topics.ts';

const T = topicNames();
const GRACE = 30_000;
const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const SAFARI_IOS = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

let seq = 0;
function message(visitor: string, at: number, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'track',
    event: 'Product Viewed',
    messageId: `m-${seq++}`,
    anonymousId: visitor,
    timestamp: new Date(at).toISOString(),
    properties: { product_id: 'sku-1', price: 19.99 },
    context: { userAgent: SAFARI_IOS, page: { url: 'https://shop.example/p/1?utm_source=google&utm_medium=cpc', referrer: 'https://www.google.com/' } },
    ...fields,
  };
}

function setup(options: { graceMs?: number; decisions?: string[]; commitEveryInput?: boolean } = {}) {
  const decisions = options.decisions;
  const onDecision = decisions ? (d: string) => void decisions.push(d) : null;
  const driver = new TopologyTestDriver(pipelineTopology(T, { graceMs: options.graceMs ?? GRACE, onDecision }), {
    wallClockMs: T0,
    commitEveryInput: options.commitEveryInput ?? true,
  });
  const raw = driver.createInputTopic(T.raw, Serdes.string(), Serdes.bytes());
  const validations = driver.createInputTopic(T.validations, Serdes.string(), Serdes.json<Record<string, unknown>>());
  const filtered = driver.createOutputTopic(T.filtered, Serdes.string(), Serdes.json<PipelineEvent>());
  const bots = driver.createOutputTopic(T.bots, Serdes.string(), Serdes.json<PipelineEvent>());
  const rejected = driver.createOutputTopic(T.rejected, Serdes.string(), Serdes.json<PipelineRejection>());
  /** Sends a message as the collector writes it: received at `receivedAt`, keyed by visitor. */
  const send = (m: Record<string, unknown>, receivedAt = Date.parse(String(m['timestamp'])), merchantId = 'shop') => {
    const ctx: IngestContext = { merchantId, defaultCurrency: 'EUR', receivedAt, requestIp: '203.0.113.9' };
    assert.ok(checkEnvelope(m, ctx).ok || m['event'] === 'Order Completed', 'the collector would accept it');
    // The collector's record time is receivedAt (its clock); the event time is in the message.
    raw.pipeInput(String(m['anonymousId']), Buffer.from(JSON.stringify(m)), receivedAt, rawRecordHeaders(ctx, undefined));
  };
  /** Sends a message as the collector writes one taken with a server write key (`shopstream.source: server`, no request IP). */
  const sendServer = (m: Record<string, unknown>, receivedAt = Date.parse(String(m['timestamp'])), merchantId = 'shop') => {
    const ctx: IngestContext = { merchantId, defaultCurrency: 'EUR', receivedAt };
    raw.pipeInput(String(m['anonymousId']), Buffer.from(JSON.stringify(m)), receivedAt, rawRecordHeaders(ctx, undefined, true, true, 'server'));
  };
  /** A beacon validation, by the browser whose user agent is `ua`. */
  const validate = (visitor: string, at: number, merchantId = 'shop', ua = SAFARI_IOS) =>
    validations.pipeInput(visitor, { v: 1, merchantId, anonymousId: visitor, validatedAt: at, validUntil: at + 30 * 86_400_000, tokenId: `tok-${seq++}`, uaHash: hashUserAgent(ua) }, at);
  const ids = (xs: Array<{ value: PipelineEvent | null }>) => xs.map((x) => x.value!.event.messageId);
  return { driver, send, sendServer, validate, filtered, bots, rejected, ids };
}

describe('pipeline topology', () => {
  it('passes an event of a validated visitor at once, parsed, enriched and sessionized', () => {
    const p = setup();
    p.validate('v1', T0 - 1000);
    const m = message('v1', T0);
    p.send(m);
    const [out] = p.filtered.readRecordsToList();
    assert.ok(out, 'the event is in events.filtered');
    assert.equal(out.key, 'v1');
    const e = out.value!;
    assert.equal(e.event.messageId, m['messageId']);
    assert.equal(e.event.event, 'Product Viewed');
    assert.equal((e.event.properties as { price: number }).price, 1999);
    assert.deepEqual(e.enrichment.device, { type: 'mobile', browser: 'Mobile Safari', os: 'iOS' });
    assert.equal(e.enrichment.trafficSource, 'paid');
    assert.deepEqual(e.session, { id: `v1:${T0}`, start: true, seq: 1 });
    assert.equal(e.bot, null);
    assert.equal(e.human, 'validated');
    assert.equal(p.bots.readRecordsToList().length, 0);
  });

  it('refuses a message that fails the contract into events.rejected, with the payload and the code', () => {
    const p = setup();
    const m = message('v1', T0, { event: 'Order Completed', properties: { order_id: 'o1', revenue: 'lots', currency: 'EUR' } });
    p.send(m, T0);
    const [r] = p.rejected.readRecordsToList();
    assert.equal(r!.value!.code, 'SHOP_ERR_INVALID_MONEY');
    assert.equal(r!.value!.stage, 'pipeline');
    assert.equal(r!.value!.merchantId, 'shop');
    assert.deepEqual(r!.value!.payload, m);
    assert.equal(p.filtered.readRecordsToList().length + p.bots.readRecordsToList().length, 0);
  });

  it('drops a duplicate message id within the window, and takes it again after the window', () => {
    const p = setup();
    p.validate('v1', T0 - 1000);
    const m = message('v1', T0);
    p.send(m);
    p.send({ ...m, timestamp: new Date(T0 + 3_600_000).toISOString() });
    assert.equal(p.filtered.readRecordsToList().length, 1);
    // 25 hours later (event time), the window of 24 h has passed.
    p.validate('v1', T0 + 25 * 3_600_000);
    p.send({ ...m, timestamp: new Date(T0 + 25 * 3_600_000).toISOString() });
    assert.equal(p.filtered.readRecordsToList().length, 1);
  });

  it('counts a re-sent order once, even under a new message id', () => {
    const p = setup();
    p.validate('v1', T0 - 1000);
    const order = message('v1', T0, { event: 'Order Completed', properties: { order_id: 'o-77', total: 50, currency: 'EUR' } });
    p.send(order);
    p.send({ ...order, messageId: 'a-new-id' });
    p.send(message('v1', T0 + 1, { event: 'Order Completed', properties: { order_id: 'o-78', total: 5, currency: 'EUR' } }));
    assert.deepEqual(
      p.filtered.readRecordsToList().map((r) => (r.value!.event as unknown as { properties: { order_id: string } }).properties.order_id),
      ['o-77', 'o-78'],
    );
  });

  it('classifies a user agent that isbot recognises as a bot at once, with the policy and reason', () => {
    const p = setup();
    p.send(message('crawler', T0, { context: { userAgent: GOOGLEBOT } }));
    const [b] = p.bots.readRecordsToList();
    assert.equal(b!.value!.bot!.reason, 'user_agent');
    assert.equal(b!.value!.bot!.policy, 'shopstream-bot-v1');
    assert.equal(b!.value!.bot!.thresholds.graceMs, GRACE);
    assert.equal(p.filtered.readRecordsToList().length, 0);
  });

  it('holds the events of a visitor not yet validated, and releases them in order when the validation arrives', () => {
    const p = setup();
    const ms = [message('v2', T0), message('v2', T0 + 1000, { type: 'page', event: undefined }), message('v2', T0 + 2000)];
    for (const m of ms) p.send(m);
    assert.equal(p.filtered.readRecordsToList().length + p.bots.readRecordsToList().length, 0, 'held');
    p.validate('v2', T0 + 5000);
    const out = p.filtered.readRecordsToList();
    assert.deepEqual(p.ids(out), ms.map((m) => m['messageId']));
    assert.ok(out.every((r) => r.value!.human === 'released'));
    // Later events pass at once.
    p.send(message('v2', T0 + 6000));
    assert.equal(p.filtered.readRecordsToList()[0]!.value!.human, 'validated');
  });

  it('classifies a held event as a bot exactly when the grace period has passed (stream time)', () => {
    const p = setup();
    const m = message('v3', T0);
    p.send(m);
    // Another visitor's traffic moves stream time to one millisecond before the deadline.
    p.validate('other', T0 + GRACE - 1);
    assert.equal(p.bots.readRecordsToList().length, 0, 'still held at deadline - 1');
    p.validate('other', T0 + GRACE);
    const [b] = p.bots.readRecordsToList();
    assert.equal(b!.value!.event.messageId, m['messageId']);
    assert.equal(b!.value!.bot!.reason, 'not_validated');
    // A validation after the deadline comes too late for that event, but counts for the next ones.
    p.validate('v3', T0 + GRACE + 10);
    assert.equal(p.filtered.readRecordsToList().length, 0);
    p.send(message('v3', T0 + GRACE + 20));
    assert.equal(p.filtered.readRecordsToList().length, 1);
  });

  it('expires an event held after checks that found nothing due, and one held behind a released event, each exactly at its deadline', () => {
    const p = setup();
    // Stream time runs for a minute with nothing held: the expiry check runs and finds nothing.
    for (let t = 0; t <= 60_000; t += 10_000) p.validate('other', T0 + t);
    const m = message('v3b', T0 + 61_000);
    p.send(m);
    p.validate('other', T0 + 61_000 + GRACE - 1);
    assert.equal(p.bots.readRecordsToList().length, 0, 'still held at deadline - 1');
    p.validate('other', T0 + 61_000 + GRACE);
    assert.deepEqual(p.ids(p.bots.readRecordsToList()), [m['messageId']]);
    // An earlier deadline is released by its validation; a later one still expires on time.
    const t1 = T0 + 200_000;
    p.send(message('v3c', t1));
    const late = message('v3d', t1 + 5_000);
    p.send(late);
    p.validate('v3c', t1 + 6_000);
    assert.equal(p.filtered.readRecordsToList().length, 1);
    p.validate('other', t1 + 5_000 + GRACE - 1);
    assert.equal(p.bots.readRecordsToList().length, 0);
    p.validate('other', t1 + 5_000 + GRACE);
    assert.deepEqual(p.ids(p.bots.readRecordsToList()), [late['messageId']]);
  });

  it('expires each held event at its deadline when many expiry checks run within one commit interval (a backlog), a late arrival with an earlier deadline too', () => {
    // One commit for the whole test: the index keys that each check deletes stay in the store's
    // write buffer as deletions while the next checks run.
    const p = setup({ commitEveryInput: false });
    const held = [0, 1, 2, 3, 4].map((k) => message(`w${k}`, T0 + k * 5_000));
    for (const m of held) p.send(m);
    for (const [k, m] of held.entries()) {
      const deadline = T0 + k * 5_000 + GRACE;
      p.validate('other', deadline - 1);
      assert.equal(p.bots.readRecordsToList().length, 0, `w${k} still held at its deadline - 1`);
      p.validate('other', deadline);
      assert.deepEqual(p.ids(p.bots.readRecordsToList()), [m['messageId']], `w${k} a bot at its deadline`);
    }
    // Stream time is now T0 + 20 s + GRACE. A held event due later, then a late one (arrived 10 s
    // behind stream time) whose deadline comes first: each expires at its own deadline.
    const now = T0 + 20_000 + GRACE;
    const later = message('w5', now);
    p.send(later, now + 5_000);
    const late = message('w6', now - 10_000);
    p.send(late, now - 10_000);
    p.validate('other', now + GRACE - 10_000 - 1);
    assert.equal(p.bots.readRecordsToList().length, 0);
    p.validate('other', now + GRACE - 10_000);
    assert.deepEqual(p.ids(p.bots.readRecordsToList()), [late['messageId']]);
    p.validate('other', now + 5_000 + GRACE - 1);
    assert.equal(p.bots.readRecordsToList().length, 0);
    p.validate('other', now + 5_000 + GRACE);
    assert.deepEqual(p.ids(p.bots.readRecordsToList()), [later['messageId']]);
  });

  it('keeps a visitor order: an event never overtakes one still held', () => {
    const p = setup();
    p.send(message('v4', T0));
    p.validate('v4', T0 + GRACE + 5); // too late for the first: it expires first (stream time passes its deadline)
    const first = p.bots.readRecordsToList();
    assert.equal(first.length, 1);
    const m2 = message('v4', T0 + GRACE + 6);
    p.send(m2);
    assert.deepEqual(p.ids(p.filtered.readRecordsToList()), [m2['messageId']]);
  });

  it('expires held events by the wall clock when input stops', () => {
    const p = setup();
    p.send(message('v5', T0));
    p.driver.advanceWallClockTime(GRACE - 1000);
    assert.equal(p.bots.readRecordsToList().length, 0);
    p.driver.advanceWallClockTime(2000);
    assert.equal(p.bots.readRecordsToList().length, 1);
  });

  it('measures the grace period on arrival time, not on the event time a client sent', () => {
    const p = setup();
    // An event from a client whose clock is an hour behind arrives at T0; its validation at T0 + 5 s.
    p.send(message('v7', T0 - 3_600_000), T0);
    p.validate('v7', T0 + 5_000);
    assert.equal(p.filtered.readRecordsToList().length, 1);
    assert.equal(p.bots.readRecordsToList().length, 0);
  });

  it('sessionizes: 30 minutes of inactivity start a new session; a client session id wins', () => {
    const p = setup();
    p.validate('v6', T0 - 1);
    p.send(message('v6', T0));
    p.send(message('v6', T0 + 29 * 60_000));
    p.send(message('v6', T0 + 60 * 60_000)); // 31 min after the previous one
    p.send(message('v6', T0 + 61 * 60_000, { context: { userAgent: SAFARI_IOS, sessionId: 's-client' } }));
    p.send(message('v6', T0 + 62 * 60_000, { context: { userAgent: SAFARI_IOS, sessionId: 's-client' } }));
    const s = p.filtered.readRecordsToList().map((r) => r.value!.session);
    assert.deepEqual(s, [
      { id: `v6:${T0}`, start: true, seq: 1 },
      { id: `v6:${T0}`, start: false, seq: 2 },
      { id: `v6:${T0 + 60 * 60_000}`, start: true, seq: 1 },
      { id: 's-client', start: true, seq: 1 },
      { id: 's-client', start: false, seq: 2 },
    ]);
  });

  it('keeps a visitor order behind a held event: a crawler user agent waits its turn', () => {
    const p = setup();
    const e1 = message('v8', T0);
    const e2 = message('v8', T0 + 10, { context: { userAgent: GOOGLEBOT } });
    p.send(e1);
    p.send(e2);
    assert.equal(p.bots.readRecordsToList().length, 0, 'the crawler event waits behind the held one');
    p.validate('other', T0 + GRACE);
    assert.deepEqual(
      p.bots.readRecordsToList().map((r) => [r.value!.event.messageId, r.value!.bot!.reason]),
      [
        [e1['messageId'], 'not_validated'],
        [e2['messageId'], 'user_agent'],
      ],
    );
  });

  it('releases a validated merchant events queued behind another merchant held event, once that one is decided', () => {
    const p = setup();
    const a1 = message('shared', T0);
    const b1 = message('shared', T0 + 10);
    const b2 = message('shared', T0 + 20);
    p.send(a1, T0, 'shop-a');
    p.send(b1, T0 + 10, 'shop-b');
    p.validate('shared', T0 + 15, 'shop-b');
    assert.equal(p.filtered.readRecordsToList().length, 0, 'b1 waits behind a1');
    p.send(b2, T0 + 20, 'shop-b');
    p.validate('other', T0 + GRACE);
    assert.deepEqual(p.ids(p.bots.readRecordsToList()), [a1['messageId']]);
    assert.deepEqual(p.ids(p.filtered.readRecordsToList()), [b1['messageId'], b2['messageId']]);
  });

  it('bounds the events one visitor may have waiting: beyond, the oldest are decided as bots', () => {
    const p = setup();
    const ms = Array.from({ length: MAX_HELD_PER_VISITOR + 2 }, (_, i) => message('flood', T0 + i));
    for (const m of ms) p.send(m);
    assert.deepEqual(p.ids(p.bots.readRecordsToList()), [ms[0]!['messageId'], ms[1]!['messageId']]);
    p.validate('flood', T0 + 1000);
    assert.equal(p.filtered.readRecordsToList().length, MAX_HELD_PER_VISITOR);
  });

  it('binds a validation to the browser that passed the beacon: another user agent waits for its own', () => {
    const p = setup();
    const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
    p.validate('v9', T0 - 1000); // by the Safari on iOS of message()
    const same = message('v9', T0);
    const other = message('v9', T0 + 10, { context: { userAgent: CHROME } });
    const server = message('v9', T0 + 20, { context: { library: { name: 'analytics-node', version: '3' } } });
    p.send(same);
    assert.deepEqual(p.ids(p.filtered.readRecordsToList()), [same['messageId']]);
    p.send(other);
    p.send(server); // queued behind the held Chrome event
    assert.equal(p.filtered.readRecordsToList().length, 0, 'the Chrome event waits for a validation by Chrome');
    p.validate('v9', T0 + 30, 'shop', CHROME);
    assert.deepEqual(p.ids(p.filtered.readRecordsToList()), [other['messageId'], server['messageId']], 'then both pass, in order; a server-side event without a user agent needs no browser match');
  });

  it('does not let one merchant validation release another merchant events', () => {
    const p = setup();
    p.send(message('shared-id', T0), T0, 'shop-a');
    p.validate('shared-id', T0 + 10, 'shop-b');
    assert.equal(p.filtered.readRecordsToList().length, 0);
    p.validate('shared-id', T0 + 20, 'shop-a');
    assert.equal(p.filtered.readRecordsToList().length, 1);
  });

  describe('server sources (server write keys)', () => {
    /** An order sent by the merchant's backend: no browser user agent, or the shopper's. */
    const order = (visitor: string, at: number, id: string, fields: Record<string, unknown> = {}) =>
      message(visitor, at, { event: 'Order Completed', properties: { order_id: id, total: 42, currency: 'EUR' }, context: {}, ...fields });

    it('passes a never-validated visitor event at once, as human trusted_source, without waiting for the grace period', () => {
      const decisions: string[] = [];
      const p = setup({ decisions });
      const m = order('import-1', T0, 'o-1');
      p.sendServer(m);
      const out = p.filtered.readRecordsToList();
      assert.deepEqual(p.ids(out), [m['messageId']], 'in events.filtered on arrival, stream time has not moved');
      assert.equal(out[0]!.value!.human, 'trusted_source');
      assert.equal(out[0]!.value!.bot, null);
      assert.deepEqual(decisions, ['human_trusted_source']);
      // Nothing is held for it: the grace period passing decides nothing more.
      p.driver.advanceWallClockTime(2 * GRACE);
      p.validate('other', T0 + 2 * GRACE);
      assert.equal(p.bots.readRecordsToList().length, 0);
      assert.equal(p.filtered.readRecordsToList().length, 0);
      // The same visitor's later server events pass at once too (no validation was needed or made).
      const m2 = order('import-1', T0 + 3 * GRACE, 'o-2');
      p.sendServer(m2);
      assert.deepEqual(p.ids(p.filtered.readRecordsToList()), [m2['messageId']]);
    });

    it('keeps the source in the pipeline only from the header: the same message without it is held, then a bot', () => {
      const p = setup();
      p.send(order('import-2', T0, 'o-3'));
      assert.equal(p.filtered.readRecordsToList().length, 0, 'held');
      p.validate('other', T0 + GRACE);
      assert.equal(p.bots.readRecordsToList()[0]!.value!.bot!.reason, 'not_validated');
    });

    it('classifies a server event whose context user agent isbot recognises as a bot', () => {
      const decisions: string[] = [];
      const p = setup({ decisions });
      const m = order('import-3', T0, 'o-4', { context: { userAgent: GOOGLEBOT } });
      p.sendServer(m);
      const [b] = p.bots.readRecordsToList();
      assert.equal(b!.value!.event.messageId, m['messageId']);
      assert.equal(b!.value!.bot!.reason, 'user_agent');
      assert.equal(b!.value!.human, null);
      assert.equal(p.filtered.readRecordsToList().length, 0);
      assert.deepEqual(decisions, ['bot_user_agent']);
    });

    it("passes a server event carrying the shopper's browser user agent, unvalidated", () => {
      const p = setup();
      p.sendServer(order('import-4', T0, 'o-5', { context: { userAgent: SAFARI_IOS } }));
      const [out] = p.filtered.readRecordsToList();
      assert.equal(out!.value!.human, 'trusted_source');
      assert.deepEqual(out!.value!.enrichment.device, { type: 'mobile', browser: 'Mobile Safari', os: 'iOS' });
    });

    it('does not overtake held browser events: it comes out after them once they are released', () => {
      const decisions: string[] = [];
      const p = setup({ decisions });
      const b1 = message('v10', T0);
      const b2 = message('v10', T0 + 100, { type: 'page', event: undefined });
      const s1 = order('v10', T0 + 200, 'o-6');
      const b3 = message('v10', T0 + 300);
      p.send(b1);
      p.send(b2);
      p.sendServer(s1);
      assert.equal(p.filtered.readRecordsToList().length + p.bots.readRecordsToList().length, 0, 'the server event waits behind the held ones');
      p.send(b3);
      p.validate('v10', T0 + 1000);
      const out = p.filtered.readRecordsToList();
      assert.deepEqual(p.ids(out), [b1, b2, s1, b3].map((m) => m['messageId']));
      assert.deepEqual(out.map((r) => r.value!.human), ['released', 'released', 'trusted_source', 'released']);
      assert.equal(p.bots.readRecordsToList().length, 0);
      assert.deepEqual(decisions, ['held', 'held', 'human_trusted_source', 'held', 'human_released', 'human_released', 'human_released']);
    });

    it('does not overtake held browser events: it comes out after them once they expire as bots', () => {
      const p = setup();
      const b1 = message('v11', T0);
      const s1 = order('v11', T0 + 200, 'o-7');
      const s2 = order('v11', T0 + 300, 'o-8');
      p.send(b1);
      p.sendServer(s1);
      p.sendServer(s2);
      assert.equal(p.filtered.readRecordsToList().length, 0);
      p.validate('other', T0 + GRACE - 1);
      assert.equal(p.filtered.readRecordsToList().length + p.bots.readRecordsToList().length, 0, 'still held at deadline - 1');
      // Stream time passes the held event's deadline: it is a bot, then the server events follow, human.
      p.validate('other', T0 + GRACE);
      assert.deepEqual(p.ids(p.bots.readRecordsToList()), [b1['messageId']]);
      const out = p.filtered.readRecordsToList();
      assert.deepEqual(p.ids(out), [s1['messageId'], s2['messageId']]);
      assert.ok(out.every((r) => r.value!.human === 'trusted_source'));
    });

    it('expires held events by the wall clock, and then emits the server event queued behind them', () => {
      const p = setup();
      const b1 = message('v12', T0);
      const s1 = order('v12', T0 + 10, 'o-9');
      p.send(b1);
      p.sendServer(s1);
      p.driver.advanceWallClockTime(GRACE + 2000);
      assert.deepEqual(p.ids(p.bots.readRecordsToList()), [b1['messageId']]);
      assert.deepEqual(p.ids(p.filtered.readRecordsToList()), [s1['messageId']]);
    });

    it('keeps a trusted event human when the per-visitor cap pushes it out of the queue', () => {
      const p = setup();
      const first = message('flood2', T0);
      const s1 = order('flood2', T0 + 1, 'o-10');
      p.send(first);
      p.sendServer(s1);
      const rest = Array.from({ length: MAX_HELD_PER_VISITOR }, (_, i) => message('flood2', T0 + 2 + i));
      for (const m of rest) p.send(m);
      assert.deepEqual(p.ids(p.bots.readRecordsToList()), [first['messageId']]);
      const out = p.filtered.readRecordsToList();
      assert.deepEqual(p.ids(out), [s1['messageId']]);
      assert.equal(out[0]!.value!.human, 'trusted_source');
    });
  });
});
