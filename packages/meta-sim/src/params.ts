/**
 * Reads the parameters of a Graph API POST the way Graph does: from a JSON body, a form body
 * (`application/x-www-form-urlencoded` or `multipart/form-data`, where `data` is a JSON string), or the
 * query string; the access token may also come in an `Authorization: Bearer` (or `OAuth`) header.
 * A parameter in the body wins over the same parameter in the query string. Pure.
 */
import { unreadableBody, type GraphError } from './errors.ts';

/** A request body kept as the exact text received. */
export interface RawBody {
  text: string;
  contentType: string;
}

export type TokenSource = 'body' | 'query' | 'header';

/** The Conversions API parameters of one request. */
export interface CapiParams {
  /** Decoded `data`: usually an array; undefined when absent; left as received when it is not JSON. */
  data: unknown;
  accessToken?: string;
  tokenSource?: TokenSource;
  testEventCode?: string;
  partnerAgent?: string;
}

type Fields = Map<string, unknown>;

function fromSearchParams(text: string): Fields {
  const fields: Fields = new Map();
  for (const [k, v] of new URLSearchParams(text)) fields.set(k, v);
  return fields;
}

/** Text fields of a multipart/form-data body (files are read as text too; CAPI has none). */
export function parseMultipart(text: string, contentType: string): Fields | null {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) return null;
  const fields: Fields = new Map();
  const parts = text.split(`--${boundary}`);
  for (const part of parts.slice(1)) {
    if (part.startsWith('--')) break;
    const sep = part.indexOf('\r\n\r\n');
    if (sep < 0) continue;
    const headers = part.slice(0, sep);
    const name = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(headers)?.[1];
    if (name === undefined) continue;
    let value = part.slice(sep + 4);
    if (value.endsWith('\r\n')) value = value.slice(0, -2);
    fields.set(name, value);
  }
  return fields;
}

function bodyFields(body: RawBody): Fields | GraphError {
  const type = body.contentType.split(';')[0]!.trim().toLowerCase();
  if (body.text.length === 0) return new Map();
  if (type === 'application/json' || type.endsWith('+json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.text);
    } catch {
      return unreadableBody('The request body is not valid JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return unreadableBody('The JSON request body must be an object of parameters');
    }
    return new Map(Object.entries(parsed));
  }
  if (type === 'application/x-www-form-urlencoded') return fromSearchParams(body.text);
  if (type === 'multipart/form-data') {
    return parseMultipart(body.text, body.contentType) ?? unreadableBody('The multipart body has no boundary');
  }
  return unreadableBody(`Unsupported content type ${JSON.stringify(type)}`);
}

/** `data` sent as a JSON string (form, query, or even JSON) is decoded; anything else is returned as is. */
function decodeData(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** Token from `Authorization: Bearer <t>` or `Authorization: OAuth <t>`. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^(?:Bearer|OAuth)\s+(\S+)\s*$/i.exec(authorization);
  return m?.[1];
}

/** Reads the CAPI parameters of a request, or the Graph error for a body that cannot be read. */
export function readParams(body: RawBody | undefined, rawQuery: string, authorization: string | undefined): CapiParams | GraphError {
  const fromBody = body ? bodyFields(body) : new Map<string, unknown>();
  if (!(fromBody instanceof Map)) return fromBody;
  const fromQuery = fromSearchParams(rawQuery);
  const get = (k: string): unknown => (fromBody.has(k) ? fromBody.get(k) : fromQuery.get(k));

  const params: CapiParams = { data: decodeData(get('data')) };
  const bodyToken = str(fromBody.get('access_token'));
  const queryToken = str(fromQuery.get('access_token'));
  const headerToken = bearerToken(authorization);
  if (bodyToken) {
    params.accessToken = bodyToken;
    params.tokenSource = 'body';
  } else if (queryToken) {
    params.accessToken = queryToken;
    params.tokenSource = 'query';
  } else if (headerToken) {
    params.accessToken = headerToken;
    params.tokenSource = 'header';
  }
  const testEventCode = str(get('test_event_code'));
  if (testEventCode) params.testEventCode = testEventCode;
  const partnerAgent = str(get('partner_agent'));
  if (partnerAgent) params.partnerAgent = partnerAgent;
  return params;
}

/** Narrows the result of readParams. */
export function isGraphError(v: CapiParams | GraphError): v is GraphError {
  return (v as GraphError).status !== undefined && (v as GraphError).error !== undefined;
}
