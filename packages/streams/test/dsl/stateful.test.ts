import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamsBuilder, Serdes, TimeWindows, SessionWindows, JoinWindows, Stores, windowedSerde } from '../../src/index.ts';
import type { KeyValueStore, Processor, ProcessorContext, Record, Windowed } from '../../src/index.ts';
import { TopologyTestDriver } from '../../src/testing/index.ts';

const S = Serdes.string();
const L = Serdes.long();
const J = Serdes.json<number>();

test('groupByKey().count() emits on every update without caching, and once per commit with caching', () => {
  for (const caching of [false, true]) {
    const b = new StreamsBuilder();
    b.stream<string, number>('in', { keySerde: S, valueSerde: J })
      .groupByKey()
      .count({ name: 'counts', caching })
      .toStream()
      .to('out', { keySerde: S, valueSerde: L });
    const d = new TopologyTestDriver(b.build(), { commitEveryInput: false, commitIntervalMs: 1000 });
    const input = d.createInputTopic('in', S, J);
    const out = d.createOutputTopic('out', S, L);
    input.pipeInput('a', 1, 1);
    input.pipeInput('a', 2, 2);
    input.pipeInput('b', 3, 3);
    input.pipeInput('a', 4, 4);
    if (caching) {
      assert.equal(out.getQueueSize(), 0, 'nothing before the commit');
      d.advanceWallClockTime(1000);
      assert.deepEqual(out.readKeyValuesToList(), [
        { key: 'a', value: 3 },
        { key: 'b', value: 1 },
      ]);
    } else {
      assert.deepEqual(out.readKeyValuesToList().map((r) => `${r.key}=${r.value}`), ['a=1', 'a=2', 'b=1', 'a=3']);
    }
    assert.equal(d.getKeyValueStore<string, number>('counts').get('a'), 3);
    d.close();
  }
});

test('groupBy repartitions through an internal topic; reduce and aggregate', () => {
  const b = new StreamsBuilder();
  const orders = b.stream<string, { shop: string; amount: number }>('orders', { keySerde: S, valueSerde: Serdes.json() });
  orders
    .groupBy((_k, v) => v.shop, { name: 'by-shop' })
    .aggregate(() => ({ n: 0, total: 0 }), (_k, v, agg) => ({ n: agg.n + 1, total: agg.total + v.amount }), { name: 'shop-totals', caching: false })
    .toStream()
    .to('totals', { keySerde: S, valueSerde: Serdes.json() });
  orders
    .mapValues((v) => v.amount)
    .groupByKey()
    .reduce((a, v) => Math.max(a, v), { name: 'max-per-order-key', caching: false, valueSerde: J })
    .toStream()
    .to('max', { keySerde: S, valueSerde: J });
  const topology = b.build();
  assert.match(topology.describe(), /by-shop-repartition/);
  assert.equal(topology.subtopologies().length, 2);
  const d = new TopologyTestDriver(topology);
  const input = d.createInputTopic('orders', S, Serdes.json<{ shop: string; amount: number }>());
  input.pipeInput('o1', { shop: 's1', amount: 10 }, 1);
  input.pipeInput('o2', { shop: 's2', amount: 5 }, 2);
  input.pipeInput('o1', { shop: 's1', amount: 7 }, 3);
  assert.deepEqual(d.createOutputTopic('totals', S, Serdes.json()).readKeyValuesToMap(), new Map([
    ['s1', { n: 2, total: 17 }],
    ['s2', { n: 1, total: 5 }],
  ]));
  assert.deepEqual(d.createOutputTopic('max', S, J).readKeyValuesToMap(), new Map([['o1', 10], ['o2', 5]]));
  const repartitioned = d.createOutputTopic(d.internalTopic('by-shop-repartition'), S, Serdes.json()).readKeyValuesToList();
  assert.deepEqual(repartitioned.map((r) => r.key), ['s1', 's2', 's1']);
});

test('tumbling window count with grace: late records are dropped and counted', () => {
  const b = new StreamsBuilder();
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .groupByKey()
    .windowedBy(TimeWindows.ofSizeAndGrace(10, 5))
    .count({ name: 'wc', caching: false })
    .toStream()
    .map((w: Windowed<string>, c) => ({ key: `${w.key}@${w.start}-${w.end}`, value: c }))
    .to('out', { keySerde: S, valueSerde: L });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, J);
  input.pipeInput('a', 1, 1);
  input.pipeInput('a', 1, 9);
  input.pipeInput('a', 1, 12); // window [10,20)
  input.pipeInput('a', 1, 14); // stream time 14: window [0,10) closes at 10+5=15
  input.pipeInput('a', 1, 8); // still within grace (14 < 15)
  input.pipeInput('a', 1, 16); // stream time 16: [0,10) closed
  input.pipeInput('a', 1, 3); // late: dropped
  const out = d.createOutputTopic('out', S, L).readKeyValuesToList().map((r) => `${r.key}=${r.value}`);
  assert.deepEqual(out, ['a@0-10=1', 'a@0-10=2', 'a@10-20=1', 'a@10-20=2', 'a@0-10=3', 'a@10-20=3']);
  const drops = [...d.lateRecordsDropped().values()].reduce((a, b) => a + b, 0);
  assert.equal(drops, 1);
  assert.equal(d.getWindowStore<string, number>('wc').fetch('a', 10), 3);
});

