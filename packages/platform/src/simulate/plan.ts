/**
 * The plan of a simulation: every HTTP action to send to the collector, in order, and the ground
 * truth of what the pipeline must write for them. Pure and deterministic for its options (with a
 * fixed `endTime`); run.ts sends the actions. See docs/simulator.md.
 */
import { currencyExponent } from '../contract/currencies.ts';
import { generateMerchant, type GenEvent, type MerchantModelStats, type VisitorClass } from './model.ts';
import { hash32 } from './rng.ts';
import { computeTruth, type HourCounts, type MerchantCounts, type RejectStage, type TruthEvent } from './truth.ts';

export type { VisitorClass } from './model.ts';

export interface SimulationOptions {
  seed?: number;
  merchants: Array<{ id: string; writeKey: string; currency: string }>;
  /** Human visitors per merchant (bots come on top, see botShare). Default 500. */
  visitorsPerMerchant?: number;
  /** Products in each merchant's catalogue. Default 300. */
  products?: number;
  /** Length of the event-time window, ending at endTime. Default 3. */
  hours?: number;
  /** End of the event-time window, epoch ms. Default now. */
  endTime?: number;
  /** Share of page and product views (Page Viewed + Product Viewed) made by bots. Default 0.4. */
  botShare?: number;
  /** Share of messages re-sent unchanged (same messageId) later. Default 0.01. */
  duplicateRate?: number;
  /** Share of messages next to which an invalid one is sent. Default 0.005. */
  invalidRate?: number;
  /** Share of orders re-sent under a new messageId (at least one per merchant with orders). Default 0.003. */
  orderResendRate?: number;
  /** Share of messages sent 5–120 s after their time (out of order within the visitor's stream). Default 0.03. */
  outOfOrderRate?: number;
  /** Share of messages sent 2–10 min after their time. Default 0.01. */
  lateRate?: number;
  /** Share of human visitors whose messages carry a client `context.sessionId`. Default 0.25. */
  clientSessionShare?: number;
  /** Events per HTTP batch. Default 50. */
  batchSize?: number;
  /** Lanes: each visitor's actions go to one lane (by hash); run.ts sends each lane in order. Default 4. */
  lanes?: number;
  /** The pipeline's sessionTimeoutMs, for the truth. Default 30 min. */
  sessionTimeoutMs?: number;
  /** Zipf exponent of product popularity. Default 1.1. */
  zipfS?: number;
}

export type SimAction =
  /** POST /v1/batch with HTTP Basic auth (the write key). */
  | { kind: 'batch'; lane: number; writeKey: string; body: { batch: Array<Record<string, unknown>> } }
  /** GET /v1/beacon/challenge, then POST /v1/beacon/validate, with that User-Agent header. */
  | { kind: 'beacon'; lane: number; writeKey: string; anonymousId: string; userAgent: string };

export type ResolvedParams = Required<Omit<SimulationOptions, 'merchants'>> & { merchants: Array<{ id: string; currency: string }> };

export interface GroundTruth {
  v: 1;
  /** The options used (write keys left out). */
  params: ResolvedParams;
  /** The event-time window, epoch ms and ISO. */
  window: { start: number; end: number; startIso: string; endIso: string };
  /** events.filtered: merchant → event name → hour (UTC, YYYY-MM-DDTHH) → count. */
  filtered: HourCounts;
  /** events.bots, the same way. */
  bots: HourCounts;
  /** Per merchant: orders, revenueMinor, sessions, currency, and event counts. */
  merchants: Record<string, MerchantCounts>;
  /** events.rejected by code, every merchant. */
  rejected: Record<string, number>;
  /** The same, split by the stage that refuses: the collector (envelope) or the pipeline (contract). */
  rejectedByStage: Record<RejectStage, Record<string, number>>;
  /** Exact re-sends (same messageId) generated: they appear nowhere. */
  duplicates: number;
  /** Orders re-sent under a new messageId: they appear nowhere. */
  orderResends: number;
  /** merchant → anonymousId → class. */
  visitors: Record<string, Record<string, VisitorClass>>;
  /** merchant → the hidden co-purchase bundles (product ids). */
  bundles: Record<string, string[][]>;
  totals: {
    messages: number;
    batches: number;
    beacons: number;
    visitors: Record<VisitorClass, number>;
    humanEvents: number;
    botEvents: number;
    invalid: number;
    sessions: number;
    orders: number;
    /** orders / sessions (human). */
    conversion: number;
    /** Bot share of Page Viewed + Product Viewed in the truth. */
    botViewShare: number;
  };
  /** What the model generated per merchant, before delivery (diagnostics). */
  generated: Record<string, MerchantModelStats>;
}

