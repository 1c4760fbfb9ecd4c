/**
 * Server write keys on the collector (embedded log): the source header on events.raw, the request
 * facts left out for a backend's requests, and the beacon routes refusing a server key.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ConsumedRecord } from '@shopstream/streams';
import { readAll, type LogKind } from '../helpers.ts';
import { RawHeaders, normalizeRawRecord, readRawRecord } from '../../src/contract/index.ts';
import { basic, collectorFixture, trackMessage, type CollectorFixture } from './fixture.ts';

const kind: LogKind = 'embedded';
const BACKEND_UA = 'python-requests/2.32.3';

describe('collector: server write keys', () => {
  let f: CollectorFixture;
  let serverKey: string;
  before(async () => {
    f = await collectorFixture(kind, {
      cdnCountryHeader: 'cf-ipcountry',
      shopA: { serverWriteKeys: ['sk_shopA_server_0123456789'], revokedWriteKeys: ['wk_shopA_rotated_old', 'sk_shopA_server_rotated'] },
    });
    serverKey = f.shopA.serverWriteKeys![0]!;
  });
  after(() => f.close());

  const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
    f.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(body) });

  const header = (r: ConsumedRecord, name: string) => r.headers.find(([h]) => h === name)?.[1].toString();

  async function rawOf(messages: Array<Record<string, unknown>>): Promise<ConsumedRecord[]> {
    const ids = new Set(messages.map((m) => m['messageId']));
    return (await readAll(f.log, f.topics.raw)).filter((r) => ids.has(JSON.parse(r.value!.toString())['messageId']));
  }

  it('marks every record of a batch sent with a server key `shopstream.source: server`, without the backend request facts', async () => {
    const order = trackMessage({ anonymousId: 'import-visitor', event: 'Order Completed', properties: { order_id: 'o-1', total: 10, currency: 'EUR' }, context: {} });
    const withUa = trackMessage({ anonymousId: 'import-visitor' });
    const batch = [order, withUa];
    const res = await post('/v1/import', { batch }, { authorization: basic(serverKey), 'user-agent': BACKEND_UA, 'cf-ipcountry': 'US' });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { success: true });
    const raw = await rawOf(batch);
    assert.equal(raw.length, 2);
    for (const r of raw) {
      assert.equal(header(r, RawHeaders.source), 'server');
      assert.equal(header(r, RawHeaders.merchant), f.shopA.id);
      // The request came from the merchant's server: its IP, User-Agent and country are not the shopper's.
      assert.equal(header(r, RawHeaders.ip), undefined);
      assert.equal(header(r, RawHeaders.userAgent), undefined);
      assert.equal(header(r, RawHeaders.country), undefined);
      assert.equal(readRawRecord(r).source, 'server');
    }
    const e = normalizeRawRecord(raw.find((r) => JSON.parse(r.value!.toString())['messageId'] === order['messageId'])!);
    assert.ok(e.ok);
    assert.equal(e.event.context.userAgent, null, 'not the backend HTTP client');
    assert.equal(e.event.context.ip, null);
    // A shopper's user agent sent in the event's context is kept.
    const e2 = normalizeRawRecord(raw.find((r) => JSON.parse(r.value!.toString())['messageId'] === withUa['messageId'])!);
    assert.ok(e2.ok);
    assert.equal(e2.event.context.userAgent, (withUa['context'] as { userAgent: string }).userAgent);
  });

  it('takes a server key from the body and on the single-event routes too', async () => {
    const m = trackMessage({ anonymousId: 'import-2' });
    const res = await post('/v1/track', { ...m, writeKey: serverKey });
    assert.equal(res.statusCode, 200, res.body);
    const [r] = await rawOf([m]);
    assert.equal(header(r!, RawHeaders.source), 'server');
  });

  it('writes no source header for a browser write key, and keeps the request facts', async () => {
    const m = trackMessage({ anonymousId: 'browser-1', context: {} });
    const res = await post('/v1/batch', { batch: [m] }, { authorization: basic(f.shopA.writeKeys[0]!), 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0', 'cf-ipcountry': 'FR' });
    assert.equal(res.statusCode, 200, res.body);
    const [r] = await rawOf([m]);
    assert.equal(header(r!, RawHeaders.source), undefined);
    assert.equal(r!.headers.some(([h]) => h === RawHeaders.source), false);
    assert.equal(header(r!, RawHeaders.userAgent), 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0');
    assert.equal(header(r!, RawHeaders.country), 'FR');
    assert.equal(readRawRecord(r!).source, 'browser');
  });

  it('refuses a rotated server key like a rotated write key', async () => {
    const res = await post('/v1/batch', { batch: [trackMessage()] }, { authorization: basic('sk_shopA_server_rotated') });
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().error.code, 'SHOP_ERR_UNAUTHORIZED');
    assert.match(res.json().error.message, /rotated/);
  });

  it('refuses a server key on every beacon route (403 SHOP_ERR_FORBIDDEN) and writes no validation', async () => {
    const ua = 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0';
    const before = (await readAll(f.log, f.topics.validations)).length;
    const script = await f.app.inject({ method: 'GET', url: '/v1/beacon.js', query: { writeKey: serverKey } });
    const challenge = await f.app.inject({ method: 'GET', url: '/v1/beacon/challenge', query: { writeKey: serverKey, anonymousId: 'anon-sk' }, headers: { 'user-agent': ua } });
    // A token minted with the browser key, redeemed with the server key.
    const ok = await f.app.inject({ method: 'GET', url: '/v1/beacon/challenge', query: { writeKey: f.shopA.writeKeys[0]!, anonymousId: 'anon-sk' }, headers: { 'user-agent': ua } });
    assert.equal(ok.statusCode, 200, ok.body);
    const validate = await f.app.inject({
      method: 'POST',
      url: '/v1/beacon/validate',
      headers: { 'content-type': 'text/plain', 'user-agent': ua },
      payload: JSON.stringify({ writeKey: serverKey, anonymousId: 'anon-sk', token: ok.json().token }),
    });
    for (const res of [script, challenge, validate]) {
      assert.equal(res.statusCode, 403, res.body);
      assert.equal(res.json().error.code, 'SHOP_ERR_FORBIDDEN');
      assert.match(res.json().error.message, /server write key/);
      assert.ok(!res.body.includes(serverKey), 'the answer does not echo the key');
    }
    assert.equal((await readAll(f.log, f.topics.validations)).length, before);
  });
});
