/**
 * Beacon challenge tokens: pure functions (no I/O) that mint and verify the token the bot-validation
 * beacon fetches and posts back, and `UsedTokens`, the in-memory single-use memory of token ids.
 *
 * A token is 103 bytes, base64url-encoded (138 characters):
 *
 * | offset | bytes | field                                                            |
 * |-------:|------:|------------------------------------------------------------------|
 * |      0 |     1 | version (1)                                                      |
 * |      1 |     6 | expiry, ms since the epoch, unsigned big-endian                  |
 * |      7 |    16 | nonce: random token id                                           |
 * |     23 |    16 | SHA-256("merchant\0" + merchantId), first 16 bytes               |
 * |     39 |    16 | SHA-256("visitor\0" + anonymousId), first 16 bytes               |
 * |     55 |    16 | SHA-256("user-agent\0" + User-Agent), first 16 bytes             |
 * |     71 |    32 | HMAC-SHA256(secret, "shopstream/beacon/v1\0" + bytes 0..70)       |
 *
 * The bindings are hashes, not the values, so the token has a fixed size whatever the ids are; they
 * are not secret (the browser that holds the token knows them). Everything the verifier reads is
 * covered by the MAC, so a token that passes the MAC check was minted by a holder of one of the
 * secrets, and the bindings tell which merchant, visitor and user agent it was minted for.
 */
import { MAX_ID_LENGTH } from '../../contract/normalize.ts';
import crypto from 'node:crypto';
import { PlatformError, PlatformErrors } from '../../errors.ts';

export const TOKEN_VERSION = 1;
/** Longest anonymousId accepted (Segment's own limit is far above any real id; ids are UUIDs). */
/** The contract's longest id (an anonymousId the collector accepts can always be validated). */
export const MAX_ANONYMOUS_ID_LENGTH = MAX_ID_LENGTH;
/** Longest token string looked at; anything longer is refused before decoding. */
export const MAX_TOKEN_LENGTH = 1024;
/** Shortest secret accepted: a HMAC-SHA256 key should carry at least 256 bits. */
export const MIN_SECRET_BYTES = 32;
/** Most secrets verify tries (current plus retiring ones); more is a configuration mistake. */
export const MAX_SECRETS = 8;

const NONCE_BYTES = 16;
const HASH_BYTES = 16;
const MAC_BYTES = 32;
const OFF_EXPIRES = 1;
const OFF_NONCE = 7;
const OFF_MERCHANT = OFF_NONCE + NONCE_BYTES;
const OFF_VISITOR = OFF_MERCHANT + HASH_BYTES;
const OFF_UA = OFF_VISITOR + HASH_BYTES;
const OFF_MAC = OFF_UA + HASH_BYTES;
const TOKEN_BYTES = OFF_MAC + MAC_BYTES;
const MAX_EXPIRY = 2 ** 48 - 1;
const MAC_CONTEXT = Buffer.from('shopstream/beacon/v1\0', 'latin1');
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Length of an encoded token (base64url, no padding). */
export const TOKEN_LENGTH = Math.ceil((TOKEN_BYTES * 4) / 3);

export type BeaconTokenErrorCode =
  | typeof PlatformErrors.BEACON_TOKEN_INVALID.code
  | typeof PlatformErrors.BEACON_TOKEN_EXPIRED.code
  | typeof PlatformErrors.BEACON_TOKEN_FOREIGN.code
  | typeof PlatformErrors.BEACON_UA_MISMATCH.code;

/** One secret, or the list of secrets in use: the current one first, then retiring ones. */
export type BeaconSecrets = Buffer | readonly Buffer[];

export interface MintTokenInput {
  /** The signing secret; with a list, the first (current) one signs. */
  secret: BeaconSecrets;
  merchantId: string;
  anonymousId: string;
  /** The User-Agent header of the request that asks for the token. */
  userAgent: string;
  /** Current time, ms since the epoch. */
  now: number;
  /** Lifetime of the token, ms. */
  ttlMs: number;
  /** Token id, 16 bytes. Random when omitted (set it only in tests). */
  nonce?: Buffer;
}

