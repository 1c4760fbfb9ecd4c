/**
 * End to end, on both logs: the traffic simulator drives a platform process (`shopstream start`:
 * collector + pipeline) over HTTP, the process is killed with SIGKILL three times during the run
 * and started again, and then events.filtered and events.bots must hold exactly the simulator's
 * ground truth: counts by merchant, event and hour, orders, revenue and sessions.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type { ConsumedRecord } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { connectKafkaLog } from '@shopstream/streams/kafka';
import { planSimulation } from '../../src/simulate/plan.ts';
import { runSimulation } from '../../src/simulate/run.ts';
import type { PipelineEvent } from '../../src/pipeline/topology.ts';
import { topicNames } from '../../src/topics.ts';
import { KAFKA_BOOTSTRAP, readAll, tempDir, unique, type LogKind } from '../helpers.ts';

const ROOT = resolve(import.meta.dirname, '../../../..');
const GRACE_MS = 3_000;

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
    s.on('error', fail);
  });
}

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


for (const kind of ['embedded', 'kafka'] as LogKind[]) {
  describe(`simulator truth = pipeline output, with 3 SIGKILLs (${kind})`, () => {
    it('holds exactly', { timeout: 300_000 }, async (tc) => {
      const t = tempDir();
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const prefix = `${unique('e2e')}.`;
      const merchants = [
        { id: 'shop-a', writeKey: 'wk_e2e_shop_a_key', readToken: 'rt_e2e_shop_a_token', currency: 'EUR', timezone: 'Europe/Paris' },
        { id: 'shop-b', writeKey: 'wk_e2e_shop_b_key', readToken: 'rt_e2e_shop_b_token', currency: 'JPY', timezone: 'Asia/Tokyo' },
      ];
      const config = {
        merchants,
        dataDir: join(t.dir, 'data'),
        topics: { prefix, partitions: 4 },
        collector: { port },
        pipeline: { graceMs: GRACE_MS },
        instanceId: 'e2e-instance-1',
        beacon: { secrets: ['an-e2e-test-secret-of-32-characters-or-more'] },
        ...(kind === 'kafka' && { kafka: { brokers: [KAFKA_BOOTSTRAP] } }),
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
              restarting = (async () => {
                await platform.kill('SIGKILL');
                await platform.start();
              })().finally(() => (restarting = undefined));
            }
          },
        });
        await restarting;
        assert.equal(kills, 3, 'the platform was killed three times');
        assert.equal(result.failures, 0, `every request eventually succeeded: ${JSON.stringify(result.errors?.slice(0, 3))}`);
        // Let the last held events pass their grace period (the wall clock moves the horizon when input stops), then stop cleanly.
        await new Promise((r) => setTimeout(r, GRACE_MS * 2 + 2_000));
        await platform.kill('SIGTERM');

        const topics = topicNames(prefix);
        const log = kind === 'kafka' ? await connectKafkaLog({ bootstrapServers: KAFKA_BOOTSTRAP, clientId: unique('e2e-check') }) : await openEmbeddedLog({ dir: join(config.dataDir, 'log') });
        try {
          const filteredRecords = await readAll(log, topics.filtered);
          const botRecords = await readAll(log, topics.bots);
          const filtered = observe(filteredRecords);
          const bots = observe(botRecords);
          tc.diagnostic(
            `${kind}: ${total} events sent in ${result.requests} requests (${result.retries} retried), 3 kills; ` +
              `events.filtered ${filteredRecords.length}, events.bots ${botRecords.length}; truth: ${JSON.stringify(Object.fromEntries(merchants.map((m) => [m.id, { orders: truth.merchants[m.id]!.orders, sessions: truth.merchants[m.id]!.sessions, revenueMinor: truth.merchants[m.id]!.revenueMinor }])))}`,
          );
          assert.ok(filteredRecords.length > 1000 && botRecords.length > 500, 'the run is not trivial');
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
          }
        } finally {
          if (kind === 'kafka') await log.admin.deleteTopics((await log.admin.listTopics()).filter((n) => n.startsWith(prefix))).catch(() => {});
          await log.close();
        }
      } finally {
        await platform.kill('SIGKILL').catch(() => {});
        t.cleanup();
      }
    });
  });
}
