/** Shared helpers for tests that run topologies on a real log. */
import { randomUUID } from 'node:crypto';
import type { Log, ProducerRecord } from '../../src/index.ts';

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
