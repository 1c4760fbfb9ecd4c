/**
 * The plan of a simulation: every HTTP action to send to the collector, in order, and the ground
 * truth of what the pipeline must write for them. Pure and deterministic for its options (with a
 * fixed `endTime`); run.ts sends the actions. See docs/simulator.md.
 */
import { currencyExponent } from '../contract/currencies.ts';
import { generateMerchant, type GenEvent, type MerchantModelStats, type VisitorClass } from './model.ts';
import { resolveRecs, type PlannedWidget, type RecsOptions, type ResolvedRecs, type WidgetOutcome } from './react.ts';
import { hash32 } from './rng.ts';
import { computeTruth, type HourCounts, type MerchantCounts, type RejectStage, type TruthCounts, type TruthEvent } from './truth.ts';

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
  /**
   * Seed of each merchant's catalogue, popularity ranking and bundles. Default: drawn from `seed`.
   * Plans with different seeds and the same catalogue seed send different shoppers to the same shops
   * (a history, then an experiment).
   */
  catalogueSeed?: number;
  /**
   * Shoppers react to the recommendations they are shown (react.ts, docs/simulator.md): each human
   * product view shows a widget; runSimulation asks the recommendations API for it and sends the
   * exposure, the click and the purchase that follow. `true` takes every default. Default off: the
   * plan and its truth are then those of earlier versions, byte for byte.
   */
  recs?: RecsOptions | boolean;
}

export type SimAction =
  /**
   * POST /v1/batch with HTTP Basic auth (the write key). With `recs`, `widgets` are asked for just
   * before the batch is sent, and their messages are inserted at their place (react.ts).
   */
  | { kind: 'batch'; lane: number; writeKey: string; body: { batch: Array<Record<string, unknown>> }; widgets?: PlannedWidget[] }
  /** GET /v1/beacon/challenge, then POST /v1/beacon/validate, with that User-Agent header. */
  | { kind: 'beacon'; lane: number; writeKey: string; anonymousId: string; userAgent: string };

export type ResolvedParams = Required<Omit<SimulationOptions, 'merchants' | 'catalogueSeed' | 'recs'>> & {
  merchants: Array<{ id: string; currency: string }>;
  /** Only when given. */
  catalogueSeed?: number;
  /** Only when on. */
  recs?: ResolvedRecs;
};

/** A widget's figures in the truth (what was sent; see RecsTruth). */
export interface RecsCounts {
  /** Widgets planned (human product views), and those the API answered. */
  widgets: number;
  answered: number;
  /** Exposures sent (answers with at least one product to show), and those that showed a complement. */
  exposures: number;
  withComplement: number;
  clicks: number;
  /** Clicks on a product of the viewed product's bundle. */
  complementClicks: number;
  /** Orders of the clicked product with the product viewed, and their total in minor units. */
  orders: number;
  revenueMinor: number;
}

/**
 * The reactions to recommendations in a truth. Before the run (`settled: false`) nothing that
 * depends on the API's answers is in the truth's counts: they cover the other messages only. Once
 * settled with the run's outcomes (settleTruth), every count of the truth includes the widgets'
 * messages, as they were sent.
 */
export interface RecsTruth {
  settled: boolean;
  /** Totals; `byVariant` splits them by the variant the API assigned ("none" without an experiment or an answer). */
  merchants: Record<string, RecsCounts & { byVariant: Record<string, RecsCounts> }>;
  /** API calls that failed for good (nothing was shown). */
  failed: number;
}

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
  /** With `recs` only. */
  recs?: RecsTruth;
}

/** What settleTruth needs to add the widgets' messages to the truth. */
export interface RecsPlan {
  options: ResolvedRecs;
  /** Every message in send order, with the widgets' plan ids where their messages go. */
  sequence: Array<TruthEvent | number>;
  validated: Array<{ merchantId: string; anonymousId: string }>;
  widgets: PlannedWidget[];
}

