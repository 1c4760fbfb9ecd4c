/**
 * The pipeline: one topology from `events.raw` and `events.validations` to `events.filtered`,
 * `events.bots` and `events.rejected` (docs/pipeline.md). Both inputs are keyed by visitor and
 * co-partitioned, so one task sees a visitor's events, validations and session together, and one
 * processor applies every rule in order:
 *
 *   parse + validate (contract) → de-duplicate (messageId; Order Completed by order_id)
 *   → enrich (device, traffic source, country) → sessionize → bot filter (isbot, validations,
 *   grace period) → events.filtered | events.bots; refusals → events.rejected.
 *
 * Every piece of state is a store of the task, so exactly-once commits cover it with the outputs.
 */
import { Serdes, Stores, StreamsBuilder, type Processor, type ProcessorContext, type Record as StreamRecord, type KeyValueStore, type Topology } from '@shopstream/streams';
import { normalizeRawRecord, type CanonicalEvent } from '../contract/index.ts';
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

export type Decision = 'human_validated' | 'human_released' | 'bot_user_agent' | 'bot_not_validated' | 'held' | 'duplicate' | 'order_duplicate' | 'rejected';

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
  /** How the event was decided human: validated before it arrived, or released by a validation while held. */
  human: 'validated' | 'released' | null;
}

/** The value of events.rejected records written by the pipeline. */
export interface PipelineRejection {
  v: 1;
  stage: 'pipeline';
  code: string;
  reason: string;
  path?: string;
  merchantId: string;
  receivedAt: number;
  /** The message as sent (parsed JSON), or its text when it is not JSON. */
  payload: unknown;
}

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
  deadline: number;
}

/** Validations of a visitor: merchant → valid until (epoch ms). */
type ValidationState = Record<string, number>;

const STORE = {
  dedupe: 'dedupe',
  orders: 'order-dedupe',
  sessions: 'sessions',
  validations: 'validations',
  held: 'held-events',
  holdIndex: 'hold-index',
} as const;

