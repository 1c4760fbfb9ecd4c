/**
 * StreamsApp runs a topology on a Log, as KafkaStreams does: it joins the application's consumer
 * group, turns its partitions into tasks, restores their state, processes records and commits.
 *
 * Exactly-once lives here, in `commit()`, and nowhere else:
 *   1. every task flushes: caches forward their results, stores send their changelog records;
 *      all sends go into the member's open transaction;
 *   2. the transaction commits the outputs, the changelog records and the input offsets atomically
 *      (fenced by the group generation);
 *   3. only then each store applies its write buffer to its local backend, with a changelog
 *      checkpoint. A crash before 2 leaves nothing visible and the local state untouched; a crash
 *      between 2 and 3 is repaired on restart by replaying the changelog from the checkpoint.
 * Processors never begin or commit; they may only ask for a commit.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { ConsumedRecord, GroupMember, Log, LogProducer, PollResult, ProducerRecord, TopicPartition, TopicPartitionOffset, Transaction } from '../log/types.ts';
import { tpKey } from '../log/types.ts';
import { acquirePidLock, releasePidLock } from '../pid-lock.ts';
import type { StoreSpec, Subtopology, Topology } from '../topology.ts';
import { resolveTopic } from '../topology.ts';
import { Task } from './task.ts';
import type { RecordCollector } from './task.ts';
import { LmdbEnvironment, MemoryBackend } from '../state/backend.ts';
import type { Backend } from '../state/backend.ts';
import { DEFAULT_STORE_CACHE_BYTES } from '../state/stores.ts';
import { StreamsMetrics } from './metrics.ts';
import { StreamsError, ErrorCodes, isStreamsError } from '../errors.ts';
import type { Registry } from 'prom-client';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface StreamsConfig {
  applicationId: string;
  log: Log;
  /** Where tasks keep their local state (LMDB). Default: `${tmpdir()}/shopstream-state`. */
  stateDir?: string;
  /** A stable id for this instance (names its transactional id on Kafka). */
  instanceId?: string;
  processingGuarantee?: 'exactly-once' | 'at-least-once';
  /** Default 100 ms, as Kafka Streams under exactly-once. */
  commitIntervalMs?: number;
  pollMs?: number;
  /** Max records a task processes between two polls. */
  maxRecordsPerIteration?: number;
  /**
   * How long the tasks process records before the loop yields to the event loop (other work of the
   * process: HTTP requests, other applications) and polls again. Node has one thread where Kafka
   * Streams has a stream thread apart from the application's: a large backlog would otherwise hold
   * the thread for as long as `maxRecordsPerIteration` records take. Default 5 ms.
   */
  maxIterationMs?: number;
  /**
   * Kafka Streams' max.task.idle.ms: how a task with several inputs waits for an empty one before
   * choosing by timestamp. Default 0: it waits only for records the log is known to hold (no
   * out-of-order processing after a restart or under lag). -1: never waits. > 0: also waits that
   * long for new records to arrive.
   */
  maxTaskIdleMs?: number;
  /**
   * Kafka Streams' buffered.records.per.partition: records of one input partition that may wait in
   * its task's queue. A partition whose queue holds this many is paused (the log returns none of its
   * records) until the task has worked the queue below it, so that a backlog (a restart after
   * downtime, a replay) stays in the log instead of in the heap. Default 1000.
   */
  maxBufferedRecordsPerPartition?: number;
  /** Max bytes of one store's uncommitted writes before an early commit. Default 64 MiB. */
  maxUncommittedBytesPerStore?: number;
  /**
   * Stored bytes of committed values that each store of each task keeps decoded in memory, so that
   * hot keys skip the backend read and the decode (like Kafka Streams' record cache and RocksDB's
   * block cache). Default 512 KiB; 0 turns the cache off.
   */
  storeCacheBytesPerStore?: number;
  /** Records that cannot be deserialised go here (created if missing). Without it they fail the application. */
  deadLetterTopic?: string;
  /** Where to start in a partition with no committed offset. */
  autoOffsetReset?: 'earliest' | 'latest';
  /** How often consumer lag is measured, ms. Default 5000. */
  lagIntervalMs?: number;
  /** Group membership tuning, passed to the log (Kafka: session.timeout.ms, heartbeat.interval.ms, max.poll.interval.ms). */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  registry?: Registry;
  logger?: Logger;
  /** Called once when the application stops on a fatal error. */
  onError?: (err: Error) => void;
}

export type AppState = 'created' | 'starting' | 'running' | 'error' | 'closing' | 'closed';

const silent: Logger = { info() {}, warn() {}, error() {} };

/** Where local state goes when `stateDir` is not set. */
export function defaultStateDir(): string {
  return join(tmpdir(), 'shopstream-state');
}

/** A tiny async mutex: the poll loop and rebalance callbacks take turns on tasks. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/** The longest wait between tries when the log fails with a retriable error (runLoop). */
const MAX_RETRY_MS = 5_000;

/** Records a task processes at a time before the loop checks the iteration's time (see maxIterationMs). */
const ITERATION_SLICE = 64;

/** A commit whose transaction is committing while the loop goes on processing (see startCommit). */
interface InflightCommit {
  tasks: Task[];
  /** Changelog end offsets read during the commit: the checkpoints the stores get once it is through. */
  ends: Map<string, number>;
  done: boolean;
  error: unknown;
  promise: Promise<void>;
}