export interface SimulationPlan {
  actions: SimAction[];
  truth: GroundTruth;
  /** With `recs` only. */
  recs?: RecsPlan;
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
  // Only when given, so that the params (and the truth) of other plans stay as they were.
  if (o.catalogueSeed !== undefined) {
    if (!Number.isInteger(o.catalogueSeed)) throw new Error('simulate: catalogueSeed must be an integer');
    p.catalogueSeed = o.catalogueSeed;
  }
  if (o.recs !== undefined && o.recs !== false) p.recs = resolveRecs(o.recs);
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
  /** Messages in `events` (widgets left out: they do not move the batches' bounds). */
  messages: number;
  /** When its first message came (the last batches are sent in that order; widgets move nothing). */
  first: number;
}

/** Plans a simulation: the actions to send, in order, and the truth of what the pipeline must write. */
export function planSimulation(o: SimulationOptions): SimulationPlan {
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
      ...(p.catalogueSeed !== undefined && { catalogueSeed: p.catalogueSeed }),
      ...(p.recs !== undefined && { recs: p.recs }),
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
  const sequence: Array<TruthEvent | number> = [];
  const planned: PlannedWidget[] = [];
  const validated: Array<{ merchantId: string; anonymousId: string }> = [];
  const beaconed = new Set<string>();
  const open = new Map<string, OpenBatch>();
  const flush = (key: string, b: OpenBatch) => {
    open.delete(key);
    const batch: Array<Record<string, unknown>> = [];
    const widgets: PlannedWidget[] = [];
    for (const e of b.events) {
      if (e.widget !== undefined) {
        const w: PlannedWidget = { id: planned.length, at: batch.length, slot: e.widget };
        planned.push(w);
        widgets.push(w);
        sequence.push(w.id);
        continue;
      }
      batch.push(e.message);
      const t: TruthEvent = { merchantId: e.merchantId, message: e.message, ...(e.invalid !== undefined && { invalid: e.invalid }) };
      sent.push(t);
      sequence.push(t);
    }
    actions.push({ kind: 'batch', lane: b.lane, writeKey: b.writeKey, body: { batch }, ...(widgets.length > 0 && { widgets }) });
  };
  let seq = 0;
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
      b = { lane, writeKey, events: [], messages: 0, first: Infinity };
      open.set(key, b);
    }
    b.events.push(e);
    if (e.widget === undefined && b.messages++ === 0) b.first = seq;
    seq++;
    if (b.messages >= p.batchSize) flush(key, b);
  }
  for (const [key, b] of [...open].sort((x, y) => x[1].first - y[1].first)) flush(key, b);

  const counts = computeTruth({ merchants: p.merchants, events: sent, validated, sessionTimeoutMs: p.sessionTimeoutMs });
  let duplicates = 0;
  let orderResends = 0;
  let invalid = 0;
  for (const s of Object.values(generated)) {
    duplicates += s.duplicates;
    orderResends += s.orderResends;
    invalid += s.invalid;
  }
  const totalsVisitors: Record<VisitorClass, number> = { human: 0, crawler: 0, stealth_bot: 0 };
  for (const byId of Object.values(visitors)) for (const c of Object.values(byId)) totalsVisitors[c]++;
  const truth: GroundTruth = {
    v: 1,
    params: p,
    window: { start, end, startIso: new Date(start).toISOString(), endIso: new Date(end).toISOString() },
    ...countsPart(counts),
    duplicates,
    orderResends,
    visitors,
    bundles,
    totals: totalsOf(counts, { messages: sent.length, batches: actions.filter((a) => a.kind === 'batch').length, beacons: validated.length, visitors: totalsVisitors, invalid }),
    generated,
  };
  if (p.recs === undefined) return { actions, truth };
  truth.recs = recsTruth(p, planned, [], false);
  return { actions, truth, recs: { options: p.recs, sequence, validated, widgets: planned } };
}

