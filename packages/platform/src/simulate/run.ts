/**
 * Sends a plan's actions to a collector over HTTP.
 *
 * Each action has a lane; lane `l` is sent by worker `l % concurrency`, one action after the other,
 * so a visitor's beacon always completes before its first batch is sent, and its batches never
 * overtake each other. A batch is retried with the same body (the same messageIds) on 429 and 503
 * (after Retry-After), on other 5xx answers and on network errors; it counts as a failure only
 * when every attempt failed, or when the collector refused the request for good (4xx).
 *
 * A batch with widgets (the `recs` option) first asks the recommendations API for each of them, in
 * order, with the same retries, and sends the shoppers' reactions (react.ts) in their place. A widget
 * whose answer never came shows nothing (its outcome has an `error`); the batch is sent all the same.
 */
import type { SimAction } from './plan.ts';
import { expandBatch, parseRecsAnswer, react, recsRequestPath, type PlannedWidget, type WidgetOutcome } from './react.ts';

export interface RunOptions {
  /** The collector, e.g. http://127.0.0.1:8080. */
  baseUrl: string;
  /** Events per second, across all workers. Default: as fast as possible. */
  rate?: number;
  /** Parallel workers. Default 4. */
  concurrency?: number;
  /** Called after each batch is taken, with the events taken so far and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Attempts per request before the action counts as a failure. Default 10. */
  maxAttempts?: number;
  /** Timeout of one HTTP request. Default 30 s. */
  timeoutMs?: number;
  /** Longest wait honoured from a Retry-After header. Default 60 s. */
  maxRetryAfterMs?: number;
  /** After this many actions failed in a row, the rest are not tried (and count as failures). Default 5. */
  giveUpAfter?: number;
  signal?: AbortSignal;
}

export interface RunResult {
  /** HTTP requests made, retries and both beacon requests included. */
  requests: number;
  /** Events in batches the collector took (200). */
  events: number;
  /** Beacons validated (204). */
  beacons: number;
  /** Actions that never succeeded (should be 0). */
  failures: number;
  /** Requests that were retried. */
  retries: number;
  /** Events the collector answered as refused (its `rejected` count in 200 answers). */
  rejectedByCollector: number;
  /** The first few failure reasons. */
  errors: string[];
  durationMs: number;
  /** With `recs`: what happened with each widget, in the order asked (settleTruth takes them). */
  widgets: WidgetOutcome[];
  /** Widgets whose recommendations could not be had, or were not asked for after too many failures (nothing was shown for them). */
  recsFailures: number;
}

