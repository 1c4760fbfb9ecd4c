/**
 * The cubes role: reads events.filtered and events.bots (read_committed, so only what the pipeline
 * committed), adds each event to a batch of deltas (model.ts), and every `commitIntervalMs` commits
 * the batch to the store together with the input offsets (store.ts). The store, not the consumer
 * group, holds the authoritative offsets: on assignment the writer seeks to them, so a crash at any
 * point neither loses nor repeats an update. The group's committed offsets are written too, after
 * the store's, only so that consumer lag can be watched like any other role's.
 *
 * Visitors sketches and funnel session state are read-modify-write: the writer keeps the values it
 * committed in bounded caches (it owns its partitions' rows), and reads the store on a miss.
 */
import type { ConsumedRecord, GroupMember, Log, TopicPartition, TopicPartitionOffset } from '@shopstream/streams';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { isPlatformError, PlatformErrors } from '../errors.ts';
import { lagPosition } from '../lag.ts';
import type { PipelineEvent } from '../pipeline/topology.ts';
import type { TopicNames } from '../topics.ts';
import { HyperLogLog } from './hll.ts';
import { CubeBatch, sessionKey, type SessionState } from './model.ts';
import type { CubeStore, Retention } from './store.ts';

export interface CubesWriterOptions {
  log: Log;
  topics: TopicNames;
  store: CubeStore;
  /** Consumer group and offsets name. Default `${prefix}shopstream-cubes`. */
  consumer: string;
  /** How often a batch is committed, ms. Default 200 (freshness: the API sees an event within this, plus the pipeline's commit). */
  commitIntervalMs?: number;
  /** A batch is committed early at this many events. Default 50,000. */
  maxBatchEvents?: number;
  retention?: Retention;
  /** How often old buckets are deleted, ms. Default 10 minutes. */
  pruneIntervalMs?: number;
  /** A stable id of this writer (static membership on Kafka: a restarted instance takes its partitions back at once). */
  instanceId?: string;
  logger?: Logger;
  registry?: Registry;
  /** Called after each commit (tests, benchmarks). */
  onCommit?: (events: number) => void;
}

export const DEFAULT_RETENTION: Retention = { minuteMs: 14 * 86_400_000, quarterMs: 400 * 86_400_000, sessionMs: 2 * 86_400_000 };

