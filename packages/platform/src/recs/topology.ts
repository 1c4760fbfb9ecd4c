/**
 * The recs topology: `events.filtered` → the two models' entries on `recs.model`, and each
 * visitor's recent products on `recs.visitors` (docs/recommendations.md, "Topology and API").
 *
 *   visitor stage (keyed by visitor, co-partitioned with events.filtered): carts and sessions in
 *   stores; each event becomes model updates (models.ts: an order's pairs, a cart add's pairs, a
 *   session's pairs with distance weights), popularity updates, and the visitor's recent views and
 *   purchases (for personalised answers)
 *   → repartition by model key (`f|merchant|product`, `o|merchant|product`, `p|merchant`)
 *   → model stage: applies each update to its entry (a store with a changelog) and writes the
 *     entry to `recs.model`, a compacted topic that every API instance reads into memory.
 *
 * Exactly-once like every topology of the engine: the entries, the carts and sessions, and the
 * outputs commit with the input offsets, so a crash neither loses nor repeats an update.
 */
import { Serdes, Stores, StreamsBuilder, type KeyValueStore, type Processor, type ProcessorContext, type Record as StreamRecord, type Topology } from '@shopstream/streams';
import type { CanonicalEvent } from '../contract/index.ts';
import type { PipelineEvent } from '../pipeline/topology.ts';
import type { TopicNames } from '../topics.ts';
import { applyCoUpdate, checkCoConfig, type CoItemState, type CoUpdate } from './cooccurrence.ts';
import { cartAdd, cartRemove, DEFAULT_FBT, DEFAULT_OYML, orderUpdates, sessionEvent, type CartState, type FbtConfig, type OymlConfig, type SessionState } from './models.ts';
import { DEFAULT_POPULARITY, popularityAdd, type PopularityConfig, type PopularityState } from './popularity.ts';
import { applyEvent, assignVariant, eventRole, newVisitorState, visitorSummary, type AttributionConfig, type Experiment, type SummaryRow, type VisitorState } from '../experiments/index.ts';

/** An experiment the topology keeps figures for: a merchant's, with its attribution rules. */
export interface RunningExperiment {
  experiment: Experiment;
  merchant: string;
  attribution: AttributionConfig;
  /** Events with an earlier event time (epoch ms) do not count. */
  startsAt?: number;
}

export interface RecsTopologyOptions {
  fbt?: Partial<FbtConfig>;
  oyml?: Partial<OymlConfig>;
  popularity?: PopularityConfig;
  /** Products kept per visitor: recent views and recent purchases. Default 20 and 50. */
  visitorViews?: number;
  visitorPurchases?: number;
  /** Carts and sessions are forgotten after this long without an event. Default 2 days. */
  sessionTtlMs?: number;
  /** Experiments to keep each visitor's figures for (docs/experiments.md). */
  experiments?: readonly RunningExperiment[];
}

/** A visitor's recent products, newest last: `[productId, event time]`. The value of `recs.visitors`. */
export interface VisitorRecent {
  views: Array<[string, number]>;
  bought: Array<[string, number]>;
}

/** What the model stage applies: a co-occurrence update, or products to count as popular. */
type ModelUpdate = { u: CoUpdate } | { pop: string[]; at: number };
type VisitorOut = { kind: 'update'; update: ModelUpdate } | { kind: 'visitor'; recent: VisitorRecent };

export const RECS_STORES = { carts: 'recs-carts', sessions: 'recs-sessions', visitors: 'recs-visitor-recent', model: 'recs-model', experiments: 'recs-experiment-visitors' } as const;

/** The key of a visitor's figures in an experiment, on recs.experiments. */
export const experimentVisitorKey = (merchant: string, experiment: string, visitor: string): string => `${merchant}|${experiment}|${visitor}`;

/** Model keys: the model (f: frequently bought together, o: others you may like, p: popular), the merchant, the product. */
export const modelKey = (model: 'f' | 'o', merchant: string, product: string): string => `${model}|${merchant}|${product}`;
export const popularKey = (merchant: string): string => `p|${merchant}`;
export const visitorKey = (merchant: string, visitor: string): string => `${merchant}|${visitor}`;

