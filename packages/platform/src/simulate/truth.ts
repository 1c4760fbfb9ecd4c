/**
 * The truth: what the pipeline (pipeline/topology.ts) must write for a list of messages, computed
 * by applying its rules, in the order in which the messages reach it. Pure: no I/O, no clock.
 *
 * The rules, in the pipeline's order (docs/simulator.md):
 *   1. refused messages (the collector's envelope check, or the pipeline's contract) → events.rejected;
 *   2. de-duplication: a (merchant, messageId) seen before is dropped; so is an Order Completed
 *      whose (merchant, order_id) was seen before;
 *   3. sessions, per visitor, in arrival order: a client session id wins (a new session each time
 *      it changes); without one, a new session when the event time is more than `sessionTimeoutMs`
 *      after the latest event time of the visitor's session, or when the previous session was a
 *      client one; the first event of a session has `start`;
 *   4. bots: a user agent that isbot recognises is a bot (reason user_agent); otherwise the event
 *      is human when the visitor ran the beacon for that merchant in time, else a bot
 *      (reason not_validated).
 *
 * Step 4 takes the visitors whose beacon validation the pipeline sees before the grace period of
 * their first event ends: the simulator runs it before the visitor's first batch, so "validated"
 * is a property of the visitor, given as input.
 */
import { isbot } from 'isbot';
import { currencyExponent } from '../contract/currencies.ts';
import { minorUnits } from '../contract/money.ts';
import { parseTimestamp } from '../contract/time.ts';

/** merchant → event name → hour (UTC, `YYYY-MM-DDTHH`) → events. */
export type HourCounts = Record<string, Record<string, Record<string, number>>>;

export type RejectStage = 'collector' | 'pipeline';

export interface TruthEvent {
  merchantId: string;
  /** The message exactly as sent (no `sentAt`: its event time is its `timestamp`). */
  message: Record<string, unknown>;
  /** Set on the messages made invalid on purpose: the code they are refused with, and by whom. */
  invalid?: { code: string; stage: RejectStage };
}

export interface TruthInput {
  merchants: ReadonlyArray<{ id: string; currency: string }>;
  /** Every message sent, in the order the pipeline sees them (per visitor: the order sent). */
  events: readonly TruthEvent[];
  /** Visitors whose beacon validation reaches the pipeline in time, per merchant. */
  validated: ReadonlyArray<{ merchantId: string; anonymousId: string }>;
  /** The pipeline's sessionTimeoutMs. Default 30 minutes. */
  sessionTimeoutMs?: number;
}

export interface MerchantCounts {
  currency: string;
  /** Distinct order_ids among human Order Completed events. */
  orders: number;
  /** Sum of their `total`, in minor units of the currency. */
  revenueMinor: number;
  /** Human events with `session.start`: the sessions of human visitors. */
  sessions: number;
  /** Events in events.filtered. */
  humanEvents: number;
  /** Events in events.bots. */
  botEvents: number;
  /** events.bots by `bot.reason`. */
  botsByReason: { user_agent: number; not_validated: number };
  /** events.rejected by code (both stages). */
  rejected: Record<string, number>;
  /**
   * The session funnel of human events: sessions that started, and sessions that reached each step
   * (in any order): listing (Product List Viewed, Products Searched), product (Product Viewed,
   * Clicked), cart (Product Added, Cart Viewed), checkout (Checkout Started), order (Order Completed).
   */
  funnel: { sessions: number; listing: number; product: number; cart: number; checkout: number; order: number };
}

/** The funnel step each event name marks (the truth's statement of the rule). */
export const FUNNEL_STEP: Readonly<Record<string, 'listing' | 'product' | 'cart' | 'checkout' | 'order'>> = {
  'Product List Viewed': 'listing',
  'Products Searched': 'listing',
  'Product Viewed': 'product',
  'Product Clicked': 'product',
  'Product Added': 'cart',
  'Cart Viewed': 'cart',
  'Checkout Started': 'checkout',
  'Order Completed': 'order',
};

export interface TruthCounts {
  filtered: HourCounts;
  bots: HourCounts;
  merchants: Record<string, MerchantCounts>;
  /** events.rejected by code, every merchant. */
  rejected: Record<string, number>;
  rejectedByStage: Record<RejectStage, Record<string, number>>;
  /** Messages dropped as re-sends of a messageId already seen. */
  duplicatesDropped: number;
  /** Order Completed events dropped because their order_id was seen before (under another messageId). */
  orderResendsDropped: number;
}

interface SessionState {
  last: number;
  seq: number;
  client: string | null;
  /** Identifies the session: the visitor and its first event's time (or the client's id). */
  id: string;
}

const DEFAULT_SESSION_TIMEOUT_MS = 30 * 60_000;

/** The hour bucket of an epoch-ms time: `YYYY-MM-DDTHH` (UTC). */
export function hourOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 13);
}

