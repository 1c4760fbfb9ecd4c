/**
 * End to end, on both logs: the traffic simulator drives a platform process (`shopstream start`:
 * every role) over HTTP, the process is killed with SIGKILL three times during the run and started
 * again (on Kafka, a second run kills the broker instead the second time: a broker of its own,
 * SIGKILLed and started again while traffic flows), and then events.filtered and events.bots must hold exactly the simulator's ground truth:
 * counts by merchant, event and hour, orders, revenue and sessions. The analytics API must agree
 * with it, the lake must hold events.raw exactly, and the local Graph API stand-in (meta-sim), with
 * failures injected all along and an outage, must have acknowledged every eligible event of
 * events.filtered under its own event id, none missing, none unexpected, and no personal data
 * unhashed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ConsumedRecord } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { connectKafkaLog } from '@shopstream/streams/kafka';
import { planSimulation } from '../../src/simulate/plan.ts';
import { FUNNEL_STEP } from '../../src/simulate/truth.ts';
import { runSimulation } from '../../src/simulate/run.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import { topicNames } from '../../src/topics.ts';
import { KAFKA_BOOTSTRAP, TEST_POSTGRES, freePort, readAll, tempDir, unique, type LogKind } from '../helpers.ts';
import { PostgresDb } from '../../src/cubes/db.ts';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { startMetaSim } from '@shopstream/meta-sim';
import { TestBroker } from '../../../../infra/kafka/broker.ts';
import { META_EVENT_NAMES } from '../../src/capi/mapping.ts';
import { Serdes } from '@shopstream/streams';
import { TopologyTestDriver } from '@shopstream/streams/testing';
import { recsTopology } from '../../src/recs/topology.ts';
import type { CoItemState } from '../../src/recs/cooccurrence.ts';
import { DEFAULT_FBT, DEFAULT_OYML } from '../../src/recs/models.ts';
import { DEFAULT_POPULARITY, type PopularityState } from '../../src/recs/popularity.ts';

const ROOT = resolve(import.meta.dirname, '../../../..');
const GRACE_MS = 3_000;


class PlatformProcess {
  child: ChildProcess | undefined;
  output = '';
  private readonly configFile: string;
  private readonly url: string;
  constructor(configFile: string, url: string) {
    this.configFile = configFile;
    this.url = url;
  }
  async start(): Promise<void> {
    this.child = spawn(process.execPath, [join(ROOT, 'packages/platform/bin/shopstream.ts'), 'start', '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'warn' },
    });
    this.child.stdout!.on('data', (d) => (this.output += String(d)));
    this.child.stderr!.on('data', (d) => (this.output += String(d)));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`the platform exited: ${this.output}`);
      const ok = await fetch(`${this.url}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`the platform did not become ready: ${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.child!;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }
}

interface Observed {
  hours: Record<string, Record<string, number>>;
  orders: Set<string>;
  revenueMinor: number;
  sessions: number;
}

function observe(records: ConsumedRecord[]): Map<string, Observed> {
  const out = new Map<string, Observed>();
  for (const r of records) {
    const p = JSON.parse(r.value!.toString('utf8')) as PipelineEvent;
    const e = p.event;
    let m = out.get(e.merchantId);
    if (!m) out.set(e.merchantId, (m = { hours: {}, orders: new Set(), revenueMinor: 0, sessions: 0 }));
    const hour = new Date(e.timestamp).toISOString().slice(0, 13);
    const byName = (m.hours[e.event] ??= {});
    byName[hour] = (byName[hour] ?? 0) + 1;
    if (p.session.start) m.sessions++;
    if (e.event === 'Order Completed') {
      m.orders.add(e.properties.order_id);
      m.revenueMinor += e.properties.total ?? 0;
    }
  }
  return out;
}

interface ApiSlices {
  byDim: Partial<Record<'device_type' | 'country' | 'traffic_source', Record<string, number>>>;
  visitors: Record<string, number>;
  funnel: number[];
}

const STEPS = ['listing', 'product', 'cart', 'checkout', 'order'];

/** What the API should say, computed from events.filtered by plain counting (local days of the merchant). */
function slicesOf(records: ConsumedRecord[], merchantId: string, timeZone: string): ApiSlices {
  const day = (ms: number) => new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(ms));
  const byDim: ApiSlices['byDim'] = { device_type: {}, country: {}, traffic_source: {} };
  const visitors = new Map<string, Set<string>>();
  const sessions = new Map<string, { started: boolean; steps: Set<number> }>();
  for (const r of records) {
    const p = JSON.parse(r.value!.toString('utf8')) as PipelineEvent;
    if (p.event.merchantId !== merchantId) continue;
    const d = day(p.event.timestamp);
    const values = { device_type: p.enrichment.device.type, country: p.enrichment.country ?? '', traffic_source: p.enrichment.trafficSource };
    for (const dim of ['device_type', 'country', 'traffic_source'] as const) byDim[dim]![`${d}|${values[dim]}`] = (byDim[dim]![`${d}|${values[dim]}`] ?? 0) + 1;
    if (!visitors.has(d)) visitors.set(d, new Set());
    visitors.get(d)!.add(p.event.visitorId);
    let s = sessions.get(p.session.id);
    if (s === undefined) sessions.set(p.session.id, (s = { started: false, steps: new Set() }));
    if (p.session.start) s.started = true;
    const step = FUNNEL_STEP[p.event.event];
    if (step !== undefined) s.steps.add(STEPS.indexOf(step));
  }
  const funnel = [0, 0, 0, 0, 0, 0];
  for (const s of sessions.values()) {
    if (s.started) funnel[0]!++;
    for (const step of s.steps) funnel[step + 1]!++;
  }
  return { byDim, visitors: Object.fromEntries([...visitors].map(([d, ids]) => [d, ids.size])), funnel };
}

