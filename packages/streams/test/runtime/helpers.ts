/** Shared helpers for tests that run topologies on a real log. */
import { randomUUID } from 'node:crypto';
import { StreamsBuilder, Serdes } from '../../src/index.ts';
import type { GroupMember, Log, ProcessorContext, ProducerRecord, Record as StreamRecord, Topology } from '../../src/index.ts';

export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export async function produce(log: Log, records: ProducerRecord[], batch = 1000): Promise<void> {
  const p = log.createProducer({ clientId: 'test-producer' });
  try {
    for (let i = 0; i < records.length; i += batch) await p.send(records.slice(i, i + batch));
  } finally {
    await p.close();
  }
}

export { readTopic } from '../../src/testing/index.ts';

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The log, with every group member it gives out wrapped: `override(member)` gives the methods that
 * replace the member's own (the others pass through).
 */
export function withMembers(log: Log, override: (m: GroupMember) => Partial<GroupMember>): Log {
  const wrap = (m: GroupMember): GroupMember => {
    const own = override(m) as Record<PropertyKey, unknown>;
    return new Proxy(m, {
      get(target, p) {
        if (p in own) return own[p];
        const v = Reflect.get(target, p) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  };
  return new Proxy(log, {
    get(target, p) {
      if (p === 'joinGroup') return async (o: Parameters<Log['joinGroup']>[0]) => wrap(await target.joinGroup(o));
      const v = Reflect.get(target, p) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * input → output (string keys and values) through a slow processor: it spends `busyMs` per record,
 * so that the log is read far faster than records are processed, and calls `onRecord` with each.
 */
export function slowCopy(input: string, output: string, busyMs: number, onRecord: (ctx: ProcessorContext<string, string>, r: StreamRecord<string, string>) => void): Topology {
  const S = Serdes.string();
  const b = new StreamsBuilder();
  b.stream(input, { keySerde: S, valueSerde: S })
    .process<string, string>(() => {
      let ctx!: ProcessorContext<string, string>;
      return {
        init: (c) => (ctx = c),
        process: (r) => {
          const until = performance.now() + busyMs;
          while (performance.now() < until);
          onRecord(ctx, r);
          ctx.forward(r);
        },
      };
    })
    .to(output, { keySerde: S, valueSerde: S });
  return b.build();
}
