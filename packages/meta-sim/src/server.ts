/**
 * The Meta stand-in: a Fastify server with Graph's `POST /{version}/{pixel}/events` edge, the fault
 * injector, and the recording that tests and benchmarks inspect. Validation lives in validate.ts,
 * parameter reading in params.ts, the error shapes in errors.ts; this file wires them to HTTP.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  errorBody,
  injectedInvalidEvent,
  invalidToken,
  missingToken,
  rateLimit429,
  serverError,
  throttled,
  unknownObject,
  unknownPath,
  type GraphError,
  type ThrottleCode,
} from './errors.ts';
import { isGraphError, readParams, type RawBody, type TokenSource } from './params.ts';
import { MAX_EVENTS_PER_REQUEST, validateEvents, type ValidationOptions } from './validate.ts';

// ---------------------------------------------------------------------------------------------
// Public types

export interface MetaSimOptions {
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port; 0 (default) picks a free one. */
  port?: number;
  /** Accept only this Graph version (e.g. "v21.0"). Default: any `vNN.N`. */
  apiVersion?: string;
  /** Delay before every answer of the events edge, fixed or drawn per request. Default 0. */
  latencyMs?: number | (() => number);
  /** Clock in milliseconds (Date.now by default): drives the 7-day rule and `receivedAt`. */
  now?: () => number;
  /** Fastify's request log. Default false. */
  logger?: boolean;
  /** Seed of the RNG that draws probabilistic faults. Default 1. */
  seed?: number;
  /** Keep the exact text of every request body (rawBodies()). Default true; turn off for benchmarks. */
  recordBodies?: boolean;
  /**
   * Keep every accepted event, every request and the per-event delivery counts (events(),
   * requests(), deliveries(), duplicates()). Default true; false keeps only the counters of stats(),
   * for long runs (the embedded demo) and benchmarks.
   */
  record?: boolean;
  /** Require external_id hashed too. Default true (Meta only recommends hashing it). */
  strictHashing?: boolean;
  /** Require event_source_url and client_user_agent on website events. Default true (Meta's documented rule). */
  requireWebsiteParams?: boolean;
  /** Reject server-event keys Meta does not define. Default true. */
  rejectUnknownKeys?: boolean;
  /** Seconds event_time may lie in the future. Default 600. */
  futureToleranceSec?: number;
  /** Events per request. Default 1,000 (Meta's limit). */
  maxEvents?: number;
  /** Largest body accepted, bytes. Default 32 MiB. */
  bodyLimit?: number;
  /** Pixels known from the start (same as calling addPixel). */
  pixels?: Array<{ pixelId: string; accessToken: string }>;
}

/** Faults that fail or hang a request before it is accepted; `timeout_after_accept` hangs after. */
export type CountedFaultKind =
  | 'server_error'
  | 'rate_limit_429'
  | 'throttle_4'
  | 'throttle_17'
  | 'throttle_613'
  | 'throttle_80004'
  | 'timeout'
  | 'timeout_after_accept';

export interface CountedFault {
  kind: CountedFaultKind;
  /** Affect the next N matching requests. Default 1, or unlimited when `probability` is given alone. */
  count?: number;
  /** Affect each matching request with this probability (seeded RNG). */
  probability?: number;
  /** Only requests to this pixel. */
  pixelId?: string;
  /** server_error only: Graph code 2 (default, "unexpected error") or 1 ("unknown error"). */
  code?: 1 | 2;
  /** rate_limit_429 only: send a Retry-After header with this many seconds. */
  retryAfterSec?: number;
}

/** Reject, persistently, any request carrying one of these event_ids (until clearFaults). */
export interface InvalidEventFault {
  kind: 'invalid_event';
  eventIds: string[];
  pixelId?: string;
}

export type Fault = CountedFault | InvalidEventFault;
export type FaultKind = Fault['kind'];

export interface ActiveFault {
  id: string;
  fault: Fault;
  /** Requests it may still affect; null = unlimited. */
  remaining: number | null;
  /** Requests it has affected so far. */
  fired: number;
}

