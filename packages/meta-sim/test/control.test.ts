/**
 * The HTTP control API under /_sim (for tests that drive the sim from another process), and the CLI
 * that the demo and manual runs use, started as a real child process.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { startMetaSim, type MetaSim } from '../src/index.ts';
import { eventually, graphError, minimal, NOW_MS, PIXEL, purchase, sendEvents, TOKEN } from './helpers.ts';

type Json = Record<string, unknown>;

async function control(sim: MetaSim, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.headers = { 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`${sim.url}${path}`, init);
  return { status: res.status, body: (await res.json()) as Json };
}

describe('HTTP control API', () => {
  let sim: MetaSim;
  before(async () => {
    sim = await startMetaSim({ now: () => NOW_MS });
  });
  after(() => sim.close());
  beforeEach(async () => {
    assert.equal((await control(sim, 'POST', '/_sim/reset')).status, 200);
  });

  it('POST /_sim/pixels registers a pixel and its token', async () => {
    assert.equal(graphError(await sendEvents(sim, [minimal()])).code, 190);
    const r = await control(sim, 'POST', '/_sim/pixels', { pixelId: PIXEL, accessToken: TOKEN });
    assert.deepEqual(r, { status: 200, body: { ok: true } });
    assert.equal((await sendEvents(sim, [minimal()])).status, 200);
    assert.equal((await control(sim, 'POST', '/_sim/pixels', { pixelId: PIXEL })).status, 400);
  });

  it('POST /_sim/faults arms a fault, GET lists it, {clear:true} clears all', async () => {
    await control(sim, 'POST', '/_sim/pixels', { pixelId: PIXEL, accessToken: TOKEN });
    const armed = await control(sim, 'POST', '/_sim/faults', { kind: 'throttle_80004', count: 2, pixelId: PIXEL });
    assert.equal(armed.status, 200);
    assert.equal(typeof armed.body.id, 'string');
    await control(sim, 'POST', '/_sim/faults', { kind: 'invalid_event', eventIds: ['bad'] });
    const listed = await control(sim, 'GET', '/_sim/faults');
    assert.deepEqual(
      (listed.body.faults as Json[]).map((f) => [(f.fault as Json).kind, f.remaining]),
      [
        ['throttle_80004', 2],
        ['invalid_event', null],
      ],
    );
    assert.equal(graphError(await sendEvents(sim, [minimal()])).code, 80004);
    const cleared = await control(sim, 'POST', '/_sim/faults', { clear: true });
    assert.deepEqual(cleared.body, { ok: true, cleared: 2 });
    assert.equal((await sendEvents(sim, [minimal('bad')])).status, 200);
  });

  it('POST /_sim/faults refuses a malformed fault with a message', async () => {
    const r = await control(sim, 'POST', '/_sim/faults', { kind: 'meteor' });
    assert.equal(r.status, 400);
    assert.match(String((r.body.error as Json).message), /unknown fault kind/);
    const notJson = await fetch(`${sim.url}/_sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    assert.equal(notJson.status, 400);
  });

  it('GET /_sim/stats, /events, /requests, /bodies, /duplicates, /deliveries report what the sim saw', async () => {
    await control(sim, 'POST', '/_sim/pixels', { pixelId: PIXEL, accessToken: TOKEN });
    await control(sim, 'POST', '/_sim/faults', { kind: 'timeout_after_accept' });
    await assert.rejects(sendEvents(sim, [purchase('o-1')], { signal: AbortSignal.timeout(200) }));
    await sendEvents(sim, [purchase('o-1')]);
    await sendEvents(sim, [minimal('x', { user_data: {} })]);

    const stats = (await control(sim, 'GET', '/_sim/stats')).body;
    assert.equal(stats.requests, 3);
    assert.deepEqual(stats.byOutcome, { timeout_after_accept: 1, accepted: 1, validation_error: 1 });
    assert.equal(stats.eventsAccepted, 2);
    assert.equal(stats.duplicateDeliveries, 1);
    assert.ok((stats.inFlightMax as number) >= 1);

    const events = (await control(sim, 'GET', `/_sim/events?pixelId=${PIXEL}`)).body.events as Json[];
    assert.deepEqual(
      events.map((e) => (e.event as Json).event_id),
      ['o-1', 'o-1'],
    );
    const requests = (await control(sim, 'GET', '/_sim/requests')).body.requests as Json[];
    assert.deepEqual(
      requests.map((r) => r.status),
      [0, 200, 400],
    );
    const bodies = (await control(sim, 'GET', '/_sim/bodies')).body.bodies as string[];
    assert.equal(bodies.length, 3);
    assert.deepEqual((await control(sim, 'GET', '/_sim/duplicates')).body, { duplicates: [{ pixelId: PIXEL, eventId: 'o-1', count: 2 }] });
    assert.deepEqual((await control(sim, 'GET', `/_sim/deliveries?pixelId=${PIXEL}&eventId=o-1`)).body, {
      pixelId: PIXEL,
      eventId: 'o-1',
      count: 2,
    });
    assert.equal((await control(sim, 'GET', '/_sim/deliveries')).status, 400);
  });

  it('POST /_sim/latency sets the latency; POST /_sim/reset forgets recordings and faults', async () => {
    await control(sim, 'POST', '/_sim/pixels', { pixelId: PIXEL, accessToken: TOKEN });
    assert.equal((await control(sim, 'POST', '/_sim/latency', { ms: 150 })).status, 200);
    const t0 = performance.now();
    await sendEvents(sim, [minimal()]);
    assert.ok(performance.now() - t0 >= 150);
    await control(sim, 'POST', '/_sim/latency', { ms: 0 });
    await control(sim, 'POST', '/_sim/faults', { kind: 'server_error', count: 5 });
    await control(sim, 'POST', '/_sim/reset');
    const stats = (await control(sim, 'GET', '/_sim/stats')).body;
    assert.equal(stats.requests, 0);
    assert.deepEqual((await control(sim, 'GET', '/_sim/faults')).body, { faults: [] });
    assert.equal((await sendEvents(sim, [minimal()])).status, 200);
  });

  it('an unknown control route is a plain 404', async () => {
    assert.equal((await control(sim, 'GET', '/_sim/nothing')).status, 404);
  });
});

describe('CLI', () => {
  it('prints its URL, serves the pixels it was given, and stops on SIGTERM', async () => {
    const bin = fileURLToPath(new URL('../bin/meta-sim.ts', import.meta.url));
    const child = spawn(process.execPath, [bin, '--port', '0', '--pixel', `${PIXEL}:${TOKEN}`, '--latency', '5', '--seed', '3'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => (out += chunk));
      await eventually(() => out.includes('\n'), 10_000);
      const url = out.split('\n')[0]!;
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${url}/v21.0/${PIXEL}/events?access_token=${TOKEN}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: [{ ...minimal(), event_time: Math.floor(Date.now() / 1000) }] }),
      });
      assert.equal(res.status, 200);
      const stats = (await (await fetch(`${url}/_sim/stats`)).json()) as Json;
      assert.equal(stats.eventsAccepted, 1);
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
  });

  it('refuses a malformed --pixel with exit code 2', async () => {
    const bin = fileURLToPath(new URL('../bin/meta-sim.ts', import.meta.url));
    const child = spawn(process.execPath, [bin, '--pixel', 'no-token'], { stdio: 'ignore' });
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 2);
  });
});
