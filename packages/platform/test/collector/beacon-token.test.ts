import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { PlatformErrors, isPlatformError } from '../../src/errors.ts';
import {
  MAX_ANONYMOUS_ID_LENGTH,
  MAX_TOKEN_LENGTH,
  TOKEN_LENGTH,
  UsedTokens,
  hashUserAgent,
  mintToken,
  verifyToken,
} from '../../src/collector/beacon/token.ts';

const SECRET = Buffer.alloc(32, 1);
const OLD_SECRET = Buffer.alloc(32, 2);
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36';
const T0 = 1_750_000_000_000;
const TTL = 5 * 60_000;

const base = { merchantId: 'shop_a', anonymousId: 'anon-1', userAgent: UA };
const mint = (over: Partial<Parameters<typeof mintToken>[0]> = {}) =>
  mintToken({ secret: SECRET, ...base, now: T0, ttlMs: TTL, ...over });
const verify = (token: string, over: Partial<Parameters<typeof verifyToken>[1]> = {}) =>
  verifyToken(token, { secret: SECRET, ...base, now: T0 + 1000, ...over });

test('round trip: a minted token verifies, with its claims', () => {
  const nonce = Buffer.alloc(16, 7);
  const token = mint({ nonce });
  assert.equal(token.length, TOKEN_LENGTH);
  assert.match(token, /^[A-Za-z0-9_-]+$/);
  const r = verify(token);
  assert.deepEqual(r, {
    ok: true,
    claims: {
      version: 1,
      merchantId: 'shop_a',
      anonymousId: 'anon-1',
      tokenId: nonce.toString('base64url'),
      expiresAt: T0 + TTL,
      uaHash: hashUserAgent(UA),
    },
  });
});

test('nonces are random: two tokens for the same visitor differ', () => {
  const a = verify(mint());
  const b = verify(mint());
  assert.ok(a.ok && b.ok);
  assert.notEqual(a.claims.tokenId, b.claims.tokenId);
});

test('forged and garbled tokens are BEACON_TOKEN_INVALID', () => {
  const invalid = { ok: false, code: PlatformErrors.BEACON_TOKEN_INVALID.code };
  const token = mint();
  // Signed with a secret the verifier does not have.
  assert.deepEqual(verify(mintToken({ secret: Buffer.alloc(32, 9), ...base, now: T0, ttlMs: TTL })), invalid);
  // One bit flipped anywhere: version, expiry, nonce, bindings, MAC.
  const bytes = Buffer.from(token, 'base64url');
  for (let i = 0; i < bytes.length; i++) {
    const b = Buffer.from(bytes);
    b[i]! ^= 0x01;
    assert.deepEqual(verify(b.toString('base64url')), invalid, `byte ${i}`);
  }
  // A longer expiry written by hand (the MAC no longer matches).
  const extended = Buffer.from(bytes);
  extended.writeUIntBE(T0 + 365 * 86_400_000, 1, 6);
  assert.deepEqual(verify(extended.toString('base64url')), invalid);
  // Shape: empty, truncated, extended, not base64url, padded, non-canonical last character.
  for (const bad of ['', token.slice(0, -1), `${token}A`, `${token.slice(0, -1)}!`, `${token}==`, token.replace(/[A-Za-z]/, '+')]) {
    assert.deepEqual(verify(bad), invalid, JSON.stringify(bad));
  }
  const last = token.at(-1)!;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sibling = alphabet[alphabet.indexOf(last) ^ 1]!; // same decoded bytes, unused low bits differ
  assert.deepEqual(verify(token.slice(0, -1) + sibling), invalid);
  // Not even a string.
  assert.deepEqual(verify(42 as unknown as string), invalid);
});

test('expired tokens are BEACON_TOKEN_EXPIRED (valid while now < expiresAt)', () => {
  const token = mint();
  assert.equal(verify(token, { now: T0 + TTL - 1 }).ok, true);
  assert.deepEqual(verify(token, { now: T0 + TTL }), { ok: false, code: PlatformErrors.BEACON_TOKEN_EXPIRED.code });
  assert.deepEqual(verify(token, { now: T0 + 10 * TTL }), { ok: false, code: PlatformErrors.BEACON_TOKEN_EXPIRED.code });
});