class Failed extends Error {}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (ms <= 0) return resolve();
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Retry-After in ms: delay-seconds (a fraction is accepted) or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export async function runSimulation(actions: readonly SimAction[], o: RunOptions): Promise<RunResult> {
  const base = o.baseUrl.replace(/\/+$/, '');
  const concurrency = Math.max(1, Math.floor(o.concurrency ?? 4));
  const maxAttempts = o.maxAttempts ?? 10;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const maxRetryAfterMs = o.maxRetryAfterMs ?? 60_000;
  const giveUpAfter = o.giveUpAfter ?? 5;
  let failedInARow = 0;
  let abandoned = false;
  const started = Date.now();
  const result: RunResult = { requests: 0, events: 0, beacons: 0, failures: 0, retries: 0, rejectedByCollector: 0, errors: [], durationMs: 0, widgets: [], recsFailures: 0 };
  let recsFailedInARow = 0;
  let recsAbandoned = false;
  let total = 0;
  for (const a of actions) if (a.kind === 'batch') total += a.body.batch.length;

  // Pacing: a reservation clock shared by the workers.
  let nextSlot = 0;
  const pace = async (events: number) => {
    if (o.rate === undefined || !(o.rate > 0) || events === 0) return;
    const now = performance.now();
    const at = Math.max(now, nextSlot);
    nextSlot = at + (events * 1000) / o.rate;
    await sleep(at - now, o.signal);
  };

  /** One request with retries; resolves with the final response (its body read as text). */
  const send = async (what: string, make: () => { url: string; init: RequestInit }, accept: (status: number, attempt: number) => boolean): Promise<{ status: number; text: string }> => {
    let lastError = '';
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (attempt > 1) result.retries++;
      const { url, init } = make();
      let wait: number;
      try {
        result.requests++;
        const signals = [AbortSignal.timeout(timeoutMs), ...(o.signal ? [o.signal] : [])];
        const res = await fetch(url, { ...init, signal: AbortSignal.any(signals) });
        const text = await res.text();
        if (accept(res.status, attempt)) return { status: res.status, text };
        if (res.status === 429 || res.status === 503) {
          wait = Math.min(parseRetryAfter(res.headers.get('retry-after')) ?? backoff(attempt), maxRetryAfterMs);
        } else if (res.status >= 500) {
          wait = backoff(attempt);
        } else {
          throw new Failed(`${what}: HTTP ${res.status} ${text.slice(0, 200)}`);
        }
        lastError = `HTTP ${res.status}`;
      } catch (err) {
        if (err instanceof Failed) throw err;
        if (o.signal?.aborted) throw err;
        lastError = (err as Error).message;
        wait = backoff(attempt);
      }
      if (attempt < maxAttempts) await sleep(wait, o.signal);
    }
    throw new Failed(`${what}: no success after ${maxAttempts} attempts (last: ${lastError})`);
  };

  /** Asks the recommendations API for a widget (the merchant's public write key) and reacts to the answer. */
  const widget = async (w: PlannedWidget, authorization: string): Promise<WidgetOutcome> => {
    if (recsAbandoned) {
      result.recsFailures++;
      return react(w, null, 'not asked: too many recommendation requests failed in a row');
    }
    const userAgent = w.slot.context['userAgent'];
    try {
      const res = await send(
        'recommendations',
        () => ({ url: `${base}${recsRequestPath(w.slot)}`, init: { headers: { authorization, ...(typeof userAgent === 'string' && { 'user-agent': userAgent }) } } }),
        (status) => status === 200,
      );
      const outcome = react(w, parseRecsAnswer(res.text));
      recsFailedInARow = 0;
      return outcome;
    } catch (err) {
      if (o.signal?.aborted) throw err;
      const message = (err as Error).message;
      result.recsFailures++;
      if (result.errors.length < 20) result.errors.push(message);
      if (++recsFailedInARow >= giveUpAfter && !recsAbandoned) {
        recsAbandoned = true;
        result.errors.push(`gave up asking for recommendations after ${recsFailedInARow} failures in a row; the rest of the widgets show nothing`);
      }
      return react(w, null, message);
    }
  };

  const batch = async (a: Extract<SimAction, { kind: 'batch' }>) => {
    const authorization = `Basic ${Buffer.from(`${a.writeKey}:`).toString('base64')}`;
    let messages = a.body.batch;
    const outcomes = new Map<number, WidgetOutcome>();
    if (a.widgets !== undefined && a.widgets.length > 0) {
      for (const w of a.widgets) {
        const outcome = await widget(w, authorization);
        outcomes.set(w.id, outcome);
        total += outcome.messages.length;
      }
      messages = expandBatch(a.body.batch, a.widgets, (id) => outcomes.get(id));
      if (messages.length === 0) {
        // Only widgets, and none showed anything: nothing to send.
        result.widgets.push(...outcomes.values());
        return;
      }
    }
    const body = JSON.stringify({ batch: messages }); // the same bytes on every attempt: the same messageIds
    await pace(messages.length);
    const res = await send(
      `batch of ${messages.length}`,
      () => ({ url: `${base}/v1/batch`, init: { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body } }),
      (status) => status === 200,
    );
    try {
      const answer = JSON.parse(res.text) as { rejected?: unknown };
      if (typeof answer.rejected === 'number') result.rejectedByCollector += answer.rejected;
    } catch {
      // A 200 without a JSON body: nothing to count.
    }
    // The widgets' outcomes count once their messages are accepted: they are what was sent.
    result.widgets.push(...outcomes.values());
    result.events += messages.length;
    o.onProgress?.(result.events, total);
  };

  const beacon = async (a: Extract<SimAction, { kind: 'beacon' }>) => {
    const headers = { 'user-agent': a.userAgent };
    const q = `writeKey=${encodeURIComponent(a.writeKey)}&anonymousId=${encodeURIComponent(a.anonymousId)}`;
    for (let round = 0; round < 3; round++) {
      const challenge = await send('beacon challenge', () => ({ url: `${base}/v1/beacon/challenge?${q}`, init: { headers } }), (s) => s === 200);
      const { token } = JSON.parse(challenge.text) as { token: string };
      const body = JSON.stringify({ writeKey: a.writeKey, anonymousId: a.anonymousId, token });
      let expired = false;
      await send(
        'beacon validate',
        () => ({ url: `${base}/v1/beacon/validate`, init: { method: 'POST', headers: { ...headers, 'content-type': 'text/plain' }, body } }),
        (s, attempt) => {
          if (s === 403 && attempt > 1) expired = true; // waited past the token's life: fetch a new one
          // 409 on a retry: an earlier attempt was recorded after all.
          return s === 204 || (s === 409 && attempt > 1) || expired;
        },
      );
      if (!expired) {
        result.beacons++;
        return;
      }
    }
    throw new Failed('beacon: the token kept expiring');
  };

  const lanes: SimAction[][] = Array.from({ length: concurrency }, () => []);
  for (const a of actions) lanes[a.lane % concurrency]!.push(a);
  await Promise.all(
    lanes.map(async (queue) => {
      for (const a of queue) {
        if (abandoned) {
          result.failures++;
          continue;
        }
        try {
          if (a.kind === 'batch') await batch(a);
          else await beacon(a);
          failedInARow = 0;
        } catch (err) {
          if (o.signal?.aborted) throw err;
          result.failures++;
          if (result.errors.length < 20) result.errors.push((err as Error).message);
          if (++failedInARow >= giveUpAfter && !abandoned) {
            abandoned = true;
            result.errors.push(`gave up after ${failedInARow} actions failed in a row; the rest were not sent`);
          }
        }
      }
    }),
  );
  result.durationMs = Date.now() - started;
  return result;
}

function backoff(attempt: number): number {
  return Math.min(100 * 2 ** (attempt - 1), 5000);
}
