/**
 * The capi forwarder: sends the server events of `capi.outbox` to Meta's Conversions API, per
 * merchant to its own pixel with its own token (docs/meta-capi.md, "Delivery").
 *
 * - Batches: at most `maxBatchSize` (Meta: 1,000) events per pixel and request; `flushIntervalMs`
 *   bounds how long an event waits for its batch to fill. Requests run in parallel, up to
 *   `maxInFlight` in all and `maxInFlightPerPixel` per pixel.
 * - Failures: 5xx, 429, Meta's throttling codes, transient errors, timeouts and broken connections
 *   are retried with exponential backoff and full jitter; a circuit breaker per pixel stops
 *   requests to a pixel that keeps failing and probes it again later. A request refused for an
 *   invalid event is split in halves until the event is alone: it goes to `capi.dlq` with Meta's
 *   error, the others are sent. Settings errors (token, unknown pixel) hold only that pixel.
 * - Nothing sent twice: when Meta acknowledges a request, its event ids are written to `capi.sent`
 *   (co-partitioned with the outbox) in the same transaction as the outbox offsets, at the next
 *   commit. A restarted forwarder reads them back (48 hours) and skips those events. One merchant
 *   failing does not hold up the others: the outbox offset of a partition cannot pass the first
 *   event still waiting, but the events after it that other pixels had acknowledged are skipped,
 *   not re-sent, after a restart. Only acknowledgements that arrive between the last commit and a
 *   crash are sent again, under the same event id, which Meta de-duplicates.
 * - Nothing lost: an event leaves the outbox only acknowledged by Meta or written to capi.dlq with
 *   its reason, in the transaction that moves the offset past it.
 */
import type { ConsumedRecord, GroupMember, Log, ProducerRecord, TopicPartition, TopicPartitionOffset } from '@shopstream/streams';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { lagPosition } from '../lag.ts';
import type { Merchant } from '../merchants/model.ts';
import type { TopicNames } from '../topics.ts';
import { backoffMs, CircuitBreaker, classifyGraphResponse, eventsUrl, requestBody, type GraphOutcome } from './graph.ts';
import { CAPI_HEADERS, capiDlqValue, CapiDlqCodes, META_MAX_EVENT_AGE_MS, type CapiDlqCode, type CapiSentRecord, type GraphError } from './outbox.ts';

export interface CapiForwarderOptions {
  log: Log;
  topics: TopicNames;
  /** The consumer group (and transactional id base). */
  groupId: string;
  merchants: { byId(id: string): Merchant | undefined };
  /** Default https://graph.facebook.com. */
  baseUrl?: string;
  /** Default v21.0. */
  apiVersion?: string;
  maxBatchSize?: number;
  flushIntervalMs?: number;
  maxInFlight?: number;
  maxInFlightPerPixel?: number;
  requestTimeoutMs?: number;
  /** How long an event is retried before capi.dlq (retries_exhausted). Default 1 hour. */
  maxRetryMs?: number;
  /** Waiting events of a failing pixel beyond which new ones go to capi.dlq (backlog_full). Default 20,000. */
  maxPendingPerPixel?: number;
  /** Waiting events in all beyond which the forwarder stops reading (resumes at half). Default 100,000. */
  maxPendingTotal?: number;
  commitIntervalMs?: number;
  /** How long acknowledged event ids are remembered. Default 48 hours. */
  sentRetentionMs?: number;
  maxEventAgeMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  breaker?: { failureThreshold?: number; openMs?: number; maxOpenMs?: number };
  instanceId?: string;
  now?: () => number;
  random?: () => number;
  logger?: Logger;
  registry?: Registry;
}

interface Part {
  readonly tp: TopicPartition;
  readonly key: string;
  dead: boolean;
  /** Events read and not yet committed past, in offset order; `head` is the first not yet behind the committed offset. */
  entries: Entry[];
  head: number;
  /** The next offset to read. */
  position: number;
  committed: number;
  /** Acknowledged ids (merchant/event_id) → when. */
  readonly sent: Map<string, number>;
  newSent: string[];
  dlq: ProducerRecord[];
}

