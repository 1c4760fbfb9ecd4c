/**
 * Pure validation of a Conversions API `data` array, the way Meta judges it: the first invalid event
 * rejects the whole request (Meta processes no event of a batch that holds an invalid one), with a
 * code-100 Graph error whose `error_user_msg` names the event as `$['data'][N]`.
 *
 * No I/O, no clock, no randomness: the caller passes `nowSec`.
 */
import { isIP } from 'node:net';
import { invalidParameter, parameterError, SUBCODE, type GraphError } from './errors.ts';

export interface ValidationOptions {
  /** The server's clock, Unix seconds. */
  nowSec: number;
  /** Most events one request may carry. Meta: 1,000. */
  maxEvents?: number;
  /** Oldest accepted event_time, in seconds before now. Meta: 7 days. */
  maxAgeSec?: number;
  /** How far in the future event_time may be, in seconds (clock skew). Sim's choice: 10 minutes. */
  futureToleranceSec?: number;
  /** Require SHA-256 for external_id too (Meta only recommends it). Default true. */
  strictHashing?: boolean;
  /** Require event_source_url and user_data.client_user_agent on website events, as Meta documents. Default true. */
  requireWebsiteParams?: boolean;
  /** Reject keys of a server event that Meta does not define ("Unexpected key"). Default true. */
  rejectUnknownKeys?: boolean;
}

export const MAX_EVENTS_PER_REQUEST = 1000;
export const MAX_EVENT_AGE_SEC = 7 * 24 * 3600;
export const DEFAULT_FUTURE_TOLERANCE_SEC = 600;

/** Meta's `action_source` values. */
export const ACTION_SOURCES: ReadonlySet<string> = new Set([
  'website',
  'email',
  'app',
  'phone_call',
  'chat',
  'physical_store',
  'system_generated',
  'business_messaging',
  'other',
]);

/** Customer information parameters that Meta requires (or, for external_id, recommends) hashed with SHA-256. */
export const HASHED_USER_FIELDS = ['em', 'ph', 'fn', 'ln', 'ge', 'db', 'ct', 'st', 'zp', 'country', 'external_id'] as const;

/** Every customer information parameter Meta defines; at least one must be present. */
export const USER_DATA_FIELDS: ReadonlySet<string> = new Set([
  ...HASHED_USER_FIELDS,
  'client_ip_address',
  'client_user_agent',
  'fbc',
  'fbp',
  'subscription_id',
  'fb_login_id',
  'lead_id',
  'anon_id',
  'madid',
  'page_id',
  'page_scoped_user_id',
  'ctwa_clid',
  'ig_account_id',
  'ig_sid',
]);

/** Keys Meta defines on a server event; anything else is "Unexpected key". */
export const SERVER_EVENT_KEYS: ReadonlySet<string> = new Set([
  'event_name',
  'event_time',
  'user_data',
  'custom_data',
  'event_source_url',
  'opt_out',
  'event_id',
  'action_source',
  'data_processing_options',
  'data_processing_options_country',
  'data_processing_options_state',
  'referrer_url',
  'customer_segmentation',
  'app_data',
  'original_event_data',
  'attribution_data',
  'messaging_channel',
]);

const SHA256_HEX = /^[0-9a-f]{64}$/;
const FBC = /^fb\.[0-9]\.[0-9]{1,16}\.\S+$/;
const FBP = /^fb\.[0-9]\.[0-9]{1,16}\.[0-9]+(\.\S+)?$/;

/** True for a lowercase hex SHA-256 digest. */
export function isSha256Hex(v: unknown): boolean {
  return typeof v === 'string' && SHA256_HEX.test(v);
}

