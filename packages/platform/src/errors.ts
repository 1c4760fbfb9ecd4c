/**
 * The platform's error catalogue. Every error a client or an operator sees carries one of these
 * codes; code reads `code` and the flags, never the message text. The streams library has its own
 * catalogue (`@shopstream/streams` ErrorCodes) for log and runtime errors.
 *
 * `status` is the HTTP status an API answers with when the error ends a request.
 */
export interface PlatformErrorSpec {
  readonly code: string;
  readonly status: number;
  /** Retrying the same request later may succeed. */
  readonly retriable: boolean;
}

export const PlatformErrors = {
  // Request-level (the whole HTTP request is refused; nothing of it is written).
  INVALID_JSON: { code: 'SHOP_ERR_INVALID_JSON', status: 400, retriable: false },
  INVALID_UTF8: { code: 'SHOP_ERR_INVALID_UTF8', status: 400, retriable: false },
  REQUEST_TOO_LARGE: { code: 'SHOP_ERR_REQUEST_TOO_LARGE', status: 400, retriable: false },
  BATCH_TOO_LARGE: { code: 'SHOP_ERR_BATCH_TOO_LARGE', status: 400, retriable: false },
  INVALID_REQUEST: { code: 'SHOP_ERR_INVALID_REQUEST', status: 400, retriable: false },
  UNSUPPORTED_ENCODING: { code: 'SHOP_ERR_UNSUPPORTED_ENCODING', status: 415, retriable: false },
  UNAUTHORIZED: { code: 'SHOP_ERR_UNAUTHORIZED', status: 401, retriable: false },
  FORBIDDEN: { code: 'SHOP_ERR_FORBIDDEN', status: 403, retriable: false },
  NOT_FOUND: { code: 'SHOP_ERR_NOT_FOUND', status: 404, retriable: false },
  RATE_LIMITED: { code: 'SHOP_ERR_RATE_LIMITED', status: 429, retriable: true },
  UNAVAILABLE: { code: 'SHOP_ERR_UNAVAILABLE', status: 503, retriable: true },
  INTERNAL: { code: 'SHOP_ERR_INTERNAL', status: 500, retriable: true },

  // Event-level (one event of an accepted request goes to events.rejected with this reason).
  EVENT_SCHEMA: { code: 'SHOP_ERR_EVENT_SCHEMA', status: 400, retriable: false },
  EVENT_TOO_LARGE: { code: 'SHOP_ERR_EVENT_TOO_LARGE', status: 400, retriable: false },
  MISSING_MESSAGE_ID: { code: 'SHOP_ERR_MISSING_MESSAGE_ID', status: 400, retriable: false },
  MISSING_IDENTITY: { code: 'SHOP_ERR_MISSING_IDENTITY', status: 400, retriable: false },
  UNSUPPORTED_TYPE: { code: 'SHOP_ERR_UNSUPPORTED_TYPE', status: 400, retriable: false },
  UNKNOWN_EVENT: { code: 'SHOP_ERR_UNKNOWN_EVENT', status: 400, retriable: false },
  TIMESTAMP_FUTURE: { code: 'SHOP_ERR_TIMESTAMP_FUTURE', status: 400, retriable: false },
  TIMESTAMP_PAST: { code: 'SHOP_ERR_TIMESTAMP_PAST', status: 400, retriable: false },
  INVALID_TIMESTAMP: { code: 'SHOP_ERR_INVALID_TIMESTAMP', status: 400, retriable: false },
  INVALID_MONEY: { code: 'SHOP_ERR_INVALID_MONEY', status: 400, retriable: false },
  INVALID_CURRENCY: { code: 'SHOP_ERR_INVALID_CURRENCY', status: 400, retriable: false },

  // Beacon (bot validation).
  BEACON_TOKEN_INVALID: { code: 'SHOP_ERR_BEACON_TOKEN_INVALID', status: 403, retriable: false },
  BEACON_TOKEN_EXPIRED: { code: 'SHOP_ERR_BEACON_TOKEN_EXPIRED', status: 403, retriable: false },
  BEACON_TOKEN_REPLAYED: { code: 'SHOP_ERR_BEACON_TOKEN_REPLAYED', status: 409, retriable: false },
  BEACON_TOKEN_FOREIGN: { code: 'SHOP_ERR_BEACON_TOKEN_FOREIGN', status: 403, retriable: false },
  BEACON_UA_MISMATCH: { code: 'SHOP_ERR_BEACON_UA_MISMATCH', status: 403, retriable: false },

  // Configuration and merchants.
  CONFIG: { code: 'SHOP_ERR_CONFIG', status: 400, retriable: false },
  MERCHANT_EXISTS: { code: 'SHOP_ERR_MERCHANT_EXISTS', status: 409, retriable: false },
  MERCHANT_UNKNOWN: { code: 'SHOP_ERR_MERCHANT_UNKNOWN', status: 404, retriable: false },

  // Cubes and the analytics API.
  INVALID_PARAMETER: { code: 'SHOP_ERR_INVALID_PARAMETER', status: 400, retriable: false },
  CUBES_FENCED: { code: 'SHOP_ERR_CUBES_FENCED', status: 409, retriable: true },
  CUBES_STORE: { code: 'SHOP_ERR_CUBES_STORE', status: 503, retriable: true },

  // Meta Conversions API (the reason of a capi.dlq record; docs/meta-capi.md).
  CAPI_TOO_OLD: { code: 'SHOP_ERR_CAPI_TOO_OLD', status: 400, retriable: false },
  CAPI_INVALID_EVENT: { code: 'SHOP_ERR_CAPI_INVALID_EVENT', status: 400, retriable: false },
  CAPI_RETRIES_EXHAUSTED: { code: 'SHOP_ERR_CAPI_RETRIES_EXHAUSTED', status: 503, retriable: true },
  CAPI_BACKLOG_FULL: { code: 'SHOP_ERR_CAPI_BACKLOG_FULL', status: 503, retriable: true },
  CAPI_DISABLED: { code: 'SHOP_ERR_CAPI_DISABLED', status: 400, retriable: false },
} as const satisfies Record<string, PlatformErrorSpec>;

export type PlatformErrorCode = (typeof PlatformErrors)[keyof typeof PlatformErrors]['code'];
export type PlatformErrorSpecOf = (typeof PlatformErrors)[keyof typeof PlatformErrors];

export class PlatformError extends Error {
  readonly code: PlatformErrorCode;
  readonly status: number;
  readonly retriable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(spec: PlatformErrorSpecOf, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PlatformError';
    this.code = spec.code;
    this.status = spec.status;
    this.retriable = spec.retriable;
    this.details = options?.details ?? {};
  }
}

export function isPlatformError(err: unknown, spec?: PlatformErrorSpec): err is PlatformError {
  return err instanceof PlatformError && (spec === undefined || err.code === spec.code);
}
