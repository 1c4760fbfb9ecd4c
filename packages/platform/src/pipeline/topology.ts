/**
 * The pipeline: one topology from `events.raw` and `events.validations` to `events.filtered`,
 * `events.bots` and `events.rejected` (docs/pipeline.md). Both inputs are keyed by visitor and
 * co-partitioned, so one task sees a visitor's events, validations and session together, and one
 * processor applies every rule in order:
 *
 *   parse + validate (contract) → de-duplicate (messageId; Order Completed by order_id)
 *   → enrich (device, traffic source, country) → sessionize → bot filter (isbot, server sources,
 *   validations, grace period) → events.filtered | events.bots; refusals → events.rejected.
 *
 * Every piece of state is a store of the task, so exactly-once commits cover it with the outputs.
 */
import { Serdes, Stores, StreamsBuilder, type Processor, type ProcessorContext, type Record as StreamRecord, type KeyValueStore, type Topology } from '@shopstream/streams';
import { hashUserAgent, normalizeEvent, readRawRecord, rejection, type CanonicalEvent, type Rejection } from '../contract/index.ts';
import type { TopicNames } from '../topics.ts';
import { enrich, isBotUserAgent, type Enrichment } from './enrich.ts';

export const BOT_POLICY = 'shopstream-bot-v1';

export interface PipelineOptions {
  /** Window of the messageId de-duplication, in event time. Default 24 h. */
  dedupeWindowMs?: number;
  /** Window of the order_id de-duplication of Order Completed, in event time. Default 7 days. */
  orderDedupeWindowMs?: number;
  /** A session ends after this much inactivity (per visitor, event time). Default 30 min. */
  sessionTimeoutMs?: number;
  /** How long an event of a visitor not yet validated waits for a validation. Default 30 s. */
  graceMs?: number;
  /** How often held events are checked for expiry. Default 1 s. */
  holdCheckIntervalMs?: number;
  /** Event-time bounds of the contract, relative to receivedAt. */
  maxFutureMs?: number;
  maxPastMs?: number;
  /** Called with the duration of each bot lookup (validation and hold state of the visitor), in seconds. */
  onBotLookup?: ((seconds: number) => void) | null;
  /** Called with each decision, for metrics. */
  onDecision?: ((decision: Decision) => void) | null;
}

export type Decision =
  | 'human_validated'
  | 'human_released'
  | 'human_trusted_source'
  | 'bot_user_agent'
  | 'bot_not_validated'
  | 'held'
  | 'duplicate'
  | 'order_duplicate'
  | 'rejected';

export interface Session {
  id: string;
  /** True on the first event of the session (count sessions by counting these). */
  start: boolean;
  /** 1-based position of the event in its session. */
  seq: number;
}

export type BotReason = 'user_agent' | 'not_validated';

export interface BotDecision {
  policy: typeof BOT_POLICY;
  reason: BotReason;
  /** What the reason rests on: the isbot match, or how long the event waited. */
  detail: string;
  thresholds: { graceMs: number };
}

/** The value of events.filtered and events.bots records. */
export interface PipelineEvent {
  v: 1;
  event: CanonicalEvent;
  enrichment: Enrichment;
  session: Session;
  /** Null on events.filtered. */
  bot: BotDecision | null;
  /**
   * How the event was decided human: validated before it arrived, released by a validation while
   * held, or sent by a trusted source (a merchant's backend, authenticated with a server write key).
   */
  human: 'validated' | 'released' | 'trusted_source' | null;
}

/** The value of events.rejected records written by the pipeline (contract/rejected.ts). */
export type PipelineRejection = Rejection;

interface Routed {
  topic: string;
  value: unknown;
}

interface SessionState {
  id: string;
  last: number;
  seq: number;
  /** The client's session id, when it sent one. */
  client: string | null;
}

interface Held {
  out: PipelineEvent;
  /**
   * Arrival + grace period (collector clock); -1 for an event already decided on arrival (a bot user
   * agent, or a trusted source's human) queued behind held ones.
   */
  deadline: number;
}

/** Validations of a visitor: merchant → valid until (epoch ms). */
/**
 * A visitor's validations, per merchant: valid until (epoch ms) and the user-agent hashes of the
 * browsers that passed the beacon (a few at most; a number is a validation from before hashes were
 * kept, valid for any user agent).
 */
type ValidationState = Record<string, { until: number; ua: string[] } | number>;

/** User-agent hashes kept per visitor and merchant (the latest). */
const MAX_UA_HASHES = 4;