export class StreamsApp {
  readonly topology: Topology;
  readonly config: Required<Pick<StreamsConfig, 'applicationId' | 'processingGuarantee' | 'commitIntervalMs' | 'pollMs' | 'maxRecordsPerIteration' | 'maxIterationMs' | 'maxTaskIdleMs' | 'maxBufferedRecordsPerPartition' | 'maxUncommittedBytesPerStore' | 'storeCacheBytesPerStore' | 'lagIntervalMs'>> &
    StreamsConfig;
  readonly metrics: StreamsMetrics;
  private readonly log: Log;
  private readonly logger: Logger;
  private readonly lock = new Mutex();
  private readonly subtopologies: Subtopology[];
  private member: GroupMember | undefined;
  private producer: LogProducer | undefined;
  private txn: Transaction | undefined;
  private pendingSends: ProducerRecord[] = [];
  /** The commit in flight, if any: at most one. */
  private inflight: InflightCommit | undefined;
  /** Records sent while a commit is in flight (exactly-once): they open the next transaction once it is through. */
  private heldSends: ProducerRecord[] = [];
  private readonly tasks = new Map<string, Task>();
  private readonly taskByPartition = new Map<string, Task>();
  /** Next offset expected per input partition: records below it (re-delivered after a seek) are skipped. */
  private readonly positions = new Map<string, number>();
  /** The member's generation when the tasks were last brought in line with its assignment. */
  private tasksGeneration: number | undefined;
  private readonly envs = new Map<string, LmdbEnvironment>();
  private readonly partitionCounts = new Map<string, number>();
  private appState: AppState = 'created';
  private commitRequested = false;
  private lastCommit = Date.now();
  private lastLag = 0;
  private loop: Promise<void> | undefined;
  private stateDirLock: string | undefined;
  private fatal: Error | undefined;

