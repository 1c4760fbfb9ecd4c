import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PlatformError, PlatformErrors } from '../../src/errors.ts';
import type { Merchant, MerchantLookup } from '../../src/merchants/model.ts';
import { beaconRoutes } from '../../src/collector/beacon/routes.ts';
import type { BeaconOptions, ValidationEvent } from '../../src/collector/beacon/routes.ts';
import { beaconScript } from '../../src/collector/beacon/script.ts';
import { MAX_ANONYMOUS_ID_LENGTH, UsedTokens, hashUserAgent, mintToken } from '../../src/collector/beacon/token.ts';

const SECRET = Buffer.alloc(32, 1);
const OLD_SECRET = Buffer.alloc(32, 2);
const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';
const T0 = 1_750_000_000_000;
const TOKEN_TTL = 5 * 60_000;
const VALIDATION_TTL = 30 * 24 * 3_600_000;

function merchant(id: string): Merchant {
  return {
    id,
    writeKeys: [`wk_${id}`],
    revokedWriteKeys: [`wk_${id}_old`],
    readTokens: [],
    timezone: 'UTC',
    currency: 'EUR',
    createdAt: 0,
    updatedAt: 0,
  };
}

function lookup(...ms: Merchant[]): MerchantLookup {
  return {
    byWriteKey(key) {
      for (const m of ms) {
        if (m.writeKeys.includes(key)) return { merchant: m, revoked: false };
        if (m.revokedWriteKeys.includes(key)) return { merchant: m, revoked: true };
      }
      return undefined;
    },
    byId: (id) => ms.find((m) => m.id === id),
  };
}

type Rec = { key: Buffer; value: Buffer; timestamp: number };

interface Harness {
  app: FastifyInstance;
  appended: Rec[];
  registry: Registry;
  clock: { t: number };
  /** When set, append rejects with it (once per call) instead of appending. */
  failNext: Error[];
  logs: string[];
}

async function harness(over: Partial<BeaconOptions> = {}, parent?: (app: FastifyInstance) => void): Promise<Harness> {
  const appended: Rec[] = [];
  const failNext: Error[] = [];
  const clock = { t: T0 };
  const registry = new Registry();
  const logs: string[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { logs.push(String(chunk)); cb(); } });
  const app = Fastify({ loggerInstance: pino({ level: 'trace' }, stream) as FastifyBaseLogger });
  parent?.(app);
  await app.register(beaconRoutes, {
    merchants: lookup(merchant('shop_a'), merchant('shop_b')),
    secrets: [SECRET],
    now: () => clock.t,
    registry,
    append: async (r) => {
      const err = failNext.shift();
      if (err) throw err;
      appended.push(r);
    },
    ...over,
  });
  await app.ready();
  return { app, appended, registry, clock, failNext, logs };
}

async function challenge(h: Harness, { writeKey = 'wk_shop_a', anonymousId = 'anon-1', ua = UA } = {}) {
  const res = await h.app.inject({ method: 'GET', url: '/v1/beacon/challenge', query: { writeKey, anonymousId }, headers: { 'user-agent': ua } });
  return res;
}

