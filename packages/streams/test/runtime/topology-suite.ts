/**
 * The topology suite: the same topologies, run by StreamsApp on a real log. embedded.test.ts and
 * kafka.test.ts run it on the embedded log and on the Kafka broker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamsApp, StreamsBuilder, Serdes, TimeWindows } from '../../src/index.ts';
import type { Log, Windowed } from '../../src/index.ts';
import { produce, readTopic, unique, waitFor } from './helpers.ts';

const S = Serdes.string();
const J = Serdes.json<{ id: string; user: string; n: number }>();

export function topologySuite(name: string, openLog: () => Promise<Log>): void {
  const stateDir = () => mkdtempSync(join(tmpdir(), 'shopstream-state-'));

  test(`${name}: stateless filter + mapValues over two partitions`, async () => {
    const log = await openLog();
    const input = unique('in');
    const output = unique('out');
    await log.admin.createTopics([
      { name: input, partitions: 2 },
      { name: output, partitions: 2 },
    ]);
    const b = new StreamsBuilder();
    b.stream(input, { keySerde: S, valueSerde: J })
      .filter((_k, v) => v.n % 3 !== 0)
      .mapValues((v) => ({ ...v, n: v.n * 2 }))
      .to(output, { keySerde: S, valueSerde: J });
    const dir = stateDir();
    const app = new StreamsApp(b.build(), { applicationId: unique('app'), log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    const N = 300;
    await produce(
      log,
      Array.from({ length: N }, (_, i) => ({ topic: input, key: Buffer.from(`u${i % 7}`), value: J.serialize({ id: `m${i}`, user: `u${i % 7}`, n: i }), timestamp: 1000 + i })),
    );
    const expected = Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 !== 0);
    const out = await readTopic(log, output, (r) => r.length >= expected.length);
    // Metrics: records in and out per task, commits, and no lag once everything is processed.
    const total = async (m: { get(): Promise<{ values: { value: number }[] }> }) => (await m.get()).values.reduce((a, v) => a + v.value, 0);
    await waitFor(async () => (await total(app.metrics.recordsIn)) === N, 10_000, 'records-in metric');
    assert.equal(await total(app.metrics.recordsOut), expected.length);
    assert.ok((await app.metrics.commitLatency.get()).values.some((v) => v.metricName?.endsWith('_count') === true && v.value > 0));
    assert.deepEqual((await app.lag()).map((l) => l.offset), [0, 0]);
    assert.match(await app.metrics.registry.metrics(), /shopstream_streams_records_in_total\{application="[^"]+",task="0_1"\}/);
    await app.close();
    const got = out.map((r) => J.deserialize(r.value)!.n / 2).sort((a, b) => a - b);
    assert.deepEqual(got, expected);
    // Per key, order is kept.
    const byKey = new Map<string, number[]>();
    for (const r of out) byKey.set(r.key!.toString(), [...(byKey.get(r.key!.toString()) ?? []), J.deserialize(r.value)!.n]);
    for (const ns of byKey.values()) assert.deepEqual(ns, [...ns].sort((a, b) => a - b));
    await log.admin.deleteTopics([input, output]);
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${name}: an instance reports the lag of the partitions it owns, not of those it handed over`, async () => {
    const log = await openLog();
    const input = unique('lag-in');
    const output = unique('lag-out');
    await log.admin.createTopics([
      { name: input, partitions: 4 },
      { name: output, partitions: 4 },
    ]);
    const build = () => {
      const b = new StreamsBuilder();
      b.stream(input, { keySerde: S, valueSerde: J }).to(output, { keySerde: S, valueSerde: J });
      return b.build();
    };
    const applicationId = unique('app');
    const dirs = [stateDir(), stateDir()];
    const lagSeries = async (app: StreamsApp) => ((await app.metrics.lag.get()).values ?? []).map((v) => `${v.labels['topic']}/${v.labels['partition']}`).sort();
    const a = new StreamsApp(build(), { applicationId, log, stateDir: dirs[0]!, commitIntervalMs: 50 });
    const b = new StreamsApp(build(), { applicationId, log, stateDir: dirs[1]!, commitIntervalMs: 50 });
    try {
      await a.start();
      await produce(log, Array.from({ length: 40 }, (_, i) => ({ topic: input, partition: i % 4, key: Buffer.from(`u${i}`), value: J.serialize({ id: `m${i}`, user: `u${i}`, n: i }), timestamp: 1000 + i })));
      await waitFor(() => a.activeTasks().length === 4, 30_000, 'a runs the four tasks');
      await a.lag();
      assert.equal((await lagSeries(a)).length, 4);
      await b.start();
      await waitFor(() => a.activeTasks().length === 2 && b.activeTasks().length === 2, 60_000, 'the tasks split between a and b');
      await Promise.all([a.lag(), b.lag()]);
      const [la, lb] = [await lagSeries(a), await lagSeries(b)];
      assert.equal(la.length, 2, `a reports only its own partitions: ${la.join(', ')}`);
      assert.equal(lb.length, 2);
      assert.deepEqual([...la, ...lb].sort(), [0, 1, 2, 3].map((p) => `${input}/${p}`));
    } finally {
      await Promise.all([a.close(), b.close()]);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  test(`${name}: an application reading another's exactly-once output reports no lag once it has read it all (transaction markers count as read)`, async () => {
    const log = await openLog();
    const input = unique('eos-in');
    const middle = unique('eos-mid');
    const output = unique('eos-out');
    await log.admin.createTopics([input, middle, output].map((t) => ({ name: t, partitions: 2 })));
    const pipe = (from: string, to: string) => {
      const b = new StreamsBuilder();
      b.stream(from, { keySerde: S, valueSerde: J }).to(to, { keySerde: S, valueSerde: J });
      return b.build();
    };
    const dirs = [stateDir(), stateDir()];
    // The first writes `middle` in transactions (on Kafka each ends with a commit marker); the second reads it.
    const first = new StreamsApp(pipe(input, middle), { applicationId: unique('app'), log, stateDir: dirs[0]!, commitIntervalMs: 50 });
    const second = new StreamsApp(pipe(middle, output), { applicationId: unique('app'), log, stateDir: dirs[1]!, commitIntervalMs: 50 });
    try {
      await Promise.all([first.start(), second.start()]);
      await produce(log, Array.from({ length: 40 }, (_, i) => ({ topic: input, partition: i % 2, key: Buffer.from(`u${i}`), value: J.serialize({ id: `m${i}`, user: `u${i}`, n: i }), timestamp: 1000 + i })));
      await readTopic(log, output, (r) => r.length >= 40);
      const lags = async () => (await second.lag()).map((l) => `${l.topic}/${l.partition}=${l.offset}`).sort();
      const want = [0, 1].map((p) => `${middle}/${p}=0`);
      let got = await lags();
      for (const deadline = Date.now() + 10_000; got.join() !== want.join() && Date.now() < deadline; got = await lags()) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(got, want);
    } finally {
      await Promise.all([first.close(), second.close()]);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  test(`${name}: internal topics are created together at start; one with the wrong partition count is refused`, async () => {
    const log = await openLog();
    const input = unique('it-in');
    const output = unique('it-out');
    await log.admin.createTopics([
      { name: input, partitions: 2 },
      { name: output, partitions: 2 },
    ]);
    const build = () => {
      const b = new StreamsBuilder();
      b.stream(input, { keySerde: S, valueSerde: J })
        .deduplicate((_k, v) => v.id, { name: 'dedupe', windowMs: 3_600_000 })
        .groupBy((_k, v) => v.user, { name: 'by-user' })
        .count({ name: 'counts' })
        .toStream()
        .to(output, { keySerde: S, valueSerde: Serdes.long() });
      return b.build();
    };
    const applicationId = unique('app');
    const dir = stateDir();
    const app = new StreamsApp(build(), { applicationId, log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    await app.close();
    const names = [`${applicationId}-dedupe-store-changelog`, `${applicationId}-by-user-repartition`, `${applicationId}-counts-changelog`];
    const internal = await log.admin.describeTopics(names);
    assert.deepEqual(names.map((n) => internal.get(n)?.partitions), [2, 2, 2], 'the changelogs and the repartition topic, with the input partition count');
    // Another application whose changelog already exists with another partition count cannot start.
    const other = unique('app');
    await log.admin.createTopics([{ name: `${other}-counts-changelog`, partitions: 3 }]);
    const bad = new StreamsApp(build(), { applicationId: other, log, stateDir: stateDir(), commitIntervalMs: 50 });
    await assert.rejects(bad.start(), (err: Error & { code?: string }) => err.code === 'SHOP_ERR_TOPIC_CONFLICT' && err.message.includes(`${other}-counts-changelog`));
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${name}: at-least-once processing commits offsets after the sends`, async () => {
    const log = await openLog();
    const input = unique('alos-in');
    const output = unique('alos-out');
    await log.admin.createTopics([
      { name: input, partitions: 2 },
      { name: output, partitions: 1 },
    ]);
    const b = new StreamsBuilder();
    b.stream(input, { keySerde: S, valueSerde: S }).mapValues((v) => v.toUpperCase(), { valueSerde: S }).to(output, { keySerde: S, valueSerde: S });
    const dir = stateDir();
    const applicationId = unique('app');
    const app = new StreamsApp(b.build(), { applicationId, log, stateDir: dir, commitIntervalMs: 50, processingGuarantee: 'at-least-once' });
    await app.start();
    await produce(log, Array.from({ length: 50 }, (_, i) => ({ topic: input, key: Buffer.from(`k${i % 5}`), value: Buffer.from(`v${i}`), timestamp: 1000 + i })));
    const out = await readTopic(log, output, (r) => r.length >= 50);
    await app.close();
    assert.deepEqual(out.map((r) => r.value!.toString()).sort(), Array.from({ length: 50 }, (_, i) => `V${i}`).sort());
    const committed = await log.admin.committedOffsets(applicationId, [0, 1].map((partition) => ({ topic: input, partition })));
    assert.equal(committed.reduce((a, c) => a + c.offset, 0), 50);
    await log.admin.deleteTopics([input, output]);
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${name}: dedupe, repartition by user, windowed count; restart resumes; a lost state dir is restored from the changelog`, async () => {
    const log = await openLog();
    const input = unique('events');
    const output = unique('counts');
    await log.admin.createTopics([
      { name: input, partitions: 3 },
      { name: output, partitions: 1 },
    ]);
    const build = () => {
      const b = new StreamsBuilder();
      b.stream(input, { keySerde: S, valueSerde: J })
        .deduplicate((_k, v) => v.id, { name: 'dedupe', windowMs: 3_600_000 })
        .groupBy((_k, v) => v.user, { name: 'by-user' })
        .windowedBy(TimeWindows.ofSizeAndGrace(60_000, 600_000))
        .count({ name: 'user-counts', caching: false })
        .toStream()
        .map((w: Windowed<string>, c) => ({ key: `${w.key}@${w.start - base}`, value: c }))
        .to(output, { keySerde: S, valueSerde: Serdes.long() });
      return b.build();
    };
    const applicationId = unique('app');
    const dir = stateDir();
    // Recent event times: changelogs of windowed stores are retained by record time (retention + 1 day).
    const base = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
    const events = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, j) => {
        // every 5th event re-sends the previous one (same visitor, same message id): a duplicate
        const i = from + j;
        const o = i % 5 === 4 ? i - 1 : i;
        return { topic: input, key: Buffer.from(`v${o % 4}`), value: J.serialize({ id: `m${o}`, user: `u${o % 4}`, n: o }), timestamp: base + Math.floor(o / 4) * 1000 };
      });
    const expectedFinal = (count: number) => {
      const seen = new Set<string>();
      const m = new Map<string, number>();
      for (const e of events(0, count)) {
        const v = J.deserialize(e.value)!;
        if (seen.has(v.id)) continue;
        seen.add(v.id);
        const k = `${v.user}@${Math.floor(e.timestamp! / 60_000) * 60_000 - base}`;
        m.set(k, (m.get(k) ?? 0) + 1);
      }
      return m;
    };
    const latest = (recs: { key: Buffer | null; value: Buffer | null }[]) => {
      const m = new Map<string, number>();
      for (const r of recs) m.set(r.key!.toString(), Serdes.long().deserialize(r.value)!);
      return m;
    };
    const done = (want: Map<string, number>) => (recs: { key: Buffer | null; value: Buffer | null }[]) => {
      const m = latest(recs);
      return [...want].every(([k, v]) => m.get(k) === v);
    };

    let app = new StreamsApp(build(), { applicationId, log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    await produce(log, events(0, 200));
    let out = await readTopic(log, output, done(expectedFinal(200)));
    assert.deepEqual(latest(out), expectedFinal(200));
    // A last small commit, so that what a restart may replay (the last commit's changelog records)
    // is small next to what the changelogs hold.
    await produce(log, events(200, 204));
    out = await readTopic(log, output, done(expectedFinal(204)));
    await app.close();

    // Restart with the same state directory: continues from the committed offsets and local state.
    // The stores' checkpoints cover the changelogs up to the last commit: the restore replays at most
    // that commit's records, not the 160 de-duplication records and the window counts behind them.
    app = new StreamsApp(build(), { applicationId, log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    await produce(log, events(204, 300));
    out = await readTopic(log, output, done(expectedFinal(300)));
    assert.deepEqual(latest(out), expectedFinal(300));
    const replayed = (await app.metrics.restored.get()).values.reduce((a, v) => a + v.value, 0);
    assert.ok(replayed <= 8, `a restart with the local state replayed ${replayed} changelog records; at most the last commit's 8 expected`);
    await app.close();

    // Lose the local state: the stores are rebuilt from their changelogs, and counting goes on exactly.
    rmSync(dir, { recursive: true, force: true });
    app = new StreamsApp(build(), { applicationId, log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    await produce(log, events(300, 400));
    out = await readTopic(log, output, done(expectedFinal(400)));
    const restored = await app.metrics.restored.get();
    assert.ok(restored.values.reduce((a, v) => a + v.value, 0) > 0, 'state was restored from changelogs');
    await app.close();
    const final = latest(out);
    assert.deepEqual(final, expectedFinal(400));
    // Every emitted count for a window is +1 of the previous: nothing was counted twice or skipped.
    const seq = new Map<string, number>();
    for (const r of out) {
      const k = r.key!.toString();
      const v = Serdes.long().deserialize(r.value)!;
      const prev = seq.get(k) ?? 0;
      assert.equal(v, prev + 1, `count for ${k} went from ${prev} to ${v}`);
      seq.set(k, v);
    }
    await log.admin.deleteTopics([input, output]);
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${name}: stream time survives a restart, so closed windows stay closed`, async () => {
    const log = await openLog();
    const input = unique('ticks');
    const output = unique('final');
    await log.admin.createTopics([
      { name: input, partitions: 1 },
      { name: output, partitions: 1 },
    ]);
    const build = () => {
      const b = new StreamsBuilder();
      b.stream(input, { keySerde: S, valueSerde: S })
        .groupByKey()
        .windowedBy(TimeWindows.ofSizeAndGrace(1000, 0))
        .emitStrategy('on-window-close')
        .count({ name: 'final-counts' })
        .toStream()
        .map((w: Windowed<string>, c) => ({ key: `${w.key}@${w.start}`, value: c }))
        .to(output, { keySerde: S, valueSerde: Serdes.long() });
      return b.build();
    };
    const applicationId = unique('app');
    const dir = stateDir();
    const rec = (ts: number) => ({ topic: input, key: Buffer.from('k'), value: Buffer.from('x'), timestamp: ts });
    let app = new StreamsApp(build(), { applicationId, log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    await produce(log, [rec(100), rec(200), rec(1500)]); // stream time 1500 closes [0,1000)
    let out = await readTopic(log, output, (r) => r.length >= 1);
    assert.deepEqual(out.map((r) => `${r.key}=${Serdes.long().deserialize(r.value)}`), ['k@0=2']);
    await app.close();
    app = new StreamsApp(build(), { applicationId, log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    // 300 is late: [0,1000) closed before the restart. 2600 closes [1000,2000).
    await produce(log, [rec(300), rec(2600)]);
    out = await readTopic(log, output, (r) => r.length >= 2);
    await waitFor(async () => ((await app.metrics.lateDropped.get()).values.reduce((a, v) => a + v.value, 0)) >= 1, 10_000, 'late drop');
    await app.close();
    assert.deepEqual(out.map((r) => `${r.key}=${Serdes.long().deserialize(r.value)}`), ['k@0=2', 'k@1000=1']);
    await log.admin.deleteTopics([input, output]);
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${name}: stream-table join against a compacted topic`, async () => {
    const log = await openLog();
    const users = unique('users');
    const clicks = unique('clicks');
    const output = unique('joined');
    await log.admin.createTopics([
      { name: users, partitions: 2, config: { 'cleanup.policy': 'compact' } },
      { name: clicks, partitions: 2 },
      { name: output, partitions: 2 },
    ]);
    const b = new StreamsBuilder();
    const t = b.table(users, { keySerde: S, valueSerde: S }, { name: 'users-table' });
    b.stream(clicks, { keySerde: S, valueSerde: S })
      .leftJoin(t, (page, country) => `${page}:${country ?? '?'}`)
      .to(output, { keySerde: S, valueSerde: S });
    const dir = stateDir();
    await produce(log, [
      { topic: users, key: Buffer.from('alice'), value: Buffer.from('FR'), timestamp: 1 },
      { topic: users, key: Buffer.from('bob'), value: Buffer.from('DE'), timestamp: 1 },
    ]);
    const app = new StreamsApp(b.build(), { applicationId: unique('app'), log, stateDir: dir, commitIntervalMs: 50 });
    await app.start();
    await waitFor(async () => app.activeTasks().length > 0, 20_000, 'tasks');
    // Let the table catch up before clicks arrive (records are processed in timestamp order per task).
    await produce(log, [
      { topic: clicks, key: Buffer.from('alice'), value: Buffer.from('home'), timestamp: 10 },
      { topic: clicks, key: Buffer.from('bob'), value: Buffer.from('cart'), timestamp: 10 },
      { topic: clicks, key: Buffer.from('carol'), value: Buffer.from('exit'), timestamp: 10 },
    ]);
    const out = await readTopic(log, output, (r) => r.length >= 3);
    await app.close();
    assert.deepEqual(out.map((r) => `${r.key}=${r.value}`).sort(), ['alice=home:FR', 'bob=cart:DE', 'carol=exit:?']);
    await log.admin.deleteTopics([users, clicks, output]);
    rmSync(dir, { recursive: true, force: true });
  });
}