export interface RecordedEvent {
  pixelId: string;
  /** The server event exactly as parsed from the request. */
  event: Record<string, unknown>;
  testEventCode?: string;
  /** `now()` when the request was accepted, ms. */
  receivedAt: number;
}

/** How a request of the events edge ended. */
export type Outcome =
  | 'accepted'
  | 'validation_error'
  | 'auth_error'
  | 'unknown_object'
  | 'unknown_path'
  | 'bad_request'
  | FaultKind;

export interface RequestRecord {
  pixelId: string;
  /** HTTP status sent; 0 when the sim never answered (timeout faults). */
  status: number;
  /** Number of events in `data` (0 when it is not an array). */
  events: number;
  outcome: Outcome;
  errorCode?: number;
  errorSubcode?: number;
  /** Index in `data` of the event named by the error, for validation errors. */
  eventIndex?: number;
  testEventCode?: string;
  tokenSource?: TokenSource;
  /** Time from the request's arrival to the answer (or to the decision to hang), ms. */
  durationMs: number;
  receivedAt: number;
}

export interface Duplicate {
  pixelId: string;
  eventId: string;
  count: number;
}

export interface SimStats {
  /** Requests to the events edge. */
  requests: number;
  /** Requests per HTTP status ("200", "400", …; "no_answer" for hung requests). */
  byStatus: Record<string, number>;
  /** Requests per outcome (accepted, validation_error, throttle_17, timeout, …). */
  byOutcome: Record<string, number>;
  eventsAccepted: number;
  /** Events carried by requests that were not accepted. */
  eventsRejected: number;
  /** (pixel, event_id) pairs delivered more than once, and the surplus deliveries. */
  duplicateKeys: number;
  duplicateDeliveries: number;
  /** Events-edge requests being handled now, and the most ever at once. */
  inFlight: number;
  inFlightMax: number;
  /** Requests held open by a timeout fault right now. */
  hanging: number;
}

export interface MetaSim {
  /** Base URL, e.g. http://127.0.0.1:40123. */
  readonly url: string;
  readonly port: number;
  /** Stops listening, destroys held sockets. Idempotent. */
  close(): Promise<void>;
  addPixel(pixelId: string, accessToken: string): void;
  /** Arms a fault; returns its id. Throws on a malformed fault. */
  inject(fault: Fault): string;
  clearFaults(): void;
  faults(): ActiveFault[];
  setLatency(latencyMs: number | (() => number)): void;
  events(pixelId?: string): RecordedEvent[];
  deliveries(pixelId: string, eventId: string): number;
  duplicates(): Duplicate[];
  requests(): RequestRecord[];
  /** Exact body text of every events-edge request (for a body-less request: its raw query string). */
  rawBodies(): string[];
  stats(): SimStats;
  /** Forgets events, requests, bodies, faults and counters; keeps pixels and latency. */
  reset(): void;
}

// ---------------------------------------------------------------------------------------------
// Faults

const COUNTED_KINDS: ReadonlySet<string> = new Set<CountedFaultKind>([
  'server_error',
  'rate_limit_429',
  'throttle_4',
  'throttle_17',
  'throttle_613',
  'throttle_80004',
  'timeout',
  'timeout_after_accept',
]);