function countsPart(counts: TruthCounts): Pick<GroundTruth, 'filtered' | 'bots' | 'merchants' | 'rejected' | 'rejectedByStage'> {
  return { filtered: counts.filtered, bots: counts.bots, merchants: counts.merchants, rejected: counts.rejected, rejectedByStage: counts.rejectedByStage };
}

/** The truth's totals (in the order of the truth file), from the counts and what the plan knows. */
function totalsOf(counts: TruthCounts, planned: Pick<GroundTruth['totals'], 'messages' | 'batches' | 'beacons' | 'visitors' | 'invalid'>): GroundTruth['totals'] {
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
  return {
    messages: planned.messages,
    batches: planned.batches,
    beacons: planned.beacons,
    visitors: planned.visitors,
    humanEvents,
    botEvents,
    invalid: planned.invalid,
    sessions,
    orders,
    conversion: sessions === 0 ? 0 : orders / sessions,
    botViewShare: humanViews + botViews === 0 ? 0 : botViews / (humanViews + botViews),
  };
}

const NO_VARIANT = 'none';

function emptyRecsCounts(): RecsCounts {
  return { widgets: 0, answered: 0, exposures: 0, withComplement: 0, clicks: 0, complementClicks: 0, orders: 0, revenueMinor: 0 };
}

function recsTruth(p: ResolvedParams, planned: readonly PlannedWidget[], outcomes: readonly WidgetOutcome[], settled: boolean): RecsTruth {
  const merchants: RecsTruth['merchants'] = {};
  for (const m of p.merchants) merchants[m.id] = { ...emptyRecsCounts(), byVariant: {} };
  for (const w of planned) merchants[w.slot.merchantId]!.widgets++;
  let failed = 0;
  for (const o of outcomes) {
    const m = merchants[o.merchantId]!;
    const v = (m.byVariant[o.variant ?? NO_VARIANT] ??= emptyRecsCounts());
    v.widgets++;
    if (o.error !== undefined) {
      failed++;
      continue;
    }
    for (const c of [m, v]) {
      c.answered++;
      if (o.shown.length > 0) c.exposures++;
      if (o.complements > 0) c.withComplement++;
      if (o.clicked !== null) c.clicks++;
      if (o.clickedComplement) c.complementClicks++;
      if (o.order !== null) {
        c.orders++;
        c.revenueMinor += o.order.totalMinor;
      }
    }
  }
  return { settled, merchants, failed };
}

/**
 * The truth of a plan with `recs` once it has run: the widgets' messages, as they were sent (the
 * run's `widgets` outcomes), go where they were sent, and every count is computed again with the
 * pipeline's rules. A widget without an outcome (not sent) sent nothing. Pure.
 */
export function settleTruth(plan: SimulationPlan, outcomes: readonly WidgetOutcome[]): GroundTruth {
  if (plan.recs === undefined) return plan.truth;
  const byId = new Map<number, WidgetOutcome>();
  for (const o of outcomes) {
    if (byId.has(o.id)) throw new Error(`simulate: widget ${o.id} has two outcomes`);
    byId.set(o.id, o);
  }
  const p = plan.truth.params;
  const events: TruthEvent[] = [];
  for (const x of plan.recs.sequence) {
    if (typeof x !== 'number') {
      events.push(x);
      continue;
    }
    const o = byId.get(x);
    if (o !== undefined) for (const message of o.messages) events.push({ merchantId: o.merchantId, message });
  }
  const counts = computeTruth({ merchants: p.merchants, events, validated: plan.recs.validated, sessionTimeoutMs: p.sessionTimeoutMs });
  const t = plan.truth;
  return {
    ...t,
    ...countsPart(counts),
    totals: totalsOf(counts, { ...t.totals, messages: events.length }),
    recs: recsTruth(p, plan.recs.widgets, [...byId.values()].sort((a, b) => a.id - b.id), true),
  };
}