interface Entry {
  readonly part: Part;
  readonly offset: number;
  readonly key: Buffer | null;
  readonly merchantId: string;
  readonly sentKey: string;
  readonly eventTimeMs: number;
  readonly json: string;
  readonly enqueuedAt: number;
  attempts: number;
  firstFailAt: number;
  done: boolean;
}

interface Lane {
  readonly merchantId: string;
  queue: Entry[];
  head: number;
  /** Batches to send as they are (retries, and the halves of a split), before the queue. */
  ready: Entry[][];
  inFlight: number;
  failures: number;
  nextAt: number;
  readonly breaker: CircuitBreaker;
  lastError: GraphError | undefined;
}

const partKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;
const header = (r: ConsumedRecord, name: string) => r.headers.find((h) => h[0] === name)?.[1].toString('utf8');

export class CapiForwarder {
  private readonly o: Required<Omit<CapiForwarderOptions, 'logger' | 'registry' | 'instanceId' | 'breaker'>> & Pick<CapiForwarderOptions, 'logger' | 'instanceId'>;
  private readonly breakerOptions: { failureThreshold: number; openMs: number; maxOpenMs: number };
  private member: GroupMember | undefined;
  private running = false;
  private draining = false;
  private loop: Promise<void> | undefined;
  private readonly parts = new Map<string, Part>();
  private readonly lanes = new Map<string, Lane>();
  private laneOrder: Lane[] = [];
  private rr = 0;
  private inFlight = 0;
  private pending = 0;
  private paused = false;
  private committing: Promise<void> = Promise.resolve();
  private lastCommit = 0;
  private lastPrune = 0;
  private needsReset = false;
  /** The log failed since the last assignment: settle the transactions before reading offsets. */
  private failed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly idle = new Set<() => void>();
  private readonly m: {
    events: Counter<'merchant' | 'outcome'>;
    dlq: Counter<'merchant' | 'reason'>;
    requests: Counter<'merchant' | 'outcome'>;
    seconds: Histogram<'outcome'>;
    inFlight: Gauge;
    pending: Gauge;
    breaker: Gauge<'merchant'>;
    lastCommit: Gauge;
  };

  constructor(options: CapiForwarderOptions) {
    this.o = {
      baseUrl: 'https://graph.facebook.com',
      apiVersion: 'v21.0',
      maxBatchSize: 1000,
      flushIntervalMs: 1000,
      maxInFlight: 32,
      maxInFlightPerPixel: 8,
      requestTimeoutMs: 10_000,
      maxRetryMs: 3_600_000,
      maxPendingPerPixel: 20_000,
      maxPendingTotal: 100_000,
      commitIntervalMs: 100,
      sentRetentionMs: 48 * 3_600_000,
      maxEventAgeMs: META_MAX_EVENT_AGE_MS,
      retryBaseMs: 250,
      retryMaxMs: 30_000,
      now: Date.now,
      random: Math.random,
      ...options,
    };
    this.breakerOptions = { failureThreshold: 5, openMs: 5_000, maxOpenMs: 60_000, ...options.breaker };
    const registers = options.registry ? [options.registry] : [];
    this.m = {
      events: new Counter({
        name: 'shopstream_capi_events_total',
        help: 'Events of the Meta forwarder, per merchant and outcome: sent (in a request, each attempt), acknowledged, retried, dlq, skipped_already_sent (acknowledged before a restart)',
        labelNames: ['merchant', 'outcome'],
        registers,
      }),
      dlq: new Counter({ name: 'shopstream_capi_dlq_total', help: 'Events written to capi.dlq by the forwarder, per merchant and reason code', labelNames: ['merchant', 'reason'], registers }),
      requests: new Counter({ name: 'shopstream_capi_requests_total', help: 'Requests to Meta, per merchant and outcome (ok, retry, invalid, config)', labelNames: ['merchant', 'outcome'], registers }),
      seconds: new Histogram({
        name: 'shopstream_capi_request_seconds',
        help: 'Time of a request to Meta, by outcome',
        labelNames: ['outcome'],
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers,
      }),
      inFlight: new Gauge({ name: 'shopstream_capi_inflight_requests', help: 'Requests to Meta in flight', registers }),
      pending: new Gauge({ name: 'shopstream_capi_pending_events', help: 'Events read from capi.outbox and not yet acknowledged or dead-lettered', registers }),
      breaker: new Gauge({ name: 'shopstream_capi_breaker_state', help: "Each merchant's pixel circuit breaker: 0 closed, 1 half open, 2 open", labelNames: ['merchant'], registers }),
      lastCommit: new Gauge({ name: 'shopstream_capi_last_commit_timestamp_seconds', help: 'When the forwarder last committed its offsets and acknowledged ids', registers }),
    };
  }

