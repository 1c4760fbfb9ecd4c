/** Prometheus metrics of a streams application (prom-client). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class StreamsMetrics {
  readonly registry: Registry;
  readonly recordsIn: Counter<'application' | 'task'>;
  readonly recordsOut: Counter<'application' | 'task' | 'topic'>;
  readonly lateDropped: Counter<'application' | 'processor'>;
  readonly deadLettered: Counter<'application' | 'reason'>;
  readonly commitLatency: Histogram<'application'>;
  readonly commits: Counter<'application' | 'outcome'>;
  readonly lag: Gauge<'application' | 'topic' | 'partition'>;
  readonly restoreRemaining: Gauge<'application' | 'store' | 'partition'>;
  readonly restored: Counter<'application' | 'store'>;
  readonly tasks: Gauge<'application'>;
  readonly recoveries: Counter<'application' | 'code'>;

  constructor(registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    // Several applications may share one registry (one process, several topologies): their series
    // differ by the application label, so the second one takes the metrics the first registered.
    const shared = <T>(name: string, create: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? create();
    this.recordsIn = shared('shopstream_streams_records_in_total', () => new Counter({ name: 'shopstream_streams_records_in_total', help: 'Records processed, per task', labelNames: ['application', 'task'], registers }));
    this.recordsOut = shared('shopstream_streams_records_out_total', () => new Counter({ name: 'shopstream_streams_records_out_total', help: 'Records sent to sink topics, per task', labelNames: ['application', 'task', 'topic'], registers }));
    this.lateDropped = shared('shopstream_streams_late_records_dropped_total', () => new Counter({
      name: 'shopstream_streams_late_records_dropped_total',
      help: 'Records dropped for arriving after their window grace period',
      labelNames: ['application', 'processor'],
      registers,
    }));
    this.deadLettered = shared('shopstream_streams_dead_letter_records_total', () => new Counter({
      name: 'shopstream_streams_dead_letter_records_total',
      help: 'Records sent to the dead-letter topic',
      labelNames: ['application', 'reason'],
      registers,
    }));
    this.commitLatency = shared('shopstream_streams_commit_latency_seconds', () => new Histogram({
      name: 'shopstream_streams_commit_latency_seconds',
      help: 'Time to commit a transaction (outputs, state and offsets)',
      labelNames: ['application'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }));
    this.commits = shared('shopstream_streams_commits_total', () => new Counter({ name: 'shopstream_streams_commits_total', help: 'Commits by outcome', labelNames: ['application', 'outcome'], registers }));
    this.lag = shared('shopstream_streams_consumer_lag', () => new Gauge({ name: 'shopstream_streams_consumer_lag', help: 'Records not yet processed, per input partition', labelNames: ['application', 'topic', 'partition'], registers }));
    this.restoreRemaining = shared('shopstream_streams_restore_remaining_records', () => new Gauge({
      name: 'shopstream_streams_restore_remaining_records',
      help: 'Changelog records left to restore',
      labelNames: ['application', 'store', 'partition'],
      registers,
    }));
    this.restored = shared('shopstream_streams_restored_records_total', () => new Counter({ name: 'shopstream_streams_restored_records_total', help: 'Changelog records restored', labelNames: ['application', 'store'], registers }));
    this.recoveries = shared('shopstream_streams_recoveries_total', () => new Counter({
      name: 'shopstream_streams_recoveries_total',
      help: 'Times the application dropped its uncommitted work after a retriable log error (unavailable, timed out, fenced) and went on from the last commit, by error code',
      labelNames: ['application', 'code'],
      registers,
    }));
    this.tasks = shared('shopstream_streams_active_tasks', () => new Gauge({ name: 'shopstream_streams_active_tasks', help: 'Tasks this instance runs', labelNames: ['application'], registers }));
  }
}