/** A Map that forgets its oldest entries beyond `max` (insertion order; a set moves an entry to the end). */
class BoundedMap<V> {
  private readonly map = new Map<string, V>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get(k: string): V | undefined {
    return this.map.get(k);
  }
  has(k: string): boolean {
    return this.map.has(k);
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) {
      for (const old of this.map.keys()) {
        this.map.delete(old);
        if (this.map.size <= this.max * 0.9) break;
      }
    }
  }
  clear(): void {
    this.map.clear();
  }
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export class CubesWriter {
  private readonly o: Required<Omit<CubesWriterOptions, 'logger' | 'registry' | 'onCommit' | 'instanceId'>> & Pick<CubesWriterOptions, 'logger' | 'onCommit' | 'instanceId'>;
  private member: GroupMember | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  /** Stored next offset per input partition (what the next batch starts from). */
  private readonly positions = new Map<string, number>();
  private batch: CubeBatch;
  private batchStarted = 0;
  private readonly sketches = new BoundedMap<Uint8Array>(200_000);
  /** Funnel state by session key; null: known not to be stored. */
  private readonly sessions = new BoundedMap<SessionState | null>(500_000);
  /** The states the records of one `add` call need, held while the call adds them. */
  private readonly pinned = new Map<string, SessionState | null>();
  private lastPrune = 0;
  /** The stored offsets could not be read after a failure: read them before polling again. */
  private needsReassign = false;
  private readonly metrics: {
    events: Counter<'topic'>;
    commits: Counter<'outcome'>;
    commitSeconds: Histogram;
    lastCommit: Gauge;
  };

  constructor(options: CubesWriterOptions) {
    this.o = {
      commitIntervalMs: 200,
      maxBatchEvents: 50_000,
      retention: DEFAULT_RETENTION,
      pruneIntervalMs: 600_000,
      ...options,
    };
    this.batch = this.newBatch();
    const registers = options.registry ? [options.registry] : [];
    this.metrics = {
      events: new Counter({ name: 'shopstream_cubes_events_total', help: 'Events added to the cubes, by input topic', labelNames: ['topic'], registers }),
      commits: new Counter({ name: 'shopstream_cubes_commits_total', help: 'Cube store commits, by outcome', labelNames: ['outcome'], registers }),
      commitSeconds: new Histogram({
        name: 'shopstream_cubes_commit_seconds',
        help: 'Time to commit a batch to the cube store',
        buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers,
      }),
      lastCommit: new Gauge({ name: 'shopstream_cubes_last_commit_timestamp_seconds', help: 'When the cubes last committed a batch', registers }),
    };
  }

  private newBatch(): CubeBatch {
    return new CubeBatch((key) => (this.pinned.has(key) ? this.pinned.get(key) : this.sessions.get(key)) ?? undefined);
  }

  async start(): Promise<void> {
    await this.o.store.init();
    this.member = await this.o.log.joinGroup({
      groupId: this.o.consumer,
      topics: [this.o.topics.filtered, this.o.topics.bots],
      transactional: false,
      autoOffsetReset: 'earliest',
      clientId: this.o.consumer,
      ...(this.o.instanceId !== undefined && { instanceId: this.o.instanceId }),
      onAssign: (tps) => this.onAssign(tps),
      onRevoke: () => this.onRevoke(),
    });
    // The first assignment happened inside joinGroup, before the callback could seek: do it now.
    await this.onAssign(this.member.assignment());
    this.running = true;
    this.loop = this.run();
  }

  private async onAssign(tps: TopicPartition[]): Promise<void> {
    this.dropState();
    const stored = await this.o.store.positions(this.o.consumer, tps);
    for (const p of stored) {
      this.positions.set(tpKey(p.topic, p.partition), p.offset);
      this.member?.seek({ topic: p.topic, partition: p.partition }, p.offset);
    }
  }

  private async onRevoke(): Promise<void> {
    try {
      await this.commit();
    } catch (err) {
      this.o.logger?.warn({ err }, 'cubes: commit before revocation failed; the new owner starts from the last commit');
    }
    this.dropState();
  }

  /** Forgets everything not committed, and the caches (another writer may have owned the rows). */
  private dropState(): void {
    this.batch = this.newBatch();
    this.positions.clear();
    this.sketches.clear();
    this.sessions.clear();
  }

  private async run(): Promise<void> {
    const member = this.member!;
    let backoff = 0;
    while (this.running) {
      try {
        const wait = this.batch.offsets.size === 0 ? 100 : Math.max(0, this.batchStarted + this.o.commitIntervalMs - Date.now());
        if (this.needsReassign) {
          this.needsReassign = false;
          await this.onAssign(member.assignment());
        }
        const { records } = await member.poll(wait);
        if (records.length > 0) await this.add(records);
        const due = this.batch.offsets.size > 0 && (Date.now() - this.batchStarted >= this.o.commitIntervalMs || this.batch.size >= this.o.maxBatchEvents);
        if (due) await this.commit();
        if (Date.now() - this.lastPrune >= this.o.pruneIntervalMs) {
          this.lastPrune = Date.now();
          // Outside the failure path: a failed prune is tried again at the next interval.
          await this.o.store.prune(this.o.retention).catch((err: unknown) => this.o.logger?.warn({ err }, 'cubes: prune failed'));
        }
        backoff = 0;
      } catch (err) {
        if (!this.running) break;
        // Whatever failed (the store unavailable, a conflict, a fenced batch), the batch is dropped
        // and the writer goes on from the offsets the store holds: that is always correct, because
        // the store has exactly what was committed.
        const fencedBatch = isPlatformError(err) && err.code === PlatformErrors.CUBES_FENCED.code;
        backoff = fencedBatch ? 0 : Math.min(5_000, Math.max(100, backoff * 2));
        this.o.logger?.warn({ err, retryInMs: backoff }, fencedBatch ? 'cubes: fenced; going on from the stored offsets' : 'cubes: failed; going on from the stored offsets');
        if (backoff > 0) await new Promise((r) => setTimeout(r, backoff));
        try {
          await this.onAssign(member.assignment());
        } catch (e) {
          this.o.logger?.warn({ err: e }, 'cubes: cannot read the stored offsets yet');
          this.dropState();
          this.needsReassign = true;
        }
      }
    }
  }

  /** Adds polled records to the batch (after loading the funnel state of their sessions). */
  private async add(records: readonly ConsumedRecord[]): Promise<void> {
    const filtered = this.o.topics.filtered;
    const decoded: Array<{ r: ConsumedRecord; p: PipelineEvent }> = [];
    const missing = new Set<string>();
    this.pinned.clear();
    for (const r of records) {
      const key = tpKey(r.topic, r.partition);
      const from = this.positions.get(key);
      if (from === undefined || r.offset < from) continue; // not ours, or below the stored position
      if (r.value === null) continue;
      const p = JSON.parse(r.value.toString('utf8')) as PipelineEvent;
      decoded.push({ r, p });
      if (r.topic === filtered) {
        const sk = sessionKey(p.event.merchantId, p.event.visitorId, p.session.id);
        if (this.batch.sessions.has(sk) || this.pinned.has(sk)) continue;
        // Pinned for this call: loading the missing ones below may evict cached ones from the bounded cache.
        if (this.sessions.has(sk)) this.pinned.set(sk, this.sessions.get(sk)!);
        else missing.add(sk);
      }
    }
    if (missing.size > 0) {
      const loaded = await this.o.store.loadSessions([...missing]);
      for (const k of missing) {
        const state = loaded.get(k) ?? null;
        this.pinned.set(k, state);
        this.sessions.set(k, state);
      }
    }
    if (this.batch.offsets.size === 0) this.batchStarted = Date.now();
    let humans = 0;
    for (const { r, p } of decoded) {
      const key = tpKey(r.topic, r.partition);
      if (r.topic === filtered) {
        this.batch.addHuman(p, r.partition);
        humans++;
      } else this.batch.addBot(p);
      this.batch.consumed(r.topic, r.partition, r.offset, this.positions.get(key)!);
    }
    this.pinned.clear();
    if (humans > 0) this.metrics.events.inc({ topic: 'filtered' }, humans);
    if (decoded.length > humans) this.metrics.events.inc({ topic: 'bots' }, decoded.length - humans);
  }

  /** Commits the batch: merged sketches, deltas and offsets in one store transaction. */
  private async commit(): Promise<void> {
    const batch = this.batch;
    if (batch.offsets.size === 0) return;
    const started = process.hrtime.bigint();
    const missing = [...batch.visitors.keys()].filter((k) => !this.sketches.has(k));
    const stored = missing.length > 0 ? await this.o.store.loadSketches(missing) : new Map<string, Uint8Array>();
    const merged = new Map<string, Uint8Array>();
    for (const [k, ids] of batch.visitors) {
      const base = this.sketches.get(k) ?? stored.get(k);
      const h = base === undefined ? new HyperLogLog() : HyperLogLog.deserialize(base);
      for (const id of ids) h.add(id);
      merged.set(k, h.serialize());
    }
    try {
      await this.o.store.commit(this.o.consumer, batch, merged);
    } catch (err) {
      this.metrics.commits.inc({ outcome: isPlatformError(err) && err.code === PlatformErrors.CUBES_FENCED.code ? 'fenced' : 'failed' });
      throw err;
    }
    this.batch = this.newBatch();
    for (const [k, v] of merged) this.sketches.set(k, v);
    for (const [k, s] of batch.sessions) this.sessions.set(k, s);
    for (const [k, o] of batch.offsets) this.positions.set(k, o.to);
    this.metrics.commits.inc({ outcome: 'committed' });
    this.metrics.commitSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.metrics.lastCommit.set(Date.now() / 1000);
    this.o.onCommit?.(batch.size);
    // For lag monitoring only: the store's offsets are the ones that count.
    this.member?.commitOffsets([...batch.offsets.values()].map((o) => ({ topic: o.topic, partition: o.partition, offset: o.to }))).catch(() => undefined);
  }

  /** The next offset to read of each owned partition, as committed to the store. */
  committedPositions(): TopicPartitionOffset[] {
    return [...this.positions].map(([k, offset]) => {
      const [topic, partition] = k.split('\u0000');
      return { topic: topic!, partition: Number(partition), offset };
    });
  }

  /** Where lag is measured from: the stored positions, past the transaction markers once nothing of a partition is pending. */
  lagPositions(): TopicPartitionOffset[] {
    return this.committedPositions().map((p) => lagPosition(p, this.member, !this.batch.offsets.has(tpKey(p.topic, p.partition))));
  }

  /** Commits what is pending and leaves the group. */
  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    try {
      await this.commit();
    } catch (err) {
      this.o.logger?.warn({ err }, 'cubes: last commit failed; the next start goes on from the previous one');
    }
    await this.member?.close();
  }
}
