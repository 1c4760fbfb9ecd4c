/** Reading a topic of a real log back, for tests of applications that run on it. */
import type { ConsumedRecord, Log } from '../log/types.ts';

/** Reads every partition of a topic from the start (read_committed) until `until(records)` holds or `timeoutMs` passes. */
export async function readTopic(log: Log, topic: string, until: (records: ConsumedRecord[]) => boolean, timeoutMs = 30_000): Promise<ConsumedRecord[]> {
  const d = await log.admin.describeTopics([topic]);
  const n = d.get(topic)?.partitions ?? 0;
  const reader = log.createReader({ clientId: 'test-reader' });
  const out: ConsumedRecord[] = [];
  try {
    reader.assign(Array.from({ length: n }, (_, partition) => ({ topic, partition, offset: 0 })));
    const deadline = Date.now() + timeoutMs;
    while (!until(out) && Date.now() < deadline) for (const r of await reader.poll(100)) out.push(r);
  } finally {
    await reader.close();
  }
  return out;
}
