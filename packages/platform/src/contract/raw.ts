/**
 * The records of `events.raw`: each event exactly as the client sent it (the value is the bytes of
 * one Segment message), keyed by visitor, with the record timestamp set to when the collector
 * received it (its clock, like Kafka's LogAppendTime; the event time is in the message), and what
 * the collector knew about the request in headers. Replaying events.raw through a
 * newer `normalizeEvent` therefore gives what that version would have given at ingest time.
 */
import type { Header } from '@shopstream/streams';
import { normalizeEvent, type IngestContext, type NormalizeResult, type SegmentType } from './normalize.ts';

export const RawHeaders = {
  merchant: 'shopstream.merchant',
  /** Epoch ms, decimal. */
  receivedAt: 'shopstream.received-at',
  /** The merchant's currency at ingest time, for money without a currency. */
  currency: 'shopstream.currency',
  ip: 'shopstream.ip',
  userAgent: 'shopstream.user-agent',
  /** The trusted CDN country header's value, when the operator configured one. */
  country: 'shopstream.country',
  /** The batch-level sentAt, as JSON. */
  sentAt: 'shopstream.sent-at',
  /** The batch-level context object, as JSON. */
  context: 'shopstream.batch-context',
  /** The type the endpoint implied (/v1/track …) for a message without one. */
  type: 'shopstream.type',
  /**
   * The kind of key that authenticated the request: `server` for a merchant's server write key
   * (a backend: no browser, no beacon). Absent for a browser write key, so records written before
   * the header existed keep their meaning; any other value reads as browser.
   */
  source: 'shopstream.source',
} as const;

/** The source of a raw record: which kind of write key the collector took it with. */
export type RawSource = 'browser' | 'server';

/**
 * Headers for the events of one request (built once per request and shared by its records).
 * `withIp` / `withUserAgent` false leave out the request's IP / User-Agent: for a message whose
 * context has its own (which `normalizeEvent` prefers), they would only repeat bytes.
 */
export function rawRecordHeaders(ctx: IngestContext, typeHint: SegmentType | undefined, withIp = true, withUserAgent = true, source: RawSource = 'browser'): Header[] {
  const h: Header[] = [
    [RawHeaders.merchant, Buffer.from(ctx.merchantId)],
    [RawHeaders.receivedAt, Buffer.from(String(ctx.receivedAt))],
    [RawHeaders.currency, Buffer.from(ctx.defaultCurrency)],
  ];
  if (withIp && ctx.requestIp) h.push([RawHeaders.ip, Buffer.from(ctx.requestIp)]);
  if (withUserAgent && ctx.requestUserAgent) h.push([RawHeaders.userAgent, Buffer.from(ctx.requestUserAgent)]);
  if (ctx.cdnCountry) h.push([RawHeaders.country, Buffer.from(ctx.cdnCountry)]);
  if (ctx.batchSentAt !== undefined && ctx.batchSentAt !== null) h.push([RawHeaders.sentAt, Buffer.from(JSON.stringify(ctx.batchSentAt))]);
  if (ctx.batchContext !== undefined && ctx.batchContext !== null) h.push([RawHeaders.context, Buffer.from(JSON.stringify(ctx.batchContext))]);
  if (typeHint) h.push([RawHeaders.type, Buffer.from(typeHint)]);
  if (source === 'server') h.push([RawHeaders.source, Buffer.from('server')]);
  return h;
}

export interface RawRecord {
  value: Buffer | null;
  headers: readonly Header[];
}

export interface DecodedRawRecord {
  /** The message, parsed; undefined when the value is not JSON (never written by the collector). */
  message: unknown;
  ctx: IngestContext;
  typeHint: SegmentType | undefined;
  /** `server` when the record carries `shopstream.source: server`; otherwise `browser`. */
  source: RawSource;
}

/** Reads a raw record back into what `normalizeEvent` takes. */
export function readRawRecord(record: RawRecord, limits: { maxFutureMs?: number; maxPastMs?: number } = {}): DecodedRawRecord {
  let merchantId = '';
  let receivedAt = NaN;
  let currency = 'USD';
  const ctx: Partial<IngestContext> = { ...limits };
  let typeHint: SegmentType | undefined;
  let source: RawSource = 'browser';
  for (const [name, value] of record.headers) {
    const v = value.toString('utf8');
    switch (name) {
      case RawHeaders.merchant:
        merchantId = v;
        break;
      case RawHeaders.receivedAt:
        receivedAt = Number(v);
        break;
      case RawHeaders.currency:
        currency = v;
        break;
      case RawHeaders.ip:
        ctx.requestIp = v;
        break;
      case RawHeaders.userAgent:
        ctx.requestUserAgent = v;
        break;
      case RawHeaders.country:
        ctx.cdnCountry = v;
        break;
      case RawHeaders.sentAt:
        ctx.batchSentAt = parseJson(v);
        break;
      case RawHeaders.context:
        ctx.batchContext = parseJson(v);
        break;
      case RawHeaders.type:
        if (v === 'track' || v === 'page' || v === 'identify') typeHint = v;
        break;
      case RawHeaders.source:
        if (v === 'server') source = 'server';
        break;
    }
  }
  let message: unknown;
  try {
    message = record.value === null ? undefined : JSON.parse(record.value.toString('utf8'));
  } catch {
    message = undefined;
  }
  return { message, ctx: { ...ctx, merchantId, receivedAt, defaultCurrency: currency }, typeHint, source };
}

/** The canonical event of a raw record, or why it is refused. */
export function normalizeRawRecord(record: RawRecord, limits: { maxFutureMs?: number; maxPastMs?: number } = {}): NormalizeResult {
  const { message, ctx, typeHint } = readRawRecord(record, limits);
  return normalizeEvent(message, ctx, typeHint);
}

function parseJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}