const uaHashCache = new Map<string, string>();
function uaHashOf(userAgent: string): string {
  let h = uaHashCache.get(userAgent);
  if (h === undefined) {
    if (uaHashCache.size >= 10_000) uaHashCache.clear();
    h = hashUserAgent(userAgent);
    uaHashCache.set(userAgent, h);
  }
  return h;
}

/**
 * Whether a validation covers an event: same merchant, valid at the event's arrival, and from the
 * same browser (the event's user agent hashes to one that passed the beacon). An event without a
 * user agent (a server-side source) is covered by the visitor's validation alone.
 */
function covers(state: ValidationState | undefined, e: CanonicalEvent): boolean {
  const v = state?.[e.merchantId];
  if (v === undefined) return false;
  if (typeof v === 'number') return v >= e.receivedAt;
  if (v.until < e.receivedAt) return false;
  const ua = e.context.userAgent;
  return ua === null || ua === '' || v.ua.length === 0 || v.ua.includes(uaHashOf(ua));
}

const STORE = {
  dedupe: 'dedupe',
  orders: 'order-dedupe',
  sessions: 'sessions',
  validations: 'validations',
  held: 'held-events',
  holdIndex: 'hold-index',
} as const;

const PAD = 16;
/** Events one visitor may have waiting for a validation; beyond, the oldest are decided as bots. */
export const MAX_HELD_PER_VISITOR = 256;
const indexKey = (deadline: number, visitor: string) => `${String(Math.max(0, deadline)).padStart(PAD, '0')}\u0000${visitor}`;

class PipelineProcessor implements Processor<string, Buffer, string, Routed> {
  private ctx!: ProcessorContext<string, Routed>;
  private dedupe!: KeyValueStore<string, number>;
  private orders!: KeyValueStore<string, number>;
  private sessions!: KeyValueStore<string, SessionState>;
  private validations!: KeyValueStore<string, ValidationState>;
  private held!: KeyValueStore<string, Held[]>;
  private holdIndex!: KeyValueStore<string, string>;
  private readonly topics: TopicNames;
  private readonly o: Required<PipelineOptions>;
  /** Wall-clock time of the last record, for expiring held events when input stops. */
  private lastRecordWall = 0;

  /**
   * No held event is due before this time (-Infinity: unknown, as after a restart, so the next
   * expiry scans the hold index).
   */
  private nextDeadline = -Infinity;

  /** The contract's event-time bounds, built once (this runs per record). */
  private readonly limits: { maxFutureMs: number; maxPastMs: number };

  constructor(topics: TopicNames, options: Required<PipelineOptions>) {
    this.topics = topics;
    this.o = options;
    this.limits = { maxFutureMs: options.maxFutureMs, maxPastMs: options.maxPastMs };
  }

  init(ctx: ProcessorContext<string, Routed>): void {
    this.ctx = ctx;
    this.dedupe = ctx.getStateStore(STORE.dedupe);
    this.orders = ctx.getStateStore(STORE.orders);
    this.sessions = ctx.getStateStore(STORE.sessions);
    this.validations = ctx.getStateStore(STORE.validations);
    this.held = ctx.getStateStore(STORE.held);
    this.holdIndex = ctx.getStateStore(STORE.holdIndex);
    ctx.schedule(this.o.holdCheckIntervalMs, 'stream-time', (t) => this.expire(t));
    // When input stops, stream time stops: let the wall clock move the horizon on by the idle time.
    // After a restart the idle time counts from the start, and without a stream time (a partition
    // that has seen no record yet) the horizon is the wall clock itself.
    this.lastRecordWall = ctx.currentSystemTimeMs();
    ctx.schedule(this.o.holdCheckIntervalMs, 'wall-clock', (now) => {
      const idle = now - this.lastRecordWall;
      if (idle < this.o.graceMs) return;
      const st = ctx.currentStreamTimeMs();
      this.expire(Number.isFinite(st) ? st + idle : now);
    });
  }

  process(record: StreamRecord<string, Buffer>): void {
    this.lastRecordWall = this.ctx.currentSystemTimeMs();
    const topic = this.ctx.recordMetadata()?.topic;
    if (topic === this.topics.validations) this.validation(record);
    else this.event(record);
  }

  private emit(visitor: string, timestamp: number, topic: string, value: unknown): void {
    this.ctx.forward({ key: visitor, value: { topic, value }, timestamp, headers: [] });
  }

