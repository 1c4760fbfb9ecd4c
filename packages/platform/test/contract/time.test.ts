/**
 * Times: the ISO-8601 parser, Segment's clock-skew correction
 * (timestamp = receivedAt - (sentAt - originalTimestamp), https://segment.com/docs/connections/spec/common/#timestamps)
 * and the bounds on the corrected event time.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseIsoTimestamp, parseTimestamp, DEFAULT_MAX_FUTURE_MS, DEFAULT_MAX_PAST_MS } from '../../src/contract/index.ts';
import { RECEIVED_AT, accept, ingest, refuse, track } from './fixtures.ts';

const iso = (ms: number) => new Date(ms).toISOString();

describe('parseIsoTimestamp', () => {
  it('reads RFC 3339 / ISO-8601 date-times with an offset', () => {
    const cases: Array<[string, string]> = [
      ['2024-05-01T12:30:00.000Z', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01T12:30:00Z', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01T12:30Z', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01t12:30:00z', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01 12:30:00Z', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01T14:30:00+02:00', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01T07:00:00-0530', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01T17:30:00+05', '2024-05-01T12:30:00.000Z'],
      ['2024-05-01T12:30:00.1Z', '2024-05-01T12:30:00.100Z'],
      ['2024-05-01T12:30:00.12Z', '2024-05-01T12:30:00.120Z'],
      ['2024-05-01T12:30:00.123456789Z', '2024-05-01T12:30:00.123Z'], // cut to ms like Date
      ['2024-05-01T12:30:00,5Z', '2024-05-01T12:30:00.500Z'],
      ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
      ['2000-02-29T23:59:59.999Z', '2000-02-29T23:59:59.999Z'],
      ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00.000Z'],
      ['2024-01-01T00:30:00+01:00', '2023-12-31T23:30:00.000Z'],
    ];
    for (const [text, expected] of cases) assert.equal(iso(parseIsoTimestamp(text)), expected, text);
  });

  it('agrees with Date.parse on what both accept', () => {
    let ms = Date.UTC(2019, 0, 1);
    for (let i = 0; i < 2_000; i++) {
      ms += 9_876_543_211;
      const text = iso(ms);
      assert.equal(parseIsoTimestamp(text), Date.parse(text), text);
      const withOffset = text.replace('Z', '+03:30');
      assert.equal(parseIsoTimestamp(withOffset), Date.parse(withOffset), withOffset);
    }
  });

  it('refuses days and times that do not exist, and text that is not a date-time with an offset', () => {
    for (const text of [
      '2023-02-29T00:00:00Z',
      '2100-02-29T00:00:00Z',
      '2024-04-31T00:00:00Z',
      '2024-13-01T00:00:00Z',
      '2024-00-10T00:00:00Z',
      '2024-05-00T00:00:00Z',
      '2024-05-01T24:00:00Z',
      '2024-05-01T12:60:00Z',
      '2024-05-01T12:30:60Z',
      '2024-05-01T12:30:00', // no offset: the sender's local time
      '2024-05-01T12:30:00.Z',
      '2024-05-01T12:30:00+2',
      '2024-05-01T12:30:00+24:00',
      '2024-05-01T12:30:00+02:',
      '2024-05-01T12:30:00Z ',
      '2024-05-01',
      '2024-5-1T12:30:00Z',
      '2015-2-02T00:30:08.276Z',
      'yesterday',
      '',
      'Wed, 01 May 2024 12:30:00 GMT',
      '1714566600000',
      '2024-05-01T12:30:00.000Z'.padEnd(100, '0'),
    ]) {
      assert.ok(Number.isNaN(parseIsoTimestamp(text)), text);
    }
  });

  it('takes epoch milliseconds and Dates too', () => {
    assert.equal(parseTimestamp(1714566600123), 1714566600123);
    assert.equal(parseTimestamp(1714566600123.9), 1714566600123);
    assert.equal(parseTimestamp(new Date(1714566600123)), 1714566600123);
    for (const bad of [NaN, Infinity, 1e17, new Date(NaN), true, {}, [], null]) assert.ok(Number.isNaN(parseTimestamp(bad)), String(bad));
  });
});

describe('clock-skew correction', () => {
  it("reproduces the timestamps of Segment's common-fields example", () => {
    // https://segment.com/docs/connections/spec/common/ shows receivedAt 2015-12-10T04:08:31.909Z,
    // sentAt 2015-12-10T04:08:31.581Z and the computed timestamp 2015-12-10T04:08:31.905Z: the call
    // was made 4 ms before it was sent, by the device's clock, which is 328 ms behind the server's.
    const receivedAt = Date.parse('2015-12-10T04:08:31.909Z');
    const e = accept(
      track('Product Viewed', {}, { timestamp: '2015-12-10T04:08:31.577Z', sentAt: '2015-12-10T04:08:31.581Z' }),
      ingest({ receivedAt, maxPastMs: Infinity }),
    );
    assert.equal(iso(e.timestamp), '2015-12-10T04:08:31.905Z');
    assert.equal(iso(e.originalTimestamp!), '2015-12-10T04:08:31.577Z');
    assert.equal(iso(e.sentAt!), '2015-12-10T04:08:31.581Z');
    assert.equal(e.receivedAt, receivedAt);
  });

  it('corrects a device clock that is hours off', () => {
    const skew = -3 * 3_600_000; // the phone is 3 hours behind
    const happened = RECEIVED_AT - 45_000; // queued offline for 45 s before sending
    const e = accept(track('Product Viewed', {}, { timestamp: iso(happened + skew), sentAt: iso(RECEIVED_AT - 120 + skew) }));
    assert.equal(e.timestamp, happened + 120);
    assert.equal(e.originalTimestamp, happened + skew);
  });

  it('uses the batch sentAt when the message has none, and the message sentAt over the batch one', () => {
    const t = RECEIVED_AT - 10_000;
    const batch = accept(track('Product Viewed', {}, { timestamp: iso(t) }), ingest({ batchSentAt: iso(RECEIVED_AT - 4_000) }));
    assert.equal(batch.timestamp, RECEIVED_AT - 6_000);
    assert.equal(batch.sentAt, RECEIVED_AT - 4_000);
    const own = accept(track('Product Viewed', {}, { timestamp: iso(t), sentAt: iso(RECEIVED_AT - 1_000) }), ingest({ batchSentAt: iso(RECEIVED_AT - 4_000) }));
    assert.equal(own.timestamp, RECEIVED_AT - 9_000);
    assert.equal(own.sentAt, RECEIVED_AT - 1_000);
  });

  it('prefers originalTimestamp to timestamp as the client time', () => {
    const e = accept(
      track('Product Viewed', {}, { originalTimestamp: iso(RECEIVED_AT - 5_000), timestamp: iso(RECEIVED_AT - 99_000), sentAt: iso(RECEIVED_AT - 1_000) }),
    );
    assert.equal(e.timestamp, RECEIVED_AT - 4_000);
    assert.equal(e.originalTimestamp, RECEIVED_AT - 5_000);
  });

  it('takes the client time as it is without sentAt, and receivedAt without a client time', () => {
    const client = accept(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT - 7_000) }));
    assert.deepEqual([client.timestamp, client.originalTimestamp, client.sentAt], [RECEIVED_AT - 7_000, RECEIVED_AT - 7_000, null]);
    const none = accept(track('Product Viewed'));
    assert.deepEqual([none.timestamp, none.originalTimestamp, none.sentAt], [RECEIVED_AT, null, null]);
    const sentOnly = accept(track('Product Viewed', {}, { sentAt: iso(RECEIVED_AT - 3_000) }));
    assert.deepEqual([sentOnly.timestamp, sentOnly.originalTimestamp, sentOnly.sentAt], [RECEIVED_AT, null, RECEIVED_AT - 3_000]);
  });

  it('corrects a device clock set before 1970', () => {
    const skew = -60 * 365 * 86_400_000;
    const e = accept(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT - 3_000 + skew), sentAt: iso(RECEIVED_AT - 1_000 + skew) }));
    assert.ok(e.originalTimestamp! < 0 && e.sentAt! < 0);
    assert.equal(e.timestamp, RECEIVED_AT - 2_000);
  });

  it('accepts epoch milliseconds', () => {
    const e = accept(track('Product Viewed', {}, { timestamp: RECEIVED_AT - 2_000, sentAt: RECEIVED_AT - 500 }));
    assert.equal(e.timestamp, RECEIVED_AT - 1_500);
  });

  it('refuses unparsable times with INVALID_TIMESTAMP and their path', () => {
    refuse(track('Product Viewed', {}, { timestamp: 'yesterday' }), 'SHOP_ERR_INVALID_TIMESTAMP', 'timestamp');
    refuse(track('Product Viewed', {}, { timestamp: '2024-05-01T12:30:00' }), 'SHOP_ERR_INVALID_TIMESTAMP', 'timestamp');
    refuse(track('Product Viewed', {}, { originalTimestamp: {} }), 'SHOP_ERR_INVALID_TIMESTAMP', 'originalTimestamp');
    refuse(track('Product Viewed', {}, { sentAt: true }), 'SHOP_ERR_INVALID_TIMESTAMP', 'sentAt');
    const r = refuse(track('Product Viewed'), 'SHOP_ERR_INVALID_TIMESTAMP', 'sentAt', ingest({ batchSentAt: 'soon' }));
    assert.match(r.message, /batch/);
  });
});

describe('bounds on the event time', () => {
  it('accepts up to maxFutureMs after receivedAt (default 1 hour), refuses beyond with TIMESTAMP_FUTURE', () => {
    assert.equal(DEFAULT_MAX_FUTURE_MS, 3_600_000);
    accept(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT + DEFAULT_MAX_FUTURE_MS) }));
    const r = refuse(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT + DEFAULT_MAX_FUTURE_MS + 1) }), 'SHOP_ERR_TIMESTAMP_FUTURE', 'timestamp');
    assert.match(r.message, /1 hour/);
    refuse(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT + 60_001) }), 'SHOP_ERR_TIMESTAMP_FUTURE', 'timestamp', ingest({ maxFutureMs: 60_000 }));
  });

  it('accepts up to maxPastMs before receivedAt (default 30 days), refuses beyond with TIMESTAMP_PAST', () => {
    assert.equal(DEFAULT_MAX_PAST_MS, 30 * 86_400_000);
    accept(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT - DEFAULT_MAX_PAST_MS) }));
    const r = refuse(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT - DEFAULT_MAX_PAST_MS - 1) }), 'SHOP_ERR_TIMESTAMP_PAST', 'timestamp');
    assert.match(r.message, /30 days/);
    refuse(track('Product Viewed', {}, { timestamp: 0 }), 'SHOP_ERR_TIMESTAMP_PAST', 'timestamp');
    accept(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT - 40 * 86_400_000) }), ingest({ maxPastMs: 365 * 86_400_000 }));
  });

  it('keeps the corrected time within the range of a Date even without bounds', () => {
    const unbounded = ingest({ maxFutureMs: Infinity, maxPastMs: Infinity });
    refuse(track('Product Viewed', {}, { timestamp: 8e15, sentAt: -8e15 }), 'SHOP_ERR_TIMESTAMP_FUTURE', 'timestamp', unbounded);
    refuse(track('Product Viewed', {}, { timestamp: -8e15, sentAt: 8e15 }), 'SHOP_ERR_TIMESTAMP_PAST', 'timestamp', unbounded);
  });

  it('bounds the corrected time, not the device clock', () => {
    // A device a year in the future: its timestamp and sentAt agree with each other, so it is accepted.
    const year = 365 * 86_400_000;
    const e = accept(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT + year - 2_000), sentAt: iso(RECEIVED_AT + year - 100) }));
    assert.equal(e.timestamp, RECEIVED_AT - 1_900);
    // Without sentAt nothing can be corrected.
    refuse(track('Product Viewed', {}, { timestamp: iso(RECEIVED_AT + year) }), 'SHOP_ERR_TIMESTAMP_FUTURE', 'timestamp');
  });
});
