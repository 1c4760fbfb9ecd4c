/**
 * @shopstream/meta-sim: a local HTTP server that behaves like Meta's Graph API Conversions API edge
 * (`POST /{version}/{pixel_id}/events`). It validates payloads and fails the way Meta does, fails on
 * command (fault injection), and records what it received. See docs/meta-sim.md.
 */
export {
  startMetaSim,
  parseFault,
  type MetaSim,
  type MetaSimOptions,
  type Fault,
  type FaultKind,
  type CountedFault,
  type CountedFaultKind,
  type InvalidEventFault,
  type ActiveFault,
  type RecordedEvent,
  type RequestRecord,
  type Outcome,
  type Duplicate,
  type SimStats,
} from './server.ts';
export {
  validateEvents,
  validateEvent,
  eventIndexOf,
  isSha256Hex,
  isCurrencyCode,
  ACTION_SOURCES,
  HASHED_USER_FIELDS,
  USER_DATA_FIELDS,
  SERVER_EVENT_KEYS,
  MAX_EVENTS_PER_REQUEST,
  MAX_EVENT_AGE_SEC,
  DEFAULT_FUTURE_TOLERANCE_SEC,
  type ValidationOptions,
} from './validate.ts';
export {
  SUBCODE,
  errorBody,
  invalidParameter,
  parameterError,
  injectedInvalidEvent,
  missingToken,
  invalidToken,
  unknownObject,
  unknownPath,
  unreadableBody,
  serverError,
  throttled,
  rateLimit429,
  type GraphError,
  type GraphErrorBody,
  type GraphErrorFields,
  type ThrottleCode,
} from './errors.ts';
export { readParams, parseMultipart, bearerToken, type CapiParams, type RawBody, type TokenSource } from './params.ts';