/** The product id of a product: `product_id`, else `sku`. */
export function productIdOf(p: { product_id: string | null; sku: string | null }): string | null {
  return p.product_id ?? p.sku ?? null;
}

interface Resolved {
  fbt: FbtConfig;
  oyml: OymlConfig;
  popularity: PopularityConfig;
  visitorViews: number;
  visitorPurchases: number;
  sessionTtlMs: number;
  experiments: readonly RunningExperiment[];
}

export function recsDefaults(o: RecsTopologyOptions = {}): Resolved {
  const fbt = { ...DEFAULT_FBT, ...o.fbt };
  const oyml = { ...DEFAULT_OYML, ...o.oyml };
  checkCoConfig(fbt.co);
  checkCoConfig(oyml.co);
  return {
    fbt,
    oyml,
    popularity: o.popularity ?? DEFAULT_POPULARITY,
    visitorViews: o.visitorViews ?? 20,
    visitorPurchases: o.visitorPurchases ?? 50,
    sessionTtlMs: o.sessionTtlMs ?? 2 * 86_400_000,
    experiments: o.experiments ?? [],
  };
}

/** Calls `send` at each commit with the last value of every key the store wrote since the last one (before the commit's transaction, so the records are part of it). */
function forwardOnCommit<V>(store: KeyValueStore<string, V>, send: (key: string, value: V) => void): void {
  store.onCommit((key, value) => {
    if (value !== null) send(key, value);
  });
}

const ENGAGED = new Set(['Product Viewed', 'Product Clicked', 'Product Added']);

function pushRecent(list: Array<[string, number]>, id: string, at: number, max: number): void {
  const i = list.findIndex(([x]) => x === id);
  if (i >= 0) list.splice(i, 1);
  list.push([id, at]);
  if (list.length > max) list.splice(0, list.length - max);
}

class VisitorStage implements Processor<string, PipelineEvent, string, VisitorOut> {
  private ctx!: ProcessorContext<string, VisitorOut>;
  private carts!: KeyValueStore<string, CartState>;
  private sessions!: KeyValueStore<string, SessionState>;
  private visitors!: KeyValueStore<string, VisitorRecent>;
  private readonly o: Resolved;

  constructor(o: Resolved) {
    this.o = o;
  }

  init(ctx: ProcessorContext<string, VisitorOut>): void {
    this.ctx = ctx;
    this.carts = ctx.getStateStore(RECS_STORES.carts);
    this.sessions = ctx.getStateStore(RECS_STORES.sessions);
    this.visitors = ctx.getStateStore(RECS_STORES.visitors);
    // A visitor's recent products are published once per commit (the last value), not on every event.
    forwardOnCommit(this.visitors, (key, recent) => ctx.forward({ key, value: { kind: 'visitor', recent }, timestamp: Date.now(), headers: [] }));
  }

  private update(r: StreamRecord<string, PipelineEvent>, key: string, update: ModelUpdate): void {
    this.ctx.forward({ key, value: { kind: 'update', update }, timestamp: r.timestamp, headers: [] });
  }

  private co(r: StreamRecord<string, PipelineEvent>, model: 'f' | 'o', merchant: string, updates: readonly CoUpdate[]): void {
    for (const u of updates) this.update(r, modelKey(model, merchant, u.key), { u });
  }