const PAD = 16;
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

  constructor(topics: TopicNames, options: Required<PipelineOptions>) {
    this.topics = topics;
    this.o = options;
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
    ctx.schedule(this.o.holdCheckIntervalMs, 'wall-clock', (now) => {
      const idle = now - this.lastRecordWall;
      if (this.lastRecordWall > 0 && idle >= this.o.graceMs) this.expire(ctx.currentStreamTimeMs() + idle);
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
    let v: { merchantId?: unknown; anonymousId?: unknown; validUntil?: unknown };
    try {
      v = JSON.parse(record.value.toString('utf8')) as typeof v;
    } catch {
      return; // Only the collector writes this topic; a record it did not write is ignored.
    }
    if (typeof v.merchantId !== 'string' || typeof v.validUntil !== 'number') return;
    const visitor = record.key;
    const state = { ...(this.validations.get(visitor) ?? {}) };
    state[v.merchantId] = Math.max(state[v.merchantId] ?? 0, v.validUntil);
    this.validations.put(visitor, state, record.timestamp);
    // Release the visitor's held events of this merchant, in order, as human: the leading run of
    // the queue (order per visitor holds: an event never overtakes one still held before it).
    const queue = this.held.get(visitor);
    if (!queue) return;
    let i = 0;
    // Events whose grace period ended by the validation's time were not validated in time: they
    // are bots, exactly as if the stream-time check had run first.
    for (; i < queue.length && queue[i]!.deadline <= record.timestamp; i++) {
      this.emit(visitor, queue[i]!.out.event.timestamp, this.topics.bots, this.asBot(queue[i]!.out));
      this.holdIndex.delete(indexKey(queue[i]!.deadline, visitor));
    }
    for (; i < queue.length; i++) {
      const h = queue[i]!;
      if (h.out.event.merchantId !== v.merchantId || h.out.event.receivedAt > v.validUntil) break;
      this.emit(visitor, h.out.event.timestamp, this.topics.filtered, { ...h.out, human: 'released' });
      this.o.onDecision?.('human_released');
      this.holdIndex.delete(indexKey(h.deadline, visitor));
    }
    if (i > 0) this.held.put(visitor, i === queue.length ? null : queue.slice(i));
  }

  private event(record: StreamRecord<string, Buffer>): void {
    const result = normalizeRawRecord(record, { maxFutureMs: this.o.maxFutureMs, maxPastMs: this.o.maxPastMs });
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

    const ua = e.context.userAgent;
    if (isBotUserAgent(ua)) {
      out.bot = { policy: BOT_POLICY, reason: 'user_agent', detail: `isbot matched the user agent`, thresholds: { graceMs: this.o.graceMs } };
      this.emit(visitor, e.timestamp, this.topics.bots, out);
      this.o.onDecision?.('bot_user_agent');
      return;
    }
    const t0 = this.o.onBotLookup ? process.hrtime.bigint() : 0n;
    const queue = this.held.get(visitor);
    const validUntil = this.validations.get(visitor)?.[e.merchantId];
    if (this.o.onBotLookup) this.o.onBotLookup(Number(process.hrtime.bigint() - t0) / 1e9);
    if (queue === undefined && validUntil !== undefined && validUntil >= e.receivedAt) {
      out.human = 'validated';
      this.emit(visitor, e.timestamp, this.topics.filtered, out);
      this.o.onDecision?.('human_validated');
      return;
    }
    // Not validated yet (or earlier events are still held): wait for a validation, for the grace
    // period after the event arrived (the collector's clock, as the validation's).
    const deadline = record.timestamp + this.o.graceMs;
    this.held.put(visitor, [...(queue ?? []), { out, deadline }]);
    this.holdIndex.put(indexKey(deadline, visitor), visitor);
    this.o.onDecision?.('held');
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

  private asBot(out: PipelineEvent): PipelineEvent {
    this.o.onDecision?.('bot_not_validated');
    return {
      ...out,
      bot: { policy: BOT_POLICY, reason: 'not_validated', detail: `no validation within ${this.o.graceMs} ms of the event`, thresholds: { graceMs: this.o.graceMs } },
    };
  }

  /** Classifies as bots the held events whose deadline is at or before `horizon`. */
  private expire(horizon: number): void {
    const due: string[] = [];
    for (const [k] of this.holdIndex.range(undefined, indexKey(horizon, '\uffff'))) due.push(k);
    const visitors = new Set<string>();
    for (const k of due) {
      visitors.add(this.holdIndex.get(k)!);
      this.holdIndex.delete(k);
    }
    for (const visitor of visitors) {
      const queue = this.held.get(visitor);
      if (!queue) continue;
      const keep: Held[] = [];
      for (const h of queue) {
        if (keep.length === 0 && h.deadline <= horizon) {
          this.emit(visitor, h.out.event.timestamp, this.topics.bots, this.asBot(h.out));
        } else {
          keep.push(h);
          // Still held behind an earlier one: keep it findable by its own deadline.
          if (h.deadline <= horizon) this.holdIndex.put(indexKey(h.deadline, visitor), visitor);
        }
      }
      this.held.put(visitor, keep.length === 0 ? null : keep);
    }
  }

  private reject(record: StreamRecord<string, Buffer>, reason: { code: string; message: string; path?: string }): void {
    let merchantId = '';
    let receivedAt = record.timestamp;
    for (const [h, v] of record.headers) {
      if (h === 'shopstream.merchant') merchantId = v.toString('utf8');
      else if (h === 'shopstream.received-at') receivedAt = Number(v.toString('utf8'));
    }
    const text = record.value.toString('utf8');
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      payload = text;
    }
    const value: PipelineRejection = {
      v: 1,
      stage: 'pipeline',
      code: reason.code,
      reason: reason.message,
      ...(reason.path !== undefined && { path: reason.path }),
      merchantId,
      receivedAt,
      payload,
    };
    this.emit(record.key, record.timestamp, this.topics.rejected, value);
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
