import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamsBuilder, Serdes } from '../../src/index.ts';
import { TopologyTestDriver } from '../../src/testing/index.ts';

const S = Serdes.string();
const J = Serdes.json<{ n: number; tag?: string }>();

test('filter, mapValues, map, flatMap, peek, to', () => {
  const b = new StreamsBuilder();
  const seen: string[] = [];
  b.stream<string, { n: number; tag?: string }>('in', { keySerde: S, valueSerde: J })
    .filter((_k, v) => v.n % 2 === 0)
    .mapValues((v) => ({ n: v.n * 10 }))
    .peek((k) => seen.push(k))
    .flatMap((k, v) => [{ key: `${k}-a`, value: v }, { key: `${k}-b`, value: { n: v.n + 1 } }])
    .map((k, v) => ({ key: k.toUpperCase(), value: v }))
    .to('out', { keySerde: S, valueSerde: J });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, J);
  const out = d.createOutputTopic('out', S, J);
  input.pipeInput('x', { n: 1 }, 10);
  input.pipeInput('y', { n: 2 }, 20);
  input.pipeInput('z', { n: 4 }, 30);
  assert.deepEqual(seen, ['y', 'z']);
  const recs = out.readRecordsToList();
  assert.deepEqual(
    recs.map((r) => [r.key, r.value, r.timestamp]),
    [
      ['Y-A', { n: 20 }, 20],
      ['Y-B', { n: 21 }, 20],
      ['Z-A', { n: 40 }, 30],
      ['Z-B', { n: 41 }, 30],
    ],
  );
  d.close();
});

test('split/branch with default branch, and merge', () => {
  const b = new StreamsBuilder();
  const branches = b
    .stream<string, { n: number }>('in', { keySerde: S, valueSerde: J })
    .split({ name: 'sp' })
    .branch((_k, v) => v.n < 0, 'neg')
    .branch((_k, v) => v.n === 0, 'zero')
    .defaultBranch('pos');
  branches.get('sp-neg')!.to('neg', { keySerde: S, valueSerde: J });
  branches.get('sp-pos')!.merge(branches.get('sp-zero')!).to('nonneg', { keySerde: S, valueSerde: J });
  const d = new TopologyTestDriver(b.build());
  const input = d.createInputTopic('in', S, J);
  for (const n of [-1, 0, 5, -7]) input.pipeInput(String(n), { n }, 1);
  assert.deepEqual(d.createOutputTopic('neg', S, J).readKeyValuesToList().map((r) => r.value!.n), [-1, -7]);
  assert.deepEqual(d.createOutputTopic('nonneg', S, J).readKeyValuesToList().map((r) => r.value!.n), [0, 5]);
});

test('a record that cannot be deserialised goes to the dead-letter topic with its reason, and processing goes on', () => {
  const b = new StreamsBuilder();
  b.stream('in', { keySerde: S, valueSerde: J }).to('out', { keySerde: S, valueSerde: J });
  const d = new TopologyTestDriver(b.build(), { deadLetterTopic: 'dlq' });
  d.pipeRaw('in', Buffer.from('k1'), Buffer.from('{not json'), 5);
  d.createInputTopic('in', S, J).pipeInput('k2', { n: 1 }, 6);
  const dlq = d.createOutputTopic('dlq', Serdes.bytes(), Serdes.bytes()).readRecordsToList();
  assert.equal(dlq.length, 1);
  assert.equal(dlq[0]!.value!.toString(), '{not json');
  const headers = Object.fromEntries(dlq[0]!.headers.map(([k, v]) => [k, v.toString()]));
  assert.equal(headers['shopstream.error.code'], 'SHOP_ERR_DESERIALIZATION');
  assert.match(headers['shopstream.error.reason']!, /JSON/);
  assert.equal(headers['shopstream.source.topic'], 'in');
  assert.equal(d.deadLetteredCount(), 1);
  assert.deepEqual(d.createOutputTopic('out', S, J).readKeyValuesToList(), [{ key: 'k2', value: { n: 1 } }]);
});

test('without a dead-letter topic, a bad record fails the task with a typed error', () => {
  const b = new StreamsBuilder();
  b.stream('in', { keySerde: S, valueSerde: J }).to('out');
  const d = new TopologyTestDriver(b.build());
  assert.throws(() => d.pipeRaw('in', null, Buffer.from('{')), (e: { code?: string }) => e.code === 'SHOP_ERR_DESERIALIZATION');
});

test('timestamp extractor sets event time', () => {
  const b = new StreamsBuilder();
  b.stream<string, { n: number }>('in', { keySerde: S, valueSerde: J, timestampExtractor: (r) => (r.value as { n: number }).n * 1000 }).to('out', {
    keySerde: S,
    valueSerde: J,
  });
  const d = new TopologyTestDriver(b.build());
  d.createInputTopic('in', S, J).pipeInput('a', { n: 7 }, 1);
  assert.equal(d.createOutputTopic('out', S, J).readRecord().timestamp, 7000);
});