/** Checks a fault (from code or from JSON); returns it, or a message saying what is wrong. */
export function parseFault(input: unknown): Fault | string {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return 'a fault must be an object';
  const f = input as Record<string, unknown>;
  if (f.pixelId !== undefined && typeof f.pixelId !== 'string') return 'pixelId must be a string';
  if (f.kind === 'invalid_event') {
    if (!Array.isArray(f.eventIds) || f.eventIds.length === 0 || !f.eventIds.every((id) => typeof id === 'string')) {
      return 'invalid_event needs eventIds: a non-empty array of strings';
    }
    const fault: InvalidEventFault = { kind: 'invalid_event', eventIds: [...(f.eventIds as string[])] };
    if (f.pixelId !== undefined) fault.pixelId = f.pixelId;
    return fault;
  }
  if (typeof f.kind !== 'string' || !COUNTED_KINDS.has(f.kind)) {
    return `unknown fault kind ${JSON.stringify(f.kind)}; expected one of ${[...COUNTED_KINDS, 'invalid_event'].join(', ')}`;
  }
  const fault: CountedFault = { kind: f.kind as CountedFaultKind };
  if (f.count !== undefined) {
    if (typeof f.count !== 'number' || !Number.isInteger(f.count) || f.count < 1) return 'count must be a positive integer';
    fault.count = f.count;
  }
  if (f.probability !== undefined) {
    if (typeof f.probability !== 'number' || !(f.probability >= 0 && f.probability <= 1)) return 'probability must be in [0, 1]';
    fault.probability = f.probability;
  }
  if (f.pixelId !== undefined) fault.pixelId = f.pixelId;
  if (f.code !== undefined) {
    if (f.kind !== 'server_error' || (f.code !== 1 && f.code !== 2)) return 'code is 1 or 2, for server_error only';
    fault.code = f.code;
  }
  if (f.retryAfterSec !== undefined) {
    if (typeof f.retryAfterSec !== 'number' || f.retryAfterSec < 0) return 'retryAfterSec must be a number >= 0';
    fault.retryAfterSec = f.retryAfterSec;
  }
  return fault;
}

/** Mulberry32: a small seeded PRNG, so probabilistic faults replay identically. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function faultError(fault: CountedFault): GraphError {
  switch (fault.kind) {
    case 'server_error':
      return serverError(fault.code ?? 2);
    case 'rate_limit_429':
      return rateLimit429(fault.retryAfterSec);
    case 'throttle_4':
    case 'throttle_17':
    case 'throttle_613':
    case 'throttle_80004':
      return throttled(Number(fault.kind.slice('throttle_'.length)) as ThrottleCode);
    default:
      throw new Error(`fault ${fault.kind} has no error answer`);
  }
}

// ---------------------------------------------------------------------------------------------
// The server

const EVENTS_ROUTE = '/:version/:pixelId/events';
const VERSION = /^v\d+\.\d+$/;

/** A Graph-like trace id: 23 URL-safe characters. */
function fbtraceId(): string {
  return randomBytes(17).toString('base64url').slice(0, 23);
}

function isRawBody(v: unknown): v is RawBody {
  return typeof v === 'object' && v !== null && typeof (v as RawBody).text === 'string';
}

function rawQueryOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
}

interface RequestContext {
  pixelId: string;
  events: number;
  testEventCode?: string;
  tokenSource?: TokenSource;
  receivedAt: number;
}

