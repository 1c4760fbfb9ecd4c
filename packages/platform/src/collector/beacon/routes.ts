/**
 * The bot-validation beacon's HTTP routes, an encapsulated Fastify plugin:
 *
 * - `GET  /v1/beacon.js?writeKey=…`                      the script (script.ts)
 * - `GET  /v1/beacon/challenge?writeKey=…&anonymousId=…` → `{ token, expiresAt }`
 * - `POST /v1/beacon/validate` `{ writeKey, anonymousId, token }` (application/json or text/plain)
 *   → 204 once the validation event is appended to `events.validations`.
 *
 * All three take a browser write key; a server write key is refused (403 SHOP_ERR_FORBIDDEN).
 *
 * Privacy: these routes log at `warn` and above only. Fastify's per-request lines carry the URL (with
 * the write key) and the client address; the error handler here logs server errors without the
 * request. The token, the write key and the IP are never logged; the counters are the observability.
 */
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import { PlatformErrors, isPlatformError } from '../../errors.ts';
import type { PlatformErrorSpecOf } from '../../errors.ts';
import { checkWriteKey, type Merchant, type MerchantLookup } from '../../merchants/model.ts';
import { beaconScript } from './script.ts';
import { MAX_ANONYMOUS_ID_LENGTH, UsedTokens, mintToken, normalizeSecrets, verifyToken } from './token.ts';
import type { BeaconTokenErrorCode } from './token.ts';

export interface BeaconOptions {
  merchants: MerchantLookup;
  /** HMAC secrets, current first (it signs); the others still verify. Each at least 32 bytes. */
  secrets: Buffer[];
  /** Lifetime of a challenge token (default 5 min). */
  tokenTtlMs?: number;
  /** How long a validation counts (default 30 days); written on the event as `validUntil`. */
  validationTtlMs?: number;
  now?: () => number;
  /**
   * Durably appends to events.validations; rejects with an error that has `retriable: true` when
   * the log cannot take writes.
   */
  append: (record: { key: Buffer; value: Buffer; timestamp: number }) => Promise<void>;
  /** Where the counters are registered. */
  registry: Registry;
  /** The single-use memory (default: a new `UsedTokens` with its default capacity). */
  usedTokens?: UsedTokens;
}

/** The value of a record in events.validations (JSON), keyed by anonymousId. */
export interface ValidationEvent {
  v: 1;
  merchantId: string;
  anonymousId: string;
  /** ms since the epoch. */
  validatedAt: number;
  /** ms since the epoch: the visitor counts as validated until then. */
  validUntil: number;
  /** The token's id: the same token validated twice yields the same tokenId (de-duplicate on it). */
  tokenId: string;
  /** `hashUserAgent()` of the browser's User-Agent. */
  uaHash: string;
}

export const BEACON_SCRIPT_PATH = '/v1/beacon.js';
export const BEACON_CHALLENGE_PATH = '/v1/beacon/challenge';
export const BEACON_VALIDATE_PATH = '/v1/beacon/validate';

export const DEFAULT_TOKEN_TTL_MS = 5 * 60_000;
export const DEFAULT_VALIDATION_TTL_MS = 30 * 24 * 3_600_000;

const VALIDATE_BODY_LIMIT = 4096;
const SCRIPT_CACHE_CONTROL = 'public, max-age=86400, stale-while-revalidate=604800';
const UNAVAILABLE_RETRY_AFTER_S = 1;

export type ValidationOutcome =
  | 'validated'
  | 'invalid'
  | 'expired'
  | 'replayed'
  | 'foreign'
  | 'ua_mismatch'
  | 'unauthorized'
  | 'unavailable'
  | 'invalid_request'
  | 'error';
const VALIDATION_OUTCOMES: readonly ValidationOutcome[] = [
  'validated', 'invalid', 'expired', 'replayed', 'foreign', 'ua_mismatch', 'unauthorized', 'unavailable', 'invalid_request', 'error',
];
type ChallengeOutcome = 'issued' | 'unauthorized' | 'invalid_request';
const CHALLENGE_OUTCOMES: readonly ChallengeOutcome[] = ['issued', 'unauthorized', 'invalid_request'];

