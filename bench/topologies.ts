/** The benchmark topologies, in their own module so that stream threads can build them too. */
import { StreamsBuilder, Serdes, TimeWindows } from '../packages/streams/src/index.ts';
import type { Topology } from '../packages/streams/src/index.ts';

export interface Event {
  id: string;
  visitor: string;
  type: string;
  price: number;
  pad: string;
}

export function stateless(input: string, output: string): Topology {
  const b = new StreamsBuilder();
  b.stream<string, Event>(input, { valueSerde: Serdes.json<Event>() })
    .filter((_k, v) => v.type === 'view')
    .mapValues((v) => ({ id: v.id, visitor: v.visitor, price: v.price * 2 }))
    .to(output, { valueSerde: Serdes.json() });
  return b.build();
}

export function stateful(input: string, output: string): Topology {
  const b = new StreamsBuilder();
  b.stream<string, Event>(input, { valueSerde: Serdes.json<Event>() })
    .deduplicate((_k, v) => v.id, { name: 'dedupe', windowMs: 3_600_000 })
    .groupByKey()
    .windowedBy(TimeWindows.ofSizeAndGrace(60_000, 10_000))
    .aggregate(() => ({ n: 0, revenue: 0 }), (_k, v, agg) => ({ n: agg.n + 1, revenue: agg.revenue + v.price }), { name: 'per-minute' })
    .toStream()
    .to(output, { keySerde: Serdes.json(), valueSerde: Serdes.json() });
  return b.build();
}

/**
 * The pipeline bench's floor: what every design of the pipeline must do per event, and nothing else:
 * parse the Segment message, drop a repeated message id (a store, 24 h), write the message as JSON.
 */
export function pipelineFloor(input: string, output: string): Topology {
  const b = new StreamsBuilder();
  b.stream<string, { messageId?: string }>(input, { valueSerde: Serdes.json() })
    .deduplicate((_k, v) => String(v.messageId), { name: 'floor-dedupe', windowMs: 86_400_000 })
    .to(output, { valueSerde: Serdes.json() });
  return b.build();
}