  constructor(topology: Topology, config: StreamsConfig) {
    this.topology = topology;
    this.config = {
      processingGuarantee: 'exactly-once',
      commitIntervalMs: 100,
      pollMs: 100,
      maxRecordsPerIteration: 10_000,
      maxIterationMs: 5,
      maxTaskIdleMs: 0,
      maxBufferedRecordsPerPartition: 1000,
      maxUncommittedBytesPerStore: 64 * 1024 * 1024,
      storeCacheBytesPerStore: DEFAULT_STORE_CACHE_BYTES,
      lagIntervalMs: 5000,
      ...config,
    };
    this.log = config.log;
    this.logger = config.logger ?? silent;
    this.metrics = new StreamsMetrics(config.registry);
    this.subtopologies = topology.subtopologies();
    const limit = this.config.maxBufferedRecordsPerPartition;
    // 0 would pause every input for good: the application would hang without an error.
    if (!Number.isInteger(limit) || limit < 1) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `maxBufferedRecordsPerPartition must be a whole number of at least 1, not ${limit}`);
    }
  }

  get state(): AppState {
    return this.appState;
  }

  private get eos(): boolean {
    return this.config.processingGuarantee === 'exactly-once';
  }

  private topicOf(ref: Parameters<typeof resolveTopic>[0]): string {
    return resolveTopic(ref, this.config.applicationId);
  }

  /** Creates internal topics, joins the group and starts processing. Resolves once the first assignment is in. */
  async start(): Promise<void> {
    if (this.appState !== 'created') throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `cannot start an application in state ${this.appState}`);
    this.appState = 'starting';
    try {
      this.lockStateDir();
      await this.prepareTopics();
      const sourceTopics = [...new Set(this.subtopologies.flatMap((st) => st.sourceTopics.map((t) => this.topicOf(t))))];
      if (!this.eos) this.producer = this.log.createProducer({ clientId: `${this.config.applicationId}-producer` });
      const groupOptions: Parameters<Log['joinGroup']>[0] = {
        groupId: this.config.applicationId,
        topics: sourceTopics,
        transactional: this.eos,
        onRevoke: (tps) => this.lock.run(() => this.onRevoke(tps)),
        autoOffsetReset: this.config.autoOffsetReset ?? 'earliest',
        clientId: `${this.config.applicationId}-${this.config.instanceId ?? 'instance'}`,
        onWarning: (message, details) => this.logger.warn(details, message),
      };
      // Every topic this application may write (outputs, repartition topics, changelogs).
      if (this.eos) groupOptions.outputTopics = [...new Set([...this.partitionCounts.keys(), ...(this.config.deadLetterTopic !== undefined ? [this.config.deadLetterTopic] : [])])];
      if (this.config.instanceId !== undefined) groupOptions.instanceId = this.config.instanceId;
      if (this.config.sessionTimeoutMs !== undefined) groupOptions.sessionTimeoutMs = this.config.sessionTimeoutMs;
      if (this.config.heartbeatIntervalMs !== undefined) groupOptions.heartbeatIntervalMs = this.config.heartbeatIntervalMs;
      if (this.config.rebalanceTimeoutMs !== undefined) groupOptions.rebalanceTimeoutMs = this.config.rebalanceTimeoutMs;
      this.member = await this.log.joinGroup(groupOptions);
      this.appState = 'running';
      this.logger.info({ applicationId: this.config.applicationId, memberId: this.member.memberId }, 'streams application started');
      this.loop = this.runLoop();
    } catch (err) {
      this.appState = 'error';
      this.releaseStateDir();
      throw err;
    }
  }

  /** Checks source and sink topics, sizes and creates repartition and changelog topics. */
  private async prepareTopics(): Promise<void> {
    const admin = this.log.admin;
    const userTopics = new Set<string>();
    for (const n of this.topology.nodes.values()) {
      if (n.kind === 'source') for (const t of n.topics) if (typeof t === 'string') userTopics.add(t);
      if (n.kind === 'sink' && typeof n.topic === 'string') userTopics.add(n.topic);
    }
    if (this.config.deadLetterTopic !== undefined) {
      const d = await admin.describeTopics([this.config.deadLetterTopic]);
      if (!d.has(this.config.deadLetterTopic)) await admin.createTopics([{ name: this.config.deadLetterTopic, partitions: 1 }]);
    }
    const described = await admin.describeTopics([...userTopics]);
    const missing = [...userTopics].filter((t) => !described.has(t));
    if (missing.length > 0) {
      throw new StreamsError(ErrorCodes.UNKNOWN_TOPIC, `topics missing: ${missing.join(', ')}; create them before starting the application`, { details: { missing } });
    }
    for (const [name, d] of described) this.partitionCounts.set(name, d.partitions);

    // Repartition topics: fixed count, else the max partition count of the sub-topology that writes them.
    const repartitionNeeded = new Map<string, number>();
    for (let round = 0; round < 10; round++) {
      let changed = false;
      for (const st of this.subtopologies) {
        const counts = st.sourceTopics.map((t) => this.partitionCounts.get(this.topicOf(t)));
        if (counts.some((c) => c === undefined)) continue;
        const max = Math.max(...(counts as number[]));
        for (const name of st.nodes) {
          const n = this.topology.nodes.get(name)!;
          if (n.kind !== 'sink' || typeof n.topic !== 'object' || !('internal' in n.topic)) continue;
          const spec = this.topology.repartitionTopics.get(n.topic.internal);
          const full = this.topicOf(n.topic);
          if (this.partitionCounts.has(full)) continue;
          const p = spec?.partitions ?? max;
          this.partitionCounts.set(full, p);
          repartitionNeeded.set(full, p);
          changed = true;
        }
      }
      if (!changed) break;
    }
    // Internal topics (repartition and changelog), checked and created in one request each: on Kafka
    // every request is a round trip, and an application with six stores would otherwise pay twelve.
    const internal = new Map<string, { partitions: number; config: Record<string, string | number | undefined> }>();
    for (const [name, spec] of this.topology.repartitionTopics) {
      const full = this.topicOf({ internal: name });
      const partitions = repartitionNeeded.get(full);
      if (partitions !== undefined) internal.set(full, { partitions, config: spec.config });
    }

    // Co-partitioning: all sources of a sub-topology must have the same partition count.
    for (const st of this.subtopologies) {
      const counts = new Set(st.sourceTopics.map((t) => this.partitionCounts.get(this.topicOf(t))));
      if (counts.size !== 1) {
        throw new StreamsError(
          ErrorCodes.TOPOLOGY,
          `sub-topology ${st.id} reads topics with different partition counts (${st.sourceTopics.map((t) => `${this.topicOf(t)}:${this.partitionCounts.get(this.topicOf(t))}`).join(', ')}); co-partitioned inputs must match`,
        );
      }
      const partitions = [...counts][0]!;
      for (const store of st.stores) {
        const spec = this.topology.stores.get(store)!;
        if (spec.logging === false) continue;
        const cl = this.topology.changelogTopic(store);
        internal.set(this.topicOf({ internal: cl.name }), { partitions, config: cl.config });
      }
    }
    await this.ensureTopics(internal);
  }

  private async ensureTopics(wanted: ReadonlyMap<string, { partitions: number; config: Record<string, string | number | undefined> }>): Promise<void> {
    if (wanted.size === 0) return;
    const existing = await this.log.admin.describeTopics([...wanted.keys()]);
    const missing: Array<{ name: string; partitions: number; config: Record<string, string | number | undefined> }> = [];
    for (const [name, { partitions, config }] of wanted) {
      const d = existing.get(name);
      if (d === undefined) missing.push({ name, partitions, config });
      else if (d.partitions !== partitions) {
        throw new StreamsError(ErrorCodes.TOPIC_CONFLICT, `internal topic ${name} has ${d.partitions} partitions, expected ${partitions}; reset the application`);
      }
      this.partitionCounts.set(name, partitions);
    }
    if (missing.length > 0) await this.log.admin.createTopics(missing);
  }

  private lockStateDir(): void {
    const dir = join(this.config.stateDir ?? defaultStateDir(), this.config.applicationId);
    mkdirSync(dir, { recursive: true });
    const lockFile = join(dir, '.lock');
    // Reentrant: an app of this process that was dropped without close() (an in-process crash) leaves its lock behind.
    acquirePidLock(lockFile, { what: `state directory ${dir}`, hint: 'give each instance its own stateDir', reentrant: true, ioError: ErrorCodes.STATE_STORE });
    this.stateDirLock = lockFile;
  }

  private releaseStateDir(): void {
    if (this.stateDirLock !== undefined) releasePidLock(this.stateDirLock);
    this.stateDirLock = undefined;
  }

  private taskDir(taskId: string): string {
    return join(this.config.stateDir ?? defaultStateDir(), this.config.applicationId, taskId);
  }

  private openBackend(spec: StoreSpec, taskId: string): Backend {
    if (spec.inMemory === true) return new MemoryBackend();
    let env = this.envs.get(taskId);
    if (env === undefined) {
      const dir = this.taskDir(taskId);
      mkdirSync(dir, { recursive: true });
      env = new LmdbEnvironment(dir);
      this.envs.set(taskId, env);
    }
    return env.backend(spec.name);
  }

  private collector(): RecordCollector {
    return {
      send: (record) => {
        if (this.eos) {
          if (this.inflight !== undefined) {
            this.heldSends.push(record);
            return;
          }
          if (this.txn === undefined) this.txn = this.member!.beginTransaction();
          this.txn.send(record);
        } else {
          this.pendingSends.push(record);
        }
      },
      partitionsOf: (topic) => {
        const n = this.partitionCounts.get(topic);
        if (n === undefined) throw new StreamsError(ErrorCodes.UNKNOWN_TOPIC, `unknown partition count of ${topic}`);
        return n;
      },
    };
  }

  /** Brings the task set in line with the member's assignment. */
  private async syncTasks(): Promise<void> {
    // Not while a poll is under way (see `ahead`): the loop waits for it within a few iterations.
    if (this.ahead !== undefined) return;
    const member = this.member!;
    if (this.tasks.size > 0 && this.tasksGeneration !== undefined && member.generation !== this.tasksGeneration) {
      // Rebalances are eager: onRevoke closes every task before the generation changes. Tasks still
      // here lost their partitions without it (the embedded log gives up an assignment its member
      // has not polled since); the partitions' next owner may have committed past them. Drop them
      // with their uncommitted work and build them again from the committed offsets and state.
      await this.finishCommit(true);
      for (const id of [...this.tasks.keys()]) this.closeTask(id, false);
    }
    const assigned = new Set(member.assignment().map(tpKey));
    const wanted = new Map<string, { st: Subtopology; partition: number }>();
    for (const st of this.subtopologies) {
      const topics = st.sourceTopics.map((t) => this.topicOf(t));
      const n = this.partitionCounts.get(topics[0]!) ?? 0;
      for (let p = 0; p < n; p++) {
        if (topics.every((topic) => assigned.has(tpKey({ topic, partition: p })))) wanted.set(`${st.id}_${p}`, { st, partition: p });
      }
    }
    const removed = [...this.tasks.keys()].filter((id) => !wanted.has(id));
    if (removed.length > 0) {
      await this.finishCommit(true);
      // Normally onRevoke committed them already; if not, try now (a fenced commit is handled).
      if (removed.some((id) => this.tasks.get(id)!.needsCommit())) await this.commit();
      for (const id of removed) this.closeTask(id, true);
    }
    const created: Task[] = [];
    for (const [id, { st, partition }] of wanted) {
      if (this.tasks.has(id)) continue;
      const task = new Task({
        applicationId: this.config.applicationId,
        topology: this.topology,
        subtopology: st,
        partition,
        collector: this.collector(),
        openBackend: (spec, taskId) => this.openBackend(spec, taskId),
        maxBufferBytes: this.config.maxUncommittedBytesPerStore,
        cacheBytes: this.config.storeCacheBytesPerStore,
        deadLetterTopic: this.config.deadLetterTopic,
        changelogs: true,
        wallClock: () => Date.now(),
        metrics: this.taskMetrics(id),
        requestCommit: () => void (this.commitRequested = true),
      });
      this.tasks.set(id, task);
      for (const tp of task.inputPartitions()) this.taskByPartition.set(tpKey(tp), task);
      created.push(task);
    }
    if (created.length > 0) {
      // Committed offsets first (stable: they wait for the previous owner's transaction to end),
      // then the changelogs' ends: a restore must include the state of every offset it resumes from.
      const inputs = created.flatMap((t) => t.inputPartitions());
      await member.settleTransactions();
      const committedList = await this.log.admin.committedOffsets(this.config.applicationId, inputs);
      for (const task of created) await this.restore(task);
      for (const task of created) {
        const mine = new Set(task.inputPartitions().map(tpKey));
        task.restoreStreamTime(committedList.filter((o) => mine.has(tpKey(o))));
      }
      const committed = new Map(committedList.map((o) => [tpKey(o), o.offset]));
      const missing = inputs.filter((tp) => !committed.has(tpKey(tp)));
      if (missing.length > 0) {
        const reset = await this.log.admin.listOffsets(missing, this.config.autoOffsetReset === 'latest' ? 'latest' : 'earliest');
        for (const o of reset) committed.set(tpKey(o), o.offset);
      }
      for (const tp of inputs) {
        const offset = committed.get(tpKey(tp)) ?? 0;
        member.seek(tp, offset);
        this.positions.set(tpKey(tp), offset);
      }
      for (const task of created) task.init();
      this.logger.info({ tasks: created.map((t) => t.id) }, 'tasks assigned');
    }
    this.tasksGeneration = member.generation;
    this.metrics.tasks.set({ application: this.config.applicationId }, this.tasks.size);
  }

  private taskMetrics(taskId: string) {
    const application = this.config.applicationId;
    const m = this.metrics;
    const recordsIn = m.recordsIn.labels({ application, task: taskId });
    return {
      recordsIn: (n: number) => recordsIn.inc(n),
      recordsOut: (topic: string, n: number) => m.recordsOut.inc({ application, task: taskId, topic }, n),
      lateDropped: (processor: string) => m.lateDropped.inc({ application, processor }),
      deadLettered: (reason: string) => m.deadLettered.inc({ application, reason }),
    };
  }

  /** Replays each logged store's changelog from its checkpoint to the end. */
  private async restore(task: Task): Promise<void> {
    if (task.changelogs.size === 0) return;
    const admin = this.log.admin;
    const tps = [...task.changelogs.values()];
    const ends = new Map((await admin.listOffsets(tps, 'latest')).map((o) => [tpKey(o), o.offset]));
    const starts = new Map((await admin.listOffsets(tps, 'earliest')).map((o) => [tpKey(o), o.offset]));
    for (const [storeName, tp] of task.changelogs) {
      const store = task.stores.get(storeName)!;
      const end = ends.get(tpKey(tp)) ?? 0;
      const earliest = starts.get(tpKey(tp)) ?? 0;
      let from = store.persistent ? store.checkpoint() : undefined;
      if (from === undefined || from > end) {
        // No checkpoint, or one past the changelog's end (the changelog was recreated): start over.
        if (from !== undefined) this.logger.warn({ store: storeName, task: task.id, checkpoint: from, earliest, end }, 'checkpoint past the changelog end; restoring from scratch');
        store.wipe();
        from = earliest;
      } else if (from < earliest) {
        // Retention removed changelog records after the checkpoint. They were older than the
        // store's own retention, so the local entries they touched are expired too: keep the local
        // state and replay what is left.
        this.logger.warn({ store: storeName, task: task.id, checkpoint: from, earliest }, 'changelog retention passed the checkpoint; replaying from the log start');
        from = earliest;
      }
      if (from >= end) continue;
      const labels = { application: this.config.applicationId, store: storeName, partition: String(tp.partition) };
      const total = end - from;
      this.logger.info({ store: storeName, task: task.id, records: total }, 'restoring state');
      const reader = this.log.createReader({ clientId: `${this.config.applicationId}-restore` });
      try {
        reader.assign([{ ...tp, offset: from }]);
        let position = from;
        let idle = 0;
        while (position < end) {
          const records = await reader.poll(500);
          if (records.length === 0) {
            position = Math.max(position, reader.position(tp));
            if (++idle > 120) throw new StreamsError(ErrorCodes.TIMEOUT, `restoring ${storeName} stalled at ${position} of ${end}`);
            continue;
          }
          idle = 0;
          store.restoreBatch(
            records.map((r) => [r.key ?? Buffer.alloc(0), r.value] as const),
            records[records.length - 1]!.offset + 1,
          );
          position = Math.max(reader.position(tp), records[records.length - 1]!.offset + 1);
          this.metrics.restored.inc({ application: labels.application, store: storeName }, records.length);
          this.metrics.restoreRemaining.set(labels, Math.max(0, end - position));
        }
        this.metrics.restoreRemaining.set(labels, 0);
        this.logger.info({ store: storeName, task: task.id, records: total }, 'state restored');
      } finally {
        await reader.close();
      }
    }
  }

  private closeTask(id: string, clean: boolean): void {
    const task = this.tasks.get(id);
    if (task === undefined) return;
    if (!clean) task.discard();
    task.close();
    for (const tp of task.inputPartitions()) {
      this.taskByPartition.delete(tpKey(tp));
      this.positions.delete(tpKey(tp));
      // Its lag is its next owner's to report: a stale series here would be added to the owner's
      // wherever instances' or threads' metrics are summed.
      this.metrics.lag.remove({ application: this.config.applicationId, topic: tp.topic, partition: String(tp.partition) });
    }
    this.tasks.delete(id);
    const env = this.envs.get(id);
    if (env !== undefined) {
      env.close();
      this.envs.delete(id);
    }
  }

  private async onRevoke(partitions: TopicPartition[]): Promise<void> {
    if (this.appState !== 'running' && this.appState !== 'closing') return;
    try {
      await this.commit();
    } catch (err) {
      this.logger.warn({ err }, 'commit before revocation failed');
    }
    const revoked = new Set(partitions.map(tpKey));
    for (const [id, task] of [...this.tasks]) {
      if (task.inputPartitions().some((tp) => revoked.has(tpKey(tp)))) this.closeTask(id, true);
    }
  }

  private iterations = 0;

  /**
   * A poll started while the tasks still held records, so that they go on working while its answer
   * comes (a remote log's round trip to the thread that owns the log, or a broker's) instead of
   * waiting for it; `done` once it settled. While one is in flight the task set does not change
   * (syncTasks waits): a seek of a new task's partition must not race a poll already under way.
   */
  private ahead: { promise: Promise<PollResult>; done: boolean } | undefined;

  private pollAhead(member: GroupMember): { promise: Promise<PollResult>; done: boolean } {
    const a = { promise: member.poll(0), done: false };
    // Handled here, so that a failed poll is no unhandled rejection; awaiting it rethrows.
    a.promise.then(
      () => (a.done = true),
      () => (a.done = true),
    );
    return a;
  }

  /** Lets a poll ahead settle, dropping what it got (on errors, and when the loop ends). */
  private async settleAhead(): Promise<void> {
    const a = this.ahead;
    if (a === undefined) return;
    await a.promise.catch(() => undefined);
    this.ahead = undefined;
  }

  private async runLoop(): Promise<void> {
    try {
      await this.loopIterations();
    } finally {
      await this.settleAhead();
    }
  }

  private async loopIterations(): Promise<void> {
    const member = this.member!;
    const caughtUp = (tp: TopicPartition) => member.caughtUp(tp);
    let buffered = 0;
    let retryInMs = 0;
    while (this.appState === 'running') {
      try {
        await this.lock.run(async () => {
          if (this.appState !== 'running') return;
          await this.finishCommit(false);
          await this.syncTasks();
          buffered = 0;
          const now = Date.now();
          // The tasks take turns in slices of records until they are out of records, the
          // iteration's record limit is reached, or its time is up.
          const started = performance.now();
          const tasks = [...this.tasks.values()];
          // Each iteration starts with the next task, so a short time budget starves none.
          const first = tasks.length === 0 ? 0 : this.iterations++ % tasks.length;
          let done = 0;
          let more = true;
          while (more) {
            more = false;
            for (let i = 0; i < tasks.length; i++) {
              const task = tasks[(first + i) % tasks.length]!;
              const n = task.process(Math.min(ITERATION_SLICE, this.config.maxRecordsPerIteration - done), caughtUp, this.config.maxTaskIdleMs, now);
              done += n;
              if (n === ITERATION_SLICE && !task.blocked) more = true;
              if (done >= this.config.maxRecordsPerIteration || (n > 0 && performance.now() - started >= this.config.maxIterationMs)) {
                more = false;
                break;
              }
            }
          }
          // A task waiting for an input has nothing to do before the next fetch arrives.
          for (const task of tasks) if (!task.blocked) buffered += task.buffered();
          this.backpressure(member);
          for (const task of this.tasks.values()) task.punctuate('wall-clock', now);
          // The next commit starts once the one in flight is through; meanwhile processing goes on.
          const busy = this.inflight !== undefined && !this.inflight.done;
          if (!busy && (this.commitRequested || now - this.lastCommit >= this.config.commitIntervalMs)) await this.startCommit();
          if (now - this.lastLag >= this.config.lagIntervalMs) await this.measureLag();
        });
        if (this.appState !== 'running') break;
        if (buffered > 0) {
          // Records left: poll ahead, let the process's other work run (and the answer arrive),
          // and go on working on them if it has not arrived yet.
          this.ahead ??= this.pollAhead(member);
          await new Promise((resolve) => setImmediate(resolve));
          if (!this.ahead.done) continue;
        }
        let records: ConsumedRecord[];
        if (this.ahead !== undefined) {
          try {
            ({ records } = await this.ahead.promise);
          } finally {
            this.ahead = undefined;
          }
        } else ({ records } = await member.poll(this.config.pollMs));
        this.route(records);
        retryInMs = 0;
      } catch (err) {
        // A poll still under way settles first: recovery seeks, which must not race it.
        await this.settleAhead();
        if (this.appState !== 'running') break;
        if (!(isStreamsError(err) && err.retriable)) {
          await this.fail(err);
          return;
        }
        // The log is unavailable (a broker restarting, the network), timed out, or this member was
        // fenced: as Kafka Streams, keep going once it is back, from the last commit, instead of
        // stopping. Backs off up to MAX_RETRY_MS between tries.
        retryInMs = Math.min(MAX_RETRY_MS, Math.max(100, retryInMs * 2));
        await this.lock.run(() => this.recover(err, retryInMs));
        await new Promise((resolve) => setTimeout(resolve, retryInMs));
      }
    }
  }

  /** Input partitions paused at the last iteration because their task's queue was full (key → partition). */
  private paused = new Map<string, TopicPartition>();

  /**
   * Pauses the input partitions whose task's queue holds maxBufferedRecordsPerPartition records or
   * more, and resumes those paused before whose queue is below it now (or whose task is gone: a new
   * task starts with an empty queue). Without it every poll adds to the queues however far the tasks
   * are behind, and a backlog is read into the heap whole. The full ones are paused again at every
   * iteration, not only when they fill: a rebalance resets the member's pauses, also of the
   * partitions it keeps, and pausing a paused partition changes nothing. Call under the lock.
   */
  private backpressure(member: GroupMember): void {
    const limit = this.config.maxBufferedRecordsPerPartition;
    const full = new Map<string, TopicPartition>();
    for (const task of this.tasks.values()) {
      for (const [tp, size] of task.queueSizes()) if (size >= limit) full.set(tpKey(tp), tp);
    }
    const resume: TopicPartition[] = [];
    for (const [key, tp] of this.paused) if (!full.has(key)) resume.push(tp);
    this.paused = full;
    if (full.size > 0) member.pause([...full.values()]);
    if (resume.length > 0) member.resume(resume);
  }

  /**
   * After a retriable error outside a commit (the commit's own are handled by commitFailed): every
   * task is dropped with its uncommitted work, and built again from the committed offsets and state
   * at the next iteration. A commit in flight settles first, so that what is rebuilt includes it if
   * it went through. Call under the lock.
   */
  private async recover(err: StreamsError, retryInMs: number): Promise<void> {
    this.metrics.recoveries.inc({ application: this.config.applicationId, code: err.code });
    this.logger.warn({ code: err.code, message: err.message, retryInMs }, 'the log failed; going on from the last commit once it answers');
    const inflight = this.inflight;
    if (inflight !== undefined) await inflight.promise;
    this.inflight = undefined;
    await this.dropUncommitted();
    // A transaction whose commit or abort did not get through stays open on the broker and holds
    // the group's committed offsets back (UNSTABLE_OFFSET_COMMIT) until it times out. A new producer
    // epoch aborts it at once (Kafka Streams resets its producer likewise), and the member ends what
    // the broker may have left hanging (nothing happens if the log is still down: the tasks are
    // built again only after the member settled).
    if (this.eos) await this.member!.settleTransactions(true).catch(() => undefined);
    this.metrics.tasks.set({ application: this.config.applicationId }, 0);
  }

  /**
   * Hands polled records to their tasks. Polls return runs of records of one partition, so the
   * partition key and position are looked up once per run, not per record.
   */
  private route(records: readonly ConsumedRecord[]): void {
    let i = 0;
    while (i < records.length) {
      const first = records[i]!;
      let end = i + 1;
      while (end < records.length && records[end]!.partition === first.partition && records[end]!.topic === first.topic) end++;
      const key = tpKey(first);
      const task = this.taskByPartition.get(key);
      // Not ours (any more): its new owner starts from the committed offset.
      if (task !== undefined) {
        // Records below the expected position are re-deliveries after a seek.
        const expected = this.positions.get(key) ?? 0;
        let from = i;
        while (from < end && records[from]!.offset < expected) from++;
        if (from < end) {
          task.addRecords(from === 0 && end === records.length ? records : records.slice(from, end));
          this.positions.set(key, records[end - 1]!.offset + 1);
        }
      }
      i = end;
    }
  }

  /** The exactly-once commit, through to the end (revocation, close). Call under the lock. */
  private async commit(): Promise<void> {
    await this.startCommit();
    await this.finishCommit(true);
  }

  /**
   * Starts the exactly-once commit of everything processed so far: flushes the stores (changelog
   * records and cached results go into the transaction), marks their contents as the commit's and
   * sends the commit of the transaction with the input offsets. It does not wait: the loop goes on
   * processing while the commit's round trips and fsyncs run, and records sent meanwhile are held
   * for the next transaction. `finishCommit` applies the commit's store contents to the backends
   * once it is through, or drops everything uncommitted if it failed. Call under the lock.
   */
  private async startCommit(): Promise<void> {
    await this.finishCommit(true);
    this.commitRequested = false;
    this.lastCommit = Date.now();
    const tasks = [...this.tasks.values()].filter((t) => t.needsCommit());
    if (tasks.length === 0 && this.txn === undefined && this.pendingSends.length === 0) return;
    const started = process.hrtime.bigint();
    const application = this.config.applicationId;
    let offsets: TopicPartitionOffset[];
    let ends: Promise<Map<string, number>>;
    try {
      for (const t of tasks) t.flush();
      offsets = tasks.flatMap((t) => t.committableOffsets());
      // The changelogs' end offsets, for the stores' checkpoints: any position up to the end of this
      // commit's changelog records is a valid lower bound of what the stores hold once it is applied
      // (a restore replays the rest; changelog records are idempotent puts). Nothing else writes the
      // changelogs until the next commit's flush, which comes after this commit is through, so the
      // lookup runs alongside the commit instead of holding up processing: on Kafka it is a round
      // trip (12 ms on average under the pipeline bench, 8% of its run before this change).
      const changelogTps = tasks.flatMap((t) => [...t.changelogs.values()]);
      ends =
        changelogTps.length === 0
          ? Promise.resolve(new Map<string, number>())
          : this.log.admin.listOffsets(changelogTps, 'latest').then(
              (found) => new Map(found.map((o) => [tpKey(o), o.offset])),
              (err: unknown) => {
                this.logger.warn({ err }, "could not read the changelogs' end offsets: the stores keep their previous checkpoints (a restore replays more)");
                return new Map<string, number>();
              },
            );
    } catch (err) {
      await this.commitFailed(err);
      return;
    }
    for (const t of tasks) t.freeze();
    let commit: Promise<void>;
    if (this.eos) {
      const txn = this.txn ?? this.member!.beginTransaction();
      this.txn = undefined;
      commit = txn.commit(offsets);
    } else {
      const sends = this.pendingSends;
      this.pendingSends = [];
      commit = (async () => {
        if (sends.length > 0) await this.producer!.send(sends);
        if (offsets.length > 0) await this.member!.commitOffsets(offsets);
      })();
    }
    const inflight: InflightCommit = { tasks, ends: new Map(), done: false, error: undefined, promise: Promise.resolve() };
    inflight.promise = Promise.all([commit, ends]).then(
      ([, found]) => {
        inflight.ends = found;
        inflight.done = true;
        this.metrics.commits.inc({ application, outcome: 'committed' });
        this.metrics.commitLatency.observe({ application }, Number(process.hrtime.bigint() - started) / 1e9);
      },
      (err: unknown) => {
        inflight.done = true;
        inflight.error = err ?? new Error('commit failed');
      },
    );
    this.inflight = inflight;
  }

  /**
   * Completes the commit in flight if it is through (with `wait`, once it is): applies the stores'
   * committed contents with their new checkpoints and opens the next transaction with the records
   * held meanwhile. A failed commit drops all uncommitted work (commitFailed). Call under the lock.
   */
  private async finishCommit(wait: boolean): Promise<void> {
    const inflight = this.inflight;
    if (inflight === undefined) return;
    if (!inflight.done) {
      if (!wait) return;
      await inflight.promise;
    }
    if (this.inflight !== inflight) return;
    this.inflight = undefined;
    if (inflight.error !== undefined) {
      await this.commitFailed(inflight.error);
      return;
    }
    for (const t of inflight.tasks) {
      // A task closed since (lost in a rebalance) keeps its old checkpoint: a restore replays the rest.
      if (this.tasks.get(t.id) !== t) continue;
      const checkpoints = new Map<string, number>();
      for (const [store, tp] of t.changelogs) {
        const end = inflight.ends.get(tpKey(tp));
        if (end !== undefined) checkpoints.set(store, end);
      }
      t.applyFrozen(checkpoints);
    }
    const held = this.heldSends;
    this.heldSends = [];
    if (held.length > 0) {
      this.txn ??= this.member!.beginTransaction();
      for (const r of held) this.txn.send(r);
    }
  }

  /** A commit failed: nothing of it, nor anything processed since, is kept. */
  private async commitFailed(err: unknown): Promise<void> {
    this.metrics.commits.inc({ application: this.config.applicationId, outcome: 'aborted' });
    await this.dropUncommitted();
    // Fenced or aborted: the tasks are rebuilt from the committed offsets and state at the next iteration.
    if (isStreamsError(err) && err.retriable) this.logger.warn({ code: err.code, message: err.message }, 'commit failed; rebuilding tasks from the last commit');
    else throw err;
  }

  /** Aborts the open transaction and drops every task with its uncommitted work (rebuilt from the last commit at the next iteration). */
  private async dropUncommitted(): Promise<void> {
    const txn = this.txn;
    this.txn = undefined;
    this.pendingSends = [];
    this.heldSends = [];
    if (txn !== undefined) await txn.abort().catch(() => undefined);
    for (const id of [...this.tasks.keys()]) this.closeTask(id, false);
  }

  /** Measures the lag of every input partition (log end minus this instance's position) into the gauge. */
  private async measureLag(): Promise<TopicPartitionOffset[]> {
    this.lastLag = Date.now();
    const tps = [...this.tasks.values()].flatMap((t) => t.inputPartitions());
    if (tps.length === 0) return [];
    try {
      const ends = await this.log.admin.listOffsets(tps, 'latest');
      return ends.map((e) => {
        // Routed to the task up to `positions`; the member's position also counts the transaction
        // markers after the last record (on Kafka, an exactly-once input ends with one).
        const lag = Math.max(0, e.offset - Math.max(this.positions.get(tpKey(e)) ?? 0, this.member?.position(e) ?? 0));
        // A partition handed over while the lookup ran is no longer this instance's to report.
        if (this.taskByPartition.has(tpKey(e))) this.metrics.lag.set({ application: this.config.applicationId, topic: e.topic, partition: String(e.partition) }, lag);
        return { topic: e.topic, partition: e.partition, offset: lag };
      });
    } catch (err) {
      this.logger.warn({ err }, 'cannot measure lag');
      return [];
    }
  }

  /** Current lag per input partition (records in the log not yet read by this instance). */
  lag(): Promise<TopicPartitionOffset[]> {
    return this.measureLag();
  }

  private async fail(err: unknown): Promise<void> {
    const e = err instanceof Error ? err : new Error(String(err));
    this.fatal = e;
    this.appState = 'error';
    this.logger.error({ err: e, code: (e as StreamsError).code }, 'streams application failed');
    this.inflight = undefined;
    this.heldSends = [];
    try {
      if (this.txn !== undefined) await this.txn.abort();
    } catch {
      // the transaction times out on the broker
    }
    this.txn = undefined;
    for (const id of [...this.tasks.keys()]) this.closeTask(id, false);
    await this.member?.close().catch(() => undefined);
    this.releaseStateDir();
    this.config.onError?.(e);
  }

  /** The error that stopped the application, if any. */
  error(): Error | undefined {
    return this.fatal;
  }

  /** Commits, closes the tasks and leaves the group. */
  async close(): Promise<void> {
    if (this.appState === 'closed' || this.appState === 'closing') return;
    if (this.appState === 'error' || this.appState === 'created') {
      this.appState = 'closed';
      return;
    }
    this.appState = 'closing';
    await this.loop;
    await this.lock.run(async () => {
      try {
        await this.commit();
      } finally {
        for (const id of [...this.tasks.keys()]) this.closeTask(id, true);
      }
    });
    await this.member?.close();
    await this.producer?.close();
    this.releaseStateDir();
    this.appState = 'closed';
    this.logger.info({ applicationId: this.config.applicationId }, 'streams application closed');
  }

  /** Read-only access to a store of a local task (interactive queries). */
  store<S>(name: string, partition: number): S | undefined {
    for (const t of this.tasks.values()) {
      if (t.partition === partition && t.stores.has(name)) return t.stores.get(name) as S;
    }
    return undefined;
  }

  /** Ids of the tasks this instance runs now. */
  activeTasks(): string[] {
    return [...this.tasks.keys()];
  }
}