export interface VerifyTokenInput {
  /** The secrets a token may have been signed with: current first, then retiring ones. */
  secret: BeaconSecrets;
  /** The merchant the request authenticated as (from its write key). */
  merchantId: string;
  /** The visitor the request says it validates. */
  anonymousId: string;
  /** The User-Agent header of the request that posts the token back. */
  userAgent: string;
  now: number;
}

export interface TokenClaims {
  version: number;
  merchantId: string;
  anonymousId: string;
  /** The token's nonce, base64url (22 characters): the single-use key and the validation's id. */
  tokenId: string;
  /** ms since the epoch; the token is valid while now < expiresAt. */
  expiresAt: number;
  /** `hashUserAgent(userAgent)` of the user agent the token is bound to. */
  uaHash: string;
}

export type VerifyTokenResult = { ok: true; claims: TokenClaims } | { ok: false; code: BeaconTokenErrorCode };

function bindingHash(label: string, value: string): Buffer {
  return crypto.createHash('sha256').update(label).update('\0').update(value, 'utf8').digest().subarray(0, HASH_BYTES);
}

/** The user-agent hash written on validation events (the contract's, see contract/ua-hash.ts). */
export { hashUserAgent } from '../../contract/ua-hash.ts';

/** The secrets as a list, checked: 1..MAX_SECRETS buffers of at least MIN_SECRET_BYTES bytes. */
export function normalizeSecrets(secret: BeaconSecrets): readonly Buffer[] {
  const list: readonly Buffer[] = Buffer.isBuffer(secret) ? [secret] : secret;
  if (list.length === 0 || list.length > MAX_SECRETS) {
    throw new PlatformError(PlatformErrors.CONFIG, `beacon: between 1 and ${MAX_SECRETS} secrets are needed, got ${list.length}`);
  }
  for (const s of list) {
    if (!Buffer.isBuffer(s) || s.length < MIN_SECRET_BYTES) {
      throw new PlatformError(PlatformErrors.CONFIG, `beacon: every secret must be a Buffer of at least ${MIN_SECRET_BYTES} bytes`);
    }
  }
  return list;
}

function mac(secret: Buffer, body: Buffer): Buffer {
  return crypto.createHmac('sha256', secret).update(MAC_CONTEXT).update(body).digest();
}

/** Mints a token for one merchant, visitor and user agent, valid for `ttlMs` from `now`. */
export function mintToken(input: MintTokenInput): string {
  const secrets = normalizeSecrets(input.secret);
  const { merchantId, anonymousId, userAgent, now, ttlMs } = input;
  if (typeof anonymousId !== 'string' || anonymousId.length === 0 || anonymousId.length > MAX_ANONYMOUS_ID_LENGTH) {
    throw new PlatformError(PlatformErrors.INVALID_REQUEST, `anonymousId must be 1..${MAX_ANONYMOUS_ID_LENGTH} characters`);
  }
  if (typeof merchantId !== 'string' || merchantId.length === 0) {
    throw new PlatformError(PlatformErrors.INVALID_REQUEST, 'merchantId must be a non-empty string');
  }
  if (typeof userAgent !== 'string') {
    throw new PlatformError(PlatformErrors.INVALID_REQUEST, 'userAgent must be a string');
  }
  const expiresAt = now + ttlMs;
  if (!Number.isSafeInteger(now) || !Number.isSafeInteger(ttlMs) || ttlMs <= 0 || expiresAt > MAX_EXPIRY) {
    throw new PlatformError(PlatformErrors.CONFIG, 'beacon: now and ttlMs must be integers, ttlMs > 0');
  }
  const nonce = input.nonce ?? crypto.randomBytes(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) {
    throw new PlatformError(PlatformErrors.CONFIG, `beacon: a nonce has ${NONCE_BYTES} bytes`);
  }

  const buf = Buffer.allocUnsafe(TOKEN_BYTES);
  buf[0] = TOKEN_VERSION;
  buf.writeUIntBE(expiresAt, OFF_EXPIRES, 6);
  nonce.copy(buf, OFF_NONCE);
  bindingHash('merchant', merchantId).copy(buf, OFF_MERCHANT);
  bindingHash('visitor', anonymousId).copy(buf, OFF_VISITOR);
  bindingHash('user-agent', userAgent).copy(buf, OFF_UA);
  mac(secrets[0]!, buf.subarray(0, OFF_MAC)).copy(buf, OFF_MAC);
  return buf.toString('base64url');
}

