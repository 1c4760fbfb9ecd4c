import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamsBuilder, Serdes, TimeWindows, Stores } from '../../src/index.ts';
import type { Processor, ProcessorContext, Record, WindowStore, Windowed } from '../../src/index.ts';
import { TopologyTestDriver } from '../../src/testing/index.ts';

const S = Serdes.string();
const J = Serdes.json<number>();

test('selectKey, then an explicit repartition() through a named internal topic', () => {
  const b = new StreamsBuilder();
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .selectKey((_k, v) => `k${v % 2}`)
    .repartition({ name: 'parity', keySerde: S, valueSerde: J })
    .groupByKey()
    .count({ name: 'parity-count', caching: false })
    .toStream()
    .to('out', { keySerde: S, valueSerde: Serdes.long() });
  const topology = b.build();
  assert.match(topology.describe(), /parity-repartition/);
  const d = new TopologyTestDriver(topology);
  const input = d.createInputTopic('in', S, J);
  for (const n of [1, 2, 3, 5]) input.pipeInput('x', n, n);
  assert.deepEqual(d.createOutputTopic('out', S, Serdes.long()).readKeyValuesToMap(), new Map([['k1', 3], ['k0', 1]]));
  const internal = d.createOutputTopic(d.internalTopic('parity-repartition'), S, J).readKeyValuesToList();
  assert.deepEqual(internal.map((r) => r.key), ['k1', 'k0', 'k1', 'k1']);
});

test('filterNot, flatMapValues and foreach', () => {
  const b = new StreamsBuilder();
  const seen: string[] = [];
  const s = b.stream<string, string>('in', { keySerde: S, valueSerde: S }).filterNot((_k, v) => v.startsWith('#'));
  s.flatMapValues((v) => v.split(' '), { valueSerde: S }).to('words', { keySerde: S, valueSerde: S });
  s.foreach((k, v) => seen.push(`${k}:${v}`));
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, S);
  input.pipeInput('a', 'hello big world', 1);
  input.pipeInput('b', '# comment', 2);
  assert.deepEqual(d.createOutputTopic('words', S, S).readKeyValuesToList().map((r) => r.value), ['hello', 'big', 'world']);
  assert.deepEqual(seen, ['a:hello big world']);
});

test('KTable filter and mapValues, materialised, can be joined', () => {
  const b = new StreamsBuilder();
  const prices = b.table<string, number>('prices', { keySerde: S, valueSerde: J }, { name: 'prices' });
  const expensive = prices.filter((_k, p) => p >= 100, { name: 'expensive' }).mapValues((p) => `€${p}`, { name: 'labels', valueSerde: S });
  expensive.toStream().to('labels-out', { keySerde: S, valueSerde: S });
  b.stream<string, string>('views', { keySerde: S, valueSerde: S })
    .leftJoin(expensive, (v, label) => `${v} ${label ?? 'cheap'}`)
    .to('joined', { keySerde: S, valueSerde: S });
  const d = new TopologyTestDriver(b.build());
  const p = d.createInputTopic('prices', S, J);
  const v = d.createInputTopic('views', S, S);
  p.pipeInput('tv', 500, 1);
  p.pipeInput('cable', 5, 2);
  v.pipeInput('tv', 'viewed', 3);
  v.pipeInput('cable', 'viewed', 4);
  p.pipeInput('tv', 50, 5); // drops below the filter: the row becomes a deletion
  v.pipeInput('tv', 'viewed', 6);
  assert.deepEqual(d.createOutputTopic('joined', S, S).readKeyValuesToList().map((r) => `${r.key} ${r.value}`), [
    'tv viewed €500',
    'cable viewed cheap',
    'tv viewed cheap',
  ]);
  assert.deepEqual(d.createOutputTopic('labels-out', S, S).readKeyValuesToList().map((r) => `${r.key}=${r.value}`), ['tv=€500', 'cable=null', 'tv=null']);
});

