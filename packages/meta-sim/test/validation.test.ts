/**
 * Every validation rule, over HTTP against the listening sim: the rejected request's status, Graph
 * code and CAPI subcode, the index Meta-style in error_user_msg, and that nothing of the batch was
 * recorded. Each bad event sits at index 1 behind a valid one, so the index is really checked.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { eventIndexOf, startMetaSim, SUBCODE, type MetaSim } from '../src/index.ts';
import { graphError, minimal, NOW_MS, NOW_SEC, PIXEL, purchase, sendEvents, sha256, TOKEN } from './helpers.ts';

type Json = Record<string, unknown>;

const P = SUBCODE.PARAMETER;

/** A valid purchase with `patch` applied; a patch value of undefined deletes the key. */
function withPatch(base: Json, patch: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}
const userData = (patch: Json): Json => withPatch(purchase('bad'), { user_data: withPatch(purchase().user_data as Json, patch) });
const customData = (patch: Json): Json => withPatch(purchase('bad'), { custom_data: withPatch(purchase().custom_data as Json, patch) });

const RULES: Array<[string, unknown, number]> = [
  ['event is not an object', 'Purchase', P],
  ['unexpected key on the event', withPatch(purchase('bad'), { advertiser_tracking_enabled: 1 }), P],
  ['event_name missing', withPatch(purchase('bad'), { event_name: undefined }), P],
  ['event_name empty', withPatch(purchase('bad'), { event_name: '' }), P],
  ['event_time missing', withPatch(purchase('bad'), { event_time: undefined }), P],
  ['event_time as a string', withPatch(purchase('bad'), { event_time: String(NOW_SEC) }), P],
  ['event_time not an integer', withPatch(purchase('bad'), { event_time: NOW_SEC - 0.5 }), P],
  ['event_time older than 7 days', withPatch(purchase('bad'), { event_time: NOW_SEC - 8 * 86400 }), SUBCODE.EVENT_TOO_OLD],
  ['event_time in milliseconds (far future)', withPatch(purchase('bad'), { event_time: NOW_MS }), P],
  ['action_source missing', withPatch(purchase('bad'), { action_source: undefined }), P],
  ['action_source not in the enum', withPatch(purchase('bad'), { action_source: 'web' }), P],
  ['website event without event_source_url', withPatch(purchase('bad'), { event_source_url: undefined }), P],
  ['website event without client_user_agent', userData({ client_user_agent: undefined }), P],
  ['event_id not a string', withPatch(purchase('bad'), { event_id: 42 }), P],
  ['opt_out not a boolean', withPatch(purchase('bad'), { opt_out: 'yes' }), P],
  ['user_data missing', withPatch(purchase('bad'), { user_data: undefined }), P],
  ['user_data not an object', withPatch(purchase('bad'), { user_data: [sha256('x')] }), P],
  ['em in clear', userData({ em: 'jane@example.com' }), SUBCODE.NOT_HASHED],
  ['ph with one clear value in the list', userData({ ph: [sha256('1'), '+33 6 12 34 56 78'] }), SUBCODE.NOT_HASHED],
  ['fn hashed in upper-case hex', userData({ fn: sha256('jane').toUpperCase() }), SUBCODE.NOT_HASHED],
  ['ln as an MD5', userData({ ln: 'd41d8cd98f00b204e9800998ecf8427e' }), SUBCODE.NOT_HASHED],
  ['ge in clear', userData({ ge: 'f' }), SUBCODE.NOT_HASHED],
  ['db in clear', userData({ db: '19910526' }), SUBCODE.NOT_HASHED],
  ['ct in clear', userData({ ct: 'paris' }), SUBCODE.NOT_HASHED],
  ['st in clear', userData({ st: 'idf' }), SUBCODE.NOT_HASHED],
  ['zp in clear', userData({ zp: '75001' }), SUBCODE.NOT_HASHED],
  ['country in clear', userData({ country: 'fr' }), SUBCODE.NOT_HASHED],
  ['external_id in clear (strict hashing)', userData({ external_id: 'visitor-42' }), SUBCODE.NOT_HASHED],
  ['em not a string', userData({ em: 12345 }), P],
  ['client_ip_address not an IP', userData({ client_ip_address: '203.0.113.300' }), P],
  ['client_user_agent empty', userData({ client_user_agent: '' }), P],
  ['fbc malformed', userData({ fbc: 'AbCdEf' }), P],
  ['fbp malformed', userData({ fbp: 'fb.1.abc.123' }), P],
  ['no customer information at all', withPatch(minimal('bad'), { user_data: {} }), SUBCODE.INSUFFICIENT_USER_DATA],
  ['only unknown user_data keys', withPatch(minimal('bad'), { user_data: { email: sha256('x') } }), SUBCODE.INSUFFICIENT_USER_DATA],
  ['custom_data not an object', withPatch(purchase('bad'), { custom_data: 'x' }), P],
  ['value negative', customData({ value: -1 }), P],
  ['value as a string', customData({ value: '129.90' }), P],
  ['currency of two letters', customData({ currency: 'EU' }), P],
  ['currency that ISO 4217 does not know', customData({ currency: 'XYZ' }), P],
  ['content_ids with a number', customData({ content_ids: ['sku-1', 2] }), P],
  ['contents not a list', customData({ contents: { id: 'sku-1', quantity: 1 } }), SUBCODE.INVALID_CONTENTS],
  ['contents item without id', customData({ contents: [{ quantity: 1 }] }), SUBCODE.INVALID_CONTENTS],
  ['contents item without quantity', customData({ contents: [{ id: 'sku-1' }] }), SUBCODE.INVALID_CONTENTS],
  ['contents item with a bad item_price', customData({ contents: [{ id: 'sku-1', quantity: 1, item_price: '5' }] }), SUBCODE.INVALID_CONTENTS],
  ['content_type not product/product_group', customData({ content_type: 'sku' }), P],
  ['num_items not an integer', customData({ num_items: 1.5 }), P],
  ['order_id not a string', customData({ order_id: 42 }), P],
  ['search_string not a string', withPatch(minimal('bad'), { event_name: 'Search', custom_data: { search_string: 7 } }), P],
  ['Purchase without currency', customData({ currency: undefined }), SUBCODE.PURCHASE_MISSING_CURRENCY],
  ['Purchase without value', customData({ value: undefined }), SUBCODE.PURCHASE_MISSING_VALUE],
  ['Purchase without custom_data', withPatch(purchase('bad'), { custom_data: undefined }), SUBCODE.PURCHASE_MISSING_CURRENCY],
];

