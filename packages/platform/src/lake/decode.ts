/**
 * How the lake sink reads a record (docs/lake.md): the decoders of `events.raw` (`readRawRecord` +
 * `normalizeEvent`, as the pipeline) and of JSON topics, and the hive partition of a record. Kept
 * apart from sink.ts so that the decoding worker threads (workers.ts) load only this.
 */
import type { ConsumedRecord } from '@shopstream/streams';
import { normalizeEvent } from '../contract/normalize.ts';
import { RawHeaders, readRawRecord } from '../contract/raw.ts';

/** What the sink needs from a record besides its bytes. */
export interface DecodedLakeRecord {
  merchant: string | null;
  /** When the platform received the record, epoch ms. */
  receivedAt: number;
  /** Event time, epoch ms, or null when unknown (the record then goes under its received time). */
  eventTime: number | null;
  messageId: string | null;
  event: string | null;
  type: string | null;
  visitorId: string | null;
  rejectCode: string | null;
}

export type LakeDecoder = (record: ConsumedRecord) => DecodedLakeRecord;

export interface RawLimits {
  maxFutureMs?: number | undefined;
  maxPastMs?: number | undefined;
}

/** A built-in decoder, described as data so that a worker thread can build the same one. */
export type DecoderSpec = { kind: 'raw'; limits: RawLimits } | { kind: 'json' };

const specs = new WeakMap<LakeDecoder, DecoderSpec>();

/** The spec of a built-in decoder (`rawDecoder`, `rawDecoderWith(…)`, `jsonDecoder`); undefined for any other function. */
export function decoderSpec(decoder: LakeDecoder): DecoderSpec | undefined {
  return specs.get(decoder);
}

/** The decoder a spec describes. */
export function decoderOf(spec: DecoderSpec): LakeDecoder {
  return spec.kind === 'json' ? jsonDecoder : rawDecoderWith(spec.limits);
}

/**
 * Reads an events.raw record: its canonical event gives the event time; one that does not
 * normalize keeps only what the headers say. `limits` are the platform's (collector.maxPastMs …),
 * so that the lake and the pipeline agree on what normalizes.
 */
export function rawDecoderWith(limits: RawLimits): LakeDecoder {
  const l: RawLimits = {};
  if (limits.maxFutureMs !== undefined) l.maxFutureMs = limits.maxFutureMs;
  if (limits.maxPastMs !== undefined) l.maxPastMs = limits.maxPastMs;
  const decoder: LakeDecoder = (record) => decodeRaw(record, l);
  specs.set(decoder, { kind: 'raw', limits: l });
  return decoder;
}

export const rawDecoder: LakeDecoder = rawDecoderWith({});

function decodeRaw(record: ConsumedRecord, limits: RawLimits): DecodedLakeRecord {
  const decoded = readRawRecord(record, limits as { maxFutureMs?: number; maxPastMs?: number });
  const receivedAt = Number.isFinite(decoded.ctx.receivedAt) ? decoded.ctx.receivedAt : record.timestamp;
  const merchant = decoded.ctx.merchantId === '' ? null : decoded.ctx.merchantId;
  let result;
  try {
    const ctx = receivedAt === decoded.ctx.receivedAt ? decoded.ctx : { ...decoded.ctx, receivedAt };
    result = normalizeEvent(decoded.message, ctx, decoded.typeHint);
  } catch {
    result = { ok: false as const, reason: { code: 'SHOP_ERR_INTERNAL' } };
  }
  if (!result.ok) {
    return { merchant, receivedAt, eventTime: null, messageId: null, event: null, type: null, visitorId: null, rejectCode: String(result.reason.code) };
  }
  const e = result.event;
  return { merchant: e.merchantId, receivedAt, eventTime: e.timestamp, messageId: e.messageId, event: e.event, type: e.type, visitorId: e.visitorId, rejectCode: null };
}

/** Reads a JSON record holding a canonical event (`{ event: {...} }`, as events.filtered) or being one. */
export const jsonDecoder: LakeDecoder = (record) => {
  let merchant: string | null = null;
  let receivedAt = record.timestamp;
  for (const [name, value] of record.headers) {
    if (name === RawHeaders.merchant) merchant = value.toString('utf8');
    else if (name === RawHeaders.receivedAt && Number.isFinite(Number(value.toString('utf8')))) receivedAt = Number(value.toString('utf8'));
  }
  let e: Record<string, unknown> | undefined;
  try {
    const v = record.value === null ? undefined : (JSON.parse(record.value.toString('utf8')) as unknown);
    if (v !== null && typeof v === 'object') {
      const inner = (v as Record<string, unknown>)['event'];
      e = inner !== null && typeof inner === 'object' ? (inner as Record<string, unknown>) : (v as Record<string, unknown>);
    }
  } catch {
    e = undefined;
  }
  const s = (k: string) => (e !== undefined && typeof e[k] === 'string' ? (e[k] as string) : null);
  const n = (k: string) => (e !== undefined && typeof e[k] === 'number' && Number.isFinite(e[k]) ? (e[k] as number) : null);
  return {
    merchant: s('merchantId') ?? merchant,
    receivedAt: n('receivedAt') ?? receivedAt,
    eventTime: n('timestamp'),
    messageId: s('messageId'),
    event: s('event'),
    type: s('type'),
    visitorId: s('visitorId'),
    rejectCode: e === undefined ? 'SHOP_ERR_NOT_JSON' : null,
  };
};
specs.set(jsonDecoder, { kind: 'json' });

const MAX_DATE_MS = 8.64e15;
const UNKNOWN_MERCHANT = '_unknown';

export function validTime(t: number | null): t is number {
  return t !== null && Number.isFinite(t) && Math.abs(t) <= MAX_DATE_MS;
}

/** `merchant=<id>/dt=YYYY-MM-DD/hour=HH` of a partition time (UTC). */
export function hivePartition(merchant: string | null, time: number): string {
  const iso = new Date(time).toISOString();
  return `merchant=${encodeURIComponent(merchant === null || merchant === '' ? UNKNOWN_MERCHANT : merchant)}/dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
}

/** The record headers as a JSON object, name → UTF-8 value (for a repeated name, the last one wins). */
export function headersJson(record: Pick<ConsumedRecord, 'headers'>): string {
  const o: Record<string, string> = {};
  for (const [name, value] of record.headers) o[name] = value.toString('utf8');
  return JSON.stringify(o);
}
