/**
 * The pipeline's own metrics (its decisions and the bot lookup's latency), in a given registry: the
 * platform's, or a stream thread's when the pipeline runs in threads (pipeline/threads.ts).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { PipelineOptions } from './topology.ts';

export const PIPELINE_METRICS = {
  decisions: 'shopstream_pipeline_decisions_total',
  botLookup: 'shopstream_pipeline_bot_lookup_seconds',
} as const;

/** Registers the pipeline's metrics in `registry` and returns the topology's hooks that feed them. */
export function pipelineMetrics(registry: Registry): Required<Pick<PipelineOptions, 'onDecision' | 'onBotLookup'>> {
  const decisions = new Counter({
    name: PIPELINE_METRICS.decisions,
    help: 'Pipeline decisions per event: human_validated, human_released, human_trusted_source, held, bot_user_agent, bot_not_validated, duplicate, order_duplicate, rejected.',
    labelNames: ['decision'],
    registers: [registry],
  });
  const lookups = new Histogram({
    name: PIPELINE_METRICS.botLookup,
    help: "Time to look up a visitor's validation and held events (the bot filter's lookup, in the task's state).",
    buckets: [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005],
    registers: [registry],
  });
  return { onDecision: (d) => decisions.inc({ decision: d }), onBotLookup: (s) => lookups.observe(s) };
}
