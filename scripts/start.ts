/**
 * `npm start`: runs Shopstream embedded (no servers) with demo traffic.
 *
 * Today this is the streams engine on the embedded log: a generator writes shopper page views to
 * `demo.pageviews`; a topology de-duplicates them and counts views per page per minute into
 * `demo.page-counts`; a small HTTP server shows the live counts and Prometheus metrics.
 * The platform roles (collector, pipeline, cubes, dashboard) plug into the same runtime as they land.
 *
 *   PORT=8080 SHOPSTREAM_DATA=.data npm start
 */
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { StreamsApp, StreamsBuilder, Serdes, TimeWindows } from '@shopstream/streams';
import type { Windowed } from '@shopstream/streams';
import { openEmbeddedLog } from '../packages/streams/src/log/embedded/index.ts';
import { pino } from 'pino';

const logger = pino({ level: process.env.LOG_LEVEL ?? 'info' });

const port = Number(process.env.PORT ?? 8080);
const dataDir = resolve(process.env.SHOPSTREAM_DATA ?? '.data');
mkdirSync(dataDir, { recursive: true });

interface PageView {
  id: string;
  visitor: string;
  page: string;
}

const log = await openEmbeddedLog({ dir: join(dataDir, 'log'), fsync: true });
const existing = await log.admin.describeTopics(['demo.pageviews', 'demo.page-counts']);
const missing = [
  { name: 'demo.pageviews', partitions: 4 },
  { name: 'demo.page-counts', partitions: 1 },
].filter((t) => !existing.has(t.name));
if (missing.length > 0) await log.admin.createTopics(missing);

const b = new StreamsBuilder();
b.stream<string, PageView>('demo.pageviews', { valueSerde: Serdes.json<PageView>() })
  .deduplicate((_visitor, view) => view.id, { name: 'dedupe', windowMs: 24 * 3600_000 })
  .groupBy((_k, v) => v.page, { name: 'by-page' })
  .windowedBy(TimeWindows.ofSizeAndGrace(60_000, 5_000))
  .count({ name: 'page-counts' })
  .toStream()
  .map((w: Windowed<string>, n) => ({ key: `${w.key}@${new Date(w.start).toISOString()}`, value: n }))
  .to('demo.page-counts', { valueSerde: Serdes.long() });

const app = new StreamsApp(b.build(), {
  applicationId: 'demo',
  log,
  stateDir: join(dataDir, 'state'),
  deadLetterTopic: 'demo.dead-letter',
  logger,
  onError: (err) => {
    logger.error({ err }, 'the demo topology stopped; see the error above. Delete the data folder to start over: rm -rf ' + dataDir);
    process.exitCode = 1;
  },
});
await app.start();

// Demo traffic: ~200 page views/s from 500 visitors, 2% re-sent (duplicates the topology drops).
const producer = log.createProducer();
const pages = ['/', '/shoes', '/shoes/runner-2', '/bags', '/cart', '/checkout'];
let sent = 0;
const traffic = setInterval(() => {
  const now = Date.now();
  const batch = Array.from({ length: 20 }, () => {
    const visitor = `v${Math.floor(Math.random() * 500)}`;
    const view: PageView = { id: randomUUID(), visitor, page: pages[Math.floor(Math.random() * pages.length)]! };
    return { topic: 'demo.pageviews', key: Buffer.from(visitor), value: Buffer.from(JSON.stringify(view)), timestamp: now };
  });
  if (Math.random() < 0.4) batch.push(batch[0]!);
  sent += batch.length;
  producer.send(batch).catch((err: unknown) => console.error('demo traffic failed:', err));
}, 100);

// Latest counts, read from the output topic.
const counts = new Map<string, number>();
const reader = log.createReader();
reader.assign([{ topic: 'demo.page-counts', partition: 0, offset: 0 }]);
let reading = true;
void (async () => {
  while (reading) {
    const records = await reader.poll(500).catch(() => []);
    for (const r of records) counts.set(r.key!.toString(), Serdes.long().deserialize(r.value)!);
  }
})();

const server = createServer((req, res) => {
  if (req.url === '/metrics') {
    void app.metrics.registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': app.metrics.registry.contentType });
      res.end(text);
    });
    return;
  }
  if (req.url === '/api/counts') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ sent, state: app.state, tasks: app.activeTasks(), counts: Object.fromEntries([...counts].slice(-60)) }));
    return;
  }
  const rows = [...counts]
    .slice(-24)
    .reverse()
    .map(([k, v]) => `<tr><td>${k.replace(/[<>&]/g, '')}</td><td>${v}</td></tr>`)
    .join('');
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><meta name="viewport" content="width=device-width">
<title>Shopstream (embedded)</title></head><body style="font-family:system-ui;max-width:48rem;margin:2rem auto">
<h1>Shopstream — streams engine, embedded</h1><p>${sent} demo page views sent; application <b>${app.state}</b>, tasks ${app.activeTasks().join(', ')}.
<a href="/metrics">Prometheus metrics</a> · <a href="/api/counts">JSON</a></p>
<table aria-label="Page views per page per minute"><thead><tr><th>page@minute</th><th>views</th></tr></thead><tbody>${rows}</tbody></table></body></html>`);
});
server.listen(port, '127.0.0.1', () => {
  console.log(`Shopstream is running embedded (data in ${dataDir}).`);
  console.log(`Open http://127.0.0.1:${port}/  ·  metrics: http://127.0.0.1:${port}/metrics  ·  Ctrl-C to stop`);
});
server.on('error', (err) => {
  console.error(`cannot listen on 127.0.0.1:${port}: ${err.message}. Set PORT to a free port, e.g. PORT=8081 npm start`);
  process.exit(1);
});

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('stopping: committing and closing …');
  clearInterval(traffic);
  reading = false;
  server.close();
  await producer.close();
  await app.close();
  await reader.close();
  await log.close();
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