const fail = (code: BeaconTokenErrorCode): VerifyTokenResult => ({ ok: false, code });

/**
 * Verifies a token for the merchant, visitor and user agent of the request that posts it back.
 *
 * Checks, in this order: shape and MAC (BEACON_TOKEN_INVALID), merchant and visitor bindings
 * (BEACON_TOKEN_FOREIGN), user-agent binding (BEACON_UA_MISMATCH), expiry (BEACON_TOKEN_EXPIRED).
 * Bindings come before expiry so that a captured token used elsewhere is reported as foreign even
 * when it is also stale. Single use is not checked here: see `UsedTokens`.
 */
export function verifyToken(token: string, input: VerifyTokenInput): VerifyTokenResult {
  const secrets = normalizeSecrets(input.secret);
  // Bounds first: nothing is decoded or hashed for oversized input.
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    return fail(PlatformErrors.BEACON_TOKEN_INVALID.code);
  }
  const { anonymousId } = input;
  if (typeof anonymousId !== 'string' || anonymousId.length === 0 || anonymousId.length > MAX_ANONYMOUS_ID_LENGTH) {
    // mintToken never binds such an id, so no token can belong to it.
    return fail(PlatformErrors.BEACON_TOKEN_FOREIGN.code);
  }
  if (token.length !== TOKEN_LENGTH || !BASE64URL.test(token)) return fail(PlatformErrors.BEACON_TOKEN_INVALID.code);
  const buf = Buffer.from(token, 'base64url');
  // Only the canonical encoding is accepted: one token, one string.
  if (buf.length !== TOKEN_BYTES || buf[0] !== TOKEN_VERSION || buf.toString('base64url') !== token) {
    return fail(PlatformErrors.BEACON_TOKEN_INVALID.code);
  }

  const body = buf.subarray(0, OFF_MAC);
  const given = buf.subarray(OFF_MAC);
  let macOk = false;
  // Every secret is tried (no early exit), and each comparison takes constant time.
  for (const secret of secrets) {
    if (crypto.timingSafeEqual(mac(secret, body), given)) macOk = true;
  }
  if (!macOk) return fail(PlatformErrors.BEACON_TOKEN_INVALID.code);

  // The bindings are authenticated and not secret: a plain comparison is enough.
  if (!bindingHash('merchant', input.merchantId).equals(buf.subarray(OFF_MERCHANT, OFF_VISITOR))) {
    return fail(PlatformErrors.BEACON_TOKEN_FOREIGN.code);
  }
  if (!bindingHash('visitor', anonymousId).equals(buf.subarray(OFF_VISITOR, OFF_UA))) {
    return fail(PlatformErrors.BEACON_TOKEN_FOREIGN.code);
  }
  const ua = buf.subarray(OFF_UA, OFF_MAC);
  if (!bindingHash('user-agent', input.userAgent ?? '').equals(ua)) {
    return fail(PlatformErrors.BEACON_UA_MISMATCH.code);
  }
  const expiresAt = buf.readUIntBE(OFF_EXPIRES, 6);
  if (input.now >= expiresAt) return fail(PlatformErrors.BEACON_TOKEN_EXPIRED.code);

  return {
    ok: true,
    claims: {
      version: TOKEN_VERSION,
      merchantId: input.merchantId,
      anonymousId,
      tokenId: buf.subarray(OFF_NONCE, OFF_MERCHANT).toString('base64url'),
      expiresAt,
      uaHash: ua.toString('base64url'),
    },
  };
}

