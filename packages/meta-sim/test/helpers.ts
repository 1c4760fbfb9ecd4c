/** Shared fixtures for the meta-sim tests: hashed identifiers, valid events, and a small fetch wrapper. */
import { createHash } from 'node:crypto';
import type { MetaSim } from '../src/index.ts';

export const PIXEL = '1234567890';
export const TOKEN = 'EAAtoken-main';
export const OTHER_PIXEL = '9876543210';
export const OTHER_TOKEN = 'EAAtoken-other';

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A fixed clock: 2027-01-15T08:00:00Z. */
export const NOW_MS = Date.UTC(2027, 0, 15, 8, 0, 0);
export const NOW_SEC = Math.floor(NOW_MS / 1000);

type Json = Record<string, unknown>;

/** A website Purchase that Meta accepts. */
export function purchase(eventId = 'order-1', over: Json = {}): Json {
  return {
    event_name: 'Purchase',
    event_time: NOW_SEC - 60,
    event_id: eventId,
    action_source: 'website',
    event_source_url: 'https://shop.example/checkout/thanks',
    user_data: {
      em: [sha256('jane@example.com')],
      ph: [sha256('33612345678')],
      external_id: sha256('visitor-42'),
      client_ip_address: '203.0.113.7',
      client_user_agent: 'Mozilla/5.0 (X11; Linux x86_64)',
      fbc: 'fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890',
      fbp: 'fb.1.1596403881668.1116446470',
    },
    custom_data: {
      value: 129.9,
      currency: 'EUR',
      order_id: 'order-1',
      content_ids: ['sku-1', 'sku-2'],
      contents: [
        { id: 'sku-1', quantity: 1, item_price: 99.9 },
        { id: 'sku-2', quantity: 2, item_price: 15 },
      ],
      content_type: 'product',
      num_items: 3,
    },
    ...over,
  };
}

/** A non-website PageView-like event with the fewest fields Meta accepts. */
export function minimal(eventId = 'ev-1', over: Json = {}): Json {
  return {
    event_name: 'ViewContent',
    event_time: NOW_SEC - 10,
    event_id: eventId,
    action_source: 'system_generated',
    user_data: { external_id: [sha256('visitor-1')] },
    ...over,
  };
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Json;
}

/** POSTs to the sim and parses the JSON answer. */
export async function post(sim: MetaSim, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(`${sim.url}${path}`, { method: 'POST', ...init });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Json) : {} };
}

/** POSTs a JSON CAPI body with the token in the query string. */
export function sendEvents(sim: MetaSim, data: unknown, opts: { pixel?: string; token?: string; extra?: Json; signal?: AbortSignal } = {}): Promise<Answer> {
  const init: RequestInit = {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ data, ...opts.extra }),
  };
  if (opts.signal) init.signal = opts.signal;
  return post(sim, `/v21.0/${opts.pixel ?? PIXEL}/events?access_token=${encodeURIComponent(opts.token ?? TOKEN)}`, init);
}

/** The `error` object of a Graph error answer. */
export function graphError(a: Answer): Json {
  const err = a.body.error;
  if (typeof err !== 'object' || err === null) throw new Error(`not a Graph error: ${JSON.stringify(a.body)}`);
  return err as Json;
}

/** Waits until `check` holds (socket closes propagate asynchronously). */
export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