async function validate(h: Harness, body: unknown, { ua = UA, contentType = 'application/json' } = {}) {
  return h.app.inject({
    method: 'POST',
    url: '/v1/beacon/validate',
    headers: { 'user-agent': ua, 'content-type': contentType },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function tokenFor(h: Harness, opts: { writeKey?: string; anonymousId?: string; ua?: string } = {}): Promise<string> {
  const res = await challenge(h, opts);
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { token: string }).token;
}

async function outcomes(h: Harness): Promise<Record<string, number>> {
  const metric = await h.registry.getSingleMetric('shopstream_beacon_validations_total')!.get();
  return Object.fromEntries(metric.values.filter((v) => v.value > 0).map((v) => [String(v.labels['outcome']), v.value]));
}

function errorCode(res: { json: () => unknown }): string {
  return (res.json() as { error: { code: string } }).error.code;
}

test('happy path: challenge, validate → 204 and exactly one validation appended, keyed by visitor', async () => {
  const h = await harness();
  const res = await challenge(h);
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal(res.headers['access-control-allow-origin'], '*');
  const { token, expiresAt } = res.json() as { token: string; expiresAt: number };
  assert.equal(expiresAt, T0 + TOKEN_TTL);

  h.clock.t = T0 + 2000;
  const v = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token });
  assert.equal(v.statusCode, 204, v.body);
  assert.equal(v.headers['access-control-allow-origin'], '*');
  assert.equal(h.appended.length, 1);
  const rec = h.appended[0]!;
  assert.equal(rec.key.toString('utf8'), 'anon-1');
  assert.equal(rec.timestamp, T0 + 2000);
  const event = JSON.parse(rec.value.toString('utf8')) as ValidationEvent;
  assert.deepEqual(Object.keys(event).sort(), ['anonymousId', 'merchantId', 'tokenId', 'uaHash', 'v', 'validUntil', 'validatedAt']);
  assert.equal(event.v, 1);
  assert.equal(event.merchantId, 'shop_a');
  assert.equal(event.anonymousId, 'anon-1');
  assert.equal(event.validatedAt, T0 + 2000);
  assert.equal(event.validUntil, T0 + 2000 + VALIDATION_TTL);
  assert.equal(event.uaHash, hashUserAgent(UA));
  assert.equal(Buffer.from(event.tokenId, 'base64url').length, 16);
  assert.equal(Buffer.from(token, 'base64url').subarray(7, 23).toString('base64url'), event.tokenId);
  assert.deepEqual(await outcomes(h), { validated: 1 });
  const ch = await h.registry.getSingleMetric('shopstream_beacon_challenges_total')!.get();
  assert.equal(ch.values.find((x) => x.labels['outcome'] === 'issued')?.value, 1);
  await h.app.close();
});

test('text/plain body (no-preflight fetch / sendBeacon) is accepted', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  const v = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token }, { contentType: 'text/plain;charset=UTF-8' });
  assert.equal(v.statusCode, 204, v.body);
  assert.equal(h.appended.length, 1);
  const bad = await validate(h, '{not json', { contentType: 'text/plain' });
  assert.equal(bad.statusCode, 400);
  assert.equal(errorCode(bad), PlatformErrors.INVALID_JSON.code);
  await h.app.close();
});

test('text/plain also works under a collector-like parent that decodes every body itself', async () => {
  const h = await harness({}, (app) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => {
      try {
        done(null, JSON.parse((body as Buffer).toString('utf8')));
      } catch {
        done(new PlatformError(PlatformErrors.INVALID_JSON, 'The body is not valid JSON.'), undefined);
      }
    });
  });
  const token = await tokenFor(h);
  const v = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token }, { contentType: 'text/plain' });
  assert.equal(v.statusCode, 204, v.body);
  const bad = await validate(h, '{', { contentType: 'text/plain' });
  assert.equal(bad.statusCode, 400);
  assert.equal(errorCode(bad), PlatformErrors.INVALID_JSON.code);
  await h.app.close();
});

test('forged token → 403 BEACON_TOKEN_INVALID, nothing appended', async () => {
  const h = await harness();
  const forged = mintToken({ secret: Buffer.alloc(32, 9), merchantId: 'shop_a', anonymousId: 'anon-1', userAgent: UA, now: T0, ttlMs: TOKEN_TTL });
  for (const token of [forged, 'garbage', 'A'.repeat(1500)]) {
    const v = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token });
    assert.equal(v.statusCode, 403);
    assert.deepEqual(v.json(), { error: { code: PlatformErrors.BEACON_TOKEN_INVALID.code, message: 'the token is not valid' } });
  }
  assert.equal(h.appended.length, 0);
  assert.deepEqual(await outcomes(h), { invalid: 3 });
  await h.app.close();
});

