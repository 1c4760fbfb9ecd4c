/**
 * The CPU work of an ingest request, apart from HTTP and the log: decode the body (decodeBody:
 * gzip, strict UTF-8, JSON.parse), find each event's bytes (batch-scan.ts), and check each event's
 * envelope (contract `checkEnvelope`). Pure and free of merchant state: it reports facts (the write
 * key in the body, the batch's size, each event's verdict) and server.ts decides, in its order
 * (write key, limits, rate limit), what the request gets. The result is plain data and typed
 * arrays (it could be computed on another thread; on this 2-core machine a parse thread did not pay,
 * see BENCHMARKS.md).
 */
import { checkEnvelope, type IngestContext, type SegmentType } from '../contract/index.ts';
import { PlatformErrors } from '../errors.ts';
import { TOO_DEEP, batchElementRanges } from './batch-scan.ts';
import { MAX_JSON_DEPTH, decodeBody, exceedsDepth } from './body.ts';

export const Limits = {
  /** Bytes of one event, as written to the log. */
  eventBytes: 32 * 1024,
  /** Bytes of one batch request body (after decompression). */
  batchBytes: 500 * 1024,
  /** Events in one batch. */
  batchEvents: 2500,
  /** Bytes of the batch-level `context` or `sentAt` (copied onto every event). */
  batchFieldBytes: 8 * 1024,
} as const;

export interface PrepareInput {
  /** The request body as received (maybe compressed). */
  body: Uint8Array;
  contentEncoding: string | undefined;
  /** The route: undefined for a batch, else the type a single-event route implies. */
  typeHint: SegmentType | undefined;
  receivedAt: number;
  maxFutureMs: number | undefined;
  maxPastMs: number | undefined;
}

/** An event refused inside an accepted request: it goes to events.rejected with its reason. */
export interface PreparedRejection {
  index: number;
  messageId: string | undefined;
  code: string;
  message: string;
  path: string | undefined;
  /** The message as parsed (the rejected record keeps it). */
  event: unknown;
}

/** The events of a well-shaped request, in request order split into accepted and refused ones. */
export interface PreparedEvents {
  kind: 'events';
  /** `writeKey` of the body, if any (HTTP Basic auth wins over it). */
  writeKey: unknown;
  count: number;
  batchSentAt: unknown;
  batchContext: unknown;
  /** A batch-level field larger than Limits.batchFieldBytes, if any. */
  fieldTooLarge: 'context' | 'sentAt' | undefined;
  /** The body nests deeper than MAX_JSON_DEPTH (then no event was looked at). */
  tooDeep: boolean;
  /** Bytes the accepted values lie in: the decoded body, then the values that had to be serialised again. */
  sources: Uint8Array[];
  /** Per accepted event: its index in the request, its visitor (the record key), its value's source and range, and whether its context names its own IP (1) and User-Agent (2). */
  index: Int32Array;
  visitor: string[];
  source: Uint8Array;
  start: Int32Array;
  end: Int32Array;
  own: Uint8Array;
  rejected: PreparedRejection[];
}

export type Prepared =
  /** Decoded, but not a batch object (or, on a single-event route, not an object). */
  | { kind: 'shape'; writeKey: unknown }
  | PreparedEvents;