test('a cached windowed count forwards windows of real epoch times (above 2^32 ms) with their exact bounds', () => {
  const day = Date.UTC(2026, 10, 27); // 1.8e12 ms: the window start's high 32 bits are not zero
  const b = new StreamsBuilder();
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .groupByKey()
    .windowedBy(TimeWindows.ofSizeAndGrace(60_000, 0))
    .count({ name: 'epoch-wc', caching: true })
    .toStream()
    .to('out', { keySerde: windowedSerde(S), valueSerde: L });
  const d = new TopologyTestDriver(b.build(), { commitEveryInput: false, commitIntervalMs: 1000 });
  const input = d.createInputTopic('in', S, J);
  input.pipeInput('a', 1, day + 61_000);
  input.pipeInput('a', 1, day + 62_000);
  input.pipeInput('b', 1, day + 125_000);
  d.advanceWallClockTime(1000); // the commit flushes the cache
  const out = d.createOutputTopic('out', windowedSerde(S), L).readKeyValuesToList();
  assert.deepEqual(
    out.map((r) => [r.key!.key, r.key!.start, r.key!.end, r.value]),
    [
      ['a', day + 60_000, day + 120_000, 2],
      ['b', day + 120_000, day + 180_000, 1],
    ],
  );
});

test('hopping windows put a record in every window that contains it', () => {
  const b = new StreamsBuilder();
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .groupByKey()
    .windowedBy(TimeWindows.ofSizeWithNoGrace(10).advanceBy(5))
    .count({ name: 'hop', caching: false })
    .toStream()
    .to('out', { keySerde: windowedSerde(S), valueSerde: L });
  const d = new TopologyTestDriver(b.build());
  d.createInputTopic('in', S, J).pipeInput('k', 1, 7);
  const out = d.createOutputTopic('out', windowedSerde(S), L).readKeyValuesToList();
  assert.deepEqual(out.map((r) => [r.key!.start, r.key!.end, r.value]), [
    [0, 10, 1],
    [5, 15, 1],
  ]);
});

test('emit on window close gives one final result per window', () => {
  const b = new StreamsBuilder();
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .groupByKey()
    .windowedBy(TimeWindows.ofSizeAndGrace(10, 2))
    .emitStrategy('on-window-close')
    .aggregate(() => 0, (_k, v, agg) => agg + v, { name: 'sum', valueSerde: J })
    .toStream()
    .map((w: Windowed<string>, v) => ({ key: `${w.key}@${w.start}`, value: v }))
    .to('out', { keySerde: S, valueSerde: J });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, J);
  const out = d.createOutputTopic('out', S, J);
  input.pipeInput('a', 1, 1);
  input.pipeInput('b', 5, 2);
  input.pipeInput('a', 2, 9);
  input.pipeInput('a', 4, 11);
  assert.equal(out.getQueueSize(), 0, 'window [0,10) is open until stream time 12');
  input.pipeInput('a', 8, 12);
  assert.deepEqual(out.readKeyValuesToList().map((r) => `${r.key}=${r.value}`), ['a@0=3', 'b@0=5']);
  input.pipeInput('a', 100, 5); // late
  input.pipeInput('c', 1, 30);
  assert.deepEqual(out.readKeyValuesToList().map((r) => `${r.key}=${r.value}`), ['a@10=12']);
});