const RUNS: Array<{ kind: LogKind; brokerCrash: boolean }> = [
  { kind: 'embedded', brokerCrash: false },
  { kind: 'kafka', brokerCrash: false },
  // The broker's crash leaves transactions for the restarted broker to end, and it loses some of
  // their markers (hanging transactions, docs/streams.md): every role must go on exactly-once.
  { kind: 'kafka', brokerCrash: true },
];

for (const { kind, brokerCrash } of RUNS) {
  describe(`simulator truth = pipeline output, with 3 SIGKILLs (${kind}${brokerCrash ? ', the second of the broker' : ''})`, () => {
    it('holds exactly', { timeout: 300_000 }, async (tc) => {
      const broker = brokerCrash ? new TestBroker(Number(process.env['SHOPSTREAM_CRASH_KAFKA_PORT'] ?? 19398)) : undefined;
      broker?.start({ fresh: true });
      const bootstrap = broker?.bootstrap ?? KAFKA_BOOTSTRAP;
      const t = tempDir();
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const prefix = `${unique('e2e')}.`;
      const pgSchema = unique('e2e_cubes').replace(/[^a-z0-9_]/g, '_');
      // Meta's stand-in: slow-ish answers, and 5% server errors, 2% throttles, 1% answers lost after the events were taken.
      const sim = await startMetaSim({ latencyMs: 20, seed: 7 });
      sim.addPixel('px-shop-a', 'token-shop-a');
      sim.addPixel('px-shop-b', 'token-shop-b');
      sim.inject({ kind: 'server_error', probability: 0.05 });
      sim.inject({ kind: 'throttle_17', probability: 0.02 });
      sim.inject({ kind: 'timeout_after_accept', probability: 0.01 });
      const merchants = [
        { id: 'shop-a', writeKey: 'wk_e2e_shop_a_key', readToken: 'rt_e2e_shop_a_token', currency: 'EUR', timezone: 'Europe/Paris', meta: { pixelId: 'px-shop-a', accessToken: 'token-shop-a' } },
        { id: 'shop-b', writeKey: 'wk_e2e_shop_b_key', readToken: 'rt_e2e_shop_b_token', currency: 'JPY', timezone: 'Asia/Tokyo', meta: { pixelId: 'px-shop-b', accessToken: 'token-shop-b' } },
      ];
      const config = {
        merchants,
        dataDir: join(t.dir, 'data'),
        topics: { prefix, partitions: 4 },
        collector: { port },
        // On the embedded log the pipeline runs in two stream threads (the log served to them by the
        // platform's thread), so that SIGKILLs and restarts are proven on that path too.
        pipeline: { graceMs: GRACE_MS, ...(kind === 'embedded' && { threads: 2 }) },
        instanceId: 'e2e-instance-1',
        beacon: { secrets: ['an-e2e-test-secret-of-32-characters-or-more'] },
        meta: { baseUrl: sim.url, apiVersion: 'v21.0' },
        // Quicker recovery than production's defaults (30 s backoff, 60 s breaker), to fit the test.
        capi: { flushIntervalMs: 200, requestTimeoutMs: 2_000, maxInFlightPerPixel: 4, retryMaxMs: 1_000, breakerOpenMs: 200, breakerMaxOpenMs: 1_000 },
        // On Kafka, the cubes live in PostgreSQL (the server store), in a schema of this run.
        ...(kind === 'kafka' && { kafka: { brokers: [bootstrap] }, cubes: { store: 'postgres', postgresUrl: TEST_POSTGRES, postgresSchema: pgSchema } }),
      };
      const configFile = join(t.dir, 'shopstream.json');
      writeFileSync(configFile, JSON.stringify(config));
      const platform = new PlatformProcess(configFile, url);
      const { actions, truth } = planSimulation({ seed: 20261126, merchants, visitorsPerMerchant: 120, hours: 2 });
      const total = actions.reduce((a, x) => a + (x.kind === 'batch' ? x.body.batch.length : 0), 0);
      try {
        await platform.start();
        // Kill at about a quarter, a half and three quarters of the events sent.
        const killAt = [0.25, 0.5, 0.75].map((f) => Math.floor(total * f));
        let kills = 0;
        let restarting: Promise<void> | undefined;
        const result = await runSimulation(actions, {
          baseUrl: url,
          rate: 1500,
          concurrency: 4,
          maxAttempts: 100,
          onProgress: (sent) => {
            if (kills < killAt.length && sent >= killAt[kills]! && restarting === undefined) {
              kills++;
              // At the second kill, shop-a's pixel also goes down for its next 15 requests (an outage).
              if (kills === 2) sim.inject({ kind: 'server_error', pixelId: 'px-shop-a', count: 15 });
              restarting = (async () => {
                if (broker !== undefined && kills === 2) {
                  // The platform stays up: its roles retry while the broker is down (the collector answers 503).
                  broker.kill();
                  await new Promise((r) => setTimeout(r, 2_000));
                  broker.start();
                  return;
                }
                await platform.kill('SIGKILL');
                await platform.start();
              })().finally(() => (restarting = undefined));
            }
          },
        });
        await restarting;
        assert.equal(kills, 3, 'the platform was killed three times');
        assert.equal(result.failures, 0, `every request eventually succeeded: ${JSON.stringify(result.errors?.slice(0, 3))}`);
        // Let the last held events pass their grace period (the wall clock moves the horizon when input stops).
        await new Promise((r) => setTimeout(r, GRACE_MS * 2 + 2_000));
        // The analytics API (cubes) must agree with the truth exactly, once it has caught up.
        const range = { from: new Date(truth.window.start - 86_400_000).toISOString(), to: new Date(truth.window.end + 86_400_000).toISOString() };
        const api = async (m: (typeof merchants)[number], path: string, query: Record<string, string>) => {
          const res = await fetch(`${url}/v1/merchants/${m.id}/${path}?${new URLSearchParams({ ...range, ...query })}`, { headers: { authorization: `Bearer ${m.readToken}` } });
          assert.equal(res.status, 200, await res.clone().text());
          return (await res.json()) as { series: Array<Record<string, number> & { bucket: string; group: Record<string, string> }> };
        };
        const humanTotal = (id: string) => Object.values(truth.filtered[id] ?? {}).reduce((a, byHour) => a + Object.values(byHour).reduce((x, y) => x + y, 0), 0);
        const apiTotals = async (m: (typeof merchants)[number]) => {
          const { series } = await api(m, 'metrics', { granularity: 'day', metrics: 'events,orders,revenue,sessions,bot_events' });
          const sum = (k: string) => series.reduce((a, r) => a + (r[k] ?? 0), 0);
          return { events: sum('events'), orders: sum('orders'), revenueMinor: sum('revenue'), sessions: sum('sessions'), botEvents: sum('bot_events') };
        };
        // Until the cubes have caught up with every figure (bots come last: the held events of the
        // last visitors become bots when their grace period ends).
        const wantTotals = (m: (typeof merchants)[number]) => {
          const w = truth.merchants[m.id]!;
          return { events: humanTotal(m.id), orders: w.orders, revenueMinor: w.revenueMinor, sessions: w.sessions, botEvents: w.botEvents };
        };
        const caughtUp = async () => {
          for (const m of merchants) if (JSON.stringify(await apiTotals(m)) !== JSON.stringify(wantTotals(m))) return false;
          return true;
        };
        const deadline = Date.now() + 60_000;
        while (!(await caughtUp())) {
          if (Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 500));
        }
        for (const m of merchants) {
          assert.deepEqual(await apiTotals(m), wantTotals(m), `${m.id}: API totals`);
          const { series } = await api(m, 'metrics', { granularity: 'hour', metrics: 'events', group_by: 'event_type' });
          const byHour: Record<string, Record<string, number>> = {};
          for (const r of series) {
            const hour = new Date(r.bucket).toISOString().slice(0, 13);
            const byName = (byHour[r.group['event_type']!] ??= {});
            byName[hour] = (byName[hour] ?? 0) + r['events']!;
          }
          assert.deepEqual(byHour, truth.filtered[m.id] ?? {}, `${m.id}: API events by type and hour`);
        }
        // Slices the truth has no figure for are compared, after the run, with events.filtered itself.
        const slices = new Map<string, ApiSlices>();
        for (const m of merchants) {
          const byDim: ApiSlices['byDim'] = {};
          for (const dim of ['device_type', 'country', 'traffic_source'] as const) {
            const { series } = await api(m, 'metrics', { granularity: 'day', metrics: 'events', group_by: dim });
            const counts: Record<string, number> = {};
            for (const r of series) counts[`${r.bucket.slice(0, 10)}|${r.group[dim]}`] = (counts[`${r.bucket.slice(0, 10)}|${r.group[dim]}`] ?? 0) + r['events']!;
            byDim[dim] = counts;
          }
          const visitors: Record<string, number> = {};
          for (const r of (await api(m, 'metrics', { granularity: 'day', metrics: 'visitors' })).series) visitors[r.bucket.slice(0, 10)] = r['visitors']!;
          const funnel = (await api(m, 'funnel', {})) as unknown as { sessions: number; steps: Array<{ step: string; sessions: number }> };
          slices.set(m.id, { byDim, visitors, funnel: [funnel.sessions, ...funnel.steps.map((s) => s.sessions)] });
        }
        // Meta: wait until every eligible event (a forwarded event type, in the truth) was acknowledged.
        const forwarded = (id: string) => Object.entries(truth.filtered[id] ?? {}).reduce((a, [name, byHour]) => a + (name in META_EVENT_NAMES ? Object.values(byHour).reduce((x, y) => x + y, 0) : 0), 0);
        const acknowledged = (pixel: string) => new Set(sim.events(pixel).map((e) => e.event['event_id'] as string));
        const metaDeadline = Date.now() + 60_000;
        while (acknowledged('px-shop-a').size < forwarded('shop-a') || acknowledged('px-shop-b').size < forwarded('shop-b')) {
          if (Date.now() > metaDeadline) break;
          await new Promise((r) => setTimeout(r, 250));
        }
        // Every role reads everything: the lag of every consumer of every role reaches 0 and stays
        // there (on Kafka, the transaction markers at the ends of exactly-once topics count as read).
        // The recs models are compared below only once their topology has caught up.
        const lagDeadline = Date.now() + 60_000;
        let lagging: string[] = [];
        for (let quiet = 0; quiet < 3 && Date.now() < lagDeadline; ) {
          const text = await (await fetch(`${url}/metrics`)).text();
          const series = [...text.matchAll(/^shopstream_streams_consumer_lag\{([^}]*)\} (\d+)/gm)];
          lagging = series.filter((m) => m[2] !== '0').map((m) => `${m[1]} ${m[2]}`);
          quiet = lagging.length === 0 && text.includes('shopstream-recs') ? quiet + 1 : 0;
          await new Promise((r) => setTimeout(r, 300));
        }
        assert.deepEqual(lagging, [], 'every role has read everything');
        await platform.kill('SIGTERM');

        const topics = topicNames(prefix);
        const log = kind === 'kafka' ? await connectKafkaLog({ bootstrapServers: bootstrap, clientId: unique('e2e-check') }) : await openEmbeddedLog({ dir: join(config.dataDir, 'log') });
        try {
          const filteredRecords = await readAll(log, topics.filtered);
          const botRecords = await readAll(log, topics.bots);
          // The lake holds every record of events.raw exactly once, through the kills.
          const rawRecords = await readAll(log, topics.raw);
          const duck = await DuckDBInstance.create(':memory:');
          const dc = await duck.connect();
          const lakeRows = (
            await dc.runAndReadAll(`SELECT "partition", "offset", payload FROM read_parquet('${join(config.dataDir, 'lake')}/**/*.parquet') ORDER BY 1, 2`)
          ).getRowObjects() as Array<{ partition: number; offset: bigint; payload: string }>;
          dc.closeSync();
          duck.closeSync();
          assert.deepEqual(
            lakeRows.map((r) => `${r.partition}/${r.offset}`),
            rawRecords.map((r) => `${r.partition}/${r.offset}`).sort((a, b) => (a === b ? 0 : Number(a.split('/')[0]) - Number(b.split('/')[0]) || Number(a.split('/')[1]) - Number(b.split('/')[1]))),
            'lake = events.raw, each record once',
          );
          const rawByPosition = new Map(rawRecords.map((r) => [`${r.partition}/${r.offset}`, r.value!.toString('utf8')]));
          for (const r of lakeRows) assert.equal(r.payload, rawByPosition.get(`${r.partition}/${r.offset}`), 'the payload is the message as sent');
          // A reader that is not DuckDB (hyparquet) reads every file with the documented schema (docs/lake.md, version 1).
          const lakeFiles = readdirSync(join(config.dataDir, 'lake'), { recursive: true, withFileTypes: true })
            .filter((e) => e.isFile() && e.name.endsWith('.parquet'))
            .map((e) => join(e.parentPath, e.name));
          let hyparquetRows = 0;
          for (const f of lakeFiles) {
            const bytes = readFileSync(f);
            const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
            const meta = parquetMetadata(file);
            assert.deepEqual(
              parquetSchema(meta).children.map((c) => c.element.name),
              ['offset', 'partition', 'received_at', 'merchant', 'message_id', 'event', 'type', 'visitor_id', 'event_time', 'payload', 'payload_bytes', 'headers', 'reject_code'],
              f,
            );
            assert.ok(meta.key_value_metadata?.some((kv) => kv.key === 'shopstream_lake_schema' && kv.value === '1'), `${f}: schema version`);
            const rows = await parquetReadObjects({ file, compressors });
            for (const row of rows) assert.equal(row['payload'], rawByPosition.get(`${row['partition']}/${row['offset']}`));
            hyparquetRows += rows.length;
          }
          assert.equal(hyparquetRows, rawRecords.length, 'hyparquet reads every record');
          const filtered = observe(filteredRecords);
          const bots = observe(botRecords);
          tc.diagnostic(
            `${kind}: ${total} events sent in ${result.requests} requests (${result.retries} retried), 3 kills; ` +
              `events.filtered ${filteredRecords.length}, events.bots ${botRecords.length}; truth: ${JSON.stringify(Object.fromEntries(merchants.map((m) => [m.id, { orders: truth.merchants[m.id]!.orders, sessions: truth.merchants[m.id]!.sessions, revenueMinor: truth.merchants[m.id]!.revenueMinor }])))}`,
          );
          assert.ok(filteredRecords.length > 1000 && botRecords.length > 500, 'the run is not trivial');
          // Recommendations, through the kills: every model entry = the same topology run once over
          // events.filtered without a crash (nothing lost, nothing counted twice). Basket counts and
          // total weights are sums, exact whatever the order; neighbour counts are compared where no
          // counter was evicted (Space-Saving's evictions depend on the order of arrival).
          const latest = (records: Array<{ key: string | null; value: unknown }>) => new Map(records.map((r) => [r.key!, r.value as CoItemState | PopularityState]));
          const recsGot = latest((await readAll(log, topics.recsModel)).map((r) => ({ key: r.key!.toString('utf8'), value: JSON.parse(r.value!.toString('utf8')) as unknown })));
          const driver = new TopologyTestDriver(recsTopology(topics), { wallClockMs: Date.now() });
          const recsIn = driver.createInputTopic(topics.filtered, Serdes.string(), Serdes.bytes());
          const recsOut = driver.createOutputTopic(topics.recsModel, Serdes.string(), Serdes.json<CoItemState | PopularityState>());
          for (const r of [...filteredRecords].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) recsIn.pipeInput(r.key!.toString('utf8'), r.value!, r.timestamp);
          const recsWant = latest(recsOut.readRecordsToList());
          driver.close();
          assert.deepEqual([...recsGot.keys()].sort(), [...recsWant.keys()].sort(), 'recs: the same model entries');
          const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
          let compared = 0;
          for (const [key, want] of recsWant) {
            const got = recsGot.get(key)!;
            // Popularity decays forward from a landmark (its first event, which depends on the order
            // of arrival): compare in the units of the same landmark.
            const scale = 'top' in want ? 2 ** ((got.t - want.t) / DEFAULT_POPULARITY.halfLifeMs!) : 1;
            near(got.n * scale, want.n, `${key} n`);
            const counters = (x: CoItemState | PopularityState) => ('nb' in x ? x.nb : x.top);
            if ('w' in want) near((got as CoItemState).w, want.w, `${key} w`);
            const cap = key.startsWith('p|') ? DEFAULT_POPULARITY.capacity : key.startsWith('f|') ? DEFAULT_FBT.co.capacity : DEFAULT_OYML.co.capacity;
            if (counters(got).length < cap && counters(want).length < cap) {
              const g = new Map(counters(got).map((c) => [c[0], c[1]]));
              assert.deepEqual([...g.keys()].sort(), counters(want).map((c) => c[0]).sort(), `${key} neighbours`);
              for (const c of counters(want)) near(g.get(c[0])! * scale, c[1], `${key} → ${c[0]}`);
              compared++;
            }
          }
          assert.ok(recsWant.size > 50 && compared > 0.8 * recsWant.size, `recs: ${recsWant.size} entries, ${compared} compared counter by counter`);
          // Meta: acknowledged = the forwarded events of events.filtered, by event id and name, exactly.
          const eligible = new Map<string, Map<string, string>>();
          const personal = new Set<string>();
          for (const r of filteredRecords) {
            const e = (JSON.parse(r.value!.toString('utf8')) as PipelineEvent).event;
            for (const traits of [e.context.traits, e.type === 'identify' ? e.traits : null]) {
              for (const k of ['email', 'firstName', 'lastName', 'phone']) if (typeof traits?.[k] === 'string') personal.add((traits[k] as string).toLowerCase());
            }
            const name = META_EVENT_NAMES[e.event as keyof typeof META_EVENT_NAMES];
            if (name === undefined) continue;
            const byId = eligible.get(e.merchantId) ?? new Map<string, string>();
            byId.set(e.messageId, name);
            eligible.set(e.merchantId, byId);
          }
          const resent = sim.stats().duplicateDeliveries;
          const withEmail = sim.events().filter((d) => (d.event['user_data'] as Record<string, unknown>)['em'] !== undefined).length;
          const stats = sim.stats();
          tc.diagnostic(
            `${kind}: Meta: ${sim.events().length} deliveries of ${forwarded('shop-a') + forwarded('shop-b')} eligible events in ${stats.requests} requests ` +
              `(${JSON.stringify(stats.byOutcome)}); ${resent} re-sent under the same event id; ${withEmail} with a hashed email; at most ${stats.inFlightMax} requests in flight`,
          );
          const dlq = await readAll(log, topics.capiDlq);
          assert.equal(dlq.length, 0, `nothing on capi.dlq: ${dlq.slice(0, 2).map((r) => r.value?.toString('utf8')).join(' ')}`);
          for (const m of merchants) {
            const got = new Map<string, string>();
            for (const d of sim.events(m.meta.pixelId)) {
              const id = d.event['event_id'] as string;
              got.set(id, d.event['event_name'] as string);
            }
            const want = eligible.get(m.id) ?? new Map();
            assert.equal(want.size, forwarded(m.id), `${m.id}: eligible events in events.filtered = the truth's`);
            const missing = [...want.keys()].filter((id) => !got.has(id));
            const unexpected = [...got.keys()].filter((id) => !want.has(id));
            assert.deepEqual({ missing: missing.slice(0, 5), unexpected: unexpected.slice(0, 5) }, { missing: [], unexpected: [] }, `${m.id}: Meta acknowledged exactly the eligible events (${missing.length} missing, ${unexpected.length} unexpected)`);
            for (const [id, name] of want) assert.equal(got.get(id), name, `${m.id}: ${id} is a ${name}`);
          }
          assert.ok(personal.size > 10, 'the run carried personal data (identify traits)');
          const bodies = sim.rawBodies().join('\n').toLowerCase();
          for (const p of personal) assert.ok(!bodies.includes(p), `personal data left unhashed: ${p}`);
          assert.ok(withEmail > 0, 'identified shoppers are matched by their hashed email');
          for (const m of merchants) {
            const want = truth.merchants[m.id]!;
            const got = filtered.get(m.id);
            assert.deepEqual(got?.hours ?? {}, truth.filtered[m.id] ?? {}, `${m.id}: events.filtered by event and hour`);
            assert.deepEqual(bots.get(m.id)?.hours ?? {}, truth.bots[m.id] ?? {}, `${m.id}: events.bots by event and hour`);
            assert.equal(got?.orders.size ?? 0, want.orders, `${m.id}: orders`);
            assert.equal(got?.revenueMinor ?? 0, want.revenueMinor, `${m.id}: revenue`);
            assert.equal(got?.sessions ?? 0, want.sessions, `${m.id}: sessions`);
            // And against the sessions the model generated, which does not apply the pipeline's rule.
            assert.equal(got?.sessions ?? 0, truth.generated[m.id]!.humanSessions, `${m.id}: sessions as generated`);
            // The API's slices equal events.filtered's, exactly (visitors within the sketch's error).
            const want2 = slicesOf(filteredRecords, m.id, m.timezone);
            const api2 = slices.get(m.id)!;
            assert.deepEqual(api2.byDim, want2.byDim, `${m.id}: API events by day and device, country, source`);
            assert.deepEqual(api2.funnel, want2.funnel, `${m.id}: API funnel`);
            const f = want.funnel;
            assert.deepEqual(api2.funnel, [f.sessions, f.listing, f.product, f.cart, f.checkout, f.order], `${m.id}: API funnel = the simulator's`);
            assert.deepEqual(Object.keys(api2.visitors).sort(), Object.keys(want2.visitors).sort(), `${m.id}: days with visitors`);
            for (const [day, n] of Object.entries(want2.visitors)) {
              assert.ok(Math.abs(api2.visitors[day]! - n) <= Math.max(1, 3 * 0.0163 * n), `${m.id} ${day}: visitors ${api2.visitors[day]} vs ${n} distinct`);
            }
          }
        } finally {
          if (kind === 'kafka' && broker === undefined) await log.admin.deleteTopics((await log.admin.listTopics()).filter((n) => n.startsWith(prefix))).catch(() => {});
          await log.close();
        }
      } finally {
        await platform.kill('SIGKILL').catch(() => {});
        broker?.stop();
        await sim.close();
        if (kind === 'kafka') {
          const db = await PostgresDb.open(TEST_POSTGRES);
          await db.query(`DROP SCHEMA IF EXISTS ${pgSchema} CASCADE`).catch(() => {});
          await db.close();
        }
        t.cleanup();
      }
    });
  });
}
