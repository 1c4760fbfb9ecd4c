/**
 * The value of an `events.rejected` record, written by the collector (envelope refusals) and by the
 * pipeline (contract refusals): the reason with its code, who refused, and the message as sent, cut
 * to a bounded size so that refusals cannot grow without limit.
 */
/** Bytes of a refused message kept whole; a larger one is kept cut, as text, and says so. */
export const REJECTED_PAYLOAD_BYTES = 32 * 1024;

export interface Rejection {
  v: 1;
  stage: 'collector' | 'pipeline';
  code: string;
  /** The sentence for the developer: what is wrong and what is expected. */
  reason: string;
  path?: string;
  merchantId: string;
  receivedAt: number;
  /** The message as sent (parsed JSON, with any writeKey removed), or `{ truncated, bytes, head }`. */
  payload: unknown;
}

export function rejection(stage: Rejection['stage'], merchantId: string, receivedAt: number, message: unknown, reason: { code: string; message: string; path?: string }): Rejection {
  // A writeKey inside an event is a credential: it is not written to the log.
  if (typeof message === 'object' && message !== null && !Array.isArray(message) && 'writeKey' in message) message = { ...message, writeKey: undefined };
  const text = JSON.stringify(message) ?? 'null';
  const payload = text.length > REJECTED_PAYLOAD_BYTES ? { truncated: true, bytes: Buffer.byteLength(text), head: text.slice(0, REJECTED_PAYLOAD_BYTES) } : message;
  return {
    v: 1,
    stage,
    code: reason.code,
    reason: reason.message,
    ...(reason.path !== undefined && { path: reason.path }),
    merchantId,
    receivedAt,
    payload,
  };
}
