/**
 * The events edge over HTTP: the three ways Graph takes parameters (JSON, form, query), the three
 * places a token may come from, authentication and routing failures, the success answer, recording,
 * duplicate counting, latency and concurrency.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMetaSim, type MetaSim } from '../src/index.ts';
import {
  graphError,
  minimal,
  NOW_MS,
  OTHER_PIXEL,
  OTHER_TOKEN,
  PIXEL,
  post,
  purchase,
  sendEvents,
  sha256,
  TOKEN,
} from './helpers.ts';

describe('events edge', () => {
  let sim: MetaSim;
  before(async () => {
    sim = await startMetaSim({
      now: () => NOW_MS,
      pixels: [
        { pixelId: PIXEL, accessToken: TOKEN },
        { pixelId: OTHER_PIXEL, accessToken: OTHER_TOKEN },
      ],
    });
  });
  after(() => sim.close());
  beforeEach(() => sim.reset());

  describe('accepts a valid batch', () => {
    it('as a JSON body, token in the query, and answers like Meta', async () => {
      const a = await sendEvents(sim, [purchase('o-1'), minimal('v-1')], { extra: { test_event_code: 'TEST123' } });
      assert.equal(a.status, 200);
      assert.deepEqual(Object.keys(a.body), ['events_received', 'messages', 'fbtrace_id']);
      assert.equal(a.body.events_received, 2);
      assert.deepEqual(a.body.messages, []);
      assert.match(String(a.body.fbtrace_id), /^[A-Za-z0-9_-]{23}$/);
      assert.equal(a.headers.get('x-fb-trace-id'), a.body.fbtrace_id);
      assert.match(a.headers.get('content-type') ?? '', /^application\/json/);
    });

    it('as a JSON body with access_token in the body', async () => {
      const a = await post(sim, `/v21.0/${PIXEL}/events`, {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: [purchase()], access_token: TOKEN }),
      });
      assert.equal(a.status, 200);
      assert.equal(sim.requests()[0]?.tokenSource, 'body');
    });

    it('as a form body where data is a JSON string, token in an Authorization: Bearer header', async () => {
      const a = await post(sim, `/v19.0/${PIXEL}/events`, {
        headers: { authorization: `Bearer ${TOKEN}` },
        body: new URLSearchParams({ data: JSON.stringify([purchase()]), test_event_code: 'TEST9', partner_agent: 'shopstream' }),
      });
      assert.equal(a.status, 200);
      assert.equal(sim.requests()[0]?.tokenSource, 'header');
      assert.equal(sim.events()[0]?.testEventCode, 'TEST9');
    });

    it('as a form body with the token in the form', async () => {
      const a = await post(sim, `/v21.0/${PIXEL}/events`, {
        body: new URLSearchParams({ data: JSON.stringify([minimal()]), access_token: TOKEN }),
      });
      assert.equal(a.status, 200);
    });

    it('as multipart/form-data, like the curl -F example in Meta\'s docs', async () => {
      const form = new FormData();
      form.set('data', JSON.stringify([purchase(), minimal()]));
      form.set('access_token', TOKEN);
      const a = await post(sim, `/v21.0/${PIXEL}/events`, { body: form });
      assert.equal(a.status, 200);
      assert.equal(a.body.events_received, 2);
    });

    it('entirely in the query string', async () => {
      const q = new URLSearchParams({ data: JSON.stringify([minimal()]), access_token: TOKEN, test_event_code: 'Q1' });
      const a = await post(sim, `/v21.0/${PIXEL}/events?${q}`);
      assert.equal(a.status, 200);
      assert.equal(sim.requests()[0]?.tokenSource, 'query');
      assert.equal(sim.events()[0]?.testEventCode, 'Q1');
      assert.equal(sim.rawBodies()[0], q.toString(), 'a body-less request records its query string');
    });

    it('with an Authorization: OAuth header', async () => {
      const a = await post(sim, `/v21.0/${PIXEL}/events`, {
        headers: { authorization: `OAuth ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ data: [minimal()] }),
      });
      assert.equal(a.status, 200);
    });
  });

  describe('fails like Meta', () => {
    it('no token anywhere: code 104, HTTP 400', async () => {
      const a = await post(sim, `/v21.0/${PIXEL}/events`, { body: new URLSearchParams({ data: JSON.stringify([minimal()]) }) });
      assert.equal(a.status, 400);
      const err = graphError(a);
      assert.equal(err.code, 104);
      assert.equal(err.type, 'OAuthException');
      assert.equal(err.message, 'An access token is required to request this resource.');
    });

    it('unknown token as a parameter: code 190, HTTP 400', async () => {
      const a = await sendEvents(sim, [minimal()], { token: 'EAAnope' });
      assert.equal(a.status, 400);
      const err = graphError(a);
      assert.equal(err.code, 190);
      assert.equal(err.type, 'OAuthException');
      assert.equal(err.message, 'Invalid OAuth access token - Cannot parse access token');
      assert.match(a.headers.get('www-authenticate') ?? '', /invalid_token/);
    });

    it('unknown token in an Authorization header: code 190, HTTP 401', async () => {
      const a = await post(sim, `/v21.0/${PIXEL}/events`, {
        headers: { authorization: 'Bearer EAAnope', 'content-type': 'application/json' },
        body: JSON.stringify({ data: [minimal()] }),
      });
      assert.equal(a.status, 401);
      assert.equal(graphError(a).code, 190);
      assert.equal(sim.requests()[0]?.outcome, 'auth_error');
    });

    it('unknown pixel: 100 / 33 GraphMethodException naming the object', async () => {
      const a = await sendEvents(sim, [minimal()], { pixel: '555' });
      assert.equal(a.status, 400);
      const err = graphError(a);
      assert.equal(err.code, 100);
      assert.equal(err.error_subcode, 33);
      assert.equal(err.type, 'GraphMethodException');
      assert.match(String(err.message), /^Unsupported post request\. Object with ID '555' does not exist, cannot be loaded/);
    });

    it('a valid token for another pixel: 100 / 33 as well (no permission on the object)', async () => {
      const a = await sendEvents(sim, [minimal()], { pixel: OTHER_PIXEL, token: TOKEN });
      assert.equal(graphError(a).error_subcode, 33);
      assert.equal(sim.requests()[0]?.outcome, 'unknown_object');
    });

    it('a malformed API version: unknown path components (2500)', async () => {
      for (const v of ['v21', '21.0', 'version', 'v21.0.1']) {
        const a = await post(sim, `/${v}/${PIXEL}/events?access_token=${TOKEN}`, {
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ data: [minimal()] }),
        });
        assert.equal(a.status, 400, v);
        assert.equal(graphError(a).code, 2500, v);
        assert.match(String(graphError(a).message), /^Unknown path components/);
      }
    });

    it('another edge or method: Graph\'s "Unsupported get request"', async () => {
      const res = await fetch(`${sim.url}/v21.0/${PIXEL}/events`);
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: { code: number; error_subcode: number; message: string } };
      assert.equal(body.error.code, 100);
      assert.equal(body.error.error_subcode, 33);
      assert.match(body.error.message, /^Unsupported get request\. Object with ID '1234567890'/);
    });

    it('a JSON body that does not parse: code 100', async () => {
      const a = await post(sim, `/v21.0/${PIXEL}/events?access_token=${TOKEN}`, {
        headers: { 'content-type': 'application/json' },
        body: '{"data": [',
      });
      assert.equal(a.status, 400);
      assert.equal(graphError(a).code, 100);
      assert.equal(sim.requests()[0]?.outcome, 'bad_request');
      assert.equal(sim.rawBodies()[0], '{"data": [', 'rejected bodies are recorded exactly');
    });
  });

  it('checks the version against apiVersion when given', async () => {
    const pinned = await startMetaSim({ apiVersion: 'v21.0', now: () => NOW_MS, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }] });
    try {
      assert.equal((await sendEvents(pinned, [minimal()])).status, 200);
      const old = await post(pinned, `/v20.0/${PIXEL}/events?access_token=${TOKEN}`, {
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: [minimal()] }),
      });
      assert.equal(graphError(old).code, 2500);
    } finally {
      await pinned.close();
    }
  });

  describe('recording', () => {
    it('records each accepted event with its pixel, test_event_code and time received', async () => {
      await sendEvents(sim, [purchase('o-1'), minimal('v-1')], { extra: { test_event_code: 'T1' } });
      await sendEvents(sim, [minimal('v-2')], { pixel: OTHER_PIXEL, token: OTHER_TOKEN });
      const all = sim.events();
      assert.equal(all.length, 3);
      assert.deepEqual(
        all.map((e) => [e.pixelId, e.event.event_id, e.testEventCode, e.receivedAt]),
        [
          [PIXEL, 'o-1', 'T1', NOW_MS],
          [PIXEL, 'v-1', 'T1', NOW_MS],
          [OTHER_PIXEL, 'v-2', undefined, NOW_MS],
        ],
      );
      assert.deepEqual(all[0]?.event, purchase('o-1'), 'the event is kept exactly as sent');
      assert.deepEqual(
        sim.events(OTHER_PIXEL).map((e) => e.event.event_id),
        ['v-2'],
      );
    });

    it('logs every request, accepted or not', async () => {
      await sendEvents(sim, [minimal()]);
      await sendEvents(sim, [minimal('x', { user_data: { em: 'plain@example.com' } })]);
      await sendEvents(sim, [minimal()], { token: 'bad' });
      const log = sim.requests();
      assert.deepEqual(
        log.map((r) => [r.pixelId, r.status, r.events, r.outcome, r.errorCode, r.errorSubcode]),
        [
          [PIXEL, 200, 1, 'accepted', undefined, undefined],
          [PIXEL, 400, 1, 'validation_error', 100, 2804016],
          [PIXEL, 400, 1, 'auth_error', 190, undefined],
        ],
      );
      for (const r of log) assert.ok(r.durationMs >= 0);
      const s = sim.stats();
      assert.equal(s.requests, 3);
      assert.deepEqual(s.byStatus, { 200: 1, 400: 2 });
      assert.deepEqual(s.byOutcome, { accepted: 1, validation_error: 1, auth_error: 1 });
      assert.equal(s.eventsAccepted, 1);
      assert.equal(s.eventsRejected, 2);
    });

    it('keeps the raw bodies, rejected ones included, so a test can scan them for personal data', async () => {
      await sendEvents(sim, [minimal('a')]);
      await sendEvents(sim, [minimal('b', { user_data: { em: 'plain@example.com' } })]);
      const bodies = sim.rawBodies();
      assert.equal(bodies.length, 2);
      assert.equal(bodies[0], JSON.stringify({ data: [minimal('a')] }));
      assert.ok(bodies[1]?.includes('plain@example.com'));
      assert.ok(!bodies.some((b) => /jane@example\.com/.test(b)));
    });

    it('does not keep bodies with recordBodies: false', async () => {
      const lean = await startMetaSim({ recordBodies: false, now: () => NOW_MS, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }] });
      try {
        await sendEvents(lean, [minimal()]);
        assert.deepEqual(lean.rawBodies(), []);
        assert.equal(lean.events().length, 1);
      } finally {
        await lean.close();
      }
    });

    it('counts deliveries per (pixel, event_id) and lists duplicates', async () => {
      await sendEvents(sim, [purchase('o-1'), minimal('v-1')]);
      await sendEvents(sim, [purchase('o-1')]);
      await sendEvents(sim, [purchase('o-1')]);
      await sendEvents(sim, [purchase('o-1')], { pixel: OTHER_PIXEL, token: OTHER_TOKEN });
      assert.equal(sim.deliveries(PIXEL, 'o-1'), 3);
      assert.equal(sim.deliveries(PIXEL, 'v-1'), 1);
      assert.equal(sim.deliveries(OTHER_PIXEL, 'o-1'), 1);
      assert.equal(sim.deliveries(PIXEL, 'never'), 0);
      assert.deepEqual(sim.duplicates(), [{ pixelId: PIXEL, eventId: 'o-1', count: 3 }]);
      assert.equal(sim.stats().duplicateKeys, 1);
      assert.equal(sim.stats().duplicateDeliveries, 2);
      assert.equal(sim.events().length, 5, 'every delivery is recorded, duplicates too');
    });

    it('reset forgets recordings but keeps pixels', async () => {
      await sendEvents(sim, [minimal()]);
      sim.reset();
      assert.deepEqual([sim.events().length, sim.requests().length, sim.rawBodies().length, sim.stats().requests], [0, 0, 0, 0]);
      assert.equal((await sendEvents(sim, [minimal()])).status, 200);
    });

    it('addPixel adds a pixel and a token at run time', async () => {
      sim.addPixel('777', 'EAA777');
      assert.equal((await sendEvents(sim, [minimal()], { pixel: '777', token: 'EAA777' })).status, 200);
      assert.equal(sim.events('777').length, 1);
    });
  });
});

describe('latency and concurrency', () => {
  it('waits latencyMs before answering, concurrently, and reports the in-flight maximum', async () => {
    const sim = await startMetaSim({ latencyMs: 300, now: () => NOW_MS, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }], recordBodies: false });
    try {
      const n = 200;
      const t0 = performance.now();
      const answers = await Promise.all(Array.from({ length: n }, (_, i) => sendEvents(sim, [minimal(`c-${i}`)])));
      const elapsed = performance.now() - t0;
      assert.ok(answers.every((a) => a.status === 200));
      assert.ok(elapsed >= 300, `answered after ${elapsed} ms`);
      assert.ok(elapsed < 3000, `200 requests with 300 ms latency took ${elapsed} ms: not concurrent`);
      const s = sim.stats();
      assert.ok(s.inFlightMax >= 100, `inFlightMax ${s.inFlightMax}`);
      assert.equal(s.eventsAccepted, n);
      assert.ok(sim.requests().every((r) => r.durationMs >= 295));
    } finally {
      await sim.close();
    }
  });

  it('draws latency from a function per request, and setLatency changes it', async () => {
    let calls = 0;
    const sim = await startMetaSim({
      latencyMs: () => {
        calls++;
        return 20;
      },
      now: () => NOW_MS,
      pixels: [{ pixelId: PIXEL, accessToken: TOKEN }],
    });
    try {
      await sendEvents(sim, [minimal()]);
      await sendEvents(sim, [minimal()], { token: 'bad' });
      assert.equal(calls, 2, 'errors wait too');
      sim.setLatency(0);
      await sendEvents(sim, [minimal()]);
      assert.equal(calls, 2);
    } finally {
      await sim.close();
    }
  });

  it('hashes are checked, not trusted: a 64-char hex of the wrong length fails', async () => {
    const sim = await startMetaSim({ now: () => NOW_MS, pixels: [{ pixelId: PIXEL, accessToken: TOKEN }] });
    try {
      const a = await sendEvents(sim, [minimal('h', { user_data: { em: sha256('x').slice(0, 63) } })]);
      assert.equal(graphError(a).error_subcode, 2804016);
    } finally {
      await sim.close();
    }
  });
});