/** A JSON object (not an array, not null). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function prepareIngest(input: PrepareInput): Prepared {
  const single = input.typeHint !== undefined;
  const limit = single ? Limits.eventBytes : Limits.batchBytes;
  // A body that cannot be decoded throws its PlatformError (not JSON, not UTF-8, too large, bad encoding).
  const raw = Buffer.from(input.body.buffer, input.body.byteOffset, input.body.byteLength);
  const { bytes, value: body } = decodeBody(raw, input.contentEncoding, limit, single ? PlatformErrors.EVENT_TOO_LARGE : PlatformErrors.REQUEST_TOO_LARGE);
  const writeKey = isObject(body) ? body['writeKey'] : undefined;
  if (!isObject(body) || (!single && !Array.isArray(body['batch']))) return { kind: 'shape', writeKey };
  const messages: unknown[] = single ? [body] : (body['batch'] as unknown[]);

  let fieldTooLarge: PreparedEvents['fieldTooLarge'];
  if (!single) {
    for (const field of ['context', 'sentAt'] as const) {
      const v = body[field];
      if (fieldTooLarge === undefined && v !== undefined && v !== null && JSON.stringify(v).length > Limits.batchFieldBytes) fieldTooLarge = field;
    }
  }
  const batchSentAt = body['sentAt'];
  const batchContext = single ? undefined : body['context'];
  const n = messages.length;
  const out: PreparedEvents = {
    kind: 'events',
    writeKey,
    count: n,
    batchSentAt,
    batchContext,
    fieldTooLarge,
    tooDeep: false,
    sources: [bytes],
    index: new Int32Array(0),
    visitor: [],
    source: new Uint8Array(0),
    start: new Int32Array(0),
    end: new Int32Array(0),
    own: new Uint8Array(0),
    rejected: [],
  };
  // A batch over the limit is refused whole; its events are not looked at.
  if (n > Limits.batchEvents || fieldTooLarge !== undefined) return out;

  // Each event's own bytes: the batch's elements, or the whole body of a single-event route.
  const scanned = single ? undefined : batchElementRanges(bytes, MAX_JSON_DEPTH);
  // Deep nesting costs nothing to send and would overflow the stack of every later encoding.
  if (scanned === TOO_DEEP || (scanned === undefined && exceedsDepth(bytes, MAX_JSON_DEPTH))) {
    out.tooDeep = true;
    return out;
  }
  let ranges = single ? [[0, bytes.length] as [number, number]] : scanned;
  if (ranges !== undefined && ranges.length !== n) ranges = undefined;
  out.index = new Int32Array(n);
  out.source = new Uint8Array(n);
  out.start = new Int32Array(n);
  out.end = new Int32Array(n);
  out.own = new Uint8Array(n);

  const ctx: IngestContext = {
    merchantId: '',
    defaultCurrency: '',
    receivedAt: input.receivedAt,
    batchSentAt,
    batchContext,
    maxFutureMs: input.maxFutureMs,
    maxPastMs: input.maxPastMs,
  };
  const again: Buffer[] = [];
  let againBytes = 0;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const message = messages[i];
    const result = checkEnvelope(message, ctx, input.typeHint);
    let reason: { code: string; message: string; path?: string | undefined };
    if (result.ok) {
      const env = result.envelope;
      let src = 0;
      let start: number;
      let end: number;
      // A writeKey inside an event is a credential: it is not written to the log.
      if (ranges !== undefined && !('writeKey' in env.message)) {
        [start, end] = ranges[i]!;
      } else {
        const b = Buffer.from(JSON.stringify({ ...env.message, writeKey: undefined }));
        src = 1;
        start = againBytes;
        end = againBytes + b.length;
        again.push(b);
        againBytes += b.length;
      }
      if (end - start <= Limits.eventBytes) {
        const c = env.message['context'] as Record<string, unknown> | undefined | null;
        const hasIp = c != null && typeof c['ip'] === 'string' && c['ip'] !== '';
        const hasUa = c != null && typeof c['userAgent'] === 'string' && c['userAgent'] !== '';
        out.index[k] = i;
        out.visitor.push(env.visitorId);
        out.source[k] = src;
        out.start[k] = start;
        out.end[k] = end;
        out.own[k] = (hasIp ? 1 : 0) | (hasUa ? 2 : 0);
        k++;
        continue;
      }
      reason = { code: PlatformErrors.EVENT_TOO_LARGE.code, message: `An event is at most ${Limits.eventBytes} bytes; this one is ${end - start}.` };
    } else reason = result.reason;
    const messageId = isObject(message) && typeof message['messageId'] === 'string' ? message['messageId'] : undefined;
    out.rejected.push({ index: i, messageId, code: reason.code, message: reason.message, path: reason.path, event: message });
  }
  if (k < n) {
    out.index = out.index.subarray(0, k);
    out.source = out.source.subarray(0, k);
    out.start = out.start.subarray(0, k);
    out.end = out.end.subarray(0, k);
    out.own = out.own.subarray(0, k);
  }
  if (again.length > 0) out.sources.push(Buffer.concat(again, againBytes));
  return out;
}
