/**
 * The cubes' data model: what one pipeline event adds to the cubes. Pure functions and a batch of
 * deltas; no I/O. The writer (writer.ts) fills a batch from events.filtered and events.bots and
 * commits it to a store (store.ts) together with the input offsets.
 *
 * Tables (docs/cubes.md):
 * - events:   (grain, merchant, bucket, event_type, device, country, source, channel, currency) →
 *             events, sessions, orders, items, revenue, bot_events. Additive.
 * - visitors: (grain, merchant, bucket, slot, device, country, source, channel) → HyperLogLog sketch.
 *             One row per input partition (slot): a writer owns its partitions, so it merges
 *             sketches without contention; queries merge the partitions' sketches.
 * - products: (merchant, quarter, product_id, currency) → views, adds, purchases, revenue. Additive.
 * - funnel:   (merchant, quarter of the session start, device, country, source, channel) →
 *             sessions, listing, product, cart, checkout, order. Additive; a session counts once per step.
 * - sessions: per session, the steps reached (the funnel's state).
 *
 * Buckets are epoch minutes (grain `m`) and quarter hours (grain `q`, 15 minutes). Every time zone
 * in use today is offset from UTC by a multiple of 15 minutes, so hours and days in a merchant's
 * time zone are exact sums of quarter-hour buckets.
 */
import { orderAmount, type CanonicalEvent, type EventContext } from '../contract/index.ts';
import { SERVER_LIBRARIES } from '../contract/normalize.ts';
import type { PipelineEvent } from '../pipeline/topology.ts';

export type Grain = 'm' | 'q';
export const MINUTE_MS = 60_000;
export const QUARTER_MS = 15 * MINUTE_MS;

export const FUNNEL_STEPS = ['listing', 'product', 'cart', 'checkout', 'order'] as const;
export type FunnelStep = (typeof FUNNEL_STEPS)[number];

/** The event names that mark a session as having reached a funnel step. */
const STEP_OF: Readonly<Record<string, number>> = {
  'Product List Viewed': 0,
  'Products Searched': 0,
  'Product Viewed': 1,
  'Product Clicked': 1,
  'Product Added': 2,
  'Cart Viewed': 2,
  'Checkout Started': 3,
  'Order Completed': 4,
};

export type Channel = 'web' | 'mobile_app' | 'server';
const MOBILE_LIBRARIES = new Set(['analytics-ios', 'analytics-android', 'analytics-react-native', 'analytics-flutter', 'analytics-kotlin', 'analytics-swift']);

/** Where an event was sent from: a server library, a mobile app library, else the web. */
export function channelOf(context: EventContext): Channel {
  const name = context.library?.name?.toLowerCase();
  if (name !== undefined) {
    if (SERVER_LIBRARIES.has(name)) return 'server';
    if (MOBILE_LIBRARIES.has(name)) return 'mobile_app';
  }
  return 'web';
}

/** Dimension values of an event, as stored ('' for unknown). */
export interface Dims {
  device: string;
  country: string;
  source: string;
  channel: string;
}

export function dimsOf(p: PipelineEvent): Dims {
  return {
    device: p.enrichment.device.type,
    country: p.enrichment.country ?? '',
    source: p.enrichment.trafficSource,
    channel: channelOf(p.event.context),
  };
}

export interface EventMeasures {
  events: number;
  sessions: number;
  orders: number;
  items: number;
  revenue: number;
  botEvents: number;
}

export interface ProductMeasures {
  views: number;
  adds: number;
  purchases: number;
  revenue: number;
}

export interface FunnelMeasures {
  sessions: number;
  steps: number[];
}

/** What the funnel remembers of a session. */
export interface SessionState {
  merchant: string;
  visitor: string;
  sessionId: string;
  /** Quarter-hour bucket of the session's first event. */
  quarter: number;
  dims: Dims;
  /** Bit i set: step i reached. */
  mask: number;
  lastMs: number;
}

/**
 * The key of a row in a batch's maps: its key columns as a JSON array. Never split on a separator:
 * product and session ids are the client's text and may contain any character.
 */
export function rowKey(parts: ReadonlyArray<string | number>): string {
  return JSON.stringify(parts);
}

export function parseKey(key: string): Array<string | number> {
  return JSON.parse(key) as Array<string | number>;
}

/** Client text used as a key column: no NUL (PostgreSQL refuses it), at most 256 characters (index rows are bounded). */
export function cleanId(s: string): string {
  const t = s.includes('\u0000') ? s.replaceAll('\u0000', '') : s;
  return t.length > 256 ? t.slice(0, 256) : t;
}

export function bucketOf(grain: Grain, ms: number): number {
  return Math.floor(ms / (grain === 'm' ? MINUTE_MS : QUARTER_MS));
}

/** The currency an event's money is in ('' for events without money). */
export function currencyOf(e: CanonicalEvent): string {
  if (e.type === 'identify') return '';
  const p = e.properties as { currency?: unknown };
  return typeof p.currency === 'string' ? p.currency : '';
}

/** Sessions are keyed by visitor too: client session ids may collide across visitors, and the visitor is the partition key (one writer per row). */
export function sessionKey(merchant: string, visitor: string, sessionId: string): string {
  return rowKey([merchant, cleanId(visitor), cleanId(sessionId)]);
}

/**
 * The deltas of a batch of events, per table, keyed by the row's key columns (`rowKey`). The
 * funnel needs each session's earlier state: `sessionState` gives it (the writer loads the states
 * of a batch's sessions before it adds the batch's events).
 */
