/**
 * The event contract: the canonical commerce event (version 1), its JSON Schema and TypeScript
 * types, and the mapping from Segment Spec messages to it. Pure functions, no I/O.
 * See docs/events.md.
 */
export {
  normalizeEvent,
  checkEnvelope,
  checkEventSize,
  campaignFromUrl,
  DEFAULT_MAX_FUTURE_MS,
  DEFAULT_MAX_PAST_MS,
  MAX_EVENT_BYTES,
  MAX_ID_LENGTH,
} from './normalize.ts';
export type { IngestContext, RejectReason, NormalizeResult, SegmentType, Envelope, EnvelopeResult } from './normalize.ts';
export { rawRecordHeaders, readRawRecord, normalizeRawRecord, RawHeaders } from './raw.ts';
export type { RawRecord } from './raw.ts';
export { encodeCanonicalEvent, parseCanonicalEvent } from './codec.ts';
export type { ParseResult } from './codec.ts';
export {
  CanonicalEventSchema,
  EventContextSchema,
  ProductSchema,
  CANONICAL_EVENT_VERSION,
} from './schema.ts';
export type {
  CanonicalEvent,
  EventContext,
  EventOf,
  Product,
  ProductEventProps,
  OrderCompletedProps,
  CheckoutStartedProps,
  PageViewedProps,
} from './schema.ts';
export { CANONICAL_EVENT_NAMES, TRACK_EVENT_NAMES, canonicalEventName } from './event-names.ts';
export type { CanonicalEventName, TrackEventName } from './event-names.ts';
export { toMinorUnits, minorUnits, orderAmount } from './money.ts';
export { currencyExponent, normalizeCurrency, CURRENCY_CODES } from './currencies.ts';
export { parseTimestamp, parseIsoTimestamp } from './time.ts';
export { canonicalEventJsonSchema, canonicalEventJsonSchemaText, CANONICAL_EVENT_SCHEMA_FILE } from './json-schema.ts';
export { rejection, REJECTED_PAYLOAD_BYTES } from './rejected.ts';
export type { Rejection } from './rejected.ts';
export { hashUserAgent } from './ua-hash.ts';