  private validation(record: StreamRecord<string, Buffer>): void {
    let v: { merchantId?: unknown; anonymousId?: unknown; validUntil?: unknown; uaHash?: unknown };
    try {
      v = JSON.parse(record.value.toString('utf8')) as typeof v;
    } catch {
      return; // Only the collector writes this topic; a record it did not write is ignored.
    }
    if (typeof v.merchantId !== 'string' || typeof v.validUntil !== 'number') return;
    const visitor = record.key;
    const state = { ...(this.validations.get(visitor) ?? {}) };
    const previous = state[v.merchantId];
    const before = previous === undefined ? { until: 0, ua: [] } : typeof previous === 'number' ? { until: previous, ua: [] } : previous;
    const ua = typeof v.uaHash === 'string' && !before.ua.includes(v.uaHash) ? [...before.ua, v.uaHash].slice(-MAX_UA_HASHES) : before.ua;
    state[v.merchantId] = { until: Math.max(before.until, v.validUntil), ua };
    this.validations.put(visitor, state, record.timestamp);
    // Decide what the validation decides, in order: events whose grace period ended by the
    // validation's time are bots (as if the stream-time check had run first), then the leading
    // events that a validation now covers are released as human.
    const queue = this.held.get(visitor);
    if (queue) this.putQueue(visitor, this.drain(visitor, queue, record.timestamp));
  }

  private event(record: StreamRecord<string, Buffer>): void {
    // normalizeRawRecord, unrolled: the one pass over the headers also gives the source.
    const raw = readRawRecord(record, this.limits);
    const result = normalizeEvent(raw.message, raw.ctx, raw.typeHint);
    const visitor = record.key;
    if (!result.ok) {
      this.reject(record, result.reason);
      return;
    }
    const e = result.event;
    // De-duplicate: the same message id within the window, and a re-sent order under a new id.
    // Windows are in arrival time (the record time, the collector's clock), as Segment's 24 h.
    const dk = `${e.merchantId}\u0000${e.messageId}`;
    if (this.dedupe.get(dk) !== undefined) {
      this.o.onDecision?.('duplicate');
      return;
    }
    this.dedupe.put(dk, e.receivedAt, record.timestamp);
    if (e.event === 'Order Completed') {
      const ok = `${e.merchantId}\u0000${e.properties.order_id}`;
      if (this.orders.get(ok) !== undefined) {
        this.o.onDecision?.('order_duplicate');
        return;
      }
      this.orders.put(ok, e.receivedAt, record.timestamp);
    }
    const out: PipelineEvent = { v: 1, event: e, enrichment: enrich(e), session: this.sessionize(visitor, e), bot: null, human: null };

    const t0 = this.o.onBotLookup ? process.hrtime.bigint() : 0n;
    const queue = this.held.get(visitor);
    if (isBotUserAgent(e.context.userAgent)) {
      out.bot = { policy: BOT_POLICY, reason: 'user_agent', detail: 'isbot matched the user agent', thresholds: { graceMs: this.o.graceMs } };
      this.o.onDecision?.('bot_user_agent');
      // Decided, but it keeps its place behind the visitor's held events.
      if (queue === undefined) this.emit(visitor, e.timestamp, this.topics.bots, out);
      else this.putQueue(visitor, this.capped(visitor, [...queue, { out, deadline: -1 }]));
      return;
    }
    if (raw.source === 'server') {
      // A merchant's backend (server write key): human without a validation, which a server never
      // has. Like a bot verdict, it keeps its place behind the visitor's held events.
      out.human = 'trusted_source';
      this.o.onDecision?.('human_trusted_source');
      if (queue === undefined) this.emit(visitor, e.timestamp, this.topics.filtered, out);
      else this.putQueue(visitor, this.capped(visitor, [...queue, { out, deadline: -1 }]));
      return;
    }
    const validated = covers(this.validations.get(visitor), e);
    if (this.o.onBotLookup) this.o.onBotLookup(Number(process.hrtime.bigint() - t0) / 1e9);
    if (queue === undefined && validated) {
      out.human = 'validated';
      this.emit(visitor, e.timestamp, this.topics.filtered, out);
      this.o.onDecision?.('human_validated');
      return;
    }
    // Not validated yet (or earlier events are still held): wait for a validation, for the grace
    // period after the event arrived (the collector's clock, as the validation's).
    const deadline = record.timestamp + this.o.graceMs;
    this.index(deadline, visitor);
    this.o.onDecision?.('held');
    this.putQueue(visitor, this.capped(visitor, [...(queue ?? []), { out, deadline }]));
  }