export class CubeBatch {
  readonly events = new Map<string, EventMeasures>();
  readonly visitors = new Map<string, Set<string>>();
  readonly products = new Map<string, ProductMeasures>();
  readonly funnel = new Map<string, FunnelMeasures>();
  /** Sessions changed by this batch (new or with new steps). */
  readonly sessions = new Map<string, SessionState>();
  /** Input positions: next offset per `topic\0partition`. */
  readonly offsets = new Map<string, { topic: string; partition: number; from: number; to: number }>();
  size = 0;

  private readonly sessionState: (key: string) => SessionState | undefined;

  constructor(sessionState: (key: string) => SessionState | undefined) {
    this.sessionState = sessionState;
  }

  /** Moves the batch's end offset of an input partition (every consumed record, used or not). */
  consumed(topic: string, partition: number, offset: number, committed: number): void {
    const k = topic + '\u0000' + partition;
    const o = this.offsets.get(k);
    if (o === undefined) this.offsets.set(k, { topic, partition, from: committed, to: offset + 1 });
    else o.to = offset + 1;
  }

  /** A human event of events.filtered, read from input partition `slot`. */
  addHuman(p: PipelineEvent, slot: number): void {
    this.size++;
    const e = p.event;
    const d = dimsOf(p);
    const currency = currencyOf(e);
    let orders = 0;
    let items = 0;
    let revenue = 0;
    if (e.event === 'Order Completed') {
      orders = 1;
      for (const line of e.properties.products) items += line.quantity;
      revenue = orderAmount(e);
    }
    const sessions = p.session.start ? 1 : 0;
    for (const grain of ['m', 'q'] as const) {
      const bucket = bucketOf(grain, e.timestamp);
      const ek = rowKey([grain, e.merchantId, bucket, e.event, d.device, d.country, d.source, d.channel, currency]);
      const m = this.events.get(ek);
      if (m === undefined) this.events.set(ek, { events: 1, sessions, orders, items, revenue, botEvents: 0 });
      else {
        m.events++;
        m.sessions += sessions;
        m.orders += orders;
        m.items += items;
        m.revenue += revenue;
      }
      const vk = rowKey([grain, e.merchantId, bucket, slot, d.device, d.country, d.source, d.channel]);
      let ids = this.visitors.get(vk);
      if (ids === undefined) this.visitors.set(vk, (ids = new Set()));
      ids.add(e.visitorId);
    }
    this.addProducts(e);
    this.addFunnel(p, d);
  }

  /** An event of events.bots: counted, not analysed further. */
  addBot(p: PipelineEvent): void {
    this.size++;
    const e = p.event;
    const d = dimsOf(p);
    const currency = currencyOf(e);
    for (const grain of ['m', 'q'] as const) {
      const ek = rowKey([grain, e.merchantId, bucketOf(grain, e.timestamp), e.event, d.device, d.country, d.source, d.channel, currency]);
      const m = this.events.get(ek);
      if (m === undefined) this.events.set(ek, { events: 0, sessions: 0, orders: 0, items: 0, revenue: 0, botEvents: 1 });
      else m.botEvents++;
    }
  }

  private product(merchant: string, quarter: number, productId: string, currency: string): ProductMeasures {
    const k = rowKey([merchant, quarter, cleanId(productId), currency]);
    let m = this.products.get(k);
    if (m === undefined) this.products.set(k, (m = { views: 0, adds: 0, purchases: 0, revenue: 0 }));
    return m;
  }

  private addProducts(e: CanonicalEvent): void {
    const quarter = bucketOf('q', e.timestamp);
    if (e.event === 'Product Viewed' || e.event === 'Product Added') {
      const id = e.properties.product_id ?? e.properties.sku;
      if (id === null) return;
      const m = this.product(e.merchantId, quarter, id, e.properties.currency);
      if (e.event === 'Product Viewed') m.views++;
      else m.adds++;
    } else if (e.event === 'Order Completed') {
      for (const line of e.properties.products) {
        const id = line.product_id ?? line.sku;
        if (id === null) continue;
        const m = this.product(e.merchantId, quarter, id, e.properties.currency);
        m.purchases += line.quantity;
        m.revenue += (line.price ?? 0) * line.quantity;
      }
    }
  }

  private addFunnel(p: PipelineEvent, d: Dims): void {
    const e = p.event;
    const step = STEP_OF[e.event];
    const key = sessionKey(e.merchantId, e.visitorId, p.session.id);
    let s = this.sessions.get(key) ?? this.sessionState(key);
    if (p.session.start || s === undefined) {
      // A session seen for the first time (its start may precede the cubes' history: then it is
      // not counted as a session, only its steps).
      s = { merchant: e.merchantId, visitor: cleanId(e.visitorId), sessionId: cleanId(p.session.id), quarter: bucketOf('q', e.timestamp), dims: d, mask: 0, lastMs: e.timestamp };
      if (p.session.start) this.funnelRow(s).sessions++;
    } else {
      s = { ...s, lastMs: Math.max(s.lastMs, e.timestamp) };
    }
    if (step !== undefined && (s.mask & (1 << step)) === 0) {
      s.mask |= 1 << step;
      this.funnelRow(s).steps[step]!++;
    }
    this.sessions.set(key, s);
  }

  private funnelRow(s: SessionState): FunnelMeasures {
    const k = rowKey([s.merchant, s.quarter, s.dims.device, s.dims.country, s.dims.source, s.dims.channel]);
    let m = this.funnel.get(k);
    if (m === undefined) this.funnel.set(k, (m = { sessions: 0, steps: [0, 0, 0, 0, 0] }));
    return m;
  }
}
