/**
 * Graph API error builders: one function per way Meta fails, each returning the HTTP status, the
 * error object (without its trace id) and the headers Meta sends with it. The server stamps the
 * `fbtrace_id` when it answers, so these stay pure.
 *
 * Every message, code and subcode here is taken from an observed Meta answer or from Meta's own
 * documentation, except where a comment says "sim's choice" (docs/meta-sim.md lists the sources
 * and what could not be confirmed).
 */

/** The `error` object of a Graph API error answer, as Meta sends it (less `fbtrace_id`). */
export interface GraphErrorFields {
  message: string;
  type: string;
  code: number;
  error_subcode?: number;
  is_transient: boolean;
  error_user_title?: string;
  error_user_msg?: string;
}

/** A Graph error ready to send: status, body fields, extra headers, and (for payload errors) the event index. */
export interface GraphError {
  status: number;
  error: GraphErrorFields;
  headers?: Record<string, string>;
  /** Index in `data` of the event that caused the rejection, when one event did. Not sent on the wire. */
  eventIndex?: number;
}

/** The JSON body Meta answers with on failure. */
export interface GraphErrorBody {
  error: GraphErrorFields & { fbtrace_id: string };
}

/** Serialises a Graph error with its trace id, keeping Meta's field order. */
export function errorBody(err: GraphError, fbtraceId: string): GraphErrorBody {
  return { error: { ...err.error, fbtrace_id: fbtraceId } };
}

/** CAPI payload subcodes (Graph code 100). Each was seen in a real Meta answer; see docs/meta-sim.md. */
export const SUBCODE = {
  /** "Event Timestamp Too Old": event_time more than 7 days in the past. */
  EVENT_TOO_OLD: 2804003,
  /** "Invalid Contents Parameter": custom_data.contents is not a list of {id, quantity, item_price}. */
  INVALID_CONTENTS: 2804008,
  /** "Missing Value for Purchase Event". */
  PURCHASE_MISSING_VALUE: 2804009,
  /** "Missing Currency for Purchase Event". */
  PURCHASE_MISSING_CURRENCY: 2804010,
  /** "User Parameter Not Hashed": a customer information parameter that must be SHA-256 hashed is not. */
  NOT_HASHED: 2804016,
  /** "Server Side Api Parameter Error": a parameter is missing, of the wrong type, or unexpected. */
  PARAMETER: 2804019,
  /** Insufficient customer information parameters for matching. */
  INSUFFICIENT_USER_DATA: 2804050,
  /** Graph: object does not exist / no permission / unsupported operation. */
  UNKNOWN_OBJECT: 33,
} as const;

const DOCS = 'https://developers.facebook.com/docs/graph-api';

/** Code 100 "Invalid parameter" with a CAPI subcode, as Meta answers a bad payload (HTTP 400). */
export function invalidParameter(subcode: number, title: string, userMsg: string, eventIndex?: number): GraphError {
  const err: GraphError = {
    status: 400,
    error: {
      message: 'Invalid parameter',
      type: 'OAuthException',
      code: 100,
      error_subcode: subcode,
      is_transient: false,
      error_user_title: title,
      error_user_msg: userMsg,
    },
  };
  if (eventIndex !== undefined) err.eventIndex = eventIndex;
  return err;
}

/** "Server Side Api Parameter Error" (100 / 2804019): the generic CAPI schema error. */
export function parameterError(userMsg: string, eventIndex?: number): GraphError {
  return invalidParameter(SUBCODE.PARAMETER, 'Server Side Api Parameter Error', userMsg, eventIndex);
}

/** The `invalid_event` fault: an event the test marked as bad, rejected like any invalid event (100 / 2804019). */
export function injectedInvalidEvent(eventIndex: number, eventId: string): GraphError {
  return invalidParameter(
    SUBCODE.PARAMETER,
    'Server Side Api Parameter Error',
    `The event $['data'][${eventIndex}] (event_id ${JSON.stringify(eventId)}) is invalid. [meta-sim: injected invalid_event fault]`,
    eventIndex,
  );
}

