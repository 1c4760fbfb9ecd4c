/**
 * Fault injection, in process: every kind with its status and Graph error, counts, pixel scoping,
 * seeded probabilities, the two hanging kinds (the client gives up through AbortSignal.timeout), and
 * the persistent invalid_event predicate.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMetaSim, type CountedFaultKind, type MetaSim } from '../src/index.ts';
import { eventually, graphError, minimal, NOW_MS, OTHER_PIXEL, OTHER_TOKEN, PIXEL, purchase, sendEvents, TOKEN } from './helpers.ts';

const pixels = [
  { pixelId: PIXEL, accessToken: TOKEN },
  { pixelId: OTHER_PIXEL, accessToken: OTHER_TOKEN },
];

describe('fault injection', () => {
  let sim: MetaSim;
  before(async () => {
    sim = await startMetaSim({ now: () => NOW_MS, pixels, seed: 7 });
  });
  after(() => sim.close());
  beforeEach(() => {
    sim.reset();
  });

  it('server_error: HTTP 500, code 2, transient; nothing recorded', async () => {
    sim.inject({ kind: 'server_error' });
    const a = await sendEvents(sim, [purchase()]);
    assert.equal(a.status, 500);
    const err = graphError(a);
    assert.equal(err.code, 2);
    assert.equal(err.type, 'OAuthException');
    assert.equal(err.is_transient, true);
    assert.equal(err.message, 'An unexpected error has occurred. Please retry your request later.');
    assert.equal(typeof err.fbtrace_id, 'string');
    assert.equal(sim.events().length, 0);
    assert.equal((await sendEvents(sim, [purchase()])).status, 200, 'count defaults to 1');
  });

  it('server_error with code 1: "An unknown error has occurred."', async () => {
    sim.inject({ kind: 'server_error', code: 1 });
    const err = graphError(await sendEvents(sim, [purchase()]));
    assert.equal(err.code, 1);
    assert.equal(err.is_transient, true);
  });

  it('rate_limit_429: HTTP 429 with a code-4 Graph error and an optional Retry-After', async () => {
    sim.inject({ kind: 'rate_limit_429', retryAfterSec: 2 });
    const a = await sendEvents(sim, [purchase()]);
    assert.equal(a.status, 429);
    assert.equal(graphError(a).code, 4);
    assert.equal(a.headers.get('retry-after'), '2');
  });

  const throttles: Array<[CountedFaultKind, number, RegExp, number | undefined]> = [
    ['throttle_4', 4, /^\(#4\) Application request limit reached$/, undefined],
    ['throttle_17', 17, /^\(#17\) User request limit reached$/, 2446079],
    ['throttle_613', 613, /^\(#613\) Calls to this api have exceeded the rate limit\.$/, undefined],
    ['throttle_80004', 80004, /^\(#80004\) There have been too many calls to this ad-account\. Wait a bit and try again\./, 2446079],
  ];
  for (const [kind, code, message, subcode] of throttles) {
    it(`${kind}: HTTP 400 (as Graph throttles), code ${code}, transient`, async () => {
      sim.inject({ kind });
      const a = await sendEvents(sim, [purchase()]);
      assert.equal(a.status, 400);
      const err = graphError(a);
      assert.equal(err.code, code);
      assert.equal(err.type, 'OAuthException');
      assert.match(String(err.message), message);
      assert.equal(err.error_subcode, subcode);
      assert.equal(err.is_transient, true);
      assert.match(a.headers.get('www-authenticate') ?? '', /Facebook Platform/);
      assert.equal(sim.requests()[0]?.outcome, kind);
    });
  }

  it('count: the next N matching requests fail, then the edge recovers', async () => {
    sim.inject({ kind: 'throttle_17', count: 3 });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await sendEvents(sim, [minimal(`e${i}`)])).status);
    assert.deepEqual(statuses, [400, 400, 400, 200, 200]);
    assert.deepEqual(sim.faults(), []);
    assert.deepEqual(sim.stats().byOutcome, { throttle_17: 3, accepted: 2 });
  });

  it('faults fire in the order they were injected', async () => {
    sim.inject({ kind: 'server_error' });
    sim.inject({ kind: 'throttle_613' });
    assert.equal(graphError(await sendEvents(sim, [minimal()])).code, 2);
    assert.equal(graphError(await sendEvents(sim, [minimal()])).code, 613);
    assert.equal((await sendEvents(sim, [minimal()])).status, 200);
  });

  it('pixelId scopes a fault to one pixel', async () => {
    sim.inject({ kind: 'server_error', pixelId: OTHER_PIXEL, count: 2 });
    assert.equal((await sendEvents(sim, [minimal()])).status, 200);
    assert.equal((await sendEvents(sim, [minimal()], { pixel: OTHER_PIXEL, token: OTHER_TOKEN })).status, 500);
    assert.equal((await sendEvents(sim, [minimal()])).status, 200);
    assert.equal((await sendEvents(sim, [minimal()], { pixel: OTHER_PIXEL, token: OTHER_TOKEN })).status, 500);
    assert.equal((await sendEvents(sim, [minimal()], { pixel: OTHER_PIXEL, token: OTHER_TOKEN })).status, 200);
  });

  it('probability: each matching request fails with p, from a seeded RNG (same seed, same pattern)', async () => {
    const pattern = async (s: MetaSim): Promise<string> => {
      s.inject({ kind: 'server_error', probability: 0.3 });
      let out = '';
      for (let i = 0; i < 60; i++) out += (await sendEvents(s, [minimal(`p${i}`)])).status === 500 ? 'x' : '.';
      return out;
    };
    const first = await pattern(sim);
    const twin = await startMetaSim({ now: () => NOW_MS, pixels, seed: 7 });
    try {
      assert.equal(await pattern(twin), first, 'same seed, same failures');
    } finally {
      await twin.close();
    }
    const failures = [...first].filter((c) => c === 'x').length;
    assert.ok(failures > 5 && failures < 35, `${failures}/60 failed with p = 0.3: ${first}`);
    assert.equal(sim.faults().length, 1, 'a probability without count stays armed');
    sim.clearFaults();
    assert.equal((await sendEvents(sim, [minimal()])).status, 200);
  });

  it('probability with count: at most count requests fail', async () => {
    sim.inject({ kind: 'throttle_4', probability: 1, count: 2 });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await sendEvents(sim, [minimal()])).status);
    assert.deepEqual(statuses, [400, 400, 200, 200]);
  });

  it('faults apply before authentication and validation, like an outage', async () => {
    sim.inject({ kind: 'server_error' });
    assert.equal((await sendEvents(sim, [minimal()], { token: 'bad' })).status, 500);
  });

  it('timeout: never answers, records nothing, the client gives up', async () => {
    sim.inject({ kind: 'timeout' });
    await assert.rejects(sendEvents(sim, [purchase('t-1')], { signal: AbortSignal.timeout(250) }), { name: 'TimeoutError' });
    assert.equal(sim.events().length, 0);
    assert.equal(sim.deliveries(PIXEL, 't-1'), 0);
    const [rec] = sim.requests();
    assert.equal(rec?.status, 0);
    assert.equal(rec?.outcome, 'timeout');
    assert.equal(sim.stats().byStatus.no_answer, 1);
    await eventually(() => sim.stats().hanging === 0 && sim.stats().inFlight === 0);
    const retry = await sendEvents(sim, [purchase('t-1')]);
    assert.equal(retry.status, 200);
    assert.equal(sim.deliveries(PIXEL, 't-1'), 1, 'the retry is the only delivery');
  });

  it('timeout_after_accept: records the events, hangs; the re-send is a duplicate delivery', async () => {
    sim.inject({ kind: 'timeout_after_accept' });
    const batch = [purchase('o-9'), minimal('v-9')];
    await assert.rejects(sendEvents(sim, batch, { signal: AbortSignal.timeout(250) }), { name: 'TimeoutError' });
    assert.equal(sim.deliveries(PIXEL, 'o-9'), 1, 'accepted although the client saw a timeout');
    assert.equal(sim.requests()[0]?.outcome, 'timeout_after_accept');
    assert.equal(sim.requests()[0]?.status, 0);
    const again = await sendEvents(sim, batch);
    assert.equal(again.status, 200);
    assert.equal(sim.deliveries(PIXEL, 'o-9'), 2);
    assert.deepEqual(
      sim.duplicates().map((d) => [d.eventId, d.count]),
      [
        ['o-9', 2],
        ['v-9', 2],
      ],
    );
    assert.equal(sim.stats().eventsAccepted, 4);
  });

  it('timeout_after_accept does not fire on a request that is rejected anyway', async () => {
    sim.inject({ kind: 'timeout_after_accept' });
    const bad = await sendEvents(sim, [minimal('b', { user_data: {} })]);
    assert.equal(bad.status, 400);
    await assert.rejects(sendEvents(sim, [minimal('g')], { signal: AbortSignal.timeout(200) }));
    assert.equal(sim.deliveries(PIXEL, 'g'), 1);
  });

  it('invalid_event: rejects, persistently, any request carrying a poisoned event_id, naming its index', async () => {
    sim.inject({ kind: 'invalid_event', eventIds: ['bad-2', 'bad-7'] });
    for (let round = 0; round < 2; round++) {
      const a = await sendEvents(sim, [minimal('ok-1'), minimal('ok-2'), minimal('bad-7'), minimal('ok-3')]);
      assert.equal(a.status, 400);
      const err = graphError(a);
      assert.equal(err.code, 100);
      assert.equal(err.type, 'OAuthException');
      assert.equal(err.is_transient, false);
      assert.match(String(err.error_user_msg), /\$\['data'\]\[2\]/);
    }
    assert.equal(sim.events().length, 0);
    assert.equal((await sendEvents(sim, [minimal('ok-1'), minimal('ok-2')])).status, 200, 'clean batches pass');
    assert.equal(sim.requests()[0]?.outcome, 'invalid_event');
    assert.equal(sim.requests()[0]?.eventIndex, 2);
    sim.clearFaults();
    assert.equal((await sendEvents(sim, [minimal('bad-7')])).status, 200);
  });

  it('invalid_event names the earlier of a poisoned event and a genuinely invalid one', async () => {
    sim.inject({ kind: 'invalid_event', eventIds: ['bad'] });
    const a = await sendEvents(sim, [minimal('x', { user_data: {} }), minimal('bad')]);
    assert.equal(graphError(a).error_subcode, 2804050);
    const b = await sendEvents(sim, [minimal('bad'), minimal('x', { user_data: {} })]);
    assert.match(String(graphError(b).error_user_msg), /\$\['data'\]\[0\]/);
    assert.equal(sim.requests()[1]?.outcome, 'invalid_event');
  });

  it('invalid_event can be scoped to a pixel', async () => {
    sim.inject({ kind: 'invalid_event', eventIds: ['bad'], pixelId: OTHER_PIXEL });
    assert.equal((await sendEvents(sim, [minimal('bad')])).status, 200);
    assert.equal((await sendEvents(sim, [minimal('bad')], { pixel: OTHER_PIXEL, token: OTHER_TOKEN })).status, 400);
  });

  it('refuses malformed faults', () => {
    assert.throws(() => sim.inject({ kind: 'nope' } as never), /unknown fault kind/);
    assert.throws(() => sim.inject({ kind: 'server_error', count: 0 }), /count/);
    assert.throws(() => sim.inject({ kind: 'server_error', probability: 2 }), /probability/);
    assert.throws(() => sim.inject({ kind: 'invalid_event', eventIds: [] }), /eventIds/);
    assert.throws(() => sim.inject({ kind: 'throttle_4', code: 1 }), /code/);
  });
});

describe('closing with requests held open', () => {
  it('close() ends hanging requests instead of waiting for them', async () => {
    const sim = await startMetaSim({ now: () => NOW_MS, pixels });
    sim.inject({ kind: 'timeout', count: 5 });
    const pending = Array.from({ length: 5 }, () => sendEvents(sim, [minimal()]).then(
      () => 'answered',
      () => 'failed',
    ));
    await eventually(() => sim.stats().hanging === 5);
    const t0 = performance.now();
    await sim.close();
    assert.ok(performance.now() - t0 < 1000);
    assert.deepEqual(await Promise.all(pending), ['failed', 'failed', 'failed', 'failed', 'failed']);
    await sim.close(); // idempotent
  });
});
