/** runSimulation against a tiny local HTTP server that records what it receives. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { planSimulation, type SimAction } from '../../src/simulate/plan.ts';
import { parseRetryAfter, runSimulation } from '../../src/simulate/run.ts';
import { END, MERCHANTS, startFakeApi, type FakeApi, type Received } from './fixture.ts';

type Handler = (r: Received, res: ServerResponse, req: IncomingMessage) => void;

let api: FakeApi;
let base: string;
let received: Received[] = [];
let handler: Handler;

const ok = (r: Received, res: ServerResponse): void => {
  if (r.path === '/v1/beacon/challenge') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `tok:${r.query.get('anonymousId')}:${r.headers['user-agent']}`, expiresAt: Date.now() + 300_000 }));
  } else if (r.path === '/v1/beacon/validate') {
    res.writeHead(204).end();
  } else {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true}');
  }
};

before(async () => {
  api = await startFakeApi((r, res, req) => {
    received.push(r);
    handler(r, res, req);
  });
  base = api.base;
});

after(() => api.close());

const batchAction = (ids: string[], writeKey = 'wk_test_key_1', lane = 0): SimAction => ({
  kind: 'batch',
  lane,
  writeKey,
  body: { batch: ids.map((messageId) => ({ type: 'track', event: 'Product Viewed', messageId, anonymousId: 'v1', timestamp: new Date(END).toISOString() })) },
});

describe('runSimulation', () => {
  it('retries a batch answered 503 with the same body, after Retry-After', async () => {
    received = [];
    let n = 0;
    handler = (r, res) => {
      if (n++ === 0) res.writeHead(503, { 'retry-after': '0.3', 'content-type': 'application/json' }).end('{"error":{"code":"SHOP_ERR_UNAVAILABLE","message":"later"}}');
      else ok(r, res);
    };
    const result = await runSimulation([batchAction(['a', 'b'])], { baseUrl: base });
    assert.equal(result.failures, 0);
    assert.equal(result.events, 2);
    assert.equal(result.requests, 2);
    assert.equal(result.retries, 1);
    assert.equal(received.length, 2);
    assert.equal(received[1]!.body, received[0]!.body, 'the same body, so the same messageIds');
    assert.ok(received[1]!.at - received[0]!.at >= 280, `waited ${received[1]!.at - received[0]!.at} ms`);
    assert.equal(received[0]!.headers['authorization'], `Basic ${Buffer.from('wk_test_key_1:').toString('base64')}`);
    assert.equal(JSON.parse(received[0]!.body).sentAt, undefined);
  });

  it('retries on 429 and on a dropped connection; gives up on a 400 without retrying', async () => {
    received = [];
    let n = 0;
    handler = (r, res, req) => {
      const k = n++;
      if (k === 0) res.writeHead(429, { 'retry-after': '0' }).end('{}');
      else if (k === 1) req.socket.destroy();
      else if (JSON.parse(r.body).batch[0].messageId === 'bad') res.writeHead(400).end('{"error":{"code":"SHOP_ERR_INVALID_JSON"}}');
      else ok(r, res);
    };
    const result = await runSimulation([batchAction(['x']), batchAction(['bad'])], { baseUrl: base, concurrency: 1 });
    assert.equal(result.events, 1);
    assert.equal(result.failures, 1);
    assert.match(result.errors[0]!, /HTTP 400/);
    const bodies = received.map((r) => JSON.parse(r.body).batch[0].messageId);
    assert.deepEqual(bodies, ['x', 'x', 'x', 'bad']);
  });

  it('runs beacons with the visitor User-Agent, and retries a validation answered 503 with the same token', async () => {
    received = [];
    let validations = 0;
    handler = (r, res) => {
      if (r.path === '/v1/beacon/validate' && validations++ === 0) res.writeHead(503, { 'retry-after': '0' }).end('{}');
      else ok(r, res);
    };
    const ua = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
    const result = await runSimulation([{ kind: 'beacon', lane: 0, writeKey: 'wk_test_key_1', anonymousId: 'anon 1', userAgent: ua }], { baseUrl: base });
    assert.equal(result.beacons, 1);
    assert.equal(result.failures, 0);
    const [challenge, v1, v2] = received;
    assert.equal(challenge!.method, 'GET');
    assert.equal(challenge!.path, '/v1/beacon/challenge');
    assert.equal(challenge!.query.get('writeKey'), 'wk_test_key_1');
    assert.equal(challenge!.query.get('anonymousId'), 'anon 1');
    for (const r of received) assert.equal(r.headers['user-agent'], ua);
    assert.equal(v1!.path, '/v1/beacon/validate');
    assert.equal(v1!.headers['content-type'], 'text/plain');
    assert.deepEqual(JSON.parse(v1!.body), { writeKey: 'wk_test_key_1', anonymousId: 'anon 1', token: `tok:anon 1:${ua}` });
    assert.equal(v2!.body, v1!.body);
  });

  it('sends a whole plan concurrently, keeping each visitor order and its beacon first', async () => {
    received = [];
    let k = 0;
    // Answer with varying delays, so that the workers interleave.
    handler = (r, res) => setTimeout(() => ok(r, res), (k++ * 7) % 11);
    const { actions } = planSimulation({ seed: 5, merchants: MERCHANTS, visitorsPerMerchant: 25, products: 40, endTime: END });
    const progress: number[] = [];
    const result = await runSimulation(actions, { baseUrl: base, concurrency: 4, onProgress: (sent) => progress.push(sent) });
    const batches = actions.filter((a) => a.kind === 'batch');
    const total = batches.reduce((a, b) => a + b.body.batch.length, 0);
    assert.equal(result.failures, 0);
    assert.equal(result.events, total);
    assert.equal(result.beacons, actions.length - batches.length);
    assert.equal(progress.at(-1), total);

    const keyOf = new Map(MERCHANTS.map((m) => [`Basic ${Buffer.from(`${m.writeKey}:`).toString('base64')}`, m.writeKey]));
    type Sent = { writeKey: string; kind: 'batch' | 'beacon'; ids: string[]; visitors: string[] };
    const order = (list: Sent[]) => {
      const perVisitor = new Map<string, string[]>();
      for (const x of list) {
        x.visitors.forEach((v, i) => {
          const seq = perVisitor.get(`${x.writeKey}/${v}`) ?? [];
          seq.push(x.kind === 'beacon' ? 'beacon' : x.ids[i]!);
          perVisitor.set(`${x.writeKey}/${v}`, seq);
        });
      }
      return perVisitor;
    };
    const planned = order(
      actions.map((a): Sent =>
        a.kind === 'beacon'
          ? { writeKey: a.writeKey, kind: 'beacon', ids: [], visitors: [a.anonymousId] }
          : { writeKey: a.writeKey, kind: 'batch', ids: a.body.batch.map((m) => String(m['messageId'] ?? '-')), visitors: a.body.batch.map((m) => String(m['anonymousId'])) },
      ),
    );
    const got = order(
      received.flatMap((r): Sent[] => {
        if (r.path === '/v1/beacon/validate') {
          const b = JSON.parse(r.body) as { writeKey: string; anonymousId: string };
          return [{ writeKey: b.writeKey, kind: 'beacon', ids: [], visitors: [b.anonymousId] }];
        }
        if (r.path !== '/v1/batch') return [];
        const batch = (JSON.parse(r.body) as { batch: Array<Record<string, unknown>> }).batch;
        return [{ writeKey: keyOf.get(String(r.headers['authorization']))!, kind: 'batch', ids: batch.map((m) => String(m['messageId'] ?? '-')), visitors: batch.map((m) => String(m['anonymousId'])) }];
      }),
    );
    assert.equal(got.size, planned.size);
    for (const [v, seq] of planned) assert.deepEqual(got.get(v), seq, v);
  });

  it('gives up after several actions failed in a row (an unknown write key, a collector down)', async () => {
    received = [];
    handler = (_r, res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"SHOP_ERR_UNAUTHORIZED"}}');
    const actions = Array.from({ length: 8 }, (_, i) => batchAction([`u${i}`]));
    const result = await runSimulation(actions, { baseUrl: base, concurrency: 1, giveUpAfter: 3 });
    assert.equal(result.failures, 8);
    assert.equal(result.requests, 3, 'a 401 is not retried, and the rest is not sent');
    assert.match(result.errors.at(-1)!, /gave up/);
  });

  it('paces to the given rate', async () => {
    received = [];
    handler = ok;
    const actions = Array.from({ length: 6 }, (_, i) => batchAction(Array.from({ length: 50 }, (_, j) => `r${i}-${j}`), 'wk_test_key_1', i));
    const t0 = Date.now();
    const result = await runSimulation(actions, { baseUrl: base, rate: 1000, concurrency: 3 });
    assert.equal(result.events, 300);
    // 300 events at 1000/s: the last batch may start 250 ms after the first.
    assert.ok(Date.now() - t0 >= 240, `${Date.now() - t0} ms`);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    assert.equal(parseRetryAfter('2'), 2000);
    assert.equal(parseRetryAfter('0.25'), 250);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6_000);
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
  });
});
