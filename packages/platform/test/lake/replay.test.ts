/**
 * Replay = the live path. Two days of events.raw (two merchants; humans sent by the merchants'
 * backends, crawlers with a bot user agent, exact re-sends) go through the live path: the pipeline
 * topology (StreamsApp on the embedded log) → events.filtered/events.bots → a CubesWriter, while the
 * lake sink archives events.raw. Then `shopstream replay` (the CLI, on the same data folder) publishes
 * the second day again from the lake into a fresh topic, and a second pipeline and CubesWriter (fresh
 * topics, fresh store) rebuild the cubes from it: every figure of that day (events by type, orders,
 * revenue, items, sessions, visitors, bot events; by hour, and by day and device) equals the live
 * path's, and the rebuilt store holds nothing of the other day.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { StreamsApp, type Log, type ProducerRecord } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { main } from '../../src/cli/main.ts';
import { DuckDb } from '../../src/cubes/db.ts';
import { metricsSeries, type Metric, type SeriesRow } from '../../src/cubes/query.ts';
import { CubeStore } from '../../src/cubes/store.ts';
import { CubesWriter } from '../../src/cubes/writer.ts';
import { LakeSink } from '../../src/lake/sink.ts';
import { LocalStorage } from '../../src/lake/storage.ts';
import { pipelineTopology } from '../../src/pipeline/topology.ts';
import { ensurePlatformTopics, topicNames, type TopicNames } from '../../src/topics.ts';
import { tempDir, unique } from '../helpers.ts';
import { genEvent, rawRecord, type GenOptions } from './fixtures/events.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const BOT_UA = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const MERCHANTS = [
  { id: 'north-shoes', currency: 'EUR' },
  { id: 'acme-bags', currency: 'USD' },
];
const METRICS: Metric[] = ['events', 'page_viewed', 'product_viewed', 'product_added', 'checkout_started', 'orders', 'revenue', 'items', 'sessions', 'visitors', 'bot_events'];
const logger = pino({ level: 'silent' });

/** Events of one day, 08:00 to 20:00 UTC (no session spans midnight): backend-sent humans, crawlers, and re-sends. */
function dayRecords(topic: string, run: string, dayStart: number, total: number): { records: ProducerRecord[]; unique: number } {
  const gen: GenOptions = { run, merchants: MERCHANTS, start: dayStart + 8 * HOUR, spanMs: 12 * HOUR, total, visitors: 400 };
  const records: ProducerRecord[] = [];
  for (let i = 0; i < total; i++) {
    const e = genEvent(gen, i);
    const bot = Number(e.visitor.split('-').at(-1)) % 5 === 0;
    if (bot) (e.message['context'] as Record<string, unknown>)['userAgent'] = BOT_UA;
    const currency = MERCHANTS.find((m) => m.id === e.merchant)!.currency;
    const r = rawRecord(topic, e, currency, bot ? 'browser' : 'server');
    records.push(r);
    // Every 40th message is sent twice (a retry of the same message).
    if (i % 40 === 7) records.push({ ...r, timestamp: r.timestamp! + 5 });
  }
  return { records, unique: total };
}

