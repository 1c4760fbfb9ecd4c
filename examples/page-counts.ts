/**
 * A runnable example of the streams engine (docs/streams.md): page views counted per page and
 * minute, on the embedded log. `node examples/page-counts.ts` prints the counts and exits.
 * Set KAFKA_BOOTSTRAP=127.0.0.1:9092 to run the same topology on Kafka.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamsApp, StreamsBuilder, Serdes, TimeWindows } from '@shopstream/streams';
import type { Log, Windowed } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { connectKafkaLog } from '@shopstream/streams/kafka';

const dir = mkdtempSync(join(tmpdir(), 'page-counts-'));
const suffix = Date.now().toString(36);
const input = `pageviews-${suffix}`;
const output = `page-counts-${suffix}`;
const log: Log = process.env.KAFKA_BOOTSTRAP ? await connectKafkaLog({ bootstrapServers: process.env.KAFKA_BOOTSTRAP }) : await openEmbeddedLog({ dir: join(dir, 'log') });
await log.admin.createTopics([
  { name: input, partitions: 2 },
  { name: output, partitions: 1 },
]);

const b = new StreamsBuilder(); // keys: strings, values: JSON by default
b.stream<string, { page: string }>(input)
  .groupBy((_visitor, view) => view.page, { name: 'by-page' })
  .windowedBy(TimeWindows.ofSizeAndGrace(60_000, 5_000))
  .count({ name: 'page-counts' })
  .toStream()
  .map((w: Windowed<string>, n) => ({ key: `${w.key}@${new Date(w.start).toISOString()}`, value: n }))
  .to(output, { valueSerde: Serdes.long() });

const app = new StreamsApp(b.build(), { applicationId: `example-${suffix}`, log, stateDir: join(dir, 'state') });
await app.start();

const producer = log.createProducer();
const t = Date.UTC(2026, 10, 26, 12, 0, 0);
const views = [
  ['v1', '/shoes', t],
  ['v2', '/shoes', t + 1_000],
  ['v1', '/cart', t + 2_000],
  ['v3', '/shoes', t + 61_000],
] as const;
await producer.send(views.map(([visitor, page, timestamp]) => ({ topic: input, key: Buffer.from(visitor), value: Buffer.from(JSON.stringify({ page })), timestamp })));
await producer.close();

const reader = log.createReader();
reader.assign([{ topic: output, partition: 0, offset: 0 }]);
const counts = new Map<string, number>();
const deadline = Date.now() + 30_000;
while (counts.size < 3 && Date.now() < deadline) {
  for (const r of await reader.poll(500)) counts.set(r.key!.toString(), Serdes.long().deserialize(r.value)!);
}
for (const [k, n] of [...counts].sort()) console.log(`${k} ${n}`);
await reader.close();
await app.close();
await log.admin.deleteTopics([input, output]);
await log.close();
rmSync(dir, { recursive: true, force: true });
