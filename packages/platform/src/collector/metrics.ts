/** The collector's Prometheus metrics. */
import { Counter, Histogram, type Registry } from 'prom-client';

export class CollectorMetrics {
  readonly events: Counter<'outcome'>;
  readonly rejected: Counter<'code'>;
  readonly requests: Counter<'route' | 'status'>;
  readonly duration: Histogram<'route'>;
  readonly writeFailures: Counter<'code'>;

  constructor(registry: Registry) {
    this.events = new Counter({
      name: 'shopstream_collector_events_total',
      help: 'Events of acknowledged requests, by outcome: accepted (in events.raw) or rejected (in events.rejected).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.rejected = new Counter({
      name: 'shopstream_collector_rejected_events_total',
      help: 'Events written to events.rejected, by reason code.',
      labelNames: ['code'],
      registers: [registry],
    });
    this.requests = new Counter({
      name: 'shopstream_collector_requests_total',
      help: 'Ingest requests answered, by route and HTTP status.',
      labelNames: ['route', 'status'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'shopstream_collector_request_duration_seconds',
      help: 'Time from request received to answer sent, including the durable write.',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.writeFailures = new Counter({
      name: 'shopstream_collector_write_failures_total',
      help: 'Writes to the log that failed (answered 503), by error code.',
      labelNames: ['code'],
      registers: [registry],
    });
  }
}
