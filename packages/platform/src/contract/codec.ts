/**
 * Canonical events on the wire: UTF-8 JSON, one event per record of `events.raw`.
 *
 * `parseCanonicalEvent` is for the stages that read the topic: it checks every record against the
 * schema with ajv, compiled once per event name on first use (so a process that only writes events,
 * like the collector, never pays for the compilation), and picks the validator by `event`, which
 * keeps validation fast and its error precise (not "must match a schema in anyOf").
 */
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { PlatformErrors } from '../errors.ts';
import { CANONICAL_EVENT_VERSION, CanonicalEventSchema } from './schema.ts';
import type { CanonicalEvent } from './schema.ts';
import { MAX_EVENT_BYTES } from './normalize.ts';
import type { NormalizeResult } from './normalize.ts';

export type ParseResult = NormalizeResult;

/** The event as UTF-8 JSON. */
export function encodeCanonicalEvent(e: CanonicalEvent): Buffer {
  return Buffer.from(JSON.stringify(e), 'utf8');
}

let validators: Map<string, ValidateFunction> | undefined;

function validatorFor(event: string): ValidateFunction | undefined {
  if (validators === undefined) {
    const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
    validators = new Map();
    for (const branch of CanonicalEventSchema.anyOf) {
      validators.set(branch.properties.event.const, ajv.compile(branch));
    }
  }
  return validators.get(event);
}

/** `/properties/products/0/price` → `properties.products[0].price`. */
function jsonPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out;
}

function schemaError(message: string, path?: string): ParseResult {
  return { ok: false, reason: path === undefined ? { code: PlatformErrors.EVENT_SCHEMA.code, message } : { code: PlatformErrors.EVENT_SCHEMA.code, message, path } };
}

function describeError(e: ErrorObject): string {
  const where = jsonPath(e.instancePath);
  const subject = where === '' ? 'The event' : `The field ${where}`;
  switch (e.keyword) {
    case 'required':
      return `The event has no ${jsonPath(`${e.instancePath}/${String(e.params['missingProperty'])}`)}, which every canonical event of this name has.`;
    case 'additionalProperties':
      return `${subject} has the field ${JSON.stringify(e.params['additionalProperty'])}, which the canonical event v${CANONICAL_EVENT_VERSION} does not define.`;
    default:
      return `${subject} ${e.message ?? 'is invalid'}.`;
  }
}

/**
 * Reads one record of `events.raw`: UTF-8 JSON that must be a canonical event of version 1 valid
 * against its schema. Refusals are SHOP_ERR_EVENT_SCHEMA (or SHOP_ERR_EVENT_TOO_LARGE) with the
 * path of the first problem.
 */
export function parseCanonicalEvent(buf: Uint8Array | string): ParseResult {
  const size = typeof buf === 'string' ? Buffer.byteLength(buf) : buf.length;
  if (size > MAX_EVENT_BYTES) {
    return {
      ok: false,
      reason: {
        code: PlatformErrors.EVENT_TOO_LARGE.code,
        message: `The record is ${size} bytes; a canonical event is at most ${MAX_EVENT_BYTES} bytes.`,
      },
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(typeof buf === 'string' ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8'));
  } catch {
    return schemaError('The record is not valid JSON; a canonical event is a UTF-8 JSON object.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return schemaError('The record is not a JSON object; a canonical event is a JSON object.');
  }
  const record = value as Record<string, unknown>;
  if (record['v'] !== CANONICAL_EVENT_VERSION) {
    return schemaError(`The record has version ${JSON.stringify(record['v'])}; this reader understands canonical events of version ${CANONICAL_EVENT_VERSION}.`, 'v');
  }
  const event = record['event'];
  const validate = typeof event === 'string' ? validatorFor(event) : undefined;
  if (validate === undefined) {
    return schemaError(`The record's event ${JSON.stringify(event)} is not a canonical event name.`, 'event');
  }
  if (!validate(record)) {
    const first = validate.errors?.[0];
    if (first === undefined) return schemaError('The record does not match the canonical event schema.');
    const path = first.keyword === 'required' ? jsonPath(`${first.instancePath}/${String(first.params['missingProperty'])}`) : jsonPath(first.instancePath);
    return schemaError(describeError(first), path === '' ? undefined : path);
  }
  return { ok: true, event: record as unknown as CanonicalEvent };
}
