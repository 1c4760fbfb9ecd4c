/**
 * The pipeline as a stream thread builds it (config `pipeline.threads` > 1; StreamThreads in
 * @shopstream/streams): the topology, with its metrics in the thread's registry, from which the
 * platform adds them up with its own for /metrics and the status API.
 */
import type { ThreadContext, Topology } from '@shopstream/streams';
import type { TopicNames } from '../topics.ts';
import { pipelineMetrics } from './metrics.ts';
import { pipelineTopology, type PipelineOptions } from './topology.ts';

/** Options that can cross to a thread: everything but the hooks, which the thread makes itself. */
export type ThreadPipelineOptions = Omit<PipelineOptions, 'onDecision' | 'onBotLookup'>;

export function pipelineThreadTopology(topics: TopicNames, options: ThreadPipelineOptions, context: ThreadContext): Topology {
  return pipelineTopology(topics, { ...options, ...pipelineMetrics(context.registry) });
}
