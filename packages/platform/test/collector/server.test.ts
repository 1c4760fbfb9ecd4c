/**
 * The collector's ingest routes on the embedded log, through app.inject (no socket): every answer
 * of docs/api.md, and the invariant that every event of a 200 is in events.raw or events.rejected.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { ErrorCodes, StreamsError, type Log, type LogProducer } from '@shopstream/streams';
import { canonical, capturingLogger, json, readAll, type LogKind } from '../helpers.ts';
import { normalizeRawRecord } from '../../src/contract/index.ts';
import { basic, collectorFixture, trackMessage, type CollectorFixture } from './fixture.ts';

const kind: LogKind = 'embedded';

describe('collector routes (embedded log)', () => {
  let f: CollectorFixture;
  let captured: ReturnType<typeof capturingLogger>;
  before(async () => {
    captured = capturingLogger();
    f = await collectorFixture(kind, { logger: captured.logger });
  });
  after(() => f.close());

  const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    f.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', ...headers },
      payload: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });

  it('accepts a batch with Basic auth and writes each event to events.raw keyed by visitor', async () => {
    const batch = [trackMessage(), trackMessage({ anonymousId: 'visitor-xyz' }), trackMessage({ type: 'page', event: undefined, name: 'Home', properties: {} })];
    const res = await post('/v1/batch', { batch, sentAt: new Date().toISOString() }, { authorization: basic(f.shopA.writeKeys[0]!) });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { success: true });
    const raw = await readAll(f.log, f.topics.raw);
    const mine = raw.filter((r) => batch.some((m) => m['messageId'] === canonical(r)['messageId']));
    assert.equal(mine.length, 3);
    for (const r of mine) {
      const e = canonical(r);
      assert.equal(e['merchantId'], f.shopA.id);
      assert.equal(r.key!.toString(), e['visitorId']);
    }
    const xyz = mine.find((r) => canonical(r)['anonymousId'] === 'visitor-xyz')!;
    assert.equal(xyz.key!.toString(), 'visitor-xyz');
    // Each value is the event's bytes as the client sent them; the request's facts are headers.
    for (const r of mine) {
      const sentEvent = batch.find((m) => m['messageId'] === canonical(r)['messageId'])!;
      assert.equal(r.value!.toString(), JSON.stringify(sentEvent));
      assert.equal(r.headers.find(([h]) => h === 'shopstream.merchant')?.[1].toString(), f.shopA.id);
    }
  });

  it('never writes a write key found inside an event to the log', async () => {
    const m: Record<string, unknown> = { ...trackMessage(), writeKey: f.shopA.writeKeys[0] };
    const res = await post('/v1/batch', { batch: [m, { ...m, messageId: undefined }], writeKey: f.shopA.writeKeys[0] });
    assert.equal(res.statusCode, 200, res.body);
    const raw = (await readAll(f.log, f.topics.raw)).filter((r) => json(r)['messageId'] === m['messageId']);
    assert.equal(raw.length, 1);
    assert.ok(!raw[0]!.value!.toString().includes(f.shopA.writeKeys[0]!));
    const rejected = await readAll(f.log, f.topics.rejected);
    assert.ok(rejected.length > 0 && rejected.every((r) => !r.value!.toString().includes(f.shopA.writeKeys[0]!)));
  });

  it('takes the write key from the body, and the single-event routes imply the type', async () => {
    const m = trackMessage();
    delete m['type'];
    const res = await post('/v1/t', { ...m, writeKey: f.shopB.writeKeys[0] });
    assert.equal(res.statusCode, 200, res.body);
    const page = await post('/v1/p', { messageId: `p-${Date.now()}`, anonymousId: 'v-page', name: 'Shoes', writeKey: f.shopB.writeKeys[0] });
    assert.equal(page.statusCode, 200, page.body);
    const ident = await post('/v1/identify', { messageId: `i-${Date.now()}`, userId: 'u-1', traits: { email: 'a@b.c' } }, { authorization: basic(f.shopB.writeKeys[0]!) });
    assert.equal(ident.statusCode, 200, ident.body);
    const raw = (await readAll(f.log, f.topics.raw)).map(canonical);
    const t = raw.find((e) => e['messageId'] === m['messageId'])!;
    assert.equal(t['merchantId'], f.shopB.id);
    assert.equal(t['type'], 'track');
    assert.equal(raw.find((e) => e['anonymousId'] === 'v-page')!['event'], 'Page Viewed');
    const i = raw.find((e) => e['userId'] === 'u-1')!;
    assert.equal(i['event'], 'Identify');
    assert.equal(i['visitorId'], 'user:u-1');
  });

  it('drops a UTF-8 byte order mark, so that the bytes kept are plain JSON', async () => {
    const m = trackMessage();
    const res = await post('/v1/track', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(m))]), { authorization: basic(f.shopA.writeKeys[0]!) });
    assert.equal(res.statusCode, 200, res.body);
    const raw = (await readAll(f.log, f.topics.raw)).filter((r) => r.value![0] !== 0x7b || json(r)['messageId'] === m['messageId']);
    assert.equal(raw.length, 1);
    assert.equal(canonical(raw[0]!)['messageId'], m['messageId']);
  });

  it('accepts gzip bodies and refuses other encodings with 415', async () => {
    const m = trackMessage();
    const res = await post('/v1/batch', gzipSync(JSON.stringify({ batch: [m] })), { authorization: basic(f.shopA.writeKeys[0]!), 'content-encoding': 'gzip' });
    assert.equal(res.statusCode, 200, res.body);
    const br = await post('/v1/batch', Buffer.from('xx'), { authorization: basic(f.shopA.writeKeys[0]!), 'content-encoding': 'br' });
    assert.equal(br.statusCode, 415);
    assert.equal(br.json().error.code, 'SHOP_ERR_UNSUPPORTED_ENCODING');
  });

  it('accepts text/plain bodies (analytics.js avoids CORS preflights) and answers preflights', async () => {
    const res = await post('/v1/b', JSON.stringify({ batch: [trackMessage()], writeKey: f.shopA.writeKeys[0] }), { 'content-type': 'text/plain' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    const pre = await f.app.inject({ method: 'OPTIONS', url: '/v1/batch', headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.statusCode, 204);
    assert.match(String(pre.headers['access-control-allow-headers']), /Authorization/);
  });

  describe('request-level refusals write nothing and carry a code', () => {
    const cases: Array<[string, () => Promise<{ statusCode: number; json: () => { error: { code: string } } }>, number, string]> = [
      ['malformed JSON', () => post('/v1/batch', '{"batch": [', { authorization: basic('x') }), 400, 'SHOP_ERR_INVALID_JSON'],
      ['non-UTF-8 body', () => post('/v1/batch', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), {}), 400, 'SHOP_ERR_INVALID_UTF8'],
      ['empty body', () => post('/v1/batch', '', {}), 400, 'SHOP_ERR_INVALID_REQUEST'],
      ['no body, no content type', () => f.app.inject({ method: 'POST', url: '/v1/batch' }), 400, 'SHOP_ERR_INVALID_REQUEST'],
      ['no body on a single-event route', () => f.app.inject({ method: 'POST', url: '/v1/t', headers: { 'content-length': '0' } }), 400, 'SHOP_ERR_INVALID_REQUEST'],
      ['batch that is not an array', () => post('/v1/batch', { batch: {} }, {}), 401, 'SHOP_ERR_UNAUTHORIZED'],
    ];
    for (const [name, send, status, code] of cases) {
      it(name, async () => {
        const res = await send();
        assert.equal(res.statusCode, status);
        assert.equal(res.json().error.code, code);
      });
    }

    it('a batch body without a batch array, with a good key', async () => {
      const res = await post('/v1/batch', { events: [] }, { authorization: basic(f.shopA.writeKeys[0]!) });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error.code, 'SHOP_ERR_INVALID_REQUEST');
    });

    it('an oversized batch (> 500 KB), compressed or not', async () => {
      const big = { batch: [trackMessage({ properties: { name: 'x'.repeat(600 * 1024) } })] };
      const res = await post('/v1/batch', big, { authorization: basic(f.shopA.writeKeys[0]!) });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error.code, 'SHOP_ERR_REQUEST_TOO_LARGE');
      const gz = await post('/v1/batch', gzipSync(JSON.stringify(big)), { authorization: basic(f.shopA.writeKeys[0]!), 'content-encoding': 'gzip' });
      assert.equal(gz.statusCode, 400);
      assert.equal(gz.json().error.code, 'SHOP_ERR_REQUEST_TOO_LARGE');
    });

    it('more than 2,500 events in a batch', async () => {
      const batch = Array.from({ length: 2501 }, () => ({ type: 'track', event: 'Product Viewed', anonymousId: 'a', messageId: 'm' }));
      const res = await post('/v1/batch', { batch }, { authorization: basic(f.shopA.writeKeys[0]!) });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error.code, 'SHOP_ERR_BATCH_TOO_LARGE');
    });

    it('JSON nested deeper than 64 levels, in a batch or a single event', async () => {
      const deep = '['.repeat(6000) + ']'.repeat(6000);
      const batch = `{"batch":[{"type":"track","event":"Product Viewed","messageId":"deep","anonymousId":"a","properties":{"x":${deep}}}]}`;
      const res = await post('/v1/batch', batch, { authorization: basic(f.shopA.writeKeys[0]!) });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error.code, 'SHOP_ERR_INVALID_REQUEST');
      const one = await post('/v1/track', `{"event":"Nope","messageId":"deep","anonymousId":"a","properties":{"x":${'['.repeat(100) + ']'.repeat(100)}}}`, { authorization: basic(f.shopA.writeKeys[0]!) });
      assert.equal(one.statusCode, 400);
    });

    it('a batch-level context or sentAt over 8 KB (copied onto every event)', async () => {
      const res = await post('/v1/batch', { batch: [trackMessage()], context: { blob: 'x'.repeat(9000) } }, { authorization: basic(f.shopA.writeKeys[0]!) });
      assert.equal(res.statusCode, 400);
      assert.match(res.json().error.message, /context/);
    });

    it('a single event over 32 KB on a single-event route', async () => {
      const res = await post('/v1/track', trackMessage({ properties: { name: 'x'.repeat(40 * 1024) } }), { authorization: basic(f.shopA.writeKeys[0]!) });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error.code, 'SHOP_ERR_EVENT_TOO_LARGE');
    });

    it('wrong, rotated and foreign write keys get 401 with a message that says which', async () => {
      const missing = await post('/v1/batch', { batch: [trackMessage()] });
      assert.equal(missing.statusCode, 401);
      assert.match(missing.json().error.message, /No write key/);
      const wrong = await post('/v1/batch', { batch: [trackMessage()] }, { authorization: basic('wk_not_a_key_at_all') });
      assert.equal(wrong.statusCode, 401);
      assert.match(wrong.json().error.message, /Unknown write key/);
      const rotated = await post('/v1/batch', { batch: [trackMessage()] }, { authorization: basic(f.shopA.revokedWriteKeys[0]!) });
      assert.equal(rotated.statusCode, 401);
      assert.match(rotated.json().error.message, /rotated/);
      // A key of another Shopstream installation (another deployment's merchant) is unknown here.
      const foreign = await post('/v1/batch', { batch: [trackMessage()], writeKey: 'wk_foreign_installation_key' });
      assert.equal(foreign.statusCode, 401);
      assert.equal(foreign.json().error.code, 'SHOP_ERR_UNAUTHORIZED');
    });
  });

  it('refuses bad events one by one into events.rejected with their reason, and accepts the rest', async () => {
    const good = trackMessage();
    const now = Date.now();
    const bad: Array<[Record<string, unknown>, string]> = [
      [trackMessage({ messageId: undefined }), 'SHOP_ERR_MISSING_MESSAGE_ID'],
      [trackMessage({ anonymousId: undefined, userId: undefined }), 'SHOP_ERR_MISSING_IDENTITY'],
      [trackMessage({ properties: 'not an object' }), 'SHOP_ERR_EVENT_SCHEMA'],
      [trackMessage({ event: 'Spaceship Launched' }), 'SHOP_ERR_UNKNOWN_EVENT'],
      [trackMessage({ timestamp: new Date(now + 3 * 24 * 3600_000).toISOString(), sentAt: undefined }), 'SHOP_ERR_TIMESTAMP_FUTURE'],
      [trackMessage({ timestamp: new Date(now - 400 * 24 * 3600_000).toISOString(), sentAt: undefined }), 'SHOP_ERR_TIMESTAMP_PAST'],
      [trackMessage({ timestamp: 'yesterday-ish' }), 'SHOP_ERR_INVALID_TIMESTAMP'],
      [trackMessage({ type: 'alias' }), 'SHOP_ERR_UNSUPPORTED_TYPE'],
      [trackMessage({ properties: { name: 'y'.repeat(40 * 1024) } }), 'SHOP_ERR_EVENT_TOO_LARGE'],
    ];
    // The collector checks envelopes; the contents (money, currencies) are the pipeline's to refuse,
    // into the same events.rejected. It maps raw records with normalizeRawRecord, as below.
    const deep: Array<[Record<string, unknown>, string]> = [
      [trackMessage({ event: 'Order Completed', properties: { order_id: 'o1', revenue: 'lots', currency: 'EUR' } }), 'SHOP_ERR_INVALID_MONEY'],
      [trackMessage({ event: 'Order Completed', properties: { order_id: 'o1', revenue: 10, currency: 'ZZZ' } }), 'SHOP_ERR_INVALID_CURRENCY'],
    ];
    const batch = [good, ...bad.map(([m]) => m), 42, null, 'str', ...deep.map(([m]) => m)];
    const res = await post('/v1/batch', { batch }, { authorization: basic(f.shopA.writeKeys[0]!) });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.accepted, 1 + deep.length);
    assert.equal(body.rejected, bad.length + 3);
    for (let i = 0; i < bad.length; i++) {
      assert.equal(body.errors[i].index, i + 1);
      assert.equal(body.errors[i].code, bad[i]![1], `event ${i + 1}: ${body.errors[i].message}`);
      assert.ok(body.errors[i].message.length > 10);
    }
    const rejected = (await readAll(f.log, f.topics.rejected)).map(json).filter((r) => r['merchantId'] === f.shopA.id);
    for (const [m, code] of bad) {
      const hit = rejected.find((r) => {
        const p = r['payload'] as Record<string, unknown> | null;
        if (r['code'] !== code) return false;
        if (p?.['truncated'] === true) return String(p['head']).includes(String(m['messageId']));
        return JSON.stringify(p) === JSON.stringify(m);
      });
      assert.ok(hit, `${code} is in events.rejected`);
      if (code === 'SHOP_ERR_EVENT_TOO_LARGE') {
        const p = hit['payload'] as { truncated: boolean; bytes: number; head: string };
        assert.equal(p.head.length, 32 * 1024, 'an oversized event is kept cut to 32 KB');
        assert.ok(p.bytes > 40 * 1024);
        continue;
      }
      assert.deepEqual(hit['payload'], JSON.parse(JSON.stringify(m)), 'the original payload is kept');
      assert.equal(hit['stage'], 'collector');
    }
    assert.ok(rejected.some((r) => r['payload'] === 42));
    const raw = await readAll(f.log, f.topics.raw);
    for (const [m, code] of deep) {
      const r = raw.find((x) => JSON.parse(x.value!.toString())['messageId'] === m['messageId'])!;
      const result = normalizeRawRecord(r);
      assert.equal(result.ok ? 'accepted' : result.reason.code, code);
    }
    const metrics = await f.registry.getSingleMetricAsString('shopstream_collector_rejected_events_total');
    assert.match(metrics, /code="SHOP_ERR_UNKNOWN_EVENT"\} [1-9]/);
  });

  it('every event of a 200 is in events.raw or events.rejected, exactly once (random mixes)', async () => {
    const sent = new Map<string, 'ok' | 'bad'>();
    for (let round = 0; round < 20; round++) {
      const batch = Array.from({ length: 1 + Math.floor(Math.random() * 40) }, (_, i) => {
        const ok = Math.random() < 0.7;
        const m = ok ? trackMessage() : trackMessage({ event: ['Nope', 42, null][i % 3], properties: i % 2 ? [] : { price: 'x' } });
        m['messageId'] = `mix-${round}-${i}-${Math.random()}`;
        sent.set(m['messageId'] as string, ok ? 'ok' : 'bad');
        return m;
      });
      const res = await post('/v1/batch', { batch }, { authorization: basic(f.shopB.writeKeys[0]!) });
      assert.equal(res.statusCode, 200);
    }
    const raw = (await readAll(f.log, f.topics.raw)).map(json);
    const rejected = (await readAll(f.log, f.topics.rejected)).map(json);
    const seen = new Map<string, number>();
    for (const e of raw) if (sent.has(e['messageId'] as string)) seen.set(e['messageId'] as string, (seen.get(e['messageId'] as string) ?? 0) + 1);
    for (const r of rejected) {
      const id = (r['payload'] as Record<string, unknown>)?.['messageId'] as string;
      if (sent.has(id)) seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    for (const [id, expected] of sent) {
      assert.equal(seen.get(id), 1, `${id} is written exactly once`);
      const inRaw = raw.some((e) => e['messageId'] === id);
      assert.equal(inRaw, expected === 'ok', `${id} is in ${expected === 'ok' ? 'events.raw' : 'events.rejected'}`);
    }
  });

  it('never answers 5xx nor crashes on random bytes, whatever the route', async () => {
    const routes = ['/v1/batch', '/v1/b', '/v1/track', '/v1/t', '/v1/page', '/v1/p', '/v1/identify', '/v1/i', '/v1/beacon/validate'];
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = 0; i < 300; i++) {
      const len = Math.floor(rand() * 200);
      const bytes = Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256)));
      const fuzzed = [bytes, JSON.stringify({ batch: [bytes.toString('latin1')], writeKey: f.shopA.writeKeys[0] }), JSON.stringify({ ...trackMessage(), writeKey: f.shopA.writeKeys[0], properties: { products: [{ price: rand() > 0.5 ? {} : [1] }] } })][i % 3]!;
      const res = await post(routes[i % routes.length]!, fuzzed, i % 2 ? { authorization: basic(f.shopA.writeKeys[0]!) } : {});
      assert.ok(res.statusCode < 500, `${routes[i % routes.length]} answered ${res.statusCode}: ${res.body}`);
      assert.ok(res.statusCode === 200 || res.statusCode === 204 || typeof res.json().error.code === 'string');
    }
  });

  it('health, readiness and Prometheus metrics', async () => {
    assert.equal((await f.app.inject('/healthz')).statusCode, 200);
    assert.equal((await f.app.inject('/readyz')).statusCode, 200);
    const m = await f.app.inject('/metrics');
    assert.equal(m.statusCode, 200);
    assert.match(m.body, /shopstream_collector_events_total\{outcome="accepted"\} \d+/);
    assert.match(m.body, /shopstream_collector_request_duration_seconds_bucket/);
  });

  it('logs carry no write key, token, IP address nor personal data', async () => {
    await post('/v1/batch', { batch: [trackMessage({ context: { ip: '203.0.113.77', traits: { email: 'jane@example.com' } } })] }, { authorization: basic(f.shopA.writeKeys[0]!), 'x-forwarded-for': '198.51.100.9' });
    await f.app.inject({ method: 'GET', url: `/v1/beacon/challenge?writeKey=${f.shopA.writeKeys[0]}&anonymousId=anon-secret-visitor` });
    const text = captured.text();
    for (const secret of [f.shopA.writeKeys[0]!, 'anon-secret-visitor', '203.0.113.77', '198.51.100.9', 'jane@example.com', '127.0.0.1']) {
      assert.ok(!text.includes(secret), `the log does not contain ${secret}`);
    }
  });
});

describe('collector limits and failures', () => {
  it('answers 429 with Retry-After when a merchant is over its rate limit', async () => {
    const f = await collectorFixture(kind, { shopA: { rateLimit: { eventsPerSecond: 10, burst: 20 } } });
    try {
      const batch = () => ({ batch: Array.from({ length: 15 }, () => trackMessage()) });
      const first = await f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: batch() });
      assert.equal(first.statusCode, 200);
      const second = await f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: batch() });
      assert.equal(second.statusCode, 429);
      assert.equal(second.json().error.code, 'SHOP_ERR_RATE_LIMITED');
      assert.ok(Number(second.headers['retry-after']) >= 1);
      // A request the log refused is not charged: after the refill time, a retry fits again.
      await new Promise((r) => setTimeout(r, Number(second.headers['retry-after']) * 1000));
      assert.equal((await f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: batch() })).statusCode, 200);
      // Other merchants are not affected.
      const other = await f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopB.writeKeys[0]!) }, payload: batch() });
      assert.equal(other.statusCode, 200);
    } finally {
      await f.close();
    }
  });

  it('does not charge the rate limit for a batch refused whole (a large batch context, deep nesting)', async () => {
    const f = await collectorFixture(kind, { shopA: { rateLimit: { eventsPerSecond: 1, burst: 20 } } });
    try {
      const post = (payload: unknown) => f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: payload as object });
      let deep: unknown = 1;
      for (let i = 0; i < 70; i++) deep = [deep];
      const events = () => Array.from({ length: 15 }, () => trackMessage());
      for (const bad of [{ context: { pad: 'x'.repeat(9000) }, batch: events() }, { batch: [...events().slice(1), trackMessage({ properties: { deep } })] }]) {
        const r = await post(bad);
        assert.equal(r.statusCode, 400);
        assert.equal(r.json().error.code, 'SHOP_ERR_INVALID_REQUEST');
      }
      // 15 of the 20 tokens are still there.
      assert.equal((await post({ batch: events() })).statusCode, 200);
      assert.equal((await post({ batch: events() })).statusCode, 429);
    } finally {
      await f.close();
    }
  });

  it('answers 503 with Retry-After when the log cannot take writes, and is not ready meanwhile', async () => {
    // A log whose producers fail like a full disk or a lost broker, around a real embedded log.
    const { openTestLog } = await import('../helpers.ts');
    const real = await openTestLog(kind);
    let failing = false;
    const log: Log = new Proxy(real.log, {
      get(target, prop, receiver) {
        if (prop !== 'createProducer') return Reflect.get(target, prop, receiver);
        return (...args: Parameters<Log['createProducer']>): LogProducer => {
          const p = target.createProducer(...args);
          return {
            send: (records) => (failing ? Promise.reject(new StreamsError(ErrorCodes.LOG_UNAVAILABLE, 'disk full')) : p.send(records)),
            close: () => p.close(),
          };
        };
      },
    });
    const f = await collectorFixture(kind, { log });
    try {
      const send = () => f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: { batch: [trackMessage()] } });
      assert.equal((await send()).statusCode, 200);
      failing = true;
      const res = await send();
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().error.code, 'SHOP_ERR_UNAVAILABLE');
      assert.equal(res.headers['retry-after'], '5');
      assert.equal((await f.app.inject('/readyz')).statusCode, 503);
      // The probe writes: while writes still fail, the instance stays not ready.
      await new Promise((r) => setTimeout(r, 2_100));
      assert.equal((await f.app.inject('/readyz')).statusCode, 503);
      // Readiness comes back by probing the log, without traffic (a load balancer sends none meanwhile).
      failing = false;
      await new Promise((r) => setTimeout(r, 2_100));
      assert.equal((await f.app.inject('/readyz')).statusCode, 200);
      assert.equal((await send()).statusCode, 200);
    } finally {
      await f.close();
      await real.close();
    }
  });

  it('answers 503 when the log does not confirm within the write timeout', async () => {
    const { openTestLog } = await import('../helpers.ts');
    const real = await openTestLog(kind);
    let hang = false;
    const log: Log = new Proxy(real.log, {
      get(target, prop, receiver) {
        if (prop !== 'createProducer') return Reflect.get(target, prop, receiver);
        return (...args: Parameters<Log['createProducer']>): LogProducer => {
          const p = target.createProducer(...args);
          return { send: (records) => (hang ? new Promise(() => {}) : p.send(records)), close: () => p.close() };
        };
      },
    });
    const f = await collectorFixture(kind, { log, writeTimeoutMs: 200 });
    try {
      hang = true;
      const res = await f.app.inject({ method: 'POST', url: '/v1/batch', headers: { authorization: basic(f.shopA.writeKeys[0]!) }, payload: { batch: [trackMessage()] } });
      assert.equal(res.statusCode, 503);
      assert.match(res.json().error.message, /did not confirm/);
    } finally {
      hang = false;
      await f.close();
      await real.close();
    }
  });
});