/** No access token anywhere in the request: Graph's code 104, HTTP 400. */
export function missingToken(): GraphError {
  return {
    status: 400,
    error: {
      message: 'An access token is required to request this resource.',
      type: 'OAuthException',
      code: 104,
      is_transient: false,
    },
    headers: { 'www-authenticate': 'OAuth "Facebook Platform" "invalid_request" "An access token is required to request this resource."' },
  };
}

/**
 * A token Meta cannot parse or does not know: code 190. Meta was observed answering 401 when the token
 * came in an `Authorization: Bearer` header and 400 when it came as the `access_token` parameter.
 */
export function invalidToken(viaHeader: boolean): GraphError {
  const message = 'Invalid OAuth access token - Cannot parse access token';
  return {
    status: viaHeader ? 401 : 400,
    error: { message, type: 'OAuthException', code: 190, is_transient: false },
    headers: { 'www-authenticate': `OAuth "Facebook Platform" "invalid_token" "${message}"` },
  };
}

/** Unknown object, or a valid token without access to it: 100 / 33, GraphMethodException, HTTP 400. */
export function unknownObject(objectId: string, method: string): GraphError {
  return {
    status: 400,
    error: {
      message:
        `Unsupported ${method.toLowerCase()} request. Object with ID '${objectId}' does not exist, cannot be loaded ` +
        `due to missing permissions, or does not support this operation. Please read the Graph API documentation at ${DOCS}`,
      type: 'GraphMethodException',
      code: 100,
      error_subcode: SUBCODE.UNKNOWN_OBJECT,
      is_transient: false,
    },
  };
}

/** A path Graph cannot route (e.g. a malformed or refused API version): code 2500, HTTP 400. Sim's choice of code. */
export function unknownPath(components: string): GraphError {
  return {
    status: 400,
    error: { message: `Unknown path components: ${components}`, type: 'OAuthException', code: 2500, is_transient: false },
  };
}

/** A body that cannot be read at all (broken JSON, unreadable form). Sim's choice: code 100, no subcode. */
export function unreadableBody(detail: string): GraphError {
  return {
    status: 400,
    error: { message: `(#100) ${detail}`, type: 'OAuthException', code: 100, is_transient: false },
  };
}

/** Meta's transient server errors: code 2 "unexpected error" (default) or code 1 "unknown error", HTTP 500. */
export function serverError(code: 1 | 2 = 2): GraphError {
  return {
    status: 500,
    error: {
      message: code === 2 ? 'An unexpected error has occurred. Please retry your request later.' : 'An unknown error has occurred.',
      type: 'OAuthException',
      code,
      is_transient: true,
    },
  };
}

/** Throttling codes Meta uses on Graph / Marketing API calls. */
export type ThrottleCode = 4 | 17 | 613 | 80004;

const THROTTLE_MESSAGES: Record<ThrottleCode, { message: string; subcode?: number }> = {
  4: { message: '(#4) Application request limit reached' },
  17: { message: '(#17) User request limit reached', subcode: 2446079 },
  613: { message: '(#613) Calls to this api have exceeded the rate limit.' },
  80004: {
    message:
      '(#80004) There have been too many calls to this ad-account. Wait a bit and try again. For more info, please refer to ' +
      'https://developers.facebook.com/docs/graph-api/overview/rate-limiting#ads-management.',
    subcode: 2446079,
  },
};

/** A throttling error as Graph sends it: HTTP 400 (Graph does not use 429), code 4/17/613/80004. */
export function throttled(code: ThrottleCode): GraphError {
  const t = THROTTLE_MESSAGES[code];
  const error: GraphErrorFields = { message: t.message, type: 'OAuthException', code, is_transient: true };
  if (t.subcode !== undefined) error.error_subcode = t.subcode;
  return {
    status: 400,
    error,
    headers: { 'www-authenticate': `OAuth "Facebook Platform" "invalid_request" "${t.message}"` },
  };
}

/**
 * HTTP 429 with a Graph error body. Graph itself answers throttling with 400 (see `throttled`); a 429
 * comes from a proxy or gateway in front of it. Body: code 4, so a client reading codes sees a throttle.
 */
export function rateLimit429(retryAfterSec?: number): GraphError {
  const err = throttled(4);
  err.status = 429;
  if (retryAfterSec !== undefined) err.headers = { ...err.headers, 'retry-after': String(retryAfterSec) };
  return err;
}