  private putQueue(visitor: string, queue: Held[]): void {
    this.held.put(visitor, queue.length === 0 ? null : queue);
  }

  /**
   * A visitor holds at most maxHeldPerVisitor events (a client that never runs the beacon and keeps
   * one id would otherwise grow its queue without bound): beyond, the oldest are decided as bots.
   */
  private capped(visitor: string, queue: Held[]): Held[] {
    let i = 0;
    while (queue.length - i > MAX_HELD_PER_VISITOR) {
      const h = queue[i++]!;
      if (h.deadline < 0) {
        this.emitDecided(visitor, h.out);
        continue;
      }
      this.emit(visitor, h.out.event.timestamp, this.topics.bots, this.asBot(h.out, `more than ${MAX_HELD_PER_VISITOR} events of the visitor waited for a validation`));
      this.holdIndex.delete(indexKey(h.deadline, visitor));
    }
    return i === 0 ? queue : queue.slice(i);
  }

  /** Emits an event decided on arrival (deadline -1): a bot verdict, or a trusted source's human. */
  private emitDecided(visitor: string, out: PipelineEvent): void {
    this.emit(visitor, out.event.timestamp, out.bot !== null ? this.topics.bots : this.topics.filtered, out);
  }

  /**
   * Emits, in order, the leading events of a visitor's queue that are decided at `horizon`: a
   * verdict set on arrival (a bot user agent; a trusted source, human); a grace period ended (bot);
   * a validation of the event's merchant valid at its arrival (human). Stops at the first undecided
   * event, so that no event overtakes another.
   */
  private drain(visitor: string, queue: Held[], horizon: number): Held[] {
    const state = this.validations.get(visitor);
    let i = 0;
    for (; i < queue.length; i++) {
      const h = queue[i]!;
      if (h.deadline < 0 || h.out.bot !== null) {
        this.emitDecided(visitor, h.out);
        continue;
      }
      if (h.deadline <= horizon) {
        this.emit(visitor, h.out.event.timestamp, this.topics.bots, this.asBot(h.out));
      } else {
        if (!covers(state, h.out.event)) break;
        this.emit(visitor, h.out.event.timestamp, this.topics.filtered, { ...h.out, human: 'released' });
        this.o.onDecision?.('human_released');
      }
      this.holdIndex.delete(indexKey(h.deadline, visitor));
    }
    return i === 0 ? queue : queue.slice(i);
  }

  private sessionize(visitor: string, e: CanonicalEvent): Session {
    const s = this.sessions.get(visitor);
    const client = e.sessionId;
    let next: SessionState;
    if (client !== null) {
      next = s !== undefined && s.client === client ? { ...s, last: Math.max(s.last, e.timestamp), seq: s.seq + 1 } : { id: client, last: e.timestamp, seq: 1, client };
    } else if (s === undefined || s.client !== null || e.timestamp - s.last > this.o.sessionTimeoutMs) {
      next = { id: `${visitor}:${e.timestamp}`, last: e.timestamp, seq: 1, client: null };
    } else {
      next = { ...s, last: Math.max(s.last, e.timestamp), seq: s.seq + 1 };
    }
    this.sessions.put(visitor, next, e.receivedAt);
    return { id: next.id, start: next.seq === 1, seq: next.seq };
  }

  private asBot(out: PipelineEvent, detail = `no validation within ${this.o.graceMs} ms of the event's arrival`): PipelineEvent {
    this.o.onDecision?.('bot_not_validated');
    return { ...out, bot: { policy: BOT_POLICY, reason: 'not_validated', detail, thresholds: { graceMs: this.o.graceMs } } };
  }

  private index(deadline: number, visitor: string): void {
    this.holdIndex.put(indexKey(deadline, visitor), visitor);
    if (deadline < this.nextDeadline) this.nextDeadline = deadline;
  }

