/**
 * The collector: Segment's HTTP Tracking API in front of the log.
 *
 * A request is answered 200 only once every event of it is durable in the log: accepted events in
 * `events.raw` (keyed by visitor), refused ones in `events.rejected` with their reason. The
 * collector decodes the body and checks each event's envelope (prepare.ts, with contract
 * `checkEnvelope`: type, event name, ids, event time) and writes the event's bytes as the client
 * sent them, with the request's facts in headers (contract/raw.ts), among them
 * `shopstream.source: server` for a request authenticated with a server write key; the pipeline
 * maps them to canonical events. Request-level failures (bad JSON, bad write key, rate limit, log
 * unavailable) write nothing and say why with a `SHOP_ERR_…` code. See docs/api.md.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { ErrorCodes, isStreamsError, type Header, type Log, type ProducerRecord } from '@shopstream/streams';
import { rawRecordHeaders, rejection, type IngestContext } from '../contract/index.ts';
import { PlatformError, PlatformErrors, isPlatformError, type PlatformErrorSpecOf } from '../errors.ts';
import { checkWriteKey, type MerchantLookup, type Merchant, type RateLimit, type WriteKeyKind } from '../merchants/model.ts';
import { topicNames, type TopicNames } from '../topics.ts';
import { beaconRoutes } from './beacon/routes.ts';
import { MAX_JSON_DEPTH, basicAuthUser, decodeBody } from './body.ts';
import { Limits, isObject, prepareIngest, type PreparedEvents, type PreparedRejection } from './prepare.ts';
import { CollectorMetrics } from './metrics.ts';
import { RateLimiter } from './rate-limit.ts';

export { Limits };

export interface CollectorOptions {
  log: Log;
  /** Default: topicNames(). */
  topics?: TopicNames;
  merchants: MerchantLookup;
  /** HMAC secrets of beacon tokens, current first. */
  beaconSecrets: Buffer[];
  logger?: Logger;
  registry?: Registry;
  /** What GET /metrics serves. Default: `registry`. */
  metrics?: Pick<Registry, 'contentType' | 'metrics'>;
  /** Limit of merchants that have none of their own; undefined: no limit. */
  defaultRateLimit?: RateLimit;
  /** A header set by a trusted CDN with the client's country (e.g. `cf-ipcountry`). Only set it behind that CDN. */
  cdnCountryHeader?: string;
  /** Fastify's trustProxy: trust X-Forwarded-For from these proxies for the client IP. */
  trustProxy?: boolean | string | string[];
  /**
   * A write that takes longer is answered 503 (it may still complete; retries are de-duplicated
   * downstream). Default 8 s: below Segment libraries' 10 s request timeout, so clients get the answer.
   */
  writeTimeoutMs?: number;
  maxFutureMs?: number;
  maxPastMs?: number;
  /** Readiness beyond the log: e.g. the merchants table has loaded. */
  isReady?: () => boolean;
  /** Liveness: the roles of the process that stopped on an error they cannot recover from (/healthz fails while any has). */
  failedRoles?: () => readonly string[];
  /**
   * Serve the ingest and beacon routes (the collector role). Default true. A process that runs
   * other roles only keeps the server for health, metrics and the analytics API.
   */
  ingest?: boolean;
  now?: () => number;
}

type SegmentType = 'track' | 'page' | 'identify';

const RETRY_AFTER_UNAVAILABLE_S = 5;