describe('validation over HTTP', () => {
  let sim: MetaSim;
  before(async () => {
    sim = await startMetaSim({ now: () => NOW_MS, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }], recordBodies: false });
  });
  after(() => sim.close());
  beforeEach(() => sim.reset());

  for (const [name, bad, subcode] of RULES) {
    it(`rejects the whole batch: ${name} (100 / ${subcode})`, async () => {
      const a = await sendEvents(sim, [purchase('good'), bad]);
      assert.equal(a.status, 400);
      const err = graphError(a);
      assert.equal(err.code, 100);
      assert.equal(err.type, 'OAuthException');
      assert.equal(err.message, 'Invalid parameter');
      assert.equal(err.error_subcode, subcode, String(err.error_user_msg));
      assert.equal(err.is_transient, false);
      assert.equal(typeof err.error_user_title, 'string');
      assert.equal(typeof err.fbtrace_id, 'string');
      assert.equal(eventIndexOf(err.error_user_msg as string), 1, String(err.error_user_msg));
      assert.equal(sim.events().length, 0, 'no event of a rejected batch is recorded');
      assert.equal(sim.requests()[0]?.eventIndex, 1);
    });
  }

  it('names the first invalid event when several are invalid', async () => {
    const a = await sendEvents(sim, [minimal('a'), minimal('b', { event_time: NOW_SEC - 9 * 86400 }), minimal('c', { user_data: {} })]);
    const err = graphError(a);
    assert.equal(err.error_subcode, SUBCODE.EVENT_TOO_OLD);
    assert.equal(eventIndexOf(err.error_user_msg as string), 1);
  });

  for (const [name, data] of [
    ['data missing', undefined],
    ['data not an array', { event_name: 'Purchase' }],
    ['data a string that is not JSON', 'not json'],
    ['data empty', []],
  ] as const) {
    it(`rejects the request: ${name}`, async () => {
      const a = await sendEvents(sim, data);
      assert.equal(a.status, 400);
      const err = graphError(a);
      assert.equal(err.code, 100);
      assert.equal(err.error_subcode, P);
      assert.match(String(err.error_user_msg), /\$\['data'\]/);
    });
  }

  it('rejects 1,001 events and accepts 1,000', async () => {
    const batch = Array.from({ length: 1001 }, (_, i) => minimal(`ev-${i}`));
    const tooMany = await sendEvents(sim, batch);
    assert.equal(tooMany.status, 400);
    assert.equal(graphError(tooMany).error_subcode, P);
    assert.match(String(graphError(tooMany).error_user_msg), /1001 events.*at most 1000/);
    assert.equal(sim.events().length, 0);
    const ok = await sendEvents(sim, batch.slice(0, 1000));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.events_received, 1000);
    assert.equal(sim.events().length, 1000);
  });

  it('applies the 7-day rule against the sim clock, to the second', async () => {
    const sevenDays = 7 * 86400;
    const edge = await sendEvents(sim, [minimal('edge', { event_time: NOW_SEC - sevenDays })]);
    assert.equal(edge.status, 200);
    const late = await sendEvents(sim, [minimal('late', { event_time: NOW_SEC - sevenDays - 1 })]);
    assert.equal(late.status, 400);
    const err = graphError(late);
    assert.equal(err.error_subcode, SUBCODE.EVENT_TOO_OLD);
    assert.equal(err.error_user_title, 'Event Timestamp Too Old');
  });

  it('tolerates 10 minutes of clock skew into the future, not more', async () => {
    assert.equal((await sendEvents(sim, [minimal('skew', { event_time: NOW_SEC + 600 })])).status, 200);
    assert.equal((await sendEvents(sim, [minimal('ahead', { event_time: NOW_SEC + 601 })])).status, 400);
  });

  it('accepts what Meta accepts', async () => {
    const cases: Json[] = [
      minimal('no-url'), // non-website event: no event_source_url, no user agent
      purchase('v6', { user_data: { client_ip_address: '2001:db8::1', client_user_agent: 'UA', em: sha256('a@b.c') } }),
      purchase('lower-currency', { custom_data: { value: 0, currency: 'chf' } }),
      minimal('all-sources', { action_source: 'physical_store' }),
      minimal('fbp-only', { user_data: { fbp: 'fb.2.1596403881668.1116446470' } }),
      minimal('custom', { event_name: 'MyCustomEvent', custom_data: { anything: { nested: true } } }),
      minimal('no-event-id', { event_id: undefined }),
    ];
    for (const ev of cases) {
      const a = await sendEvents(sim, [JSON.parse(JSON.stringify(ev))]);
      assert.equal(a.status, 200, `${String(ev.event_id)}: ${JSON.stringify(a.body)}`);
    }
    for (const source of ['website', 'email', 'app', 'phone_call', 'chat', 'physical_store', 'system_generated', 'business_messaging', 'other']) {
      const ev = source === 'website' ? purchase(source) : minimal(source, { action_source: source });
      assert.equal((await sendEvents(sim, [ev])).status, 200, source);
    }
  });
});