test('expired token → 403 BEACON_TOKEN_EXPIRED', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  h.clock.t = T0 + TOKEN_TTL;
  const v = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token });
  assert.equal(v.statusCode, 403);
  assert.equal(errorCode(v), PlatformErrors.BEACON_TOKEN_EXPIRED.code);
  assert.equal(h.appended.length, 0);
  assert.deepEqual(await outcomes(h), { expired: 1 });
  await h.app.close();
});

test('replayed token → 409 BEACON_TOKEN_REPLAYED and no second append', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  const body = { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token };
  assert.equal((await validate(h, body)).statusCode, 204);
  const again = await validate(h, body);
  assert.equal(again.statusCode, 409);
  assert.equal(errorCode(again), PlatformErrors.BEACON_TOKEN_REPLAYED.code);
  assert.equal(h.appended.length, 1);
  assert.deepEqual(await outcomes(h), { validated: 1, replayed: 1 });
  await h.app.close();
});

test('concurrent posts of one token: one 204, one 409, one append', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const appended: Rec[] = [];
  const h = await harness({ append: async (r) => { await gate; appended.push(r); } });
  const token = await tokenFor(h);
  const body = { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token };
  const first = validate(h, body);
  const second = validate(h, body);
  setTimeout(release, 20);
  const codes = [(await first).statusCode, (await second).statusCode].sort();
  assert.deepEqual(codes, [204, 409]);
  assert.equal(appended.length, 1);
  await h.app.close();
});

test('foreign tokens: another merchant\'s, another visitor\'s → 403 BEACON_TOKEN_FOREIGN', async () => {
  const h = await harness();
  const tokenB = await tokenFor(h, { writeKey: 'wk_shop_b' });
  const v1 = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token: tokenB });
  assert.equal(v1.statusCode, 403);
  assert.equal(errorCode(v1), PlatformErrors.BEACON_TOKEN_FOREIGN.code);
  const tokenOther = await tokenFor(h, { anonymousId: 'anon-2' });
  const v2 = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token: tokenOther });
  assert.equal(v2.statusCode, 403);
  assert.equal(errorCode(v2), PlatformErrors.BEACON_TOKEN_FOREIGN.code);
  assert.equal(h.appended.length, 0);
  // The refused attempts did not burn the tokens: their rightful visitors still validate.
  assert.equal((await validate(h, { writeKey: 'wk_shop_b', anonymousId: 'anon-1', token: tokenB })).statusCode, 204);
  assert.equal((await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-2', token: tokenOther })).statusCode, 204);
  assert.deepEqual(await outcomes(h), { foreign: 2, validated: 2 });
  await h.app.close();
});

test('user agent differs from the challenge\'s → 403 BEACON_UA_MISMATCH', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  const v = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token }, { ua: 'curl/8.5.0' });
  assert.equal(v.statusCode, 403);
  assert.equal(errorCode(v), PlatformErrors.BEACON_UA_MISMATCH.code);
  assert.equal(h.appended.length, 0);
  assert.deepEqual(await outcomes(h), { ua_mismatch: 1 });
  await h.app.close();
});

test('bad, unknown and revoked write keys → 401 on every route', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  for (const writeKey of ['wk_nope', 'wk_shop_a_old', '', 'x'.repeat(3000)]) {
    const s = await h.app.inject({ method: 'GET', url: '/v1/beacon.js', query: { writeKey } });
    assert.equal(s.statusCode, 401, writeKey);
    assert.equal(errorCode(s), PlatformErrors.UNAUTHORIZED.code);
    const c = await challenge(h, { writeKey });
    assert.equal(c.statusCode, 401);
    assert.equal(errorCode(c), PlatformErrors.UNAUTHORIZED.code);
    if (writeKey === '') continue; // an empty field is a malformed body (400), tested below
    const v = await validate(h, { writeKey, anonymousId: 'anon-1', token });
    assert.equal(v.statusCode, 401);
    assert.equal(errorCode(v), PlatformErrors.UNAUTHORIZED.code);
  }
  const revoked = await challenge(h, { writeKey: 'wk_shop_a_old' });
  assert.match((revoked.json() as { error: { message: string } }).error.message, /rotated/);
  const noKey = await h.app.inject({ method: 'GET', url: '/v1/beacon.js' });
  assert.equal(noKey.statusCode, 401);
  assert.equal(h.appended.length, 0);
  await h.app.close();
});

