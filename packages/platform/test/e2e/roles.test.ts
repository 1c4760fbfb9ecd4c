/**
 * On Kafka, each role runs as a process of its own: `shopstream collector`, `shopstream pipeline`,
 * `shopstream cubes` (cubes in PostgreSQL), `shopstream recs`, and `shopstream api`, which runs no
 * topology and serves the read APIs. Traffic sent to the collector process must show in the
 * analytics API of the cubes process and of the api process, equal to the simulator's truth, and
 * its co-purchases in the api process's recommendations; each process serves only its own role's
 * routes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { connectKafkaLog } from '@shopstream/streams/kafka';
import { PostgresDb } from '../../src/cubes/db.ts';
import { planSimulation } from '../../src/simulate/plan.ts';
import { runSimulation } from '../../src/simulate/run.ts';
import { KAFKA_BOOTSTRAP, TEST_POSTGRES, freePort, tempDir, unique } from '../helpers.ts';

const ROOT = resolve(import.meta.dirname, '../../../..');


async function startRole(role: string, configFile: string, port: number, dataDir: string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  let output = '';
  const child = spawn(process.execPath, [join(ROOT, 'packages/platform/bin/shopstream.ts'), role, '--config', configFile, '--port', String(port), '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'warn' },
  });
  child.stdout!.on('data', (d) => (output += String(d)));
  child.stderr!.on('data', (d) => (output += String(d)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${role} exited: ${output}`);
    if (await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false)) break;
    if (Date.now() > deadline) throw new Error(`${role} did not become ready: ${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, output: () => output };
}

describe('one process per role, on Kafka', () => {
  it('collector → pipeline → cubes (PostgreSQL) → api, and recs → api, in five processes equal the truth', { timeout: 300_000 }, async () => {
    const t = tempDir();
    const prefix = `${unique('roles')}.`;
    const schema = unique('roles_cubes').replace(/[^a-z0-9_]/g, '_');
    const merchants = [{ id: 'shop-r', writeKey: 'wk_roles_shop_key', readToken: 'rt_roles_shop_token', currency: 'EUR', timezone: 'Europe/Paris' }];
    const config = {
      merchants,
      topics: { prefix, partitions: 4 },
      pipeline: { graceMs: 3_000 },
      kafka: { brokers: [KAFKA_BOOTSTRAP] },
      cubes: { store: 'postgres', postgresUrl: TEST_POSTGRES, postgresSchema: schema },
      beacon: { secrets: ['a-roles-test-secret-of-32-characters-or-more'] },
    };
    const configFile = join(t.dir, 'shopstream.json');
    writeFileSync(configFile, JSON.stringify(config));
    const procs: ChildProcess[] = [];
    try {
      // The collector first: it creates the topics and the merchants.
      const collector = await startRole('collector', configFile, await freePort(), join(t.dir, 'collector'));
      procs.push(collector.child);
      const [pipeline, cubes, recs, api] = await Promise.all([
        startRole('pipeline', configFile, await freePort(), join(t.dir, 'pipeline')),
        startRole('cubes', configFile, await freePort(), join(t.dir, 'cubes')),
        startRole('recs', configFile, await freePort(), join(t.dir, 'recs')),
        startRole('api', configFile, await freePort(), join(t.dir, 'api')),
      ]);
      procs.push(pipeline.child, cubes.child, recs.child, api.child);
      // Each serves its own role's routes only.
      const readKey = { authorization: 'Bearer rt_roles_shop_token' };
      assert.equal((await fetch(`${cubes.url}/v1/batch`, { method: 'POST', body: '{}' })).status, 404);
      assert.equal((await fetch(`${api.url}/v1/batch`, { method: 'POST', body: '{}' })).status, 404);
      assert.equal((await fetch(`${collector.url}/v1/merchants/shop-r/metrics`, { headers: readKey })).status, 404);
      assert.equal((await fetch(`${collector.url}/v1/merchants/shop-r/recommendations?model=others-you-may-like&product_id=x`, { headers: readKey })).status, 404);

      const { actions, truth } = planSimulation({ seed: 7, merchants, visitorsPerMerchant: 40, hours: 1 });
      const result = await runSimulation(actions, { baseUrl: collector.url, rate: 2000, concurrency: 4, maxAttempts: 20 });
      assert.equal(result.failures, 0);
      const want = truth.merchants['shop-r']!;
      const range = { from: new Date(truth.window.start - 86_400_000).toISOString(), to: new Date(truth.window.end + 86_400_000).toISOString() };
      const totals = async (url: string) => {
        const res = await fetch(`${url}/v1/merchants/shop-r/metrics?${new URLSearchParams({ ...range, granularity: 'day', metrics: 'orders,revenue,sessions,events' })}`, {
          headers: { authorization: 'Bearer rt_roles_shop_token' },
        });
        assert.equal(res.status, 200);
        const { series } = (await res.json()) as { series: Array<Record<string, number>> };
        const sum = (k: string) => series.reduce((a, r) => a + (r[k] ?? 0), 0);
        return { orders: sum('orders'), revenueMinor: sum('revenue'), sessions: sum('sessions'), events: sum('events') };
      };
      const humanEvents = Object.values(truth.filtered['shop-r'] ?? {}).reduce((a, byHour) => a + Object.values(byHour).reduce((x, y) => x + y, 0), 0);
      const expected = { orders: want.orders, revenueMinor: want.revenueMinor, sessions: want.sessions, events: humanEvents };
      const deadline = Date.now() + 60_000;
      let got = await totals(cubes.url);
      while (JSON.stringify(got) !== JSON.stringify(expected) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        got = await totals(cubes.url);
      }
      assert.deepEqual(got, expected);
      // The api process answers from the same PostgreSQL store.
      assert.deepEqual(await totals(api.url), expected);

      // The api process serves the model the recs process builds: for the most viewed product of the
      // run, "others you may like" from the model (no fallback), the same as the recs process answers.
      const views = new Map<string, number>();
      for (const e of actions.flatMap((x) => (x.kind === 'batch' ? x.body.batch : []))) {
        const id = (e['properties'] as { product_id?: string } | undefined)?.product_id;
        if (e['event'] === 'Product Viewed' && id !== undefined) views.set(id, (views.get(id) ?? 0) + 1);
      }
      const top = [...views].sort((x, y) => y[1] - x[1])[0]![0];
      const oyml = async (url: string) => {
        const res = await fetch(`${url}/v1/merchants/shop-r/recommendations?model=others-you-may-like&product_id=${encodeURIComponent(top)}&limit=20&fallback=false`, { headers: readKey });
        assert.equal(res.status, 200, await res.clone().text());
        return ((await res.json()) as { items: unknown[] }).items;
      };
      let [fromApi, fromRecs] = [await oyml(api.url), await oyml(recs.url)];
      while ((fromApi.length === 0 || JSON.stringify(fromApi) !== JSON.stringify(fromRecs)) && Date.now() < deadline + 30_000) {
        await new Promise((r) => setTimeout(r, 500));
        [fromApi, fromRecs] = [await oyml(api.url), await oyml(recs.url)];
      }
      assert.ok(fromApi.length > 0, `the api process knows neighbours of ${top}`);
      assert.deepEqual(fromApi, fromRecs);
    } finally {
      for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => (p.exitCode !== null ? undefined : new Promise((r) => p.once('exit', r)))));
      const log = await connectKafkaLog({ bootstrapServers: KAFKA_BOOTSTRAP, clientId: unique('roles-clean') });
      await log.admin.deleteTopics((await log.admin.listTopics()).filter((n) => n.startsWith(prefix))).catch(() => {});
      await log.close();
      const db = await PostgresDb.open(TEST_POSTGRES);
      await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
      await db.close();
      t.cleanup();
    }
  });
});