export interface UsedTokensOptions {
  /** Most token ids remembered at once (default 500 000, about 43 MB). */
  maxEntries?: number;
  /** Least time between two full sweeps made because the memory is full (default 1000 ms). */
  fullSweepIntervalMs?: number;
}

/** Expired entries dropped from the oldest end on each `markUsed`: amortised clean-up. */
const SWEEP_STEP = 8;

/**
 * Single use: remembers the ids of tokens that validated until the tokens expire, then forgets them
 * (an expired token fails `verifyToken`, so it no longer needs remembering).
 *
 * Memory is bounded by `maxEntries`. When it is full of unexpired ids, `markUsed` throws a
 * retriable `UNAVAILABLE` error: forgetting an unexpired id would let that token be replayed, and
 * the beacon retries later, which succeeds once older ids expire (at most one token TTL later).
 *
 * Entries are kept in insertion order, which is close to expiry order (every token lives the same
 * TTL), so each call drops a few expired ones from the oldest end; an entry can outlive its expiry
 * by at most one TTL. A full sweep runs when the memory is full, at most once per
 * `fullSweepIntervalMs`, so an overloaded instance does not rescan the map on every request.
 */
export class UsedTokens {
  readonly maxEntries: number;
  readonly fullSweepIntervalMs: number;
  #entries = new Map<string, number>();
  #lastFullSweep = -Infinity;

  constructor(options: UsedTokensOptions = {}) {
    this.maxEntries = options.maxEntries ?? 500_000;
    this.fullSweepIntervalMs = options.fullSweepIntervalMs ?? 1000;
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new PlatformError(PlatformErrors.CONFIG, 'beacon: UsedTokens maxEntries must be a positive integer');
    }
  }

  /** Token ids remembered now (some may have expired and not been dropped yet). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Marks a token id used until `expiresAt`. Returns false when it is already used (a replay).
   * Throws a retriable PlatformError (UNAVAILABLE) when the memory is full of unexpired ids.
   * A token that has already expired is not remembered (verifyToken refuses it anyway).
   */
  markUsed(nonce: string, expiresAt: number, now: number): boolean {
    const known = this.#entries.get(nonce);
    if (known !== undefined) {
      if (known > now) return false;
      this.#entries.delete(nonce);
    }
    this.#sweepOldest(now, SWEEP_STEP);
    if (expiresAt <= now) return true;
    if (this.#entries.size >= this.maxEntries) {
      if (now - this.#lastFullSweep >= this.fullSweepIntervalMs) {
        this.#lastFullSweep = now;
        this.sweep(now);
      }
      if (this.#entries.size >= this.maxEntries) {
        throw new PlatformError(PlatformErrors.UNAVAILABLE, 'beacon: single-use memory is full; retry later', {
          details: { retryAfterMs: Math.max(1000, this.fullSweepIntervalMs) },
        });
      }
    }
    this.#entries.set(nonce, expiresAt);
    return true;
  }

  /** Forgets a token id, so that the token can be posted again (used when the append failed). */
  release(nonce: string): void {
    this.#entries.delete(nonce);
  }

  /** Whether a token id is remembered as used and unexpired. */
  isUsed(nonce: string, now: number): boolean {
    const expiresAt = this.#entries.get(nonce);
    return expiresAt !== undefined && expiresAt > now;
  }

  /** Drops every expired id; returns how many were dropped. */
  sweep(now: number): number {
    let dropped = 0;
    for (const [nonce, expiresAt] of this.#entries) {
      if (expiresAt <= now) {
        this.#entries.delete(nonce);
        dropped++;
      }
    }
    return dropped;
  }

  #sweepOldest(now: number, max: number): void {
    let n = 0;
    for (const [nonce, expiresAt] of this.#entries) {
      if (n++ >= max || expiresAt > now) return;
      this.#entries.delete(nonce);
    }
  }
}