/** Starts a Meta Conversions API stand-in listening on a real socket. */
export async function startMetaSim(options: MetaSimOptions = {}): Promise<MetaSim> {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const record = options.record ?? true;
  const recordBodies = record && (options.recordBodies ?? true);
  const validation: Omit<ValidationOptions, 'nowSec'> = {
    maxEvents: options.maxEvents ?? MAX_EVENTS_PER_REQUEST,
    strictHashing: options.strictHashing ?? true,
    requireWebsiteParams: options.requireWebsiteParams ?? true,
    rejectUnknownKeys: options.rejectUnknownKeys ?? true,
  };
  if (options.futureToleranceSec !== undefined) validation.futureToleranceSec = options.futureToleranceSec;
  let latency: number | (() => number) = options.latencyMs ?? 0;
  let random = seededRandom(options.seed ?? 1);

  // Pixels: token -> pixels it may write to.
  const tokens = new Map<string, Set<string>>();
  const pixels = new Set<string>();
  const addPixel = (pixelId: string, accessToken: string): void => {
    if (!pixelId || !accessToken) throw new Error('addPixel needs a pixelId and an accessToken');
    pixels.add(pixelId);
    let set = tokens.get(accessToken);
    if (!set) tokens.set(accessToken, (set = new Set()));
    set.add(pixelId);
  };
  for (const p of options.pixels ?? []) addPixel(p.pixelId, p.accessToken);

  // Faults.
  let faultSeq = 0;
  let active: ActiveFault[] = [];
  const inject = (input: Fault): string => {
    const fault = parseFault(input);
    if (typeof fault === 'string') throw new TypeError(`meta-sim: ${fault}`);
    const id = `f${++faultSeq}`;
    let remaining: number | null = null;
    if (fault.kind !== 'invalid_event') remaining = fault.count ?? (fault.probability !== undefined ? null : 1);
    active.push({ id, fault, remaining, fired: 0 });
    return id;
  };
  /** Fires the first armed counted fault of the given kinds that matches this pixel. */
  const takeFault = (pixelId: string, kinds: (k: CountedFaultKind) => boolean): CountedFault | undefined => {
    for (const a of active) {
      const f = a.fault;
      if (f.kind === 'invalid_event' || !kinds(f.kind)) continue;
      if (f.pixelId !== undefined && f.pixelId !== pixelId) continue;
      if (f.probability !== undefined && random() >= f.probability) continue;
      a.fired++;
      if (a.remaining !== null && --a.remaining <= 0) active = active.filter((x) => x !== a);
      return f;
    }
    return undefined;
  };
  /** Index of the first event carrying an event_id poisoned by an invalid_event fault for this pixel. */
  const poisoned = (pixelId: string, data: unknown[]): { index: number; eventId: string } | undefined => {
    const faults = active.filter(
      (a) => a.fault.kind === 'invalid_event' && (a.fault.pixelId === undefined || a.fault.pixelId === pixelId),
    );
    if (faults.length === 0) return undefined;
    for (let i = 0; i < data.length; i++) {
      const ev = data[i] as { event_id?: unknown } | null;
      const id = typeof ev === 'object' && ev !== null ? ev.event_id : undefined;
      if (typeof id !== 'string') continue;
      for (const a of faults) {
        if ((a.fault as InvalidEventFault).eventIds.includes(id)) {
          a.fired++;
          return { index: i, eventId: id };
        }
      }
    }
    return undefined;
  };

  // Recording.
  let recorded: RecordedEvent[] = [];
  let requestLog: RequestRecord[] = [];
  let bodies: string[] = [];
  let deliveries = new Map<string, number>();
  let byStatus: Record<string, number> = {};
  let byOutcome: Record<string, number> = {};
  let eventsAccepted = 0;
  let eventsRejected = 0;
  let inFlight = 0;
  let inFlightMax = 0;
  const hanging = new Set<Socket>();
  const deliveryKey = (pixelId: string, eventId: string): string => `${pixelId}\u0000${eventId}`;

  const logRequest = (ctx: RequestContext, status: number, outcome: Outcome, durationMs: number, err?: GraphError): void => {
    const rec: RequestRecord = { pixelId: ctx.pixelId, status, events: ctx.events, outcome, durationMs, receivedAt: ctx.receivedAt };
    if (err) {
      rec.errorCode = err.error.code;
      if (err.error.error_subcode !== undefined) rec.errorSubcode = err.error.error_subcode;
      if (err.eventIndex !== undefined) rec.eventIndex = err.eventIndex;
    }
    if (ctx.testEventCode !== undefined) rec.testEventCode = ctx.testEventCode;
    if (ctx.tokenSource !== undefined) rec.tokenSource = ctx.tokenSource;
    if (record) requestLog.push(rec);
    const key = status === 0 ? 'no_answer' : String(status);
    byStatus[key] = (byStatus[key] ?? 0) + 1;
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
    if (outcome !== 'accepted' && outcome !== 'timeout_after_accept') eventsRejected += ctx.events;
  };

  const accept = (ctx: RequestContext, data: unknown[]): void => {
    for (const ev of record ? data : []) {
      const event = ev as Record<string, unknown>;
      const rec: RecordedEvent = { pixelId: ctx.pixelId, event, receivedAt: ctx.receivedAt };
      if (ctx.testEventCode !== undefined) rec.testEventCode = ctx.testEventCode;
      recorded.push(rec);
      if (typeof event.event_id === 'string') {
        const key = deliveryKey(ctx.pixelId, event.event_id);
        deliveries.set(key, (deliveries.get(key) ?? 0) + 1);
      }
    }
    eventsAccepted += data.length;
  };

  const app: FastifyInstance = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 32 * 1024 * 1024,
    forceCloseConnections: true,
  });

  // Keep every body as the exact text received; params.ts decodes it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    done(null, { text: body as string, contentType: req.headers['content-type'] ?? '' } satisfies RawBody);
  });

  // Arrival time of each events-edge request (Fastify's elapsedTime is not reliable without a logger).
  const arrival = new WeakMap<FastifyRequest, number>();
  const elapsed = (req: FastifyRequest): number => performance.now() - (arrival.get(req) ?? performance.now());

  app.addHook('onRequest', (req, reply, done) => {
    if (req.routeOptions.url === EVENTS_ROUTE) {
      arrival.set(req, performance.now());
      inFlight++;
      if (inFlight > inFlightMax) inFlightMax = inFlight;
      reply.raw.once('close', () => {
        inFlight--;
      });
    }
    done();
  });

  const delay = async (): Promise<void> => {
    const ms = typeof latency === 'function' ? latency() : latency;
    if (ms > 0) await sleep(ms);
  };

  /** Answers with a Graph error after the configured latency, and logs the request. */
  const fail = async (
    req: FastifyRequest,
    reply: FastifyReply,
    ctx: RequestContext,
    outcome: Outcome,
    err: GraphError,
  ): Promise<FastifyReply> => {
    await delay();
    const trace = fbtraceId();
    logRequest(ctx, err.status, outcome, elapsed(req), err);
    return reply
      .code(err.status)
      .headers({ ...err.headers, 'x-fb-trace-id': trace, 'content-type': 'application/json; charset=UTF-8' })
      .send(JSON.stringify(errorBody(err, trace)));
  };

  /** Never answers: the socket stays open until the client gives up or the sim closes. */
  const hang = (req: FastifyRequest, reply: FastifyReply, ctx: RequestContext, outcome: Outcome): FastifyReply => {
    logRequest(ctx, 0, outcome, elapsed(req));
    reply.hijack();
    const socket = req.raw.socket;
    hanging.add(socket);
    socket.once('close', () => hanging.delete(socket));
    return reply;
  };

  app.post<{ Params: { version: string; pixelId: string } }>(EVENTS_ROUTE, async (req, reply) => {
    const { version, pixelId } = req.params;
    const raw = isRawBody(req.body) ? req.body : undefined;
    const rawQuery = rawQueryOf(req.url);
    if (recordBodies) bodies.push(raw && raw.text.length > 0 ? raw.text : rawQuery);
    const ctx: RequestContext = { pixelId, events: 0, receivedAt: now() };

    const params = readParams(raw, rawQuery, req.headers.authorization);
    if (!isGraphError(params)) {
      if (Array.isArray(params.data)) ctx.events = params.data.length;
      if (params.testEventCode !== undefined) ctx.testEventCode = params.testEventCode;
      if (params.tokenSource !== undefined) ctx.tokenSource = params.tokenSource;
    }

    if (!VERSION.test(version) || (options.apiVersion !== undefined && version !== options.apiVersion)) {
      return fail(req, reply, ctx, 'unknown_path', unknownPath(`/${pixelId}/events`));
    }

    const early = takeFault(pixelId, (k) => k !== 'timeout_after_accept');
    if (early) {
      if (early.kind === 'timeout') return hang(req, reply, ctx, 'timeout');
      return fail(req, reply, ctx, early.kind, faultError(early));
    }

    if (isGraphError(params)) return fail(req, reply, ctx, 'bad_request', params);
    if (params.accessToken === undefined) return fail(req, reply, ctx, 'auth_error', missingToken());
    const allowed = tokens.get(params.accessToken);
    if (!allowed) return fail(req, reply, ctx, 'auth_error', invalidToken(params.tokenSource === 'header'));
    if (!pixels.has(pixelId) || !allowed.has(pixelId)) return fail(req, reply, ctx, 'unknown_object', unknownObject(pixelId, 'post'));

    const invalid = validateEvents(params.data, { ...validation, nowSec: Math.floor(now() / 1000) });
    const data = params.data as unknown[];
    if (invalid && invalid.eventIndex === undefined) return fail(req, reply, ctx, 'validation_error', invalid);
    const poison = poisoned(pixelId, data);
    if (poison && (!invalid || poison.index < (invalid.eventIndex ?? Infinity))) {
      return fail(req, reply, ctx, 'invalid_event', injectedInvalidEvent(poison.index, poison.eventId));
    }
    if (invalid) return fail(req, reply, ctx, 'validation_error', invalid);

    accept(ctx, data);
    if (takeFault(pixelId, (k) => k === 'timeout_after_accept')) return hang(req, reply, ctx, 'timeout_after_accept');

    await delay();
    const trace = fbtraceId();
    logRequest(ctx, 200, 'accepted', elapsed(req));
    return reply
      .code(200)
      .headers({ 'x-fb-trace-id': trace, 'content-type': 'application/json; charset=UTF-8' })
      .send(JSON.stringify({ events_received: data.length, messages: [], fbtrace_id: trace }));
  });

  // -------------------------------------------------------------------------------------------
  // Inspection and control, in-process.

  const stats = (): SimStats => {
    let duplicateKeys = 0;
    let duplicateDeliveries = 0;
    for (const n of deliveries.values()) {
      if (n > 1) {
        duplicateKeys++;
        duplicateDeliveries += n - 1;
      }
    }
    return {
      requests: requestLog.length,
      byStatus: { ...byStatus },
      byOutcome: { ...byOutcome },
      eventsAccepted,
      eventsRejected,
      duplicateKeys,
      duplicateDeliveries,
      inFlight,
      inFlightMax,
      hanging: hanging.size,
    };
  };
  const duplicates = (): Duplicate[] => {
    const out: Duplicate[] = [];
    for (const [key, count] of deliveries) {
      if (count < 2) continue;
      const sep = key.indexOf('\u0000');
      out.push({ pixelId: key.slice(0, sep), eventId: key.slice(sep + 1), count });
    }
    return out;
  };
  const events = (pixelId?: string): RecordedEvent[] =>
    pixelId === undefined ? recorded.slice() : recorded.filter((e) => e.pixelId === pixelId);
  const clearFaults = (): void => {
    active = [];
  };
  const reset = (): void => {
    recorded = [];
    requestLog = [];
    bodies = [];
    deliveries = new Map();
    byStatus = {};
    byOutcome = {};
    eventsAccepted = 0;
    eventsRejected = 0;
    inFlightMax = inFlight;
    active = [];
    random = seededRandom(options.seed ?? 1);
  };

  // -------------------------------------------------------------------------------------------
  // The same, over HTTP under /_sim, for tests that drive the sim from another process.

  const jsonOf = (req: FastifyRequest): unknown => {
    if (!isRawBody(req.body) || req.body.text.trim() === '') return undefined;
    return JSON.parse(req.body.text);
  };
  const badRequest = (reply: FastifyReply, message: string): FastifyReply => reply.code(400).send({ error: { message } });

  app.post('/_sim/faults', async (req, reply) => {
    let body: unknown;
    try {
      body = jsonOf(req);
    } catch {
      return badRequest(reply, 'body is not JSON');
    }
    if (typeof body === 'object' && body !== null && (body as { clear?: unknown }).clear === true) {
      const cleared = active.length;
      clearFaults();
      return { ok: true, cleared };
    }
    const fault = parseFault(body);
    if (typeof fault === 'string') return badRequest(reply, fault);
    return { ok: true, id: inject(fault) };
  });
  app.get('/_sim/faults', async () => ({ faults: active }));
  app.delete('/_sim/faults', async () => {
    const cleared = active.length;
    clearFaults();
    return { ok: true, cleared };
  });
  app.post('/_sim/pixels', async (req, reply) => {
    let body: { pixelId?: unknown; accessToken?: unknown } | undefined;
    try {
      body = jsonOf(req) as typeof body;
    } catch {
      return badRequest(reply, 'body is not JSON');
    }
    if (typeof body?.pixelId !== 'string' || typeof body.accessToken !== 'string' || !body.pixelId || !body.accessToken) {
      return badRequest(reply, 'expected {"pixelId": string, "accessToken": string}');
    }
    addPixel(body.pixelId, body.accessToken);
    return { ok: true };
  });
  app.post('/_sim/latency', async (req, reply) => {
    let body: { ms?: unknown } | undefined;
    try {
      body = jsonOf(req) as typeof body;
    } catch {
      return badRequest(reply, 'body is not JSON');
    }
    if (typeof body?.ms !== 'number' || body.ms < 0) return badRequest(reply, 'expected {"ms": number >= 0}');
    latency = body.ms;
    return { ok: true };
  });
  app.post('/_sim/reset', async () => {
    reset();
    return { ok: true };
  });
  app.get('/_sim/stats', async () => stats());
  app.get<{ Querystring: { pixelId?: string } }>('/_sim/events', async (req) => ({ events: events(req.query.pixelId) }));
  app.get('/_sim/requests', async () => ({ requests: requestLog }));
  app.get('/_sim/bodies', async () => ({ bodies }));
  app.get('/_sim/duplicates', async () => ({ duplicates: duplicates() }));
  app.get<{ Querystring: { pixelId?: string; eventId?: string } }>('/_sim/deliveries', async (req, reply) => {
    const { pixelId, eventId } = req.query;
    if (!pixelId || !eventId) return badRequest(reply, 'expected ?pixelId=…&eventId=…');
    return { pixelId, eventId, count: deliveries.get(deliveryKey(pixelId, eventId)) ?? 0 };
  });

  // Anything else answers like Graph does for a path it cannot route.
  app.setNotFoundHandler(async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (path.startsWith('/_sim/')) return reply.code(404).send({ error: { message: `no control route ${req.method} ${path}` } });
    const segments = path.split('/').filter(Boolean);
    const objectId = (segments[0] !== undefined && VERSION.test(segments[0]) ? segments[1] : segments[0]) ?? '';
    const err = unknownObject(objectId, req.method);
    const trace = fbtraceId();
    return reply.code(err.status).header('x-fb-trace-id', trace).send(errorBody(err, trace));
  });
  app.setErrorHandler(async (error: FastifyError, _req, reply) => {
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    const trace = fbtraceId();
    const err: GraphError =
      status >= 500
        ? serverError(1)
        : { status, error: { message: `(#100) ${error.message}`, type: 'OAuthException', code: 100, is_transient: false } };
    return reply.code(status).header('x-fb-trace-id', trace).send(errorBody(err, trace));
  });

  await app.listen({ host, port: options.port ?? 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('meta-sim: no TCP address');
  const port = address.port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close: () => {
      closing ??= (async () => {
        for (const socket of hanging) socket.destroy();
        hanging.clear();
        await app.close();
      })();
      return closing;
    },
    addPixel,
    inject,
    clearFaults,
    faults: () => active.map((a) => ({ ...a })),
    setLatency: (ms) => {
      latency = ms;
    },
    events,
    deliveries: (pixelId, eventId) => deliveries.get(deliveryKey(pixelId, eventId)) ?? 0,
    duplicates,
    requests: () => requestLog.slice(),
    rawBodies: () => bodies.slice(),
    stats,
    reset,
  };
}
