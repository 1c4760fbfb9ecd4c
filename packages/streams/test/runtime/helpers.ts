/** Shared helpers for tests that run topologies on a real log. */
import { randomUUID } from 'node:crypto';
import type { ConsumedRecord, Log, ProducerRecord } from '../../src/index.ts';

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

/** Reads every partition of a topic from the start until `until(records)` holds or the deadline passes. */
export async function readTopic(
  log: Log,
  topic: string,
  until: (records: ConsumedRecord[]) => boolean,
  timeoutMs = 30_000,
): Promise<ConsumedRecord[]> {
  const d = await log.admin.describeTopics([topic]);
  const n = d.get(topic)?.partitions ?? 0;
  const reader = log.createReader({ clientId: 'test-reader' });
  const out: ConsumedRecord[] = [];
  try {
    reader.assign(Array.from({ length: n }, (_, partition) => ({ topic, partition, offset: 0 })));
    const deadline = Date.now() + timeoutMs;
    while (!until(out) && Date.now() < deadline) out.push(...(await reader.poll(200)));
  } finally {
    await reader.close();
  }
  return out;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