  process(r: StreamRecord<string, PipelineEvent>): void {
    const pe = r.value;
    const e: CanonicalEvent = pe.event;
    if (e.type !== 'track') return;
    const m = e.merchantId;
    const at = e.timestamp;
    const sessionId = `${m}|${e.visitorId}|${pe.session.id}`;
    let recent: VisitorRecent | undefined;
    const vkey = visitorKey(m, e.visitorId);
    if (e.event === 'Order Completed') {
      const ids = e.properties.products.map(productIdOf).filter((x): x is string => x !== null);
      this.co(r, 'f', m, orderUpdates(ids, at, this.o.fbt));
      if (ids.length > 0) this.update(r, popularKey(m), { pop: ids, at });
      recent = this.visitors.get(vkey) ?? { views: [], bought: [] };
      for (const id of ids) pushRecent(recent.bought, id, at, this.o.visitorPurchases);
      // The order ends the cart: its pairs were counted as it filled.
      this.carts.delete(sessionId);
    } else if (e.event === 'Product Removed') {
      const id = productIdOf(e.properties);
      if (id !== null) this.carts.put(sessionId, cartRemove(this.carts.get(sessionId), id));
    } else if (ENGAGED.has(e.event)) {
      const p = e.properties as { product_id: string | null; sku: string | null };
      const id = productIdOf(p);
      if (id === null) return;
      if (e.event === 'Product Added') {
        const c = cartAdd(this.carts.get(sessionId), id, at, this.o.fbt);
        this.carts.put(sessionId, c.cart);
        this.co(r, 'f', m, c.updates);
      }
      const s = sessionEvent(this.sessions.get(sessionId), id, at, this.o.oyml);
      this.sessions.put(sessionId, s.session);
      this.co(r, 'o', m, s.updates);
      if (e.event === 'Product Viewed') {
        recent = this.visitors.get(vkey) ?? { views: [], bought: [] };
        pushRecent(recent.views, id, at, this.o.visitorViews);
      }
    }
    if (recent !== undefined) this.visitors.put(vkey, recent);
  }
}

class ModelStage implements Processor<string, ModelUpdate, string, CoItemState | PopularityState> {
  private model!: KeyValueStore<string, CoItemState | PopularityState>;
  private readonly o: Resolved;

  constructor(o: Resolved) {
    this.o = o;
  }

  init(ctx: ProcessorContext<string, CoItemState | PopularityState>): void {
    this.model = ctx.getStateStore(RECS_STORES.model);
    // An entry is published once per commit with its last value (Kafka Streams' record cache): an
    // order of n products updates n entries, but a popular entry updated by 1,000 events in one commit
    // interval is written once.
    forwardOnCommit(this.model, (key, value) => ctx.forward({ key, value, timestamp: Date.now(), headers: [] }));
  }

  process(r: StreamRecord<string, ModelUpdate>): void {
    const v = r.value;
    let next: CoItemState | PopularityState;
    if ('pop' in v) {
      next = popularityAdd(this.model.get(r.key) as PopularityState | undefined, v.pop, v.at, this.o.popularity);
    } else {
      const cfg = r.key.startsWith('f|') ? this.o.fbt.co : this.o.oyml.co;
      next = applyCoUpdate(this.model.get(r.key) as CoItemState | undefined, v.u, cfg);
    }
    this.model.put(r.key, next);
  }
}

/**
 * Each visitor's figures in each running experiment of its merchant: the visitor is assigned at its
 * first event during the experiment (in every arm, so the arms stay comparable), and every exposure,
 * click and order updates its state (experiments/attribution.ts); the summary goes to recs.experiments.
 */
class ExperimentStage implements Processor<string, PipelineEvent, string, SummaryRow> {
  private states!: KeyValueStore<string, VisitorState>;
  private readonly byMerchant = new Map<string, RunningExperiment[]>();
  private readonly merchantOf = new Map<string, string>();

  constructor(experiments: readonly RunningExperiment[]) {
    for (const x of experiments) {
      this.byMerchant.set(x.merchant, [...(this.byMerchant.get(x.merchant) ?? []), x]);
      this.merchantOf.set(x.experiment.id, x.merchant);
    }
  }

  init(ctx: ProcessorContext<string, SummaryRow>): void {
    this.states = ctx.getStateStore(RECS_STORES.experiments);
    forwardOnCommit(this.states, (key, state) => {
      const [experiment, ...visitor] = key.split('|');
      const merchant = this.merchantOf.get(experiment!)!;
      ctx.forward({ key: experimentVisitorKey(merchant, experiment!, visitor.join('|')), value: { variant: state.variant, ...visitorSummary(state) }, timestamp: Date.now(), headers: [] });
    });
  }

  process(r: StreamRecord<string, PipelineEvent>): void {
    const e = r.value.event;
    const running = this.byMerchant.get(e.merchantId);
    if (running === undefined) return;
    for (const x of running) {
      if (x.startsAt !== undefined && e.timestamp < x.startsAt) continue;
      const key = `${x.experiment.id}|${e.visitorId}`;
      const before = this.states.get(key);
      if (before !== undefined && eventRole(e, x.attribution) === null) continue;
      const state = before ?? newVisitorState(assignVariant(x.experiment, e.visitorId));
      const after = applyEvent(state, e, x.attribution);
      if (before !== undefined && after === before) continue;
      this.states.put(key, after);
    }
  }
}