test('missing or malformed fields → 400 INVALID_REQUEST', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  const bodies: unknown[] = [
    { anonymousId: 'anon-1', token },
    { writeKey: 'wk_shop_a', token },
    { writeKey: 'wk_shop_a', anonymousId: 'anon-1' },
    { writeKey: 'wk_shop_a', anonymousId: '', token },
    { writeKey: 'wk_shop_a', anonymousId: 42, token },
    { writeKey: 'wk_shop_a', anonymousId: 'x'.repeat(MAX_ANONYMOUS_ID_LENGTH + 1), token },
    [1, 2],
    'null',
  ];
  for (const body of bodies) {
    const v = await validate(h, body);
    assert.equal(v.statusCode, 400, JSON.stringify(body));
    assert.equal(errorCode(v), PlatformErrors.INVALID_REQUEST.code);
  }
  const noUa = await h.app.inject({
    method: 'POST',
    url: '/v1/beacon/validate',
    headers: { 'content-type': 'application/json', 'user-agent': undefined as unknown as string },
    payload: { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token },
  });
  assert.equal(noUa.statusCode, 400);
  assert.equal(errorCode(noUa), PlatformErrors.INVALID_REQUEST.code);
  const big = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token, pad: 'x'.repeat(8000) });
  assert.equal(big.statusCode, 400);
  assert.equal(errorCode(big), PlatformErrors.REQUEST_TOO_LARGE.code);
  for (const query of [{ writeKey: 'wk_shop_a' }, { writeKey: 'wk_shop_a', anonymousId: 'x'.repeat(MAX_ANONYMOUS_ID_LENGTH + 1) }] as Array<Record<string, string>>) {
    const c = await h.app.inject({ method: 'GET', url: '/v1/beacon/challenge', query, headers: { 'user-agent': UA } });
    assert.equal(c.statusCode, 400);
    assert.equal(errorCode(c), PlatformErrors.INVALID_REQUEST.code);
  }
  const cNoUa = await h.app.inject({
    method: 'GET',
    url: '/v1/beacon/challenge',
    query: { writeKey: 'wk_shop_a', anonymousId: 'a' },
    headers: { 'user-agent': undefined as unknown as string },
  });
  assert.equal(cNoUa.statusCode, 400);
  assert.equal(h.appended.length, 0);
  await h.app.close();
});

test('append fails retriably → 503 with Retry-After, the token is not burnt, a retry succeeds', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  const body = { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token };
  h.failNext.push(Object.assign(new Error('log unavailable'), { retriable: true }));
  const v = await validate(h, body);
  assert.equal(v.statusCode, 503);
  assert.equal(errorCode(v), PlatformErrors.UNAVAILABLE.code);
  assert.equal(v.headers['retry-after'], '1');
  assert.equal(h.appended.length, 0);
  const retry = await validate(h, body);
  assert.equal(retry.statusCode, 204, retry.body);
  assert.equal(h.appended.length, 1);
  assert.deepEqual(await outcomes(h), { unavailable: 1, validated: 1 });
  await h.app.close();
});

test('append fails for good → 500 INTERNAL, logged without the token; the token is released too', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  const body = { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token };
  h.failNext.push(new Error('bug'));
  const v = await validate(h, body);
  assert.equal(v.statusCode, 500);
  assert.equal(errorCode(v), PlatformErrors.INTERNAL.code);
  assert.equal((await validate(h, body)).statusCode, 204);
  await h.app.close();
});