test('session windows merge records within the inactivity gap', () => {
  const b = new StreamsBuilder();
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .groupByKey()
    .windowedBy(SessionWindows.ofInactivityGapAndGrace(10, 20))
    .count({ name: 'sessions' })
    .toStream()
    .to('out', { keySerde: windowedSerde(S), valueSerde: L });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, J);
  input.pipeInput('v', 1, 0);
  input.pipeInput('v', 1, 5);
  input.pipeInput('v', 1, 40); // new session
  input.pipeInput('v', 1, 22); // bridges nothing: [0,5] ends at 5, 22-10=12 > 5; [40] starts at 40, 22+10=32 < 40
  input.pipeInput('v', 1, 3); // late: its session [0,5] ended before stream time 40 - grace 20
  const out = d.createOutputTopic('out', windowedSerde(S), L).readKeyValuesToList();
  const live = new Map<string, number | null>();
  for (const r of out) live.set(`${r.key!.start}-${r.key!.end}`, r.value);
  assert.deepEqual(
    [...live].filter(([, v]) => v !== null),
    [
      ['0-5', 2],
      ['40-40', 1],
      ['22-22', 1],
    ],
  );
  input.pipeInput('v', 1, 31); // bridges [22,22] and [40,40]
  const merged = d.createOutputTopic('out', windowedSerde(S), L).readKeyValuesToList();
  assert.deepEqual(merged.filter((r) => r.value !== null).map((r) => [r.key!.start, r.key!.end, r.value]), [[22, 40, 3]]);
  assert.equal(merged.filter((r) => r.value === null).length, 2, 'the two replaced sessions are retracted');
  assert.equal([...d.lateRecordsDropped().values()].reduce((a, x) => a + x, 0), 1);
});

test('stream-table inner and left joins read the table state', () => {
  const b = new StreamsBuilder();
  const users = b.table<string, { country: string }>('users', { keySerde: S, valueSerde: Serdes.json() }, { name: 'users-store' });
  const clicks = b.stream<string, { page: string }>('clicks', { keySerde: S, valueSerde: Serdes.json() });
  clicks.join(users, (c, u) => `${c.page}/${u.country}`).to('inner', { keySerde: S, valueSerde: S });
  clicks.leftJoin(users, (c, u) => `${c.page}/${u?.country ?? '?'}`).to('left', { keySerde: S, valueSerde: S });
  const d = new TopologyTestDriver(b.build());
  const u = d.createInputTopic('users', S, Serdes.json<{ country: string }>());
  const c = d.createInputTopic('clicks', S, Serdes.json<{ page: string }>());
  c.pipeInput('alice', { page: 'home' }, 1);
  u.pipeInput('alice', { country: 'FR' }, 2);
  c.pipeInput('alice', { page: 'cart' }, 3);
  u.pipeInput('alice', null, 4); // tombstone deletes
  c.pipeInput('alice', { page: 'exit' }, 5);
  assert.deepEqual(d.createOutputTopic('inner', S, S).readKeyValuesToList().map((r) => r.value), ['cart/FR']);
  assert.deepEqual(d.createOutputTopic('left', S, S).readKeyValuesToList().map((r) => r.value), ['home/?', 'cart/FR', 'exit/?']);
  assert.equal(d.getKeyValueStore('users-store').get('alice'), undefined);
});

test('stream-stream windowed inner join, and left join emitting unmatched records when the window closes', () => {
  const b = new StreamsBuilder();
  const views = b.stream<string, string>('views', { keySerde: S, valueSerde: S });
  const buys = b.stream<string, string>('buys', { keySerde: S, valueSerde: S });
  views.joinStream(buys, (v, p) => `${v}+${p}`, JoinWindows.ofTimeDifferenceAndGrace(10, 0), { name: 'vb', valueSerdeOut: S }).to('joined', { keySerde: S, valueSerde: S });
  views.leftJoinStream(buys, (v, p) => `${v}+${p ?? 'none'}`, JoinWindows.ofTimeDifferenceAndGrace(10, 0), { name: 'vbl', valueSerdeOut: S }).to('left', { keySerde: S, valueSerde: S });
  const d = new TopologyTestDriver(b.build());
  const v = d.createInputTopic('views', S, S);
  const p = d.createInputTopic('buys', S, S);
  v.pipeInput('u1', 'shoe', 100);
  v.pipeInput('u2', 'hat', 101);
  p.pipeInput('u1', 'order1', 105); // joins shoe (5 ms apart)
  p.pipeInput('u1', 'order2', 120); // 20 ms after shoe: no join
  v.pipeInput('u3', 'bag', 200); // stream time 200: u2/hat window closed without a match
  assert.deepEqual(d.createOutputTopic('joined', S, S).readKeyValuesToList().map((r) => `${r.key}:${r.value}`), ['u1:shoe+order1']);
  assert.deepEqual(d.createOutputTopic('left', S, S).readKeyValuesToList().map((r) => `${r.key}:${r.value}`), ['u1:shoe+order1', 'u2:hat+none']);
});