const TOKEN_FAILURES: Record<BeaconTokenErrorCode, { spec: PlatformErrorSpecOf; outcome: ValidationOutcome; message: string }> = {
  SHOP_ERR_BEACON_TOKEN_INVALID: { spec: PlatformErrors.BEACON_TOKEN_INVALID, outcome: 'invalid', message: 'the token is not valid' },
  SHOP_ERR_BEACON_TOKEN_EXPIRED: { spec: PlatformErrors.BEACON_TOKEN_EXPIRED, outcome: 'expired', message: 'the token has expired; fetch a new challenge' },
  SHOP_ERR_BEACON_TOKEN_FOREIGN: { spec: PlatformErrors.BEACON_TOKEN_FOREIGN, outcome: 'foreign', message: 'the token was issued for another merchant or visitor' },
  SHOP_ERR_BEACON_UA_MISMATCH: { spec: PlatformErrors.BEACON_UA_MISMATCH, outcome: 'ua_mismatch', message: 'the token was issued for another user agent' },
};

function outcomeCounter(registry: Registry, name: string, help: string): Counter<'outcome'> {
  // Registering the plugin twice on one registry (two servers in a test) shares the counter.
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<'outcome'>;
  return new Counter({ name, help, labelNames: ['outcome'] as const, registers: [registry] });
}

function sendError(reply: FastifyReply, spec: PlatformErrorSpecOf, message: string, retryAfterS?: number): FastifyReply {
  reply.code(spec.status).header('cache-control', 'no-store');
  if (retryAfterS !== undefined) reply.header('retry-after', String(retryAfterS));
  return reply.send({ error: { code: spec.code, message } });
}

const SPECS_BY_CODE = new Map<string, PlatformErrorSpecOf>(Object.values(PlatformErrors).map((spec) => [spec.code, spec]));
function specOf(code: string): PlatformErrorSpecOf {
  return SPECS_BY_CODE.get(code) ?? PlatformErrors.INTERNAL;
}

type Auth = { ok: true; merchant: Merchant } | { ok: false; spec: PlatformErrorSpecOf; message: string };

