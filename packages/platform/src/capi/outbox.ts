/**
 * What the capi topology and the forwarder share: the record format of `capi.outbox`, `capi.sent`
 * and `capi.dlq` (docs/meta-capi.md, "Topics").
 *
 * capi.outbox: key = identity, value = one Meta server event as JSON (exactly the bytes sent inside
 * `data`), headers = merchant, event id and event time, so the forwarder never parses an event.
 */
import { PlatformErrors } from '../errors.ts';

/** Meta refuses events whose event_time is more than 7 days old. */
export const META_MAX_EVENT_AGE_MS = 7 * 86_400_000;

export const CAPI_HEADERS = {
  merchant: 'shopstream.merchant',
  eventId: 'shopstream.event_id',
  /** Event time, epoch ms, decimal. */
  eventTime: 'shopstream.event_time',
} as const;

/** Why an event is on capi.dlq (codes of the platform's catalogue, errors.ts). */
export const CapiDlqCodes = {
  /** Older than Meta's 7 days when prepared or while retried. */
  TOO_OLD: PlatformErrors.CAPI_TOO_OLD.code,
  /** Meta refused the event itself (an invalid parameter); `meta` holds Meta's error. */
  INVALID_EVENT: PlatformErrors.CAPI_INVALID_EVENT.code,
  /** Retried for capi.maxRetryMs without an acknowledgement. */
  RETRIES_EXHAUSTED: PlatformErrors.CAPI_RETRIES_EXHAUSTED.code,
  /** The pixel kept failing and more than capi.maxPendingPerPixel events were waiting. */
  BACKLOG_FULL: PlatformErrors.CAPI_BACKLOG_FULL.code,
  /** The merchant's Meta settings were removed before the event was sent. */
  DISABLED: PlatformErrors.CAPI_DISABLED.code,
} as const;
export type CapiDlqCode = (typeof CapiDlqCodes)[keyof typeof CapiDlqCodes];

/** Meta's Graph error object, as received (never holds the access token). */
export interface GraphError {
  message?: string;
  type?: string;
  code?: number;
  error_subcode?: number;
  is_transient?: boolean;
  error_user_title?: string;
  error_user_msg?: string;
  fbtrace_id?: string;
}

/** The value of a capi.dlq record. */
export interface CapiDlqRecord {
  v: 1;
  reason: { code: CapiDlqCode; message: string; meta?: GraphError; httpStatus?: number };
  merchantId: string;
  pixelId: string | null;
  eventTimeMs: number;
  /** Requests that carried the event before it was given up. */
  attempts: number;
  /** When it was dead-lettered, epoch ms. */
  at: number;
  /** The server event, as it was (or would have been) sent. */
  event: unknown;
}

export function capiDlqValue(o: {
  code: CapiDlqCode;
  message: string;
  merchantId: string;
  pixelId?: string | null;
  eventTimeMs: number;
  attempts: number;
  at: number;
  eventJson: string;
  meta?: GraphError;
  httpStatus?: number;
}): CapiDlqRecord {
  return {
    v: 1,
    reason: { code: o.code, message: o.message, ...(o.meta !== undefined && { meta: o.meta }), ...(o.httpStatus !== undefined && { httpStatus: o.httpStatus }) },
    merchantId: o.merchantId,
    pixelId: o.pixelId ?? null,
    eventTimeMs: o.eventTimeMs,
    attempts: o.attempts,
    at: o.at,
    event: JSON.parse(o.eventJson) as unknown,
  };
}

/** The value of a capi.sent record: event ids (merchant/event_id) that Meta acknowledged, and when. */
export interface CapiSentRecord {
  at: number;
  ids: string[];
}
