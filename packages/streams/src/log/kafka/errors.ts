/**
 * Maps @platformatic/kafka errors (GenericError / MultipleErrors trees with protocol `apiId`s) to
 * the StreamsError catalogue. Code reads the codes and flags; the platformatic error stays as `cause`.
 */
import { findErrorBy as findErrorByRaw } from '@platformatic/kafka';
import { ErrorCodes, StreamsError, type ErrorSpec, type ErrorCode } from '../../errors.ts';

type Spec = ErrorSpec & { code: ErrorCode };

function findErrorBy(err: unknown, property: string, value: unknown): unknown {
  return err instanceof Error ? findErrorByRaw(err, property, value) : null;
}

/** Protocol errors by the Kafka name that platformatic stores in `apiId`. */
const FENCING = ['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'];
const PRODUCER_FENCING = ['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH'];
const UNAVAILABLE = [
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_OR_FOLLOWER',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'NOT_COORDINATOR',
  'NETWORK_EXCEPTION',
  'KAFKA_STORAGE_ERROR',
  'BROKER_NOT_AVAILABLE',
  'NOT_CONTROLLER',
  'THROTTLING_QUOTA_EXCEEDED',
];
const INVALID = [
  'INVALID_PARTITIONS',
  'INVALID_REPLICATION_FACTOR',
  'INVALID_CONFIG',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_REQUEST',
  'POLICY_VIOLATION',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TIMESTAMP',
  'INVALID_GROUP_ID',
  'INVALID_TRANSACTION_TIMEOUT',
];

export function hasApiError(err: unknown, ...ids: string[]): boolean {
  for (const id of ids) if (findErrorBy(err, 'apiId', id)) return true;
  return false;
}

export function isProducerFenced(err: unknown): boolean {
  return hasApiError(err, ...PRODUCER_FENCING);
}

export function isFencing(err: unknown): boolean {
  return hasApiError(err, ...FENCING);
}

function isNetwork(err: unknown): boolean {
  if (findErrorBy(err, 'code', 'PLT_KFK_NETWORK') || findErrorBy(err, 'code', 'PLT_KFK_TIMEOUT')) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|EAI_AGAIN)$/.test(code);
}

function isClosed(err: unknown): boolean {
  return Boolean(findErrorBy(err, 'closed', true));
}

function describe(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    const inner = err.errors.map((e: unknown) => describe(e)).join('; ');
    return `${err.message} (${inner})`;
  }
  if (err instanceof Error) {
    const server = (err as { serverErrorMessage?: unknown }).serverErrorMessage;
    return typeof server === 'string' && server ? `${err.message}: ${server}` : err.message;
  }
  return String(err);
}

/**
 * Maps an error from the client. `fallback` is used when nothing more specific matches.
 * `context` prefixes the message (e.g. "produce to orders").
 */
export function toStreamsError(err: unknown, context: string, fallback: Spec = ErrorCodes.LOG_UNAVAILABLE): StreamsError {
  if (err instanceof StreamsError) return err;
  let spec: Spec = fallback;
  if (isClosed(err)) spec = ErrorCodes.CLOSED;
  else if (isFencing(err)) spec = ErrorCodes.FENCED;
  else if (hasApiError(err, 'REBALANCE_IN_PROGRESS')) spec = ErrorCodes.REBALANCE_IN_PROGRESS;
  else if (hasApiError(err, 'UNKNOWN_TOPIC_OR_PARTITION', 'UNKNOWN_TOPIC_ID') || /Unknown topic/i.test(describe(err))) spec = ErrorCodes.UNKNOWN_TOPIC;
  else if (hasApiError(err, 'TOPIC_ALREADY_EXISTS')) spec = ErrorCodes.TOPIC_CONFLICT;
  else if (hasApiError(err, ...INVALID)) spec = ErrorCodes.INVALID_ARGUMENT;
  else if (hasApiError(err, 'REQUEST_TIMED_OUT')) spec = ErrorCodes.TIMEOUT;
  else if (isNetwork(err) || hasApiError(err, ...UNAVAILABLE)) spec = ErrorCodes.LOG_UNAVAILABLE;
  return new StreamsError(spec, `${context}: ${describe(err)}`, { cause: err });
}

export function closedError(what: string): StreamsError {
  return new StreamsError(ErrorCodes.CLOSED, `${what} is closed`);
}