function inc(map: Record<string, number>, key: string, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

function incHour(counts: HourCounts, merchantId: string, event: string, hour: string): void {
  const byEvent = (counts[merchantId] ??= {});
  inc((byEvent[event] ??= {}), hour);
}

function nonEmptyString(v: unknown): string | null {
  if (typeof v === 'string') return v === '' ? null : v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  return null;
}

const TRACK_NAMES: Record<string, string> = {
  'Products Searched': 'Products Searched',
  'Product List Viewed': 'Product List Viewed',
  'Product Clicked': 'Product Clicked',
  'Product Viewed': 'Product Viewed',
  'Product Added': 'Product Added',
  'Product Removed': 'Product Removed',
  'Cart Viewed': 'Cart Viewed',
  'Checkout Started': 'Checkout Started',
  'Order Completed': 'Order Completed',
};

/** The canonical event name of a valid simulator message (the simulator sends canonical names only). */
function eventName(m: Record<string, unknown>): string {
  if (m['type'] === 'page') return 'Page Viewed';
  if (m['type'] === 'identify') return 'Identify';
  const name = TRACK_NAMES[String(m['event'])];
  if (name === undefined) throw new Error(`truth: the message ${String(m['messageId'])} has the event ${JSON.stringify(m['event'])}, which the simulator never sends as a valid event`);
  return name;
}

/** Applies the pipeline's rules to the messages; see the module comment. */
export function computeTruth(input: TruthInput): TruthCounts {
  const timeout = input.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
  const validated = new Set(input.validated.map((v) => `${v.merchantId}\u0000${v.anonymousId}`));
  const out: TruthCounts = {
    filtered: {},
    bots: {},
    merchants: {},
    rejected: {},
    rejectedByStage: { collector: {}, pipeline: {} },
    duplicatesDropped: 0,
    orderResendsDropped: 0,
  };
  const currencies = new Map<string, string>();
  for (const m of input.merchants) {
    currencies.set(m.id, m.currency);
    out.merchants[m.id] = { currency: m.currency, orders: 0, revenueMinor: 0, sessions: 0, humanEvents: 0, botEvents: 0, botsByReason: { user_agent: 0, not_validated: 0 }, rejected: {}, funnel: { sessions: 0, listing: 0, product: 0, cart: 0, checkout: 0, order: 0 } };
    out.filtered[m.id] = {};
    out.bots[m.id] = {};
  }
  const seenMessages = new Set<string>();
  const seenOrders = new Set<string>();
  const sessions = new Map<string, SessionState>();
  const stepsOf = new Map<string, Set<string>>();

  for (const e of input.events) {
    const mc = out.merchants[e.merchantId];
    if (mc === undefined) throw new Error(`truth: unknown merchant ${e.merchantId}`);
    if (e.invalid !== undefined) {
      inc(out.rejected, e.invalid.code);
      inc(out.rejectedByStage[e.invalid.stage], e.invalid.code);
      inc(mc.rejected, e.invalid.code);
      continue;
    }
    const m = e.message;
    const name = eventName(m);
    const messageId = nonEmptyString(m['messageId'])!;
    const dk = `${e.merchantId}\u0000${messageId}`;
    if (seenMessages.has(dk)) {
      out.duplicatesDropped++;
      continue;
    }
    seenMessages.add(dk);
    const properties = (m['properties'] ?? {}) as Record<string, unknown>;
    if (name === 'Order Completed') {
      const ok = `${e.merchantId}\u0000${String(properties['order_id'])}`;
      if (seenOrders.has(ok)) {
        out.orderResendsDropped++;
        continue;
      }
      seenOrders.add(ok);
    }
    const anonymousId = nonEmptyString(m['anonymousId']);
    const visitor = anonymousId ?? `user:${nonEmptyString(m['userId'])}`;
    const timestamp = parseTimestamp(m['timestamp']);
    if (Number.isNaN(timestamp)) throw new Error(`truth: the message ${messageId} has no valid timestamp`);
    const context = (m['context'] ?? {}) as Record<string, unknown>;

    // Sessions: exactly the pipeline's sessionize().
    const client = nonEmptyString(context['sessionId']) ?? nonEmptyString(properties['session_id']);
    const s = sessions.get(visitor);
    let next: SessionState;
    if (client !== null) {
      next = s !== undefined && s.client === client ? { ...s, last: Math.max(s.last, timestamp), seq: s.seq + 1 } : { last: timestamp, seq: 1, client, id: `${visitor}\u0000${client}` };
    } else if (s === undefined || s.client !== null || timestamp - s.last > timeout) {
      next = { last: timestamp, seq: 1, client: null, id: `${visitor}\u0000${timestamp}` };
    } else {
      next = { ...s, last: Math.max(s.last, timestamp), seq: s.seq + 1 };
    }
    sessions.set(visitor, next);

    const ua = typeof context['userAgent'] === 'string' ? context['userAgent'] : null;
    const hour = hourOf(timestamp);
    if (ua !== null && isbot(ua)) {
      incHour(out.bots, e.merchantId, name, hour);
      mc.botEvents++;
      mc.botsByReason.user_agent++;
      continue;
    }
    if (anonymousId === null || !validated.has(`${e.merchantId}\u0000${anonymousId}`)) {
      incHour(out.bots, e.merchantId, name, hour);
      mc.botEvents++;
      mc.botsByReason.not_validated++;
      continue;
    }
    incHour(out.filtered, e.merchantId, name, hour);
    mc.humanEvents++;
    if (next.seq === 1) {
      mc.sessions++;
      mc.funnel.sessions++;
    }
    const step = FUNNEL_STEP[name];
    if (step !== undefined) {
      const reached = (stepsOf.get(`${e.merchantId}\u0000${next.id}`) ?? stepsOf.set(`${e.merchantId}\u0000${next.id}`, new Set()).get(`${e.merchantId}\u0000${next.id}`))!;
      if (!reached.has(step)) {
        reached.add(step);
        mc.funnel[step]++;
      }
    }
    if (name === 'Order Completed') {
      const currency = typeof properties['currency'] === 'string' ? properties['currency'].toUpperCase() : currencies.get(e.merchantId)!;
      const minor = minorUnits(properties['total'], currencyExponent(currency) ?? 2);
      if (!Number.isSafeInteger(minor)) throw new Error(`truth: order ${String(properties['order_id'])} has a total that is not money`);
      mc.orders++;
      mc.revenueMinor += minor;
    }
  }
  return out;
}