async function totalEvents(store: CubeStore, from: number, to: number): Promise<number> {
  let n = 0;
  for (const m of MERCHANTS) {
    const s = await metricsSeries(store, { merchant: m.id, timeZone: 'UTC', currency: m.currency, from, to, granularity: 'day', metrics: ['events', 'bot_events'], groupBy: [], filters: [] });
    n += s.reduce((a, r) => a + (r.events ?? 0) + (r.bot_events ?? 0), 0);
  }
  return n;
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pipeline and a cubes writer on `topics`, into `store`. */
async function livePath(log: Log, topics: TopicNames, store: CubeStore, stateDir: string, id: string): Promise<{ close: () => Promise<void> }> {
  const app = new StreamsApp(pipelineTopology(topics, { graceMs: 1000, holdCheckIntervalMs: 100 }), { applicationId: `${id}-pipeline`, log, stateDir, commitIntervalMs: 50, logger });
  await app.start();
  const cubes = new CubesWriter({ log, topics, store, consumer: `${id}-cubes`, commitIntervalMs: 50, logger });
  await cubes.start();
  return {
    close: async () => {
      await app.close();
      await cubes.close();
    },
  };
}

describe('replay from the lake (embedded log)', () => {
  it('a day replayed into a fresh topic rebuilds the same cubes as the live path', { timeout: 240_000 }, async () => {
    const t = tempDir('shopstream-lake-replay-');
    const dataDir = join(t.dir, 'data');
    const live = topicNames(`${unique('live')}.`);
    const rebuilt = topicNames(`${unique('re')}.`);
    // Two days that end three days ago (within the cubes' retention).
    const day2 = Math.floor(Date.now() / DAY) * DAY - 3 * DAY;
    const day1 = day2 - DAY;
    const dt = new Date(day2).toISOString().slice(0, 10);
    let log = await openEmbeddedLog({ dir: join(dataDir, 'log'), fsync: false, retentionCheckIntervalMs: 0 });
    const stores = [new CubeStore(await DuckDb.open(join(t.dir, 'live.duckdb'))), new CubeStore(await DuckDb.open(join(t.dir, 'rebuilt.duckdb')))] as const;
    try {
      await ensurePlatformTopics(log, { prefix: live.raw.slice(0, -'events.raw'.length), partitions: 2 });
      const a = dayRecords(live.raw, unique('d1'), day1, 3000);
      const b = dayRecords(live.raw, unique('d2'), day2, 3000);
      const producer = log.createProducer();
      await producer.send(a.records);
      await producer.send(b.records);
      await producer.close();

      // The live path, and the lake sink archiving events.raw into the data folder.
      const path1 = await livePath(log, live, stores[0], join(t.dir, 'state1'), 'live');
      const sink = new LakeSink({ log, storage: new LocalStorage(dataDir, { fsync: false }), groupId: unique('lake'), topics: [live.raw], rotateScheduleIntervalMs: 0, pollMs: 20 });
      await sink.start();
      const rawCount = a.records.length + b.records.length;
      await waitFor('the live cubes', async () => (await totalEvents(stores[0], day1, day2 + DAY)) >= a.unique + b.unique);
      await waitFor('the lake sink', async () => sink.positions().reduce((x, p) => x + p.offset, 0) >= rawCount);
      await sink.close();
      await path1.close();
      await log.close();

      // The CLI, on the same data folder (the embedded log is the platform's: one process at a time).
      const out: string[] = [];
      const progress: string[] = [];
      const io = { out: (l: string) => void out.push(l), err: (l: string) => void out.push(l), progress: (p: string) => void progress.push(p) };
      const config = join(t.dir, 'shopstream.json');
      writeFileSync(config, JSON.stringify({ dataDir, topics: { prefix: live.raw.slice(0, -'events.raw'.length) } }));
      const code = await main(['replay', '--config', config, '--from', dt, '--to', dt, '--to-topic', rebuilt.raw], io);
      assert.equal(code, 0, out.join('\n'));
      const day2Raw = b.records.length;
      assert.match(out.join('\n'), new RegExp(`^Replayed ${day2Raw.toLocaleString('en-US')} events from \\d+ lake files into ${rebuilt.raw.replaceAll('.', '\\.')}\\.$`, 'm'));
      assert.match(progress.at(-2) ?? '', /100\.0%/, 'the progress bar ends at 100%');
      assert.equal(progress.at(-1), '\n');

      // Rebuild from the replayed topic.
      log = await openEmbeddedLog({ dir: join(dataDir, 'log'), fsync: false, retentionCheckIntervalMs: 0 });
      await ensurePlatformTopics(log, { prefix: rebuilt.raw.slice(0, -'events.raw'.length), partitions: 2 });
      const path2 = await livePath(log, rebuilt, stores[1], join(t.dir, 'state2'), 'rebuilt');
      try {
        await waitFor('the rebuilt cubes', async () => (await totalEvents(stores[1], day1, day2 + DAY)) >= b.unique);
        await new Promise((r) => setTimeout(r, 500)); // anything counted twice would show now
      } finally {
        await path2.close();
      }
      assert.equal(await totalEvents(stores[1], day1, day2), 0, 'nothing of the other day');
      const compare = async (m: (typeof MERCHANTS)[number], granularity: 'hour' | 'day', groupBy: Array<'device_type' | 'traffic_source'>) => {
        const q = (store: CubeStore) => metricsSeries(store, { merchant: m.id, timeZone: 'UTC', currency: m.currency, from: day2, to: day2 + DAY, granularity, metrics: METRICS, groupBy, filters: [] });
        const x: SeriesRow[] = await q(stores[0]);
        const y: SeriesRow[] = await q(stores[1]);
        assert.ok(x.some((r) => (r.orders ?? 0) > 0) && x.some((r) => (r.bot_events ?? 0) > 0) && x.some((r) => (r.sessions ?? 0) > 0), `${m.id}: the day has orders, sessions and bots`);
        const order = (rows: SeriesRow[]) => [...rows].sort((r1, r2) => (r1.bucket + JSON.stringify(r1.group) < r2.bucket + JSON.stringify(r2.group) ? -1 : 1));
        assert.deepEqual(order(y), order(x), `${m.id} ${granularity} by ${groupBy.join(',') || 'nothing'}: rebuilt = live`);
      };
      for (const m of MERCHANTS) {
        await compare(m, 'hour', []);
        await compare(m, 'day', ['device_type']);
        await compare(m, 'day', ['traffic_source']);
      }
    } finally {
      await log.close().catch(() => {});
      for (const s of stores) await s.close();
      t.cleanup();
    }
  });
});