export function recsTopology(topics: TopicNames, options: RecsTopologyOptions = {}): Topology {
  const o = recsDefaults(options);
  const b = new StreamsBuilder();
  b.addStateStore(Stores.keyValueStore({ name: RECS_STORES.carts, keySerde: Serdes.string(), valueSerde: Serdes.json<CartState>(), ttlMs: o.sessionTtlMs }));
  b.addStateStore(Stores.keyValueStore({ name: RECS_STORES.sessions, keySerde: Serdes.string(), valueSerde: Serdes.json<SessionState>(), ttlMs: o.sessionTtlMs }));
  b.addStateStore(Stores.keyValueStore({ name: RECS_STORES.visitors, keySerde: Serdes.string(), valueSerde: Serdes.json<VisitorRecent>(), ttlMs: 30 * 86_400_000 }));
  b.addStateStore(Stores.keyValueStore({ name: RECS_STORES.model, keySerde: Serdes.string(), valueSerde: Serdes.json<CoItemState | PopularityState>() }));
  // events.filtered, and the history `shopstream recs bootstrap` re-publishes from the lake (the
  // records events.filtered no longer holds: nothing is in both). Each record is parsed once, at the
  // source, for both stages.
  const filtered = b
    .stream<string, PipelineEvent>(topics.filtered, { name: 'recs-filtered', keySerde: Serdes.string(), valueSerde: Serdes.json<PipelineEvent>() })
    .merge(b.stream<string, PipelineEvent>(topics.recsBootstrap, { name: 'recs-bootstrap', keySerde: Serdes.string(), valueSerde: Serdes.json<PipelineEvent>() }), { name: 'recs-input' });
  if (o.experiments.length > 0) {
    b.addStateStore(Stores.keyValueStore({ name: RECS_STORES.experiments, keySerde: Serdes.string(), valueSerde: Serdes.json<VisitorState>(), ttlMs: 400 * 86_400_000 }));
    filtered
      .process<string, SummaryRow>(() => new ExperimentStage(o.experiments), { name: 'recs-experiments', stores: [RECS_STORES.experiments], keySerde: Serdes.string(), valueSerde: Serdes.json<SummaryRow>() })
      .to(topics.recsExperiments, { keySerde: Serdes.string(), valueSerde: Serdes.json<SummaryRow>() });
  }
  const out = filtered
    .process<string, VisitorOut>(() => new VisitorStage(o), {
      name: 'recs-visitor',
      stores: [RECS_STORES.carts, RECS_STORES.sessions, RECS_STORES.visitors],
      keySerde: Serdes.string(),
      valueSerde: Serdes.json<VisitorOut>(),
    });
  out
    .filter((_k, v) => v.kind === 'visitor', { name: 'recs-visitor-recent' })
    .mapValues((v) => (v as Extract<VisitorOut, { kind: 'visitor' }>).recent, { name: 'recs-visitor-value', valueSerde: Serdes.json<VisitorRecent>() })
    .to(topics.recsVisitors, { keySerde: Serdes.string(), valueSerde: Serdes.json<VisitorRecent>() });
  out
    .filter((_k, v) => v.kind === 'update', { name: 'recs-updates' })
    .mapValues((v) => (v as Extract<VisitorOut, { kind: 'update' }>).update, { name: 'recs-update-value', valueSerde: Serdes.json<ModelUpdate>() })
    .repartition({ name: 'recs-model', keySerde: Serdes.string(), valueSerde: Serdes.json<ModelUpdate>() })
    .process<string, CoItemState | PopularityState>(() => new ModelStage(o), { name: 'recs-apply', stores: [RECS_STORES.model], keySerde: Serdes.string(), keyChanged: false })
    .to(topics.recsModel, { keySerde: Serdes.string(), valueSerde: Serdes.json<CoItemState | PopularityState>() });
  return b.build();
}