  async start(): Promise<void> {
    this.member = await this.o.log.joinGroup({
      groupId: this.o.groupId,
      topics: [this.o.topics.capiOutbox],
      transactional: true,
      outputTopics: [this.o.topics.capiSent, this.o.topics.capiDlq],
      autoOffsetReset: 'earliest',
      clientId: this.o.groupId,
      ...(this.o.instanceId !== undefined && { instanceId: this.o.instanceId }),
      onAssign: (tps) => this.assign(tps),
      onRevoke: () => this.revoke(),
    });
    await this.assign(this.member.assignment());
    this.running = true;
    this.timer = setInterval(() => this.pump(), Math.max(10, Math.min(50, this.o.flushIntervalMs)));
    this.loop = this.run();
  }

  /** Events read and not yet acknowledged or dead-lettered. */
  get pendingEvents(): number {
    return this.pending;
  }

  /** The first event not yet acknowledged or dead-lettered, per outbox partition (what a restart would read from). */
  lagPositions(): TopicPartitionOffset[] {
    return [...this.parts.values()].map((p) => {
      const offset = this.committable(p);
      return lagPosition({ ...p.tp, offset }, this.member, offset === p.position);
    });
  }

  /** Positions per outbox partition (next offset to read, last committed). */
  positions(): Array<{ partition: number; position: number; committed: number }> {
    return [...this.parts.values()].map((p) => ({ partition: p.tp.partition, position: p.position, committed: p.committed }));
  }

