/**
 * Meta's Graph API, the part the forwarder speaks: the request of a batch, and what an answer means
 * for the events in it (docs/meta-capi.md, "Delivery"). Pure functions; the forwarder does the I/O.
 */
import type { GraphError } from './outbox.ts';

/** Throttling codes: the app (4), the user (17), the page (32), custom (613), and business use-case limits (80000–80014). */
export function isThrottleCode(code: number | undefined): boolean {
  return code === 4 || code === 17 || code === 32 || code === 613 || (code !== undefined && code >= 80000 && code <= 80014);
}

/**
 * What an answer means:
 * - `ok`: Meta acknowledged every event of the request;
 * - `retry`: nothing was taken and the same request may succeed later (5xx, 429, throttling, a
 *   transient error, a timeout or a broken connection: Meta may have taken it, so a re-send keeps the
 *   same event ids and Meta de-duplicates);
 * - `invalid`: Meta refused the request because of an event in it (an invalid parameter): the whole
 *   batch is refused, so the forwarder splits it to find the event;
 * - `config`: the merchant's settings are wrong (token, permission, unknown pixel): no event of the
 *   pixel can go until they are fixed; retried with the pixel's circuit breaker, never split.
 */
export type GraphOutcome =
  | { kind: 'ok'; received: number }
  | { kind: 'retry'; why: 'server_error' | 'rate_limited' | 'throttled' | 'transient' | 'timeout' | 'network'; status?: number; error?: GraphError }
  | { kind: 'invalid'; status: number; error: GraphError }
  | { kind: 'config'; status: number; error: GraphError };

function graphError(text: string): GraphError | undefined {
  try {
    const body = JSON.parse(text) as { error?: GraphError };
    if (body && typeof body.error === 'object' && body.error !== null) {
      const e = body.error;
      // Keep only Meta's fields, so nothing else of the answer travels to the DLQ or the logs.
      return {
        ...(typeof e.message === 'string' && { message: e.message }),
        ...(typeof e.type === 'string' && { type: e.type }),
        ...(typeof e.code === 'number' && { code: e.code }),
        ...(typeof e.error_subcode === 'number' && { error_subcode: e.error_subcode }),
        ...(typeof e.is_transient === 'boolean' && { is_transient: e.is_transient }),
        ...(typeof e.error_user_title === 'string' && { error_user_title: e.error_user_title }),
        ...(typeof e.error_user_msg === 'string' && { error_user_msg: e.error_user_msg }),
        ...(typeof e.fbtrace_id === 'string' && { fbtrace_id: e.fbtrace_id }),
      };
    }
  } catch {
    // not JSON
  }
  return undefined;
}

export function classifyGraphResponse(status: number, text: string, sent: number): GraphOutcome {
  if (status >= 200 && status < 300) {
    let received = sent;
    try {
      const body = JSON.parse(text) as { events_received?: unknown };
      if (typeof body.events_received === 'number') received = body.events_received;
    } catch {
      // A 2xx without a JSON body: Meta always sends one; treat as taken.
    }
    return { kind: 'ok', received };
  }
  const error = graphError(text);
  if (status === 429) return { kind: 'retry', why: 'rate_limited', status, ...(error && { error }) };
  if (error !== undefined && isThrottleCode(error.code)) return { kind: 'retry', why: 'throttled', status, error };
  if (status >= 500) return { kind: 'retry', why: 'server_error', status, ...(error && { error }) };
  if (error === undefined) return { kind: 'retry', why: 'server_error', status };
  if (error.is_transient === true || error.code === 1 || error.code === 2) return { kind: 'retry', why: 'transient', status, error };
  // Code 100 is an invalid parameter, except subcode 33: the pixel does not exist (or the token cannot see it).
  if (error.code === 100 && error.error_subcode !== 33) return { kind: 'invalid', status, error };
  return { kind: 'config', status, error };
}

/** The URL of a pixel's events edge. */
export function eventsUrl(baseUrl: string, apiVersion: string, pixelId: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/${apiVersion}/${encodeURIComponent(pixelId)}/events`;
}

/**
 * The request body: the events as they are on capi.outbox (already JSON), the token in the body
 * (never in the URL, which proxies and logs keep), and the test event code when the merchant set one.
 */
export function requestBody(eventsJson: readonly string[], accessToken: string, testEventCode: string | undefined): string {
  let s = '{"data":[' + eventsJson.join(',') + '],"access_token":' + JSON.stringify(accessToken);
  if (testEventCode !== undefined && testEventCode !== '') s += ',"test_event_code":' + JSON.stringify(testEventCode);
  return s + '}';
}

/** Exponential backoff with full jitter: a random delay in [0, min(max, base·2^attempt)). */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * A circuit breaker per pixel: `closed` lets requests go; after `failureThreshold` failures in a row
 * it opens for `openMs` (doubling on each failed probe, up to `maxOpenMs`); then one probe request
 * is let through (`half_open`), and its success closes it again.
 */
export class CircuitBreaker {
  state: 'closed' | 'open' | 'half_open' = 'closed';
  private failures = 0;
  private openUntil = 0;
  private openFor: number;
  private probing = false;
  private readonly o: { failureThreshold: number; openMs: number; maxOpenMs: number };

  constructor(o: { failureThreshold: number; openMs: number; maxOpenMs: number }) {
    this.o = o;
    this.openFor = o.openMs;
  }

  /** Whether a request may start now; in half-open, only one (the probe) at a time. */
  allows(now: number): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open') {
      if (now < this.openUntil) return false;
      this.state = 'half_open';
      this.probing = false;
    }
    return !this.probing;
  }

  /** Call when a request starts (after `allows`). */
  started(): void {
    if (this.state === 'half_open') this.probing = true;
  }

  success(): void {
    this.state = 'closed';
    this.failures = 0;
    this.openFor = this.o.openMs;
    this.probing = false;
  }

  failure(now: number): void {
    this.failures++;
    if (this.state === 'half_open') {
      this.openFor = Math.min(this.o.maxOpenMs, this.openFor * 2);
      this.open(now);
    } else if (this.state === 'closed' && this.failures >= this.o.failureThreshold) {
      this.open(now);
    }
  }

  /** Failures in a row. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** When a request may start again (0 when closed). */
  get retryAt(): number {
    return this.state === 'open' ? this.openUntil : 0;
  }

  private open(now: number): void {
    this.state = 'open';
    this.openUntil = now + this.openFor;
    this.probing = false;
  }
}