let currencies: ReadonlySet<string> | undefined;
/** True for an ISO 4217 code known to this runtime's Intl data (case-insensitive, as Meta accepts "chf"). */
export function isCurrencyCode(v: unknown): boolean {
  if (typeof v !== 'string' || !/^[A-Za-z]{3}$/.test(v)) return false;
  currencies ??= new Set(Intl.supportedValuesOf('currency'));
  return currencies.has(v.toUpperCase());
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/** `$['data'][i]['a']['b']`: Meta's way of naming a parameter in a CAPI error. */
function at(i: number, ...keys: string[]): string {
  return `$['data'][${i}]` + keys.map((k) => `['${k}']`).join('');
}

/**
 * Validates the `data` parameter of a CAPI request. Returns null when every event is acceptable, or
 * the Graph error Meta would answer for the first problem found (events in order, rules in order).
 */
export function validateEvents(data: unknown, opts: ValidationOptions): GraphError | null {
  const maxEvents = opts.maxEvents ?? MAX_EVENTS_PER_REQUEST;
  if (data === undefined || data === null) return parameterError("The parameter $['data'] is required");
  if (!Array.isArray(data)) return parameterError("The parameter $['data'] must be an array of server events");
  if (data.length === 0) return parameterError("The parameter $['data'] must contain at least one server event");
  if (data.length > maxEvents) {
    return parameterError(
      `The parameter $['data'] holds ${data.length} events; a request may carry at most ${maxEvents}. Split the batch.`,
    );
  }
  for (let i = 0; i < data.length; i++) {
    const err = validateEvent(data[i], i, opts);
    if (err) return err;
  }
  return null;
}

/** Validates one server event at index `i` of `data`. */
export function validateEvent(ev: unknown, i: number, opts: ValidationOptions): GraphError | null {
  if (!isObject(ev)) return parameterError(`The parameter ${at(i)} must be a server event object`, i);

  if (opts.rejectUnknownKeys ?? true) {
    for (const key in ev) {
      if (!SERVER_EVENT_KEYS.has(key)) return parameterError(`Unexpected key "${key}" on param "${at(i)}".`, i);
    }
  }

  if (ev.event_name === undefined) return parameterError(`The parameter ${at(i, 'event_name')} is required`, i);
  if (!nonEmptyString(ev.event_name)) {
    return parameterError(`The parameter ${at(i, 'event_name')} must be a non-empty string`, i);
  }

  const t = ev.event_time;
  if (t === undefined) return parameterError(`The parameter ${at(i, 'event_time')} is required`, i);
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 0) {
    return parameterError(`The parameter ${at(i, 'event_time')} must be an integer Unix timestamp in seconds`, i);
  }
  if (opts.nowSec - t > (opts.maxAgeSec ?? MAX_EVENT_AGE_SEC)) {
    return invalidParameter(
      SUBCODE.EVENT_TOO_OLD,
      'Event Timestamp Too Old',
      'The timestamp for this event is too far in the past. Events need to be sent from your server within 7 days of ' +
        `when they occurred. Enter a timestamp that has occurred within the last 7 days. Event: ${at(i)}.`,
      i,
    );
  }
  if (t - opts.nowSec > (opts.futureToleranceSec ?? DEFAULT_FUTURE_TOLERANCE_SEC)) {
    return parameterError(
      `The parameter ${at(i, 'event_time')} is ${t - opts.nowSec} seconds in the future. Send the time the event ` +
        'occurred, in seconds (not milliseconds).',
      i,
    );
  }

  if (ev.action_source === undefined) return parameterError(`The parameter ${at(i, 'action_source')} is required`, i);
  if (typeof ev.action_source !== 'string' || !ACTION_SOURCES.has(ev.action_source)) {
    return parameterError(
      `Invalid value ${JSON.stringify(ev.action_source)} for ${at(i, 'action_source')}: must be one of ` +
        [...ACTION_SOURCES].join(', '),
      i,
    );
  }
  const website = ev.action_source === 'website';
  const requireWebsite = opts.requireWebsiteParams ?? true;

  if (ev.event_source_url !== undefined && typeof ev.event_source_url !== 'string') {
    return parameterError(`The parameter ${at(i, 'event_source_url')} must be a string`, i);
  }
  if (website && requireWebsite && !nonEmptyString(ev.event_source_url)) {
    return parameterError(`The parameter ${at(i, 'event_source_url')} is required for website events`, i);
  }
  if (ev.event_id !== undefined && typeof ev.event_id !== 'string') {
    return parameterError(`The parameter ${at(i, 'event_id')} must be a string`, i);
  }
  if (ev.opt_out !== undefined && typeof ev.opt_out !== 'boolean') {
    return parameterError(`The parameter ${at(i, 'opt_out')} must be a boolean`, i);
  }

  const userErr = validateUserData(ev.user_data, i, website && requireWebsite, opts.strictHashing ?? true);
  if (userErr) return userErr;

  return validateCustomData(ev.custom_data, ev.event_name, i);
}