export async function beaconRoutes(app: FastifyInstance, opts: BeaconOptions): Promise<void> {
  const secrets = normalizeSecrets(opts.secrets);
  const tokenTtlMs = opts.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS;
  const validationTtlMs = opts.validationTtlMs ?? DEFAULT_VALIDATION_TTL_MS;
  const now = opts.now ?? Date.now;
  const used = opts.usedTokens ?? new UsedTokens();
  const { merchants, append } = opts;

  const validations = outcomeCounter(opts.registry, 'shopstream_beacon_validations_total',
    'Beacon validation requests, by outcome.');
  const challenges = outcomeCounter(opts.registry, 'shopstream_beacon_challenges_total',
    'Beacon challenge requests, by outcome.');
  for (const outcome of VALIDATION_OUTCOMES) validations.inc({ outcome }, 0);
  for (const outcome of CHALLENGE_OUTCOMES) challenges.inc({ outcome }, 0);

  const scriptEtag = `"${crypto.createHash('sha256').update(beaconScript).digest('base64url').slice(0, 27)}"`;

  /**
   * The browser write key of a storefront. A server write key is secret and vouches for its events
   * without a beacon, so it has no business in a page: refused with 403 SHOP_ERR_FORBIDDEN.
   */
  function authenticate(writeKey: unknown): Auth {
    const check = checkWriteKey(merchants, writeKey);
    if (!check.ok) return { ok: false, spec: PlatformErrors.UNAUTHORIZED, message: check.message };
    if (check.kind === 'server') {
      return {
        ok: false,
        spec: PlatformErrors.FORBIDDEN,
        message:
          "This is a server write key: it is secret, for backends only, and the beacon does not take it. Use the storefront's write key here; if the server key was put in a page, rotate it (shopstream merchants rotate-key --server-key).",
      };
    }
    return { ok: true, merchant: check.merchant };
  }

  // Storefronts are on other origins. No cookies or credentials are used, so any origin may call.
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('access-control-allow-origin', '*');
    return payload;
  });

  // Fastify's default text/plain parser gives the body as a string, which the handler parses as JSON;
  // a catch-all parser of an enclosing scope (the collector's decodes every body to JSON) is kept.
  // A text/plain parser is added only if neither is there.
  if (!app.hasContentTypeParser('text/plain') && !app.hasContentTypeParser('*')) {
    app.addContentTypeParser('text/plain', { parseAs: 'string' }, (_request, body, done) => done(null, body));
  }

  // Body parsing errors (Fastify's, or the catalogue's from an enclosing scope's body parser) and
  // anything unexpected, in the catalogue's shape, without logging the request.
  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
    const isValidate = request.routeOptions.url === BEACON_VALIDATE_PATH;
    let spec: PlatformErrorSpecOf;
    let message: string;
    if (isPlatformError(err)) {
      spec = specOf(err.code);
      message = err.message;
    } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      spec = PlatformErrors.REQUEST_TOO_LARGE;
      message = `the body is limited to ${VALIDATE_BODY_LIMIT} bytes`;
    } else if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
      spec = PlatformErrors.INVALID_JSON;
      message = 'the body is not valid JSON';
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      spec = PlatformErrors.INVALID_REQUEST;
      message = 'the body must be application/json or text/plain';
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      spec = PlatformErrors.INVALID_REQUEST;
      message = 'invalid request';
    } else {
      spec = PlatformErrors.INTERNAL;
      message = 'internal error';
    }
    if (spec.status >= 500) {
      request.log.error({ err: { type: err.name, message: err.message, code: err.code } }, 'beacon request failed');
    }
    if (isValidate) {
      validations.inc({ outcome: spec.status === 503 ? 'unavailable' : spec.status >= 500 ? 'error' : 'invalid_request' });
    }
    return sendError(reply, spec, message, spec.status === 503 ? UNAVAILABLE_RETRY_AFTER_S : undefined);
  });

  const preflight = async (_request: FastifyRequest, reply: FastifyReply) => {
    reply
      .code(204)
      .header('access-control-allow-methods', 'GET, POST, OPTIONS')
      .header('access-control-allow-headers', 'Content-Type')
      .header('access-control-max-age', '86400')
      .send();
  };
  app.options(BEACON_CHALLENGE_PATH, { logLevel: 'warn' }, preflight);
  app.options(BEACON_VALIDATE_PATH, { logLevel: 'warn' }, preflight);

  app.get<{ Querystring: { writeKey?: unknown } }>(BEACON_SCRIPT_PATH, { logLevel: 'warn' }, async (request, reply) => {
    const auth = authenticate(request.query.writeKey);
    if (!auth.ok) return sendError(reply, auth.spec, auth.message);
    reply
      .header('cache-control', SCRIPT_CACHE_CONTROL)
      .header('etag', scriptEtag)
      .header('x-content-type-options', 'nosniff')
      .header('cross-origin-resource-policy', 'cross-origin');
    const ifNoneMatch = request.headers['if-none-match'];
    if (ifNoneMatch !== undefined && (ifNoneMatch === '*' || ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === scriptEtag))) {
      return reply.code(304).send();
    }
    return reply.type('application/javascript; charset=utf-8').send(beaconScript);
  });

  app.get<{ Querystring: { writeKey?: unknown; anonymousId?: unknown } }>(
    BEACON_CHALLENGE_PATH,
    { logLevel: 'warn' },
    async (request, reply) => {
      const auth = authenticate(request.query.writeKey);
      if (!auth.ok) {
        challenges.inc({ outcome: 'unauthorized' });
        return sendError(reply, auth.spec, auth.message);
      }
      const { anonymousId } = request.query;
      if (typeof anonymousId !== 'string' || anonymousId.length === 0 || anonymousId.length > MAX_ANONYMOUS_ID_LENGTH) {
        challenges.inc({ outcome: 'invalid_request' });
        return sendError(reply, PlatformErrors.INVALID_REQUEST, `anonymousId must be 1..${MAX_ANONYMOUS_ID_LENGTH} characters`);
      }
      const userAgent = request.headers['user-agent'];
      if (userAgent === undefined || userAgent.length === 0) {
        challenges.inc({ outcome: 'invalid_request' });
        return sendError(reply, PlatformErrors.INVALID_REQUEST, 'a User-Agent header is required');
      }
      const t = now();
      const token = mintToken({ secret: secrets, merchantId: auth.merchant.id, anonymousId, userAgent, now: t, ttlMs: tokenTtlMs });
      challenges.inc({ outcome: 'issued' });
      return reply.header('cache-control', 'no-store').send({ token, expiresAt: t + tokenTtlMs });
    },
  );

  app.post(BEACON_VALIDATE_PATH, { logLevel: 'warn', bodyLimit: VALIDATE_BODY_LIMIT }, async (request, reply) => {
    const invalidRequest = (message: string) => {
      validations.inc({ outcome: 'invalid_request' });
      return sendError(reply, PlatformErrors.INVALID_REQUEST, message);
    };

    let body: unknown = request.body;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      try {
        body = JSON.parse(body.toString());
      } catch {
        validations.inc({ outcome: 'invalid_request' });
        return sendError(reply, PlatformErrors.INVALID_JSON, 'the body is not valid JSON');
      }
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return invalidRequest('the body must be a JSON object { writeKey, anonymousId, token }');
    }
    const { writeKey, anonymousId, token } = body as Record<string, unknown>;
    for (const [name, value] of [['writeKey', writeKey], ['anonymousId', anonymousId], ['token', token]] as const) {
      if (typeof value !== 'string' || value.length === 0) return invalidRequest(`${name} must be a non-empty string`);
    }
    if ((anonymousId as string).length > MAX_ANONYMOUS_ID_LENGTH) {
      return invalidRequest(`anonymousId must be 1..${MAX_ANONYMOUS_ID_LENGTH} characters`);
    }

    const auth = authenticate(writeKey);
    if (!auth.ok) {
      validations.inc({ outcome: 'unauthorized' });
      return sendError(reply, auth.spec, auth.message);
    }
    const userAgent = request.headers['user-agent'];
    if (userAgent === undefined || userAgent.length === 0) return invalidRequest('a User-Agent header is required');

    const t = now();
    // verifyToken bounds the token's length (MAX_TOKEN_LENGTH) before decoding it.
    const verdict = verifyToken(token as string, {
      secret: secrets, merchantId: auth.merchant.id, anonymousId: anonymousId as string, userAgent, now: t,
    });
    if (!verdict.ok) {
      const failure = TOKEN_FAILURES[verdict.code];
      validations.inc({ outcome: failure.outcome });
      return sendError(reply, failure.spec, failure.message);
    }
    const { claims } = verdict;

    // Marked before the append so that a concurrent replay is refused; released if the append fails.
    let fresh: boolean;
    try {
      fresh = used.markUsed(claims.tokenId, claims.expiresAt, t);
    } catch (err) {
      const retryAfterMs = (err as { details?: { retryAfterMs?: number } }).details?.retryAfterMs ?? 1000;
      validations.inc({ outcome: 'unavailable' });
      return sendError(reply, PlatformErrors.UNAVAILABLE, 'too many validations in flight; retry later', Math.ceil(retryAfterMs / 1000));
    }
    if (!fresh) {
      validations.inc({ outcome: 'replayed' });
      return sendError(reply, PlatformErrors.BEACON_TOKEN_REPLAYED, 'the token was already used');
    }

    const event: ValidationEvent = {
      v: 1,
      merchantId: claims.merchantId,
      anonymousId: claims.anonymousId,
      validatedAt: t,
      validUntil: t + validationTtlMs,
      tokenId: claims.tokenId,
      uaHash: claims.uaHash,
    };
    try {
      await append({ key: Buffer.from(claims.anonymousId, 'utf8'), value: Buffer.from(JSON.stringify(event), 'utf8'), timestamp: t });
    } catch (err) {
      // Nothing durable may have been written: let the same token be posted again. Should the
      // append have landed after all, a retry writes the same validation again, which changes
      // nothing in the pipeline (a visitor keeps the latest validUntil per merchant).
      used.release(claims.tokenId);
      if ((err as { retriable?: unknown } | null)?.retriable === true) {
        validations.inc({ outcome: 'unavailable' });
        return sendError(reply, PlatformErrors.UNAVAILABLE, 'validations cannot be recorded now; retry later', UNAVAILABLE_RETRY_AFTER_S);
      }
      validations.inc({ outcome: 'error' });
      request.log.error({ err: { type: (err as Error)?.name, message: (err as Error)?.message } }, 'beacon: appending a validation failed');
      return sendError(reply, PlatformErrors.INTERNAL, 'internal error');
    }
    validations.inc({ outcome: 'validated' });
    return reply.code(204).header('cache-control', 'no-store').send();
  });
}
