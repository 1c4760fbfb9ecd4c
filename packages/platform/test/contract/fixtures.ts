/** Helpers shared by the contract tests. */
import assert from 'node:assert/strict';
import { normalizeEvent, parseCanonicalEvent, encodeCanonicalEvent } from '../../src/contract/index.ts';
import type { CanonicalEvent, EventOf, IngestContext, RejectReason, SegmentType } from '../../src/contract/index.ts';

export const RECEIVED_AT = Date.UTC(2026, 10, 26, 12, 0, 0);

export function ingest(overrides: Partial<IngestContext> = {}): IngestContext {
  return { merchantId: 'shop-a', defaultCurrency: 'EUR', receivedAt: RECEIVED_AT, ...overrides };
}

let seq = 0;

/** A valid track message; fields can be replaced or removed (undefined). */
export function track(event: string, properties: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'track', event, messageId: `m-${++seq}`, anonymousId: 'anon-1', properties, ...extra };
}

/**
 * Normalizes and expects success; also checks that the event is valid against the schema through
 * an encode → parse round trip, so every test doubles as a schema conformance test.
 */
export function accept(message: unknown, ctx: IngestContext = ingest(), hint?: SegmentType): CanonicalEvent {
  const r = normalizeEvent(message, ctx, hint);
  if (!r.ok) assert.fail(`expected the message to be accepted, got ${r.reason.code}: ${r.reason.message}`);
  const parsed = parseCanonicalEvent(encodeCanonicalEvent(r.event));
  if (!parsed.ok) assert.fail(`the normalized event does not match the schema: ${parsed.reason.message} (${parsed.reason.path})`);
  assert.deepEqual(parsed.event, JSON.parse(JSON.stringify(r.event)));
  return r.event;
}

export function acceptAs<N extends CanonicalEvent['event']>(name: N, message: unknown, ctx?: IngestContext, hint?: SegmentType): EventOf<N> {
  const e = accept(message, ctx, hint);
  assert.equal(e.event, name);
  return e as EventOf<N>;
}

/** Normalizes and expects a refusal with `code` (and `path` when given); checks the message reads well. */
export function refuse(message: unknown, code: string, path?: string, ctx: IngestContext = ingest(), hint?: SegmentType): RejectReason {
  const r = normalizeEvent(message, ctx, hint);
  if (r.ok) assert.fail(`expected ${code}, but the message was accepted as ${r.event.event}`);
  assert.equal(r.reason.code, code, r.reason.message);
  if (path !== undefined) assert.equal(r.reason.path, path, r.reason.message);
  assertSentence(r.reason.message);
  return r.reason;
}

/** A developer-facing reason: one or more sentences, ending with a full stop, nothing leaked from code. */
export function assertSentence(message: string): void {
  assert.ok(message.length >= 25, `too short to explain anything: ${message}`);
  assert.match(message, /\.$/, `ends with a full stop: ${message}`);
  assert.doesNotMatch(message, /undefined|\[object Object\]|NaN/, `no leaked internals: ${message}`);
}