function validateUserData(ud: unknown, i: number, website: boolean, strict: boolean): GraphError | null {
  if (ud === undefined) return parameterError(`The parameter ${at(i, 'user_data')} is required`, i);
  if (!isObject(ud)) return parameterError(`The parameter ${at(i, 'user_data')} must be an object`, i);

  for (const field of HASHED_USER_FIELDS) {
    const v = ud[field];
    if (v === undefined) continue;
    const values = Array.isArray(v) ? v : [v];
    for (const one of values) {
      if (typeof one !== 'string') {
        return parameterError(`The parameter ${at(i, 'user_data', field)} must be a string or a list of strings`, i);
      }
      if (field === 'external_id' && !strict) continue;
      if (!isSha256Hex(one)) {
        return invalidParameter(
          SUBCODE.NOT_HASHED,
          'User Parameter Not Hashed',
          `The ${field} parameter isn't hashed. Hash all user parameters as SHA256, except for client user agent, click ID, ` +
            `and browser ID. Any other user parameters that are not hashed are automatically rejected by Facebook. ` +
            `Event: ${at(i)}.`,
          i,
        );
      }
    }
  }

  if (ud.client_ip_address !== undefined && (typeof ud.client_ip_address !== 'string' || isIP(ud.client_ip_address) === 0)) {
    return parameterError(`The parameter ${at(i, 'user_data', 'client_ip_address')} must be a valid IPv4 or IPv6 address`, i);
  }
  if (ud.client_user_agent !== undefined && !nonEmptyString(ud.client_user_agent)) {
    return parameterError(`The parameter ${at(i, 'user_data', 'client_user_agent')} must be a non-empty string`, i);
  }
  if (ud.fbc !== undefined && (typeof ud.fbc !== 'string' || !FBC.test(ud.fbc))) {
    return parameterError(
      `The parameter ${at(i, 'user_data', 'fbc')} must have the form fb.<subdomainIndex>.<creationTime>.<fbclid>`,
      i,
    );
  }
  if (ud.fbp !== undefined && (typeof ud.fbp !== 'string' || !FBP.test(ud.fbp))) {
    return parameterError(
      `The parameter ${at(i, 'user_data', 'fbp')} must have the form fb.<subdomainIndex>.<creationTime>.<randomNumber>`,
      i,
    );
  }
  if (website && ud.client_user_agent === undefined) {
    return parameterError(`The parameter ${at(i, 'user_data', 'client_user_agent')} is required for website events`, i);
  }

  let present = false;
  for (const key in ud) {
    const v = ud[key];
    if (!USER_DATA_FIELDS.has(key) || v === undefined || v === null || v === '') continue;
    if (Array.isArray(v) && v.length === 0) continue;
    present = true;
    break;
  }
  if (!present) {
    return invalidParameter(
      SUBCODE.INSUFFICIENT_USER_DATA,
      "You haven't added sufficient customer information parameter data for this event",
      'This event has no customer information parameters, or has a combination of customer information parameters ' +
        `too broad to be effective for matching. Event: ${at(i)}.`,
      i,
    );
  }
  return null;
}