const HOUR = 3_600_000;

export function resolveOptions(o: SimulationOptions): ResolvedParams {
  if (!Array.isArray(o.merchants) || o.merchants.length === 0) throw new Error('simulate: at least one merchant is needed');
  const ids = new Set<string>();
  for (const m of o.merchants) {
    if (ids.has(m.id)) throw new Error(`simulate: merchant ${m.id} is given twice`);
    ids.add(m.id);
    if (currencyExponent(m.currency) === undefined) throw new Error(`simulate: merchant ${m.id}: ${m.currency} is not an ISO 4217 currency`);
  }
  const p: ResolvedParams = {
    seed: o.seed ?? 1,
    merchants: o.merchants.map((m) => ({ id: m.id, currency: m.currency })),
    visitorsPerMerchant: o.visitorsPerMerchant ?? 500,
    products: o.products ?? 300,
    hours: o.hours ?? 3,
    endTime: Math.floor(o.endTime ?? Date.now()),
    botShare: o.botShare ?? 0.4,
    duplicateRate: o.duplicateRate ?? 0.01,
    invalidRate: o.invalidRate ?? 0.005,
    orderResendRate: o.orderResendRate ?? 0.003,
    outOfOrderRate: o.outOfOrderRate ?? 0.03,
    lateRate: o.lateRate ?? 0.01,
    clientSessionShare: o.clientSessionShare ?? 0.25,
    batchSize: o.batchSize ?? 50,
    lanes: o.lanes ?? 4,
    sessionTimeoutMs: o.sessionTimeoutMs ?? 30 * 60_000,
    zipfS: o.zipfS ?? 1.1,
  };
  if (!(p.hours > 0)) throw new Error('simulate: hours must be positive');
  if (!(p.botShare >= 0 && p.botShare < 1)) throw new Error('simulate: botShare must be in [0, 1)');
  if (!(Number.isInteger(p.batchSize) && p.batchSize >= 1 && p.batchSize <= 2500)) throw new Error('simulate: batchSize must be an integer in 1..2500');
  if (!(Number.isInteger(p.lanes) && p.lanes >= 1)) throw new Error('simulate: lanes must be a positive integer');
  if (!(Number.isInteger(p.visitorsPerMerchant) && p.visitorsPerMerchant >= 0)) throw new Error('simulate: visitorsPerMerchant must be a whole number');
  if (!(Number.isInteger(p.products) && p.products >= 5)) throw new Error('simulate: products must be at least 5');
  return p;
}

/** The lane of a visitor: all its actions go to this one, so that they are sent in order. */
export function laneOf(merchantId: string, anonymousId: string, lanes: number): number {
  return hash32(`${merchantId}\u0000${anonymousId}`) % lanes;
}

interface OpenBatch {
  lane: number;
  writeKey: string;
  events: GenEvent[];
}