test('a token of another merchant or another visitor is BEACON_TOKEN_FOREIGN', () => {
  const foreign = { ok: false, code: PlatformErrors.BEACON_TOKEN_FOREIGN.code };
  const token = mint();
  assert.deepEqual(verify(token, { merchantId: 'shop_b' }), foreign);
  assert.deepEqual(verify(token, { anonymousId: 'anon-2' }), foreign);
  // Reported as foreign even when it is also stale: a captured token used elsewhere.
  assert.deepEqual(verify(token, { anonymousId: 'anon-2', now: T0 + 2 * TTL }), foreign);
});

test('a token used with another user agent is BEACON_UA_MISMATCH', () => {
  const token = mint();
  assert.deepEqual(verify(token, { userAgent: `${UA} HeadlessChrome` }), { ok: false, code: PlatformErrors.BEACON_UA_MISMATCH.code });
  assert.deepEqual(verify(token, { userAgent: '' }), { ok: false, code: PlatformErrors.BEACON_UA_MISMATCH.code });
});

test('rotation: mint signs with the first secret, verify accepts any listed one', () => {
  const oldToken = mint({ secret: OLD_SECRET });
  // During rotation: [new, old]. Old tokens still verify; new ones are signed with the new secret.
  assert.equal(verify(oldToken, { secret: [SECRET, OLD_SECRET] }).ok, true);
  const newToken = mint({ secret: [SECRET, OLD_SECRET] });
  assert.equal(verify(newToken, { secret: SECRET }).ok, true);
  assert.equal(verify(newToken, { secret: OLD_SECRET }).ok, false);
  // After rotation: the old secret is gone, so are its tokens.
  assert.deepEqual(verify(oldToken, { secret: [SECRET] }), { ok: false, code: PlatformErrors.BEACON_TOKEN_INVALID.code });
});

test('secrets are checked: at least 32 bytes, 1..8 of them', () => {
  for (const secret of [Buffer.alloc(31), [], Array.from({ length: 9 }, () => SECRET)]) {
    assert.throws(() => mint({ secret }), (e: unknown) => isPlatformError(e, PlatformErrors.CONFIG));
    assert.throws(() => verify(mint(), { secret }), (e: unknown) => isPlatformError(e, PlatformErrors.CONFIG));
  }
});

test('the MAC is compared with crypto.timingSafeEqual, against every secret', () => {
  const spy = mock.method(crypto, 'timingSafeEqual');
  try {
    const token = mint();
    assert.equal(verify(token, { secret: [OLD_SECRET, SECRET] }).ok, true);
    assert.equal(spy.mock.callCount(), 2, 'one constant-time comparison per secret, no early exit');
    for (const call of spy.mock.calls) {
      assert.equal((call.arguments[0] as Buffer).length, 32);
      assert.equal((call.arguments[1] as Buffer).length, 32);
    }
    spy.mock.resetCalls();
    const forged = Buffer.from(token, 'base64url');
    forged[forged.length - 1]! ^= 0x80;
    assert.equal(verify(forged.toString('base64url')).ok, false);
    assert.equal(spy.mock.callCount(), 1);
  } finally {
    spy.mock.restore();
  }
});

test('bounds: oversized input is refused before any hashing', () => {
  const spy = mock.method(crypto, 'createHmac');
  const hash = mock.method(crypto, 'createHash');
  try {
    assert.deepEqual(verify('A'.repeat(MAX_TOKEN_LENGTH + 1)), { ok: false, code: PlatformErrors.BEACON_TOKEN_INVALID.code });
    assert.deepEqual(verify('A'.repeat(10 * 1024 * 1024)), { ok: false, code: PlatformErrors.BEACON_TOKEN_INVALID.code });
    // No token can be bound to an id mintToken refuses.
    const longId = 'x'.repeat(MAX_ANONYMOUS_ID_LENGTH + 1);
    assert.deepEqual(verify('A'.repeat(TOKEN_LENGTH), { anonymousId: longId }), { ok: false, code: PlatformErrors.BEACON_TOKEN_FOREIGN.code });
    assert.equal(spy.mock.callCount(), 0);
    assert.equal(hash.mock.callCount(), 0);
  } finally {
    spy.mock.restore();
    hash.mock.restore();
  }
  assert.throws(() => mint({ anonymousId: 'x'.repeat(MAX_ANONYMOUS_ID_LENGTH + 1) }), (e: unknown) => isPlatformError(e, PlatformErrors.INVALID_REQUEST));
  assert.throws(() => mint({ anonymousId: '' }), (e: unknown) => isPlatformError(e, PlatformErrors.INVALID_REQUEST));
  assert.equal(verify(mint({ anonymousId: 'x'.repeat(MAX_ANONYMOUS_ID_LENGTH) }), { anonymousId: 'x'.repeat(MAX_ANONYMOUS_ID_LENGTH) }).ok, true);
  assert.throws(() => mint({ ttlMs: 0 }), (e: unknown) => isPlatformError(e, PlatformErrors.CONFIG));
  assert.throws(() => mint({ nonce: Buffer.alloc(8) }), (e: unknown) => isPlatformError(e, PlatformErrors.CONFIG));
});