  /** Resolves when nothing is pending and everything is committed (tests, benchmarks). */
  async settled(): Promise<void> {
    while (this.pending > 0 || this.inFlight > 0 || [...this.parts.values()].some((p) => p.newSent.length > 0 || p.dlq.length > 0 || this.committable(p) !== p.committed)) {
      await new Promise<void>((resolve) => {
        this.idle.add(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  private async assign(tps: readonly TopicPartition[]): Promise<void> {
    this.dropState();
    const member = this.member!;
    const mine = tps.filter((tp) => tp.topic === this.o.topics.capiOutbox);
    if (mine.length === 0) return;
    // After a failure of the log, our last transaction may be unfinished or hanging on the broker and
    // hold the group's offsets back (unstable): the member settles it first (streams docs, "Hanging transactions").
    await member.settleTransactions(this.failed);
    this.failed = false;
    const committed = new Map((await this.o.log.admin.committedOffsets(this.o.groupId, mine)).map((c) => [c.partition, c.offset]));
    const earliest = new Map((await this.o.log.admin.listOffsets(mine, 'earliest')).map((c) => [c.partition, c.offset]));
    const sent = await this.loadSent(mine.map((tp) => tp.partition));
    for (const tp of mine) {
      const from = Math.max(committed.get(tp.partition) ?? 0, earliest.get(tp.partition) ?? 0);
      member.seek(tp, from);
      const part: Part = { tp, key: partKey(tp), dead: false, entries: [], head: 0, position: from, committed: committed.get(tp.partition) ?? -1, sent: sent.get(tp.partition) ?? new Map(), newSent: [], dlq: [] };
      this.parts.set(part.key, part);
    }
  }

  /** Reads the acknowledged ids of these partitions back from capi.sent (the last `sentRetentionMs`). */
  private async loadSent(partitions: readonly number[]): Promise<Map<number, Map<string, number>>> {
    const out = new Map(partitions.map((p) => [p, new Map<string, number>()]));
    const tps = partitions.map((partition) => ({ topic: this.o.topics.capiSent, partition }));
    const ends = new Map((await this.o.log.admin.listOffsets(tps, 'latest')).map((e) => [e.partition, e.offset]));
    const reader = this.o.log.createReader({ clientId: `${this.o.groupId}-sent` });
    try {
      reader.assign(tps.map((tp) => ({ ...tp, offset: 0 })));
      const cutoff = this.o.now() - this.o.sentRetentionMs;
      const behind = () => tps.some((tp) => reader.position(tp) < (ends.get(tp.partition) ?? 0));
      while (behind()) {
        for (const r of await reader.poll(200)) {
          if (r.value === null) continue;
          const v = JSON.parse(r.value.toString('utf8')) as CapiSentRecord;
          if (v.at < cutoff) continue;
          const map = out.get(r.partition)!;
          for (const id of v.ids) map.set(id, v.at);
        }
      }
    } finally {
      await reader.close();
    }
    return out;
  }

  private async revoke(): Promise<void> {
    try {
      await this.commitNow();
    } catch (err) {
      this.o.logger?.warn({ err }, 'capi: commit before revocation failed; the new owner goes on from the last commit');
    }
    this.dropState();
  }

  /** Forgets everything not committed; requests in flight are ignored when they end. */
  private dropState(): void {
    for (const p of this.parts.values()) p.dead = true;
    this.parts.clear();
    this.lanes.clear();
    this.laneOrder = [];
    this.pending = 0;
    this.m.pending.set(0);
  }

  private async run(): Promise<void> {
    const member = this.member!;
    let backoff = 0;
    while (this.running) {
      try {
        if (this.needsReset) {
          this.needsReset = false;
          await this.assign(member.assignment());
        }
        this.backpressure(member);
        const { records } = await member.poll(Math.min(100, this.o.commitIntervalMs));
        if (records.length > 0) this.add(records);
        this.pump();
        const now = this.o.now();
        if (now - this.lastCommit >= this.o.commitIntervalMs) {
          this.lastCommit = now;
          await this.commitNow();
        }
        if (now - this.lastPrune >= 60_000) this.prune(now);
        backoff = 0;
      } catch (err) {
        if (!this.running) break;
        backoff = Math.min(5_000, Math.max(100, backoff * 2));
        this.o.logger?.warn({ err, retryInMs: backoff }, 'capi: failed; going on from the committed offsets (acknowledged events are not sent again)');
        await new Promise((r) => setTimeout(r, backoff));
        this.dropState();
        this.failed = true;
        this.needsReset = true;
      }
    }
  }

  private backpressure(member: GroupMember): void {
    const tps = [...this.parts.values()].map((p) => p.tp);
    if (!this.paused && this.pending >= this.o.maxPendingTotal) {
      member.pause(tps);
      this.paused = true;
    } else if (this.paused && this.pending < this.o.maxPendingTotal / 2) {
      member.resume(tps);
      this.paused = false;
    }
  }

  private lane(merchantId: string): Lane {
    let lane = this.lanes.get(merchantId);
    if (lane === undefined) {
      lane = { merchantId, queue: [], head: 0, ready: [], inFlight: 0, failures: 0, nextAt: 0, breaker: new CircuitBreaker(this.breakerOptions), lastError: undefined };
      this.lanes.set(merchantId, lane);
      this.laneOrder.push(lane);
    }
    return lane;
  }

  private add(records: readonly ConsumedRecord[]): void {
    const now = this.o.now();
    for (const r of records) {
      const part = this.parts.get(partKey(r));
      if (part === undefined || r.offset < part.position) continue;
      part.position = r.offset + 1;
      const merchantId = header(r, CAPI_HEADERS.merchant);
      const eventId = header(r, CAPI_HEADERS.eventId);
      const eventTimeMs = Number(header(r, CAPI_HEADERS.eventTime));
      if (merchantId === undefined || eventId === undefined || r.value === null || !Number.isFinite(eventTimeMs)) {
        this.o.logger?.error({ partition: r.partition, offset: r.offset }, 'capi: an outbox record without its headers (not written by the capi topology); skipped');
        continue;
      }
      const sentKey = `${merchantId}/${eventId}`;
      if (part.sent.has(sentKey)) {
        this.m.events.inc({ merchant: merchantId, outcome: 'skipped_already_sent' });
        continue;
      }
      const entry: Entry = { part, offset: r.offset, key: r.key, merchantId, sentKey, eventTimeMs, json: r.value.toString('utf8'), enqueuedAt: now, attempts: 0, firstFailAt: 0, done: false };
      part.entries.push(entry);
      this.pending++;
      const lane = this.lane(merchantId);
      // The backlog rule applies only while the pixel fails (then `ready` holds a few retried batches).
      const waiting = lane.failures === 0 ? 0 : lane.queue.length - lane.head + lane.ready.reduce((n, b) => n + b.length, 0);
      if (lane.failures > 0 && waiting >= this.o.maxPendingPerPixel) {
        this.deadLetter([entry], CapiDlqCodes.BACKLOG_FULL, `Meta has been failing for this pixel and ${waiting} events are waiting (capi.maxPendingPerPixel)`, lane.lastError);
        continue;
      }
      lane.queue.push(entry);
    }
    this.m.pending.set(this.pending);
  }

  /** Starts the requests that may start now: per lane, round robin, within the in-flight limits. */
  private pump(): void {
    if (!this.running && !this.draining) return;
    const now = this.o.now();
    const n = this.laneOrder.length;
    for (let i = 0; i < n && this.inFlight < this.o.maxInFlight; i++) {
      const lane = this.laneOrder[(this.rr + i) % n]!;
      while (this.inFlight < this.o.maxInFlight && lane.inFlight < this.o.maxInFlightPerPixel && now >= lane.nextAt && lane.breaker.allows(now)) {
        const batch = lane.ready.shift() ?? this.takeBatch(lane, now);
        if (batch === undefined) break;
        void this.send(lane, batch);
      }
      this.m.breaker.set({ merchant: lane.merchantId }, lane.breaker.state === 'closed' ? 0 : lane.breaker.state === 'half_open' ? 1 : 2);
    }
    if (n > 0) this.rr = (this.rr + 1) % n;
  }

  private takeBatch(lane: Lane, now: number): Entry[] | undefined {
    const waiting = lane.queue.length - lane.head;
    if (waiting === 0) return undefined;
    if (waiting < this.o.maxBatchSize && !this.draining && now - lane.queue[lane.head]!.enqueuedAt < this.o.flushIntervalMs) return undefined;
    const take = Math.min(waiting, this.o.maxBatchSize);
    const batch = lane.queue.slice(lane.head, lane.head + take);
    lane.head += take;
    if (lane.head > 4096 && lane.head * 2 > lane.queue.length) {
      lane.queue = lane.queue.slice(lane.head);
      lane.head = 0;
    }
    return batch;
  }

  private async send(lane: Lane, batch: Entry[]): Promise<void> {
    const now = this.o.now();
    const live = batch.filter((e) => !e.part.dead && !e.done);
    const meta = this.o.merchants.byId(lane.merchantId)?.meta;
    if (meta === undefined) {
      this.deadLetter(live, CapiDlqCodes.DISABLED, "the merchant's Meta settings were removed before the event was sent", undefined);
      return;
    }
    const fresh: Entry[] = [];
    const stale: Entry[] = [];
    for (const e of live) (now - e.eventTimeMs > this.o.maxEventAgeMs ? stale : fresh).push(e);
    if (stale.length > 0) this.deadLetter(stale, CapiDlqCodes.TOO_OLD, 'the event became older than Meta accepts (7 days) while it waited', lane.lastError, meta.pixelId);
    if (fresh.length === 0) return;
    lane.breaker.started();
    lane.inFlight++;
    this.inFlight++;
    this.m.inFlight.set(this.inFlight);
    for (const e of fresh) e.attempts++;
    this.m.events.inc({ merchant: lane.merchantId, outcome: 'sent' }, fresh.length);
    const started = process.hrtime.bigint();
    let outcome: GraphOutcome;
    try {
      const res = await fetch(eventsUrl(this.o.baseUrl, this.o.apiVersion, meta.pixelId), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: requestBody(
          fresh.map((e) => e.json),
          meta.accessToken,
          meta.testEventCode,
        ),
        signal: AbortSignal.timeout(this.o.requestTimeoutMs),
      });
      outcome = classifyGraphResponse(res.status, await res.text(), fresh.length);
    } catch (err) {
      const name = (err as { name?: string }).name;
      outcome = { kind: 'retry', why: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network' };
    } finally {
      lane.inFlight--;
      this.inFlight--;
      this.m.inFlight.set(this.inFlight);
    }
    this.m.seconds.observe({ outcome: outcome.kind }, Number(process.hrtime.bigint() - started) / 1e9);
    this.m.requests.inc({ merchant: lane.merchantId, outcome: outcome.kind });
    this.settle(lane, fresh, outcome, meta.pixelId);
    this.pump();
    for (const resolve of this.idle) resolve();
    this.idle.clear();
  }

  private settle(lane: Lane, batch: Entry[], outcome: GraphOutcome, pixelId: string): void {
    const now = this.o.now();
    const live = batch.filter((e) => !e.part.dead && !e.done);
    if (outcome.kind === 'ok') {
      lane.breaker.success();
      lane.failures = 0;
      lane.nextAt = 0;
      lane.lastError = undefined;
      for (const e of live) {
        e.part.sent.set(e.sentKey, now);
        e.part.newSent.push(e.sentKey);
        this.finish(e);
      }
      this.m.events.inc({ merchant: lane.merchantId, outcome: 'acknowledged' }, live.length);
      return;
    }
    if (outcome.kind === 'invalid') {
      // Meta answered about the events, so the pixel and its token work: that closes the breaker.
      lane.breaker.success();
      lane.failures = 0;
      lane.nextAt = 0;
      // Meta refuses the whole request for one invalid event: split until the event is alone.
      if (live.length === 1) {
        this.deadLetter(live, CapiDlqCodes.INVALID_EVENT, outcome.error.error_user_msg ?? outcome.error.message ?? 'Meta refused the event', outcome.error, pixelId, outcome.status);
      } else if (live.length > 1) {
        const half = Math.ceil(live.length / 2);
        lane.ready.unshift(live.slice(0, half), live.slice(half));
      }
      return;
    }
    // retry or config: the pixel failed; back off, and give events up after maxRetryMs.
    lane.breaker.failure(now);
    lane.failures++;
    lane.nextAt = now + backoffMs(lane.failures, this.o.retryBaseMs, this.o.retryMaxMs, this.o.random);
    lane.lastError = outcome.error;
    const keep: Entry[] = [];
    const expired: Entry[] = [];
    for (const e of live) {
      if (e.firstFailAt === 0) e.firstFailAt = now;
      (now - e.firstFailAt >= this.o.maxRetryMs ? expired : keep).push(e);
    }
    if (expired.length > 0) {
      const why = outcome.kind === 'config' ? `Meta refused the pixel's settings: ${outcome.error.message ?? 'error ' + outcome.error.code}` : `Meta did not acknowledge (${outcome.why}${outcome.status !== undefined ? ', HTTP ' + outcome.status : ''})`;
      this.deadLetter(expired, CapiDlqCodes.RETRIES_EXHAUSTED, `${why} for ${Math.round(this.o.maxRetryMs / 1000)} s`, outcome.error, pixelId, outcome.status);
    }
    if (keep.length > 0) {
      lane.ready.unshift(keep);
      this.m.events.inc({ merchant: lane.merchantId, outcome: 'retried' }, keep.length);
    }
    if (lane.failures === 1 || lane.failures % 10 === 0) {
      this.o.logger?.warn(
        { merchant: lane.merchantId, pixel: pixelId, outcome: outcome.kind, why: outcome.kind === 'retry' ? outcome.why : undefined, status: outcome.status, meta: outcome.error, failures: lane.failures, breaker: lane.breaker.state },
        'capi: Meta did not take a request; retrying with backoff',
      );
    }
  }

  private finish(e: Entry): void {
    e.done = true;
    this.pending--;
    this.m.pending.set(this.pending);
  }

  private deadLetter(entries: readonly Entry[], code: CapiDlqCode, message: string, meta: GraphError | undefined, pixelId?: string, httpStatus?: number): void {
    const at = this.o.now();
    for (const e of entries) {
      if (e.part.dead || e.done) continue;
      const value = capiDlqValue({ code, message, merchantId: e.merchantId, pixelId: pixelId ?? null, eventTimeMs: e.eventTimeMs, attempts: e.attempts, at, eventJson: e.json, ...(meta && { meta }), ...(httpStatus !== undefined && { httpStatus }) });
      e.part.dlq.push({ topic: this.o.topics.capiDlq, key: e.key, value: Buffer.from(JSON.stringify(value)), timestamp: at });
      this.finish(e);
      this.m.dlq.inc({ merchant: e.merchantId, reason: code });
      this.m.events.inc({ merchant: e.merchantId, outcome: 'dlq' });
    }
  }

  /** The offset to commit: the first event still waiting, or the next to read. */
  private committable(p: Part): number {
    while (p.head < p.entries.length && p.entries[p.head]!.done) p.head++;
    if (p.head > 1024 && p.head * 2 > p.entries.length) {
      p.entries = p.entries.slice(p.head);
      p.head = 0;
    }
    return p.head < p.entries.length ? p.entries[p.head]!.offset : p.position;
  }

  /** Commits, one commit at a time. */
  private commitNow(): Promise<void> {
    const next = this.committing.then(() => this.commitOnce());
    this.committing = next.catch(() => undefined);
    return next;
  }

  private async commitOnce(): Promise<void> {
    const member = this.member;
    if (member === undefined) return;
    const now = this.o.now();
    const work: Array<{ part: Part; offset: number; sent: string[]; dlq: ProducerRecord[] }> = [];
    for (const part of this.parts.values()) {
      const offset = this.committable(part);
      if (offset === part.committed && part.newSent.length === 0 && part.dlq.length === 0) continue;
      work.push({ part, offset, sent: part.newSent, dlq: part.dlq });
      part.newSent = [];
      part.dlq = [];
    }
    if (work.length === 0) return;
    const tx = member.beginTransaction();
    const offsets: TopicPartitionOffset[] = [];
    for (const w of work) {
      if (w.sent.length > 0) {
        const value: CapiSentRecord = { at: now, ids: w.sent };
        tx.send({ topic: this.o.topics.capiSent, partition: w.part.tp.partition, key: null, value: Buffer.from(JSON.stringify(value)), timestamp: now });
      }
      for (const r of w.dlq) tx.send(r);
      offsets.push({ topic: w.part.tp.topic, partition: w.part.tp.partition, offset: w.offset });
    }
    try {
      await tx.commit(offsets);
    } catch (err) {
      // Nothing of it is visible: start again from the committed offsets (run() resets on the throw).
      this.needsReset = true;
      throw err;
    }
    for (const w of work) w.part.committed = w.offset;
    this.m.lastCommit.set(now / 1000);
  }

  private prune(now: number): void {
    this.lastPrune = now;
    const cutoff = now - this.o.sentRetentionMs;
    for (const p of this.parts.values()) {
      for (const [k, at] of p.sent) if (at < cutoff) p.sent.delete(k);
    }
  }

  /**
   * Stops reading, sends what is waiting (without waiting for batches to fill) for up to
   * `drainMs`, commits, and leaves the group. Events still waiting are sent by the next owner.
   */
  async close(drainMs = 5_000): Promise<void> {
    if (!this.running) {
      await this.member?.close();
      return;
    }
    this.running = false;
    this.draining = true;
    await this.loop;
    const deadline = Date.now() + drainMs;
    while ((this.pending > 0 || this.inFlight > 0) && Date.now() < deadline) {
      this.pump();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.draining = false;
    clearInterval(this.timer);
    try {
      await this.commitNow();
    } catch (err) {
      this.o.logger?.warn({ err }, 'capi: last commit failed; the next start goes on from the previous one');
    }
    await this.member?.close();
  }
}