test('windowed reduce, and window store retention forgets old windows', () => {
  const b = new StreamsBuilder();
  b.stream<string, number>('in', { keySerde: S, valueSerde: J })
    .groupByKey()
    .windowedBy(TimeWindows.ofSizeWithNoGrace(10))
    .reduce((a, v) => a + v, { name: 'sums', caching: false, retentionMs: 30, valueSerde: J })
    .toStream()
    .map((w: Windowed<string>, v) => ({ key: `${w.key}@${w.start}`, value: v }))
    .to('out', { keySerde: S, valueSerde: J });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, J);
  input.pipeInput('a', 2, 1);
  input.pipeInput('a', 3, 5);
  input.pipeInput('a', 4, 12);
  assert.deepEqual(d.createOutputTopic('out', S, J).readKeyValuesToList().map((r) => `${r.key}=${r.value}`), ['a@0=2', 'a@0=5', 'a@10=4']);
  const store = d.getWindowStore<string, number>('sums');
  assert.equal(store.fetch('a', 0), 5);
  assert.deepEqual(store.fetchRange('a', 0, 100).map((w) => w.start), [0, 10]);
  input.pipeInput('b', 1, 100); // stream time 100: windows before 70 are past retention
  assert.equal(store.fetch('a', 0), undefined);
  assert.deepEqual(store.fetchAll(0, 1000).map((w) => `${w.key}@${w.start}`), ['b@100']);
});

test('a window store from the Processor API, a cancelled punctuator, and unconnected stores', () => {
  const b = new StreamsBuilder();
  b.addStateStore(Stores.windowStore({ name: 'last-seen', keySerde: S, valueSerde: J, retentionMs: 1000 }));
  let fired = 0;
  class P implements Processor<string, number, string, number> {
    private ctx!: ProcessorContext<string, number>;
    private ws!: WindowStore<string, number>;
    init(ctx: ProcessorContext<string, number>): void {
      this.ctx = ctx;
      this.ws = ctx.getStateStore('last-seen');
      const c = ctx.schedule(10, 'stream-time', () => {
        fired++;
        c.cancel();
      });
      assert.throws(() => ctx.getStateStore('nope'), (e: { code?: string }) => e.code === 'SHOP_ERR_TOPOLOGY');
    }
    process(r: Record<string, number>): void {
      this.ws.put(r.key, r.value, r.timestamp);
      const recent = this.ws.fetchRange(r.key, r.timestamp - 100, r.timestamp);
      this.ctx.forward({ ...r, value: recent.reduce((a, w) => a + w.value, 0) });
    }
  }
  b.stream<string, number>('in', { keySerde: S, valueSerde: J }).process(() => new P(), { stores: ['last-seen'], keyChanged: false, valueSerde: J }).to('out', { keySerde: S, valueSerde: J });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, J);
  input.pipeInput('k', 1, 10);
  input.pipeInput('k', 2, 50);
  input.pipeInput('k', 4, 200);
  assert.deepEqual(d.createOutputTopic('out', S, J).readKeyValuesToList().map((r) => r.value), [1, 3, 4]);
  assert.equal(fired, 1);
});

test('names are stable and unique', () => {
  const b = new StreamsBuilder();
  const s = b.stream('in', { name: 'source' });
  s.filter(() => true, { name: 'keep' }).to('out', { name: 'sink' });
  assert.throws(() => s.mapValues((v) => v, { name: 'keep' }), (e: { code?: string }) => e.code === 'SHOP_ERR_TOPOLOGY');
  assert.throws(() => b.stream('in'), /already read/);
  assert.match(b.build().describe(), /Source: source \(topics: \[in\]\)\n {4}--> keep/);
});

test('deduplicate drops a repeated id within the window, per key, and lets it through once the window has passed', () => {
  const b = new StreamsBuilder();
  b.stream<string, { id: string }>('in', { keySerde: S, valueSerde: Serdes.json() })
    .deduplicate((_k, v) => v.id, { name: 'dd', windowMs: 1000 })
    .to('out', { keySerde: S, valueSerde: Serdes.json() });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, Serdes.json<{ id: string }>());
  input.pipeInput('v1', { id: 'a' }, 0);
  input.pipeInput('v1', { id: 'a' }, 500);
  input.pipeInput('v1', { id: 'b' }, 600);
  input.pipeInput('v1', { id: 'a' }, 1200); // 'a' was last seen at 0: expired
  input.pipeInput('v1', { id: 'b' }, 1300); // 'b' at 600: still within the window
  assert.deepEqual(d.createOutputTopic('out', S, Serdes.json<{ id: string }>()).readKeyValuesToList().map((r) => r.value!.id), ['a', 'b', 'a']);
});