  /** Classifies as bots the held events whose deadline is at or before `horizon`. */
  private expire(horizon: number): void {
    // The punctuator runs every holdCheckIntervalMs of stream time, mostly with nothing due: skip
    // the index scan until the earliest deadline known (a lower bound: deletions leave it early).
    if (horizon < this.nextDeadline) return;
    // Every live index key is at or after nextDeadline, so the scan starts there: the keys before it
    // were deleted by earlier scans, and while a commit interval runs, they are still in the store's
    // write buffer as deletions, which a scan from the start would walk again at every punctuation
    // (catching up on a backlog, stream time runs far ahead of the wall clock: many punctuations per
    // commit interval).
    const from = Number.isFinite(this.nextDeadline) ? indexKey(this.nextDeadline, '') : undefined;
    const due: string[] = [];
    this.nextDeadline = Infinity;
    for (const [k] of this.holdIndex.range(from, undefined)) {
      const deadline = Number(k.slice(0, PAD));
      if (deadline > horizon) {
        this.nextDeadline = deadline;
        break;
      }
      due.push(k);
    }
    const visitors = new Set<string>();
    for (const k of due) {
      visitors.add(this.holdIndex.get(k)!);
      this.holdIndex.delete(k);
    }
    for (const visitor of visitors) {
      const queue = this.held.get(visitor);
      if (!queue) continue;
      const rest = this.drain(visitor, queue, horizon);
      // Events still held behind an undecided one: keep them findable by their own deadline.
      for (const h of rest) if (h.deadline >= 0 && h.deadline <= horizon) this.index(h.deadline, visitor);
      this.putQueue(visitor, rest);
    }
  }

  private reject(record: StreamRecord<string, Buffer>, reason: { code: string; message: string; path?: string }): void {
    const { message, ctx } = readRawRecord(record);
    const payload = message === undefined ? record.value.toString('utf8') : message;
    this.emit(record.key, record.timestamp, this.topics.rejected, rejection('pipeline', ctx.merchantId, ctx.receivedAt, payload, reason));
    this.o.onDecision?.('rejected');
  }

}

const DAY = 24 * 3600_000;

export function pipelineDefaults(o: PipelineOptions = {}): Required<PipelineOptions> {
  return {
    dedupeWindowMs: o.dedupeWindowMs ?? DAY,
    orderDedupeWindowMs: o.orderDedupeWindowMs ?? 7 * DAY,
    sessionTimeoutMs: o.sessionTimeoutMs ?? 30 * 60_000,
    graceMs: o.graceMs ?? 30_000,
    holdCheckIntervalMs: o.holdCheckIntervalMs ?? 1_000,
    maxFutureMs: o.maxFutureMs ?? 3_600_000,
    maxPastMs: o.maxPastMs ?? 30 * DAY,
    onBotLookup: o.onBotLookup ?? null,
    onDecision: o.onDecision ?? null,
  };
}

/** The pipeline topology over the platform's topics. */
export function pipelineTopology(topics: TopicNames, options: PipelineOptions = {}): Topology {
  const o = pipelineDefaults(options);
  const b = new StreamsBuilder();
  const json = Serdes.json<never>();
  b.addStateStore(Stores.keyValueStore({ name: STORE.dedupe, keySerde: Serdes.string(), valueSerde: Serdes.double(), ttlMs: o.dedupeWindowMs }));
  b.addStateStore(Stores.keyValueStore({ name: STORE.orders, keySerde: Serdes.string(), valueSerde: Serdes.double(), ttlMs: o.orderDedupeWindowMs }));
  b.addStateStore(Stores.keyValueStore({ name: STORE.sessions, keySerde: Serdes.string(), valueSerde: Serdes.json<SessionState>(), ttlMs: Math.max(DAY, 2 * o.sessionTimeoutMs) }));
  b.addStateStore(Stores.keyValueStore({ name: STORE.validations, keySerde: Serdes.string(), valueSerde: Serdes.json<ValidationState>(), ttlMs: 31 * DAY }));
  b.addStateStore(Stores.keyValueStore({ name: STORE.held, keySerde: Serdes.string(), valueSerde: Serdes.json<Held[]>() }));
  b.addStateStore(Stores.keyValueStore({ name: STORE.holdIndex, keySerde: Serdes.string(), valueSerde: Serdes.string() }));
  const raw = b.stream<string, Buffer>(topics.raw, { name: 'raw', keySerde: Serdes.string(), valueSerde: Serdes.bytes() });
  const validations = b.stream<string, Buffer>(topics.validations, { name: 'validations', keySerde: Serdes.string(), valueSerde: Serdes.bytes() });
  raw
    .merge(validations, { name: 'inputs' })
    .process<string, Routed>(() => new PipelineProcessor(topics, o), {
      name: 'pipeline',
      stores: Object.values(STORE),
      keySerde: Serdes.string(),
      keyChanged: false,
    })
    .to((_visitor, r) => r.topic, { keySerde: Serdes.string(), valueSerde: Serdes.from<Routed>((r) => Buffer.from(JSON.stringify(r.value)), (b) => ({ topic: '', value: json.deserialize(b) })) });
  return b.build();
}
