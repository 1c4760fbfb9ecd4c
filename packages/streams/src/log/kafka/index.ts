/**
 * The Kafka log: the Log interface on Apache Kafka through @platformatic/kafka.
 *
 * - admin: KafkaAdmin (Admin client);
 * - producers: idempotent, acks=all, partitions chosen by our murmur2 partitioner and passed explicitly;
 * - readers and group members: our Fetcher (read_committed fetches on a dedicated connection pool);
 * - group members: classic protocol, our Assignor, onRevoke through the JoinGroup hook (see group.ts);
 * - exactly-once: one transactional producer per member, `${groupId}-${instanceId}` (EOS v2, KIP-447).
 */
import type { GroupMember, GroupOptions, Log, LogProducer, LogReader, ProducerOptions, ReaderOptions } from '../types.ts';
import { ErrorCodes, StreamsError } from '../../errors.ts';
import { KafkaAdmin } from './admin.ts';
import { toStreamsError } from './errors.ts';
import { KafkaGroupMember, type GroupTuning } from './group.ts';
import { KafkaProducer } from './producer.ts';
import { KafkaReader } from './reader.ts';
import { resolveOptions, type KafkaLogOptions, type ResolvedOptions } from './util.ts';

export type { KafkaLogOptions, OffsetResetEvent } from './util.ts';
export type { GroupTuning } from './group.ts';

export interface ConnectKafkaLogOptions extends KafkaLogOptions, GroupTuning {}

interface Closeable {
  close(): Promise<void>;
}

class KafkaLog implements Log {
  readonly kind = 'kafka' as const;
  readonly admin: KafkaAdmin;
  private readonly options: ResolvedOptions;
  private readonly tuning: GroupTuning;
  private readonly open = new Set<Closeable>();
  private closed = false;

  constructor(options: ResolvedOptions, tuning: GroupTuning) {
    this.options = options;
    this.tuning = tuning;
    this.admin = new KafkaAdmin(options);
  }

  createProducer(options?: ProducerOptions): LogProducer {
    this.checkOpen();
    const p: KafkaProducer = new KafkaProducer(this.options, options, () => this.open.delete(p));
    this.open.add(p);
    return p;
  }

  createReader(options?: ReaderOptions): LogReader {
    this.checkOpen();
    const r: KafkaReader = new KafkaReader(this.options, options, () => this.open.delete(r));
    this.open.add(r);
    return r;
  }

  async joinGroup(options: GroupOptions): Promise<GroupMember> {
    this.checkOpen();
    if (options.topics.length === 0) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'joinGroup needs at least one topic');
    const m: KafkaGroupMember = new KafkaGroupMember(this.options, this.admin, options, this.tuning, () => this.open.delete(m));
    this.open.add(m);
    await m.start();
    return m;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.open].map((c) => c.close()));
    await this.admin.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new StreamsError(ErrorCodes.CLOSED, 'the Kafka log is closed');
  }
}

/** Connects to the cluster (fails with SHOP_ERR_LOG_UNAVAILABLE when no broker answers). */
export async function connectKafkaLog(options: ConnectKafkaLogOptions): Promise<Log> {
  const resolved = resolveOptions(options);
  if (resolved.bootstrapBrokers.length === 0) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'bootstrapServers is empty');
  const log = new KafkaLog(resolved, { revokeGraceMs: options.revokeGraceMs });
  try {
    await log.admin.client.metadata({ topics: [] });
  } catch (err) {
    await log.close().catch(() => {});
    throw toStreamsError(err, `connect to ${resolved.bootstrapBrokers.join(',')}`, ErrorCodes.LOG_UNAVAILABLE);
  }
  return log;
}
