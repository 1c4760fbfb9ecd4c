import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { Limits, prepareIngest, type PrepareInput, type PreparedEvents } from '../../src/collector/prepare.ts';

const NOW = Date.parse('2026-11-26T12:00:00Z');

function input(body: string | Buffer, typeHint?: PrepareInput['typeHint'], contentEncoding?: string): PrepareInput {
  return { body: typeof body === 'string' ? Buffer.from(body) : body, contentEncoding, typeHint, receivedAt: NOW, maxFutureMs: undefined, maxPastMs: undefined };
}

function track(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'track', event: 'Product Viewed', messageId: `m-${i}`, anonymousId: `a-${i}`, timestamp: '2026-11-26T11:59:00Z', properties: { product_id: `p${i}` }, ...extra };
}

function events(body: string | Buffer, typeHint?: PrepareInput['typeHint'], enc?: string): PreparedEvents {
  const p = prepareIngest(input(body, typeHint, enc));
  assert.equal(p.kind, 'events', JSON.stringify(p));
  return p as PreparedEvents;
}

/** The value bytes of accepted event k. */
function value(p: PreparedEvents, k: number): string {
  return Buffer.from(p.sources[p.source[k]!]!.subarray(p.start[k]!, p.end[k]!)).toString('utf8');
}

describe('prepareIngest', () => {
  it('throws request-level errors with their code, before anything else', () => {
    const code = (i: PrepareInput) => assert.throws(() => prepareIngest(i), (err: { code?: string }) => typeof err.code === 'string' && (codes.push(err.code), true));
    const codes: string[] = [];
    code(input('{"batch": [}'));
    code(input(Buffer.from([0x7b, 0xff, 0x7d])));
    code(input('{}', undefined, 'br'));
    code(input(gzipSync(Buffer.from(JSON.stringify({ ...track(1), pad: 'x'.repeat(Limits.eventBytes) }))), 'track', 'gzip'));
    code(input(gzipSync(Buffer.from(JSON.stringify({ batch: [], pad: 'x'.repeat(Limits.batchBytes) }))), undefined, 'gzip'));
    assert.deepEqual(codes, ['SHOP_ERR_INVALID_JSON', 'SHOP_ERR_INVALID_UTF8', 'SHOP_ERR_UNSUPPORTED_ENCODING', 'SHOP_ERR_EVENT_TOO_LARGE', 'SHOP_ERR_REQUEST_TOO_LARGE']);
  });

  it('reports a body of the wrong shape with the write key it carries (authentication comes first)', () => {
    assert.deepEqual(prepareIngest(input('{"writeKey": "wk", "batch": {}}')), { kind: 'shape', writeKey: 'wk' });
    assert.deepEqual(prepareIngest(input('[1]', 'track')), { kind: 'shape', writeKey: undefined });
  });

  it('gives each accepted event its bytes as sent, its visitor and whether it names its own IP and User-Agent', () => {
    const batch = [
      track(1),
      track(2, { context: { ip: '198.51.100.7' } }),
      track(3, { context: { userAgent: 'UA', ip: '' } }),
      track(4, { context: { userAgent: 'UA', ip: '198.51.100.7' } }),
    ];
    const body = `{ "sentAt": "2026-11-26T11:59:30Z", "batch": [ ${batch.map((e) => JSON.stringify(e, null, 1)).join(' ,\n')} ], "writeKey": "wk" }`;
    const p = events(body);
    assert.equal(p.count, 4);
    assert.equal(p.writeKey, 'wk');
    assert.equal(p.batchSentAt, '2026-11-26T11:59:30Z');
    assert.deepEqual([...p.index], [0, 1, 2, 3]);
    assert.deepEqual(p.visitor, ['a-1', 'a-2', 'a-3', 'a-4']);
    assert.deepEqual([...p.own], [0, 1, 2, 3]);
    for (let k = 0; k < 4; k++) assert.equal(value(p, k), JSON.stringify(batch[k], null, 1));
    assert.deepEqual(p.rejected, []);
  });

  it('keeps refused events in request order with their reason and the message, and serialises again an event that carries a write key', () => {
    const body = JSON.stringify({ batch: [track(1), { type: 'track', event: 'Nope', messageId: 'm-2', anonymousId: 'a' }, track(3, { writeKey: 'secret' }), 7] });
    const p = events(body);
    assert.deepEqual([...p.index], [0, 2]);
    assert.equal(p.source[1], 1);
    assert.deepEqual(JSON.parse(value(p, 1)), (({ writeKey: _w, ...rest }) => rest)(track(3, { writeKey: 'secret' })));
    assert.deepEqual(
      p.rejected.map((r) => [r.index, r.code, r.messageId]),
      [
        [1, 'SHOP_ERR_UNKNOWN_EVENT', 'm-2'],
        [3, 'SHOP_ERR_EVENT_SCHEMA', undefined],
      ],
    );
    assert.equal(p.rejected[1]!.event, 7);
    assert.equal(p.rejected[0]!.path, 'event');
  });

  it('refuses an event larger than the limit inside an accepted batch', () => {
    const p = events(JSON.stringify({ batch: [track(1, { properties: { pad: 'x'.repeat(Limits.eventBytes) } }), track(2)] }));
    assert.deepEqual([...p.index], [1]);
    assert.equal(p.rejected[0]!.code, 'SHOP_ERR_EVENT_TOO_LARGE');
  });

  it('takes the whole body as the event of a single-event route, with the type the route implies', () => {
    const { type: _t, ...message } = track(1);
    const body = JSON.stringify(message);
    const p = events(body, 'track');
    assert.equal(value(p, 0), body);
    assert.equal(p.batchContext, undefined);
    assert.equal(events(JSON.stringify(track(1)), 'page').rejected[0]!.code, 'SHOP_ERR_EVENT_SCHEMA');
  });

  it('flags what refuses a whole batch without looking at its events: too many events, a large batch field, deep nesting', () => {
    const many = events(JSON.stringify({ batch: Array.from({ length: Limits.batchEvents + 1 }, (_, i) => i) }));
    assert.equal(many.count, Limits.batchEvents + 1);
    assert.equal(many.index.length + many.rejected.length, 0);
    const field = events(JSON.stringify({ context: { pad: 'x'.repeat(Limits.batchFieldBytes) }, batch: [track(1)] }));
    assert.equal(field.fieldTooLarge, 'context');
    assert.equal(field.index.length, 0);
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    const nested = events(JSON.stringify({ batch: [track(1, { properties: { deep } })] }));
    assert.equal(nested.tooDeep, true);
    assert.equal(nested.index.length + nested.rejected.length, 0);
  });

  it('corrects event times against the receive time it is given', () => {
    const p = events(JSON.stringify({ batch: [track(1, { timestamp: '2026-11-26T14:00:00Z' })] }));
    assert.equal(p.rejected[0]!.code, 'SHOP_ERR_TIMESTAMP_FUTURE');
    const ok = prepareIngest({ ...input(JSON.stringify({ batch: [track(1, { timestamp: '2026-11-26T14:00:00Z' })] })), maxFutureMs: 3 * 3_600_000 }) as PreparedEvents;
    assert.equal(ok.rejected.length, 0);
  });
});