test('process() with a TTL store and punctuators on stream time and wall-clock time', () => {
  const b = new StreamsBuilder();
  b.addStateStore(Stores.keyValueStore({ name: 'seen', keySerde: S, valueSerde: L, ttlMs: 100 }));
  const punctuated: string[] = [];
  class Dedupe implements Processor<string, string, string, string> {
    private ctx!: ProcessorContext<string, string>;
    private seen!: KeyValueStore<string, number>;
    init(ctx: ProcessorContext<string, string>): void {
      this.ctx = ctx;
      this.seen = ctx.getStateStore('seen');
      ctx.schedule(50, 'stream-time', (t) => punctuated.push(`stream@${t}`));
      ctx.schedule(1000, 'wall-clock', (t) => {
        punctuated.push(`wall@${t}`);
        ctx.forward({ key: 'tick', value: String(t), timestamp: t, headers: [] });
      });
    }
    process(r: Record<string, string>): void {
      if (this.seen.get(r.value) !== undefined) return;
      this.seen.put(r.value, r.timestamp);
      this.ctx.forward(r);
    }
  }
  b.stream<string, string>('in', { keySerde: S, valueSerde: S }).process(() => new Dedupe(), { stores: ['seen'] }).to('out', { keySerde: S, valueSerde: S });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, S);
  input.pipeInput('k', 'm1', 10);
  input.pipeInput('k', 'm1', 20); // duplicate
  input.pipeInput('k', 'm2', 30);
  input.pipeInput('k', 'm1', 200); // m1 expired (written at 10, ttl 100): passes again
  input.pipeInput('k', 'm1', 210); // duplicate again
  const out = d.createOutputTopic('out', S, S);
  assert.deepEqual(out.readKeyValuesToList().map((r) => r.value), ['m1', 'm2', 'm1']);
  d.advanceWallClockTime(1000);
  assert.deepEqual(out.readKeyValuesToList(), [{ key: 'tick', value: '1000' }]);
  assert.deepEqual(punctuated, ['stream@10', 'stream@200', 'stream@210', 'wall@1000']);
});

test('Processor API: a store with onCommit forwards the last value of each key written since the previous commit, once per commit', () => {
  const b = new StreamsBuilder();
  b.addStateStore(Stores.keyValueStore({ name: 'totals', keySerde: Serdes.string(), valueSerde: Serdes.json<number>() }));
  b.addStateStore(Stores.keyValueStore({ name: 'recent', keySerde: Serdes.string(), valueSerde: Serdes.json<number>(), ttlMs: 60_000 }));
  class Totals implements Processor<string, number, string, number> {
    private totals!: KeyValueStore<string, number>;
    private recent!: KeyValueStore<string, number>;
    init(ctx: ProcessorContext<string, number>): void {
      this.totals = ctx.getStateStore('totals');
      this.recent = ctx.getStateStore('recent');
      this.totals.onCommit((key, value, timestamp) => {
        if (value !== null) ctx.forward({ key, value, timestamp, headers: [] });
      });
      // A TTL store hands the listener the key as written, too; a delete comes as null.
      this.recent.onCommit((key, value, timestamp) => ctx.forward({ key: `recent:${key}`, value: value ?? -1, timestamp, headers: [] }));
    }
    process(r: Record<string, number>): void {
      this.totals.put(r.key, (this.totals.get(r.key) ?? 0) + r.value);
      if (r.value < 0) this.recent.delete(r.key);
      else this.recent.put(r.key, r.value);
    }
  }
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .process<string, number>(() => new Totals(), { stores: ['totals', 'recent'] })
    .to('out', { keySerde: S, valueSerde: J });
  const d = new TopologyTestDriver(b.build(), { commitEveryInput: false, commitIntervalMs: 1000 });
  const input = d.createInputTopic('in', S, J);
  const out = d.createOutputTopic('out', S, J);
  input.pipeInput('a', 1, 1);
  input.pipeInput('a', 2, 2);
  input.pipeInput('b', 3, 3);
  input.pipeInput('a', 4, 4);
  assert.equal(out.getQueueSize(), 0, 'nothing before the commit');
  d.advanceWallClockTime(1000);
  const sorted = (xs: Array<{ key: unknown; value: unknown }>) => xs.sort((x, y) => String(x.key).localeCompare(String(y.key)));
  assert.deepEqual(sorted(out.readKeyValuesToList()), [
    { key: 'a', value: 7 },
    { key: 'b', value: 3 },
    { key: 'recent:a', value: 4 },
    { key: 'recent:b', value: 3 },
  ]);
  input.pipeInput('b', -3, 5);
  d.advanceWallClockTime(1000);
  assert.deepEqual(sorted(out.readKeyValuesToList()), [
    { key: 'b', value: 0 },
    { key: 'recent:b', value: -1 },
  ]);
  d.advanceWallClockTime(1000);
  assert.equal(out.getQueueSize(), 0, 'nothing written, nothing forwarded');
  d.close();
});