test('UsedTokens: single use until expiry, then forgotten', () => {
  const used = new UsedTokens({ maxEntries: 10 });
  assert.equal(used.markUsed('n1', T0 + TTL, T0), true);
  assert.equal(used.markUsed('n1', T0 + TTL, T0 + 1), false);
  assert.equal(used.isUsed('n1', T0 + TTL - 1), true);
  assert.equal(used.markUsed('n1', T0 + TTL, T0 + TTL - 1), false);
  // Past its expiry the id is no longer needed (verifyToken refuses the token) and is dropped.
  assert.equal(used.isUsed('n1', T0 + TTL), false);
  assert.equal(used.markUsed('n2', T0 + 2 * TTL, T0 + TTL), true);
  assert.equal(used.size, 1, 'n1 was dropped by the amortised sweep');
  // release() lets a token be posted again (append failed).
  used.release('n2');
  assert.equal(used.markUsed('n2', T0 + 2 * TTL, T0 + TTL), true);
  // An already expired token is not remembered.
  assert.equal(used.markUsed('n3', T0, T0 + 1), true);
  assert.equal(used.isUsed('n3', T0 + 1), false);
});

test('UsedTokens: sweep drops only expired ids, in any insertion order', () => {
  const used = new UsedTokens();
  used.markUsed('late', T0 + 3000, T0);
  used.markUsed('early', T0 + 1000, T0);
  used.markUsed('mid', T0 + 2000, T0);
  assert.equal(used.sweep(T0 + 2000), 2);
  assert.equal(used.size, 1);
  assert.equal(used.isUsed('late', T0 + 2000), true);
});

test('UsedTokens: when full of unexpired ids it refuses (retriable) rather than forgetting one', () => {
  const used = new UsedTokens({ maxEntries: 3, fullSweepIntervalMs: 1000 });
  for (const n of ['a', 'b', 'c']) assert.equal(used.markUsed(n, T0 + TTL, T0), true);
  assert.throws(
    () => used.markUsed('d', T0 + TTL, T0),
    (e: unknown) => isPlatformError(e, PlatformErrors.UNAVAILABLE) && e.retriable && e.status === 503,
  );
  // Nothing was forgotten: every id still counts as used.
  for (const n of ['a', 'b', 'c']) assert.equal(used.markUsed(n, T0 + TTL, T0 + 1), false);
  assert.equal(used.size, 3);
  // Once they expire, room is made again.
  assert.equal(used.markUsed('d', T0 + 2 * TTL, T0 + TTL), true);
  assert.equal(used.size, 1);
});

test('UsedTokens: a full memory with expired ids out of order is swept (at most once per interval)', () => {
  const used = new UsedTokens({ maxEntries: 2, fullSweepIntervalMs: 1000 });
  used.markUsed('long', T0 + 10_000, T0); // oldest entry, unexpired: stops the amortised sweep
  used.markUsed('short', T0 + 100, T0);
  // 'short' expired but sits behind 'long': only a full sweep finds it.
  assert.equal(used.markUsed('x', T0 + 10_000, T0 + 200), true);
  assert.equal(used.size, 2);
  // Full again, nothing expired; the sweep interval has not passed: refused without a rescan.
  assert.throws(() => used.markUsed('y', T0 + 10_000, T0 + 300), (e: unknown) => isPlatformError(e, PlatformErrors.UNAVAILABLE));
});

test('hashUserAgent is stable and 16 bytes, base64url', () => {
  assert.equal(hashUserAgent(UA), hashUserAgent(UA));
  assert.notEqual(hashUserAgent(UA), hashUserAgent(`${UA} `));
  assert.equal(Buffer.from(hashUserAgent(UA), 'base64url').length, 16);
});