/** Plans a simulation: the actions to send, in order, and the truth of what the pipeline must write. */
export function planSimulation(o: SimulationOptions): { actions: SimAction[]; truth: GroundTruth } {
  const p = resolveOptions(o);
  const end = p.endTime;
  const start = end - Math.round(p.hours * HOUR);
  const merchantIndex = new Map(o.merchants.map((m, i) => [m.id, i]));
  const writeKeys = new Map(o.merchants.map((m) => [m.id, m.writeKey]));

  const all: GenEvent[] = [];
  const visitors: Record<string, Record<string, VisitorClass>> = {};
  const bundles: Record<string, string[][]> = {};
  const generated: Record<string, MerchantModelStats> = {};
  const humanUserAgents = new Map<string, string>();
  for (const m of p.merchants) {
    const model = generateMerchant({
      merchantId: m.id,
      currency: m.currency,
      seed: hash32(`${p.seed}\u0000${m.id}`),
      humans: p.visitorsPerMerchant,
      products: p.products,
      start,
      end,
      botShare: p.botShare,
      duplicateRate: p.duplicateRate,
      invalidRate: p.invalidRate,
      orderResendRate: p.orderResendRate,
      outOfOrderRate: p.outOfOrderRate,
      lateRate: p.lateRate,
      clientSessionShare: p.clientSessionShare,
      zipfS: p.zipfS,
    });
    all.push(...model.events);
    visitors[m.id] = model.visitors;
    bundles[m.id] = model.bundles;
    generated[m.id] = model.stats;
    for (const [id, ua] of model.humanUserAgents) humanUserAgents.set(`${m.id}\u0000${id}`, ua);
  }
  // Send order: by virtual send time (the sort is stable: ties keep generation order).
  all.sort((a, b) => a.sendAt - b.sendAt || merchantIndex.get(a.merchantId)! - merchantIndex.get(b.merchantId)!);

  const actions: SimAction[] = [];
  const sent: TruthEvent[] = [];
  const validated: Array<{ merchantId: string; anonymousId: string }> = [];
  const beaconed = new Set<string>();
  const open = new Map<string, OpenBatch>();
  const flush = (key: string, b: OpenBatch) => {
    open.delete(key);
    actions.push({ kind: 'batch', lane: b.lane, writeKey: b.writeKey, body: { batch: b.events.map((e) => e.message) } });
    for (const e of b.events) sent.push({ merchantId: e.merchantId, message: e.message, ...(e.invalid !== undefined && { invalid: e.invalid }) });
  };
  for (const e of all) {
    const lane = laneOf(e.merchantId, e.anonymousId, p.lanes);
    const writeKey = writeKeys.get(e.merchantId)!;
    const visitorKey = `${e.merchantId}\u0000${e.anonymousId}`;
    if (e.cls === 'human' && !beaconed.has(visitorKey)) {
      // The beacon runs as the visitor's first page loads: before the batch with its first message.
      beaconed.add(visitorKey);
      actions.push({ kind: 'beacon', lane, writeKey, anonymousId: e.anonymousId, userAgent: humanUserAgents.get(visitorKey)! });
      validated.push({ merchantId: e.merchantId, anonymousId: e.anonymousId });
    }
    const key = `${e.merchantId}\u0000${lane}`;
    let b = open.get(key);
    if (b === undefined) {
      b = { lane, writeKey, events: [] };
      open.set(key, b);
    }
    b.events.push(e);
    if (b.events.length >= p.batchSize) flush(key, b);
  }
  for (const [key, b] of [...open]) flush(key, b);

  const counts = computeTruth({ merchants: p.merchants, events: sent, validated, sessionTimeoutMs: p.sessionTimeoutMs });
  const totalsVisitors: Record<VisitorClass, number> = { human: 0, crawler: 0, stealth_bot: 0 };
  for (const byId of Object.values(visitors)) for (const c of Object.values(byId)) totalsVisitors[c]++;
  let humanEvents = 0;
  let botEvents = 0;
  let sessions = 0;
  let orders = 0;
  for (const m of Object.values(counts.merchants)) {
    humanEvents += m.humanEvents;
    botEvents += m.botEvents;
    sessions += m.sessions;
    orders += m.orders;
  }
  const viewsOf = (c: HourCounts) => {
    let n = 0;
    for (const byEvent of Object.values(c)) for (const name of ['Page Viewed', 'Product Viewed']) for (const v of Object.values(byEvent[name] ?? {})) n += v;
    return n;
  };
  const humanViews = viewsOf(counts.filtered);
  const botViews = viewsOf(counts.bots);
  let duplicates = 0;
  let orderResends = 0;
  let invalid = 0;
  for (const s of Object.values(generated)) {
    duplicates += s.duplicates;
    orderResends += s.orderResends;
    invalid += s.invalid;
  }
  const truth: GroundTruth = {
    v: 1,
    params: p,
    window: { start, end, startIso: new Date(start).toISOString(), endIso: new Date(end).toISOString() },
    filtered: counts.filtered,
    bots: counts.bots,
    merchants: counts.merchants,
    rejected: counts.rejected,
    rejectedByStage: counts.rejectedByStage,
    duplicates,
    orderResends,
    visitors,
    bundles,
    totals: {
      messages: sent.length,
      batches: actions.filter((a) => a.kind === 'batch').length,
      beacons: validated.length,
      visitors: totalsVisitors,
      humanEvents,
      botEvents,
      invalid,
      sessions,
      orders,
      conversion: sessions === 0 ? 0 : orders / sessions,
      botViewShare: humanViews + botViews === 0 ? 0 : botViews / (humanViews + botViews),
    },
    generated,
  };
  return { actions, truth };
}
