/**
 * One catalogue of typed errors. Code reads `code` and the flags, never the message text.
 */
export interface ErrorSpec {
  readonly code: string;
  /** Retrying the same operation later may succeed. */
  readonly retriable: boolean;
  /** The component cannot go on; it must be restarted. */
  readonly fatal: boolean;
}

export const ErrorCodes = {
  /** The log cannot take writes now (disk full, broker unavailable). */
  LOG_UNAVAILABLE: { code: 'SHOP_ERR_LOG_UNAVAILABLE', retriable: true, fatal: false },
  /** A topic is unknown to the log. */
  UNKNOWN_TOPIC: { code: 'SHOP_ERR_UNKNOWN_TOPIC', retriable: false, fatal: false },
  /** A topic already exists with a different partition count or config. */
  TOPIC_CONFLICT: { code: 'SHOP_ERR_TOPIC_CONFLICT', retriable: false, fatal: true },
  /** An argument is invalid (bad partition number, bad config value). */
  INVALID_ARGUMENT: { code: 'SHOP_ERR_INVALID_ARGUMENT', retriable: false, fatal: false },
  /** This member's generation or producer epoch is stale: another member owns the work now. Abort and rejoin. */
  FENCED: { code: 'SHOP_ERR_FENCED', retriable: true, fatal: false },
  /** A rebalance happened; the caller must re-read its assignment. */
  REBALANCE_IN_PROGRESS: { code: 'SHOP_ERR_REBALANCE_IN_PROGRESS', retriable: true, fatal: false },
  /** A transaction failed and was aborted; nothing of it is visible. */
  TRANSACTION_ABORTED: { code: 'SHOP_ERR_TRANSACTION_ABORTED', retriable: true, fatal: false },
  /** The log directory is locked by another process. */
  LOG_LOCKED: { code: 'SHOP_ERR_LOG_LOCKED', retriable: false, fatal: true },
  /** Data on disk failed its checksum beyond the committed point. */
  LOG_CORRUPT: { code: 'SHOP_ERR_LOG_CORRUPT', retriable: false, fatal: true },
  /** The client is closed. */
  CLOSED: { code: 'SHOP_ERR_CLOSED', retriable: false, fatal: true },
  /** A record could not be deserialised. */
  DESERIALIZATION: { code: 'SHOP_ERR_DESERIALIZATION', retriable: false, fatal: false },
  /** A record could not be serialised. */
  SERIALIZATION: { code: 'SHOP_ERR_SERIALIZATION', retriable: false, fatal: false },
  /** A topology is invalid (unknown store, name clash, ...). */
  TOPOLOGY: { code: 'SHOP_ERR_TOPOLOGY', retriable: false, fatal: true },
  /** A state store failed or is closed. */
  STATE_STORE: { code: 'SHOP_ERR_STATE_STORE', retriable: false, fatal: true },
  /** A user processor threw. */
  PROCESSING: { code: 'SHOP_ERR_PROCESSING', retriable: false, fatal: true },
  /**
   * A transaction of this application hangs on a partition (the broker lost its marker) and the
   * application could not end it itself: run the `kafka-transactions.sh` command in the message.
   */
  HANGING_TRANSACTION: { code: 'SHOP_ERR_HANGING_TRANSACTION', retriable: false, fatal: true },
  /** An operation timed out. */
  TIMEOUT: { code: 'SHOP_ERR_TIMEOUT', retriable: true, fatal: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]['code'];

export class StreamsError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly fatal: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(spec: ErrorSpec & { code: ErrorCode }, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StreamsError';
    this.code = spec.code;
    this.retriable = spec.retriable;
    this.fatal = spec.fatal;
    this.details = options?.details ?? {};
  }
}

export function isStreamsError(err: unknown, spec?: ErrorSpec): err is StreamsError {
  return err instanceof StreamsError && (spec === undefined || err.code === spec.code);
}
