/**
 * Consumer lag of the roles that read with a consumer group of their own (cubes, lake, the capi
 * forwarder), published under the same metric as the streams applications' lag
 * (`shopstream_streams_consumer_lag{application, topic, partition}`), so every role's lag reads the
 * same way: records between a partition's end (its last stable offset) and the role's position.
 */
import type { GroupMember, Log, TopicPartitionOffset } from '@shopstream/streams';
import { Gauge, type Registry } from 'prom-client';

const NAME = 'shopstream_streams_consumer_lag';

/**
 * The position to measure a role's lag from: `own` (the next offset after what it has handled),
 * or, when it holds nothing of the partition still to handle (`settled`), its member's position,
 * which also counts the transaction markers after the last record. On Kafka an exactly-once topic
 * ends with one, so `own` alone would read as a lag of 1 forever on a partition with nothing left.
 */
export function lagPosition(own: TopicPartitionOffset, member: GroupMember | undefined, settled: boolean): TopicPartitionOffset {
  const p = settled ? member?.position(own) : undefined;
  return p === undefined || p <= own.offset ? own : { topic: own.topic, partition: own.partition, offset: p };
}

/** The gauge, shared with the streams applications of the same registry. */
function lagGauge(registry: Registry): Gauge<'application' | 'topic' | 'partition'> {
  return (
    (registry.getSingleMetric(NAME) as Gauge<'application' | 'topic' | 'partition'> | undefined) ??
    new Gauge({ name: NAME, help: 'Records not yet processed, per input partition', labelNames: ['application', 'topic', 'partition'], registers: [registry] })
  );
}

/**
 * Every `intervalMs`, sets the lag of `application` from `positions()` (the next offset it will
 * read, per assigned partition). Partitions no longer assigned are removed. Returns a stop function.
 */
export function watchLag(o: { log: Log; registry: Registry; application: string; positions: () => readonly TopicPartitionOffset[]; intervalMs?: number }): () => void {
  const gauge = lagGauge(o.registry);
  let shown = new Set<string>();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      const positions = o.positions();
      const ends = positions.length === 0 ? [] : await o.log.admin.listOffsets(positions, 'latest');
      const now = new Set<string>();
      for (const p of positions) {
        const end = ends.find((e) => e.topic === p.topic && e.partition === p.partition)?.offset;
        if (end === undefined) continue;
        gauge.set({ application: o.application, topic: p.topic, partition: String(p.partition) }, Math.max(0, end - p.offset));
        now.add(`${p.topic}\u0000${p.partition}`);
      }
      for (const k of shown) {
        if (now.has(k)) continue;
        const [topic, partition] = k.split('\u0000');
        gauge.remove({ application: o.application, topic: topic!, partition: partition! });
      }
      shown = now;
    } catch {
      // The log is briefly unavailable: keep the last figures.
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), o.intervalMs ?? 2_000);
  timer.unref();
  void tick();
  return () => clearInterval(timer);
}