function contentsError(i: number, detail: string): GraphError {
  return invalidParameter(
    SUBCODE.INVALID_CONTENTS,
    'Invalid Contents Parameter',
    `The contents parameter you entered doesn't contain a list of JSON objects (${detail}). Enter a list of JSON ` +
      `objects that contain the product IDs associated with the event plus information about the products. For ` +
      `example: [{"id": "ABC123", "quantity": 2, "item_price": 5.99}]. Event: ${at(i)}.`,
    i,
  );
}

function validateCustomData(cd: unknown, eventName: string, i: number): GraphError | null {
  if (cd !== undefined && !isObject(cd)) return parameterError(`The parameter ${at(i, 'custom_data')} must be an object`, i);
  const c: Obj = isObject(cd) ? cd : {};

  if (c.value !== undefined && (typeof c.value !== 'number' || !Number.isFinite(c.value) || c.value < 0)) {
    return parameterError(`The parameter ${at(i, 'custom_data', 'value')} must be a number greater than or equal to 0`, i);
  }
  if (c.currency !== undefined && !isCurrencyCode(c.currency)) {
    return parameterError(
      `The parameter ${at(i, 'custom_data', 'currency')} must be a valid ISO 4217 three-letter currency code, got ` +
        JSON.stringify(c.currency),
      i,
    );
  }
  if (c.content_ids !== undefined && (!Array.isArray(c.content_ids) || !c.content_ids.every((id) => typeof id === 'string'))) {
    return parameterError(`The parameter ${at(i, 'custom_data', 'content_ids')} must be a list of strings`, i);
  }
  if (c.contents !== undefined) {
    if (!Array.isArray(c.contents)) return contentsError(i, 'not a list');
    for (let k = 0; k < c.contents.length; k++) {
      const item: unknown = c.contents[k];
      if (!isObject(item)) return contentsError(i, `item ${k} is not an object`);
      if (!nonEmptyString(item.id)) return contentsError(i, `item ${k} has no string id`);
      if (typeof item.quantity !== 'number' || !Number.isInteger(item.quantity) || item.quantity < 1) {
        return contentsError(i, `item ${k} has no positive integer quantity`);
      }
      if (item.item_price !== undefined && (typeof item.item_price !== 'number' || !Number.isFinite(item.item_price) || item.item_price < 0)) {
        return contentsError(i, `item ${k} has an item_price that is not a number >= 0`);
      }
    }
  }
  if (c.content_type !== undefined && c.content_type !== 'product' && c.content_type !== 'product_group') {
    return parameterError(`The parameter ${at(i, 'custom_data', 'content_type')} must be "product" or "product_group"`, i);
  }
  if (c.num_items !== undefined && (typeof c.num_items !== 'number' || !Number.isInteger(c.num_items) || c.num_items < 0)) {
    return parameterError(`The parameter ${at(i, 'custom_data', 'num_items')} must be an integer`, i);
  }
  for (const key of ['order_id', 'search_string', 'content_name', 'content_category', 'status'] as const) {
    if (c[key] !== undefined && typeof c[key] !== 'string') {
      return parameterError(`The parameter ${at(i, 'custom_data', key)} must be a string`, i);
    }
  }

  if (eventName === 'Purchase') {
    if (c.currency === undefined) {
      return invalidParameter(
        SUBCODE.PURCHASE_MISSING_CURRENCY,
        'Missing Currency for Purchase Event',
        `Your purchase event doesn’t include a currency parameter. Enter a currency parameter. For example: USD. Event: ${at(i)}.`,
        i,
      );
    }
    if (c.value === undefined) {
      return invalidParameter(
        SUBCODE.PURCHASE_MISSING_VALUE,
        'Missing Value for Purchase Event',
        `Your purchase event doesn’t include a value parameter. Enter a value. For example: 1.99. Event: ${at(i)}.`,
        i,
      );
    }
  }
  return null;
}

/** Reads the event index out of a CAPI error_user_msg (`$['data'][N]`), or undefined. */
export function eventIndexOf(userMsg: string | undefined): number | undefined {
  const m = userMsg === undefined ? null : /\$\['data'\]\[(\d+)\]/.exec(userMsg);
  return m ? Number(m[1]) : undefined;
}