export async function buildCollector(options: CollectorOptions): Promise<FastifyInstance> {
  const registry = options.registry ?? new Registry();
  const metrics = new CollectorMetrics(registry);
  const now = options.now ?? Date.now;
  const limiter = new RateLimiter(options.defaultRateLimit, now);
  const writeTimeoutMs = options.writeTimeoutMs ?? 8_000;
  const producer = options.log.createProducer({ clientId: 'collector' });
  const cdnHeader = options.cdnCountryHeader?.toLowerCase();
  const Topics = options.topics ?? topicNames();
  // Readiness: the last write failed, recently.
  let lastWriteFailed = false;
  let lastWriteFailure = 0;

  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger | undefined,
    // No per-request lines: they carry URLs (write keys, visitor ids in query strings) and client
    // addresses. Metrics count requests; errors are logged without personal data.
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: options.trustProxy ?? false,
    bodyLimit: Limits.batchBytes,
  });

  // Every body is read as bytes and decoded by decodeBody: strict UTF-8, gzip, our error codes.
  // Browsers send text/plain to avoid a CORS preflight, so the content type is not trusted.
  // Ingest routes (config.ingest) get the bytes as they came: prepareIngest decodes them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    if ((req.routeOptions.config as { ingest?: boolean }).ingest === true) return done(null, body);
    try {
      done(null, decodeBody(body as Buffer, req.headers['content-encoding'], req.routeOptions.bodyLimit ?? Limits.batchBytes).value);
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    const e =
      (err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE' && req.routeOptions.bodyLimit === Limits.eventBytes
        ? new PlatformError(PlatformErrors.EVENT_TOO_LARGE, `An event is at most ${Limits.eventBytes} bytes; send larger payloads in smaller events.`)
        : toPlatformError(err);
    if (e.status >= 500) req.log.error({ err, route: req.routeOptions.url }, 'request failed');
    if (e.code === PlatformErrors.UNAVAILABLE.code) reply.header('retry-after', String(RETRY_AFTER_UNAVAILABLE_S));
    const retryAfter = e.details['retryAfterS'];
    if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
    return reply.code(e.status).send({ error: { code: e.code, message: e.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: PlatformErrors.NOT_FOUND.code, message: `No route ${req.method} ${req.url.split('?')[0]}.` } });
  });

  // CORS: storefronts call the collector from their own origins. No cookies are used, so any origin may.
  app.addHook('onSend', async (req, reply) => {
    if (req.url.startsWith('/v1/')) reply.header('access-control-allow-origin', '*');
  });
  app.options('/v1/*', async (_req, reply) => {
    reply
      .header('access-control-allow-methods', 'GET, POST, OPTIONS')
      .header('access-control-allow-headers', 'Content-Type, Authorization, Content-Encoding')
      .header('access-control-max-age', '86400')
      .code(204)
      .send();
  });

  // Durable writes with a deadline: past it the client gets 503 and retries (de-duplicated downstream).
  async function write(records: ProducerRecord[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PlatformError(PlatformErrors.UNAVAILABLE, `The log did not confirm the write within ${writeTimeoutMs} ms; retry later.`)),
        writeTimeoutMs,
      );
    });
    try {
      await Promise.race([producer.send(records), deadline]);
      lastWriteFailed = false;
    } catch (err) {
      lastWriteFailed = true;
      lastWriteFailure = now();
      const e = toPlatformError(err);
      metrics.writeFailures.inc({ code: isStreamsError(err) ? err.code : e.code });
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  function authenticate(req: FastifyRequest, bodyWriteKey: unknown): { merchant: Merchant; kind: WriteKeyKind } {
    const check = checkWriteKey(options.merchants, basicAuthUser(req.headers.authorization) ?? bodyWriteKey);
    if (!check.ok) throw new PlatformError(PlatformErrors.UNAUTHORIZED, check.message);
    return check;
  }

  // One handler for every ingest route: `typeHint` undefined for a batch, else the single event's type.
  const ingestRoute = (typeHint: SegmentType | undefined) => async (req: FastifyRequest, reply: FastifyReply) => {
    const receivedAt = now();
    // No body at all (no Content-Type, no length) reaches here without the parser: an empty one.
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const p = prepareIngest({ body, contentEncoding: req.headers['content-encoding'], typeHint, receivedAt, maxFutureMs: options.maxFutureMs, maxPastMs: options.maxPastMs });
    if (p.kind === 'shape') {
      authenticate(req, p.writeKey);
      throw new PlatformError(
        PlatformErrors.INVALID_REQUEST,
        typeHint === undefined ? 'A batch body is a JSON object with a "batch" array of events.' : `A ${typeHint} body is a JSON object (one event).`,
      );
    }
    return ingest(req, reply, p, typeHint, receivedAt);
  };

  async function ingest(req: FastifyRequest, reply: FastifyReply, p: PreparedEvents, typeHint: SegmentType | undefined, receivedAt: number): Promise<void> {
    const { merchant, kind } = authenticate(req, p.writeKey);
    // A server write key: the request comes from the merchant's backend, so its IP, User-Agent and
    // CDN country describe that server, not the shopper; they are not recorded.
    const server = kind === 'server';
    if (p.count > Limits.batchEvents) {
      throw new PlatformError(PlatformErrors.BATCH_TOO_LARGE, `A batch holds at most ${Limits.batchEvents} events; this one has ${p.count}.`);
    }
    // Batch-level fields are copied onto every event's record: keep them small.
    if (p.fieldTooLarge !== undefined) {
      throw new PlatformError(PlatformErrors.INVALID_REQUEST, `The batch's ${p.fieldTooLarge} is larger than ${Limits.batchFieldBytes} bytes; it is copied onto every event, so keep it small (put event data in the events).`);
    }
    if (p.tooDeep) throw new PlatformError(PlatformErrors.INVALID_REQUEST, `The body nests JSON deeper than ${MAX_JSON_DEPTH} levels; no event needs that.`);
    const waitMs = limiter.take(merchant.id, merchant.rateLimit, p.count);
    if (waitMs > 0) {
      throw new PlatformError(PlatformErrors.RATE_LIMITED, `Merchant ${merchant.id} is over its rate limit; retry after the time in Retry-After.`, {
        details: { retryAfterS: Math.ceil(waitMs / 1000) },
      });
    }
    const ctx: IngestContext = {
      merchantId: merchant.id,
      defaultCurrency: merchant.currency,
      receivedAt,
      batchSentAt: p.batchSentAt,
      batchContext: p.batchContext,
      requestIp: server ? undefined : req.ip,
      requestUserAgent: server ? undefined : req.headers['user-agent'],
      cdnCountry: cdnHeader && !server ? headerValue(req.headers[cdnHeader]) : undefined,
    };
    // Four variants at most, built on first use: with or without the request's IP and User-Agent
    // (left out when the event's context has its own, which the pipeline prefers).
    const headerSets: Array<Header[] | undefined> = [undefined, undefined, undefined, undefined];
    const sources = p.sources.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength));
    const records: ProducerRecord[] = [];
    const rejected = (r: PreparedRejection) =>
      records.push(rejectedRecord(Topics.rejected, merchant.id, receivedAt, r.event, { code: r.code, message: r.message, ...(r.path !== undefined && { path: r.path }) }));
    // In request order: accepted and refused events interleave as they came.
    let next = 0;
    for (let a = 0; a < p.index.length; a++) {
      while (next < p.rejected.length && p.rejected[next]!.index < p.index[a]!) rejected(p.rejected[next++]!);
      const own = p.own[a]!;
      const headers = (headerSets[own] ??= rawRecordHeaders(ctx, typeHint, (own & 1) === 0, (own & 2) === 0, kind));
      // The record time is the collector's clock (receivedAt): the pipeline measures its grace period
      // against beacon validations, which carry the same clock. The event time is in the message.
      records.push({ topic: Topics.raw, key: Buffer.from(p.visitor[a]!), value: sources[p.source[a]!]!.subarray(p.start[a]!, p.end[a]!), timestamp: receivedAt, headers });
    }
    while (next < p.rejected.length) rejected(p.rejected[next++]!);
    try {
      await write(records);
    } catch (err) {
      // Nothing was acknowledged: the retry must not be charged twice.
      limiter.refund(merchant.id, p.count);
      throw err;
    }
    for (const e of p.rejected) metrics.rejected.inc({ code: e.code });
    const nRejected = p.rejected.length;
    metrics.events.inc({ outcome: 'accepted' }, p.count - nRejected);
    if (nRejected > 0) metrics.events.inc({ outcome: 'rejected' }, nRejected);
    // Segment's API answers {"success": true}; the counts and reasons help developers find bad events.
    if (nRejected === 0) return reply.code(200).send({ success: true });
    const errors = p.rejected.slice(0, 100).map((e) => ({ index: e.index, ...(e.messageId !== undefined && { messageId: e.messageId }), code: e.code, message: e.message }));
    return reply.code(200).send({ success: true, accepted: p.count - nRejected, rejected: nRejected, errors });
  }

  const observe = (route: string) => ({
    onResponse: async (_req: FastifyRequest, reply: FastifyReply) => {
      metrics.requests.inc({ route, status: String(reply.statusCode) });
      metrics.duration.observe({ route }, reply.elapsedTime / 1000);
    },
  });

  const ingestRoutes = options.ingest ?? true;
  const routes: Array<[SegmentType | undefined, string, string[]]> = [
    [undefined, 'batch', ['/v1/batch', '/v1/b', '/v1/import']],
    ['track', 'track', ['/v1/track', '/v1/t']],
    ['page', 'page', ['/v1/page', '/v1/p']],
    ['identify', 'identify', ['/v1/identify', '/v1/i']],
  ];
  if (ingestRoutes) {
    for (const [type, name, paths] of routes) {
      const bodyLimit = type === undefined ? Limits.batchBytes : Limits.eventBytes;
      for (const path of paths) app.post(path, { bodyLimit, config: { ingest: true }, ...observe(name) }, ingestRoute(type));
    }
  }

  if (ingestRoutes) await app.register(beaconRoutes, {
    merchants: options.merchants,
    secrets: options.beaconSecrets,
    registry,
    now,
    append: async (record: { key: Buffer; value: Buffer; timestamp: number }) => {
      await write([{ topic: Topics.validations, key: record.key, value: record.value, timestamp: record.timestamp }]);
    },
  });

  app.get('/healthz', async (_req, reply) => {
    const failed = options.failedRoles?.() ?? [];
    return failed.length === 0 ? { status: 'ok' } : reply.code(503).send({ status: 'failed', roles: failed });
  });
  app.get('/readyz', async (_req, reply) => {
    // After a failed write, ask the log directly rather than wait for traffic that a load balancer
    // no longer sends while this instance is not ready.
    if (lastWriteFailed && now() - lastWriteFailure >= 2_000) {
      lastWriteFailure = now();
      // A real write: reading metadata would succeed while writes still fail (a full disk).
      const probe = producer.send([{ topic: Topics.health, key: null, value: Buffer.from('{"probe":"readyz"}'), timestamp: now() }]);
      const ok = await Promise.race([probe.then(() => true, () => false), new Promise<boolean>((r) => setTimeout(() => r(false), 2_000).unref())]);
      if (ok) lastWriteFailed = false;
    }
    const logFailing = lastWriteFailed;
    const ready = (options.isReady?.() ?? true) && !logFailing;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', log: logFailing ? 'failing' : 'ok' });
  });
  app.get('/metrics', async (_req, reply) => {
    const scrape = options.metrics ?? registry;
    return reply.header('content-type', scrape.contentType).send(await scrape.metrics());
  });

  app.addHook('onClose', async () => {
    await producer.close();
  });
  return app;
}