test('single-use memory full → 503 with Retry-After, not a silent replay window', async () => {
  const h = await harness({ usedTokens: new UsedTokens({ maxEntries: 1 }) });
  const t1 = await tokenFor(h, { anonymousId: 'anon-1' });
  const t2 = await tokenFor(h, { anonymousId: 'anon-2' });
  assert.equal((await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token: t1 })).statusCode, 204);
  const full = await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-2', token: t2 });
  assert.equal(full.statusCode, 503);
  assert.equal(errorCode(full), PlatformErrors.UNAVAILABLE.code);
  assert.ok(Number(full.headers['retry-after']) >= 1);
  assert.equal((await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token: t1 })).statusCode, 409);
  await h.app.close();
});

test('rotation: a token minted before the secret rotated still validates', async () => {
  const before = await harness({ secrets: [OLD_SECRET] });
  const token = await tokenFor(before);
  await before.app.close();
  const after = await harness({ secrets: [SECRET, OLD_SECRET] });
  assert.equal((await validate(after, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token })).statusCode, 204);
  await after.app.close();
  await assert.rejects(harness({ secrets: [Buffer.alloc(8)] }), (e: unknown) => (e as { code?: string }).code === PlatformErrors.CONFIG.code);
});

test('CORS: preflight is answered, and every response allows any origin', async () => {
  const h = await harness();
  for (const url of ['/v1/beacon/validate', '/v1/beacon/challenge']) {
    const res = await h.app.inject({
      method: 'OPTIONS',
      url,
      headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers['access-control-allow-origin'], '*');
    assert.match(String(res.headers['access-control-allow-methods']), /POST/);
    assert.match(String(res.headers['access-control-allow-headers']), /Content-Type/i);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
  }
  const err = await validate(h, { writeKey: 'nope', anonymousId: 'a', token: 't' });
  assert.equal(err.headers['access-control-allow-origin'], '*');
  await h.app.close();
});

test('beacon.js: JavaScript, long cache with ETag, 304 on If-None-Match', async () => {
  const h = await harness();
  const res = await h.app.inject({ method: 'GET', url: '/v1/beacon.js?writeKey=wk_shop_a' });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^application\/javascript/);
  assert.equal(res.body, beaconScript);
  assert.match(String(res.headers['cache-control']), /max-age=\d{5,}/);
  const etag = String(res.headers['etag']);
  assert.match(etag, /^"[A-Za-z0-9_-]+"$/);
  const again = await h.app.inject({ method: 'GET', url: '/v1/beacon.js?writeKey=wk_shop_a', headers: { 'if-none-match': etag } });
  assert.equal(again.statusCode, 304);
  assert.equal(again.body, '');
  const weak = await h.app.inject({ method: 'GET', url: '/v1/beacon.js?writeKey=wk_shop_a', headers: { 'if-none-match': `"other", W/${etag}` } });
  assert.equal(weak.statusCode, 304);
  const other = await h.app.inject({ method: 'GET', url: '/v1/beacon.js?writeKey=wk_shop_b', headers: { 'if-none-match': '"stale"' } });
  assert.equal(other.statusCode, 200);
  await h.app.close();
});

test('the token, the write key and the client IP never reach the log', async () => {
  const h = await harness();
  const token = await tokenFor(h);
  await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token });
  await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-1', token }); // replay
  h.failNext.push(new Error('boom'));
  const t2 = await tokenFor(h, { anonymousId: 'anon-3' });
  await validate(h, { writeKey: 'wk_shop_a', anonymousId: 'anon-3', token: t2 });
  await h.app.inject({ method: 'GET', url: '/v1/beacon.js?writeKey=wk_shop_a' });
  await h.app.inject({ method: 'POST', url: '/v1/beacon/validate', headers: { 'content-type': 'application/json' }, payload: '{"writeKey":"wk_shop_a","token":' });
  const all = h.logs.join('');
  assert.ok(all.includes('appending a validation failed'), 'server errors are logged');
  for (const secret of [token, t2, 'wk_shop_a', '127.0.0.1']) assert.ok(!all.includes(secret), `log contains ${secret}`);
  await h.app.close();
});