describe('validation options', () => {
  it('strictHashing: false lets external_id through in clear, never em', async () => {
    const sim = await startMetaSim({ now: () => NOW_MS, strictHashing: false, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }] });
    try {
      const ok = await sendEvents(sim, [minimal('clear-id', { user_data: { external_id: 'visitor-42' } })]);
      assert.equal(ok.status, 200);
      const bad = await sendEvents(sim, [minimal('clear-em', { user_data: { em: 'jane@example.com' } })]);
      assert.equal(graphError(bad).error_subcode, SUBCODE.NOT_HASHED);
    } finally {
      await sim.close();
    }
  });

  it('requireWebsiteParams: false accepts a website event without user agent or URL (Meta was seen to)', async () => {
    const sim = await startMetaSim({ now: () => NOW_MS, requireWebsiteParams: false, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }] });
    try {
      const ev = minimal('web', { action_source: 'website' });
      assert.equal((await sendEvents(sim, [ev])).status, 200);
    } finally {
      await sim.close();
    }
  });

  it('rejectUnknownKeys: false ignores keys Meta does not define', async () => {
    const sim = await startMetaSim({ now: () => NOW_MS, rejectUnknownKeys: false, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }] });
    try {
      assert.equal((await sendEvents(sim, [minimal('k', { shopstream_trace: 'x' })])).status, 200);
    } finally {
      await sim.close();
    }
  });
});