function rejectedRecord(topic: string, merchantId: string, receivedAt: number, message: unknown, reason: { code: string; message: string; path?: string }): ProducerRecord {
  const m = isObject(message) ? message : undefined;
  // The same key as the event would have had in events.raw (the envelope's visitorId), when it has one.
  const id = (v: unknown) => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : undefined);
  const anonymousId = id(m?.['anonymousId']);
  const userId = id(m?.['userId']);
  const visitor = anonymousId ?? (userId === undefined ? undefined : `user:${userId}`);
  return {
    topic,
    key: visitor !== undefined && visitor.length <= 512 ? Buffer.from(visitor) : null,
    value: Buffer.from(JSON.stringify(rejection('collector', merchantId, receivedAt, message, reason))),
    timestamp: receivedAt,
  };
}

function toPlatformError(err: unknown): PlatformError {
  if (isPlatformError(err)) return err;
  if (isStreamsError(err) && (err.retriable || err.code === ErrorCodes.CLOSED.code)) {
    // CLOSED: this instance is shutting down; another one (or this one, restarted) will take the retry.
    return new PlatformError(PlatformErrors.UNAVAILABLE, `The log cannot take writes now (${err.code}); retry later.`, { cause: err });
  }
  const fe = err as { code?: string; statusCode?: number; message?: string };
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new PlatformError(PlatformErrors.REQUEST_TOO_LARGE, 'The request body is larger than this endpoint accepts (500 KB for a batch, 32 KB for one event).');
  if (fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new PlatformError(PlatformErrors.INVALID_REQUEST, fe.message ?? 'Bad request body.');
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const spec: PlatformErrorSpecOf = fe.statusCode === 404 ? PlatformErrors.NOT_FOUND : PlatformErrors.INVALID_REQUEST;
    return new PlatformError(spec, fe.message ?? 'Bad request.');
  }
  return new PlatformError(PlatformErrors.INTERNAL, 'Internal error; it has been logged.', { cause: err });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

