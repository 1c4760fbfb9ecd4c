import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamsError, ErrorCodes } from '../../src/errors.ts';
import { fromWire, packRecords, toWire, unpackProducer, unpackRecords } from '../../src/log/remote/wire.ts';
import type { ConsumedRecord, ProducerRecord } from '../../src/log/types.ts';

const consumed: ConsumedRecord[] = [
  { topic: 'a', partition: 3, offset: 12_345_678_901, timestamp: 1_764_000_000_123, key: Buffer.from('k1'), value: Buffer.from('{"x":1}'), headers: [['h', Buffer.from('v')]] },
  { topic: 'b', partition: 0, offset: 0, timestamp: 0, key: null, value: null, headers: [] },
  { topic: 'a', partition: 1, offset: 7, timestamp: -5, key: Buffer.alloc(0), value: Buffer.alloc(0), headers: [['h', Buffer.alloc(0)], ['', Buffer.from([0, 255])], ['h', Buffer.from('again')]] },
];

const plain = (r: ConsumedRecord) => ({
  ...r,
  key: r.key === null ? null : [...r.key],
  value: r.value === null ? null : [...r.value],
  headers: r.headers.map(([n, v]) => [n, [...v]]),
});

test('packed records come back with every field: null and empty keys and values, repeated and empty headers', () => {
  const packed = packRecords(consumed);
  assert.deepEqual(packed.topics, ['a', 'b']);
  assert.deepEqual(unpackRecords(packed).map(plain), consumed.map(plain));
});

test('packing reuses a buffer that is large enough, and takes a new one otherwise', () => {
  const big = new ArrayBuffer(1 << 16);
  assert.equal(packRecords(consumed, big).buffer, big);
  const small = new ArrayBuffer(8);
  const p = packRecords(consumed, small);
  assert.notEqual(p.buffer, small);
  assert.deepEqual(unpackRecords(p).map(plain), consumed.map(plain));
});

test('producer records keep an absent partition and timestamp absent', () => {
  const records: ProducerRecord[] = [
    { topic: 't', key: Buffer.from('k'), value: Buffer.from('v') },
    { topic: 't', partition: 2, timestamp: 99, key: null, value: Buffer.from('w'), headers: [['x', Buffer.from('y')]] },
  ];
  const back = unpackProducer(packRecords(records));
  assert.equal('partition' in back[0]!, false);
  assert.equal('timestamp' in back[0]!, false);
  assert.equal(back[1]!.partition, 2);
  assert.equal(back[1]!.timestamp, 99);
  assert.deepEqual(back[1]!.headers!.map(([n, v]) => [n, v.toString()]), [['x', 'y']]);
});

test('errors cross as data and come back with their code, retriable flag and details', () => {
  const e = fromWire(toWire(new StreamsError(ErrorCodes.FENCED, 'stale', { details: { generation: 3 } })));
  assert.ok(e instanceof StreamsError);
  assert.equal(e.code, 'SHOP_ERR_FENCED');
  assert.equal(e.retriable, true);
  assert.deepEqual(e.details, { generation: 3 });
  const other = fromWire(toWire(Object.assign(new Error('disk'), { code: 'ENOSPC' })));
  assert.equal((other as Error & { code?: string }).code, 'ENOSPC');
  assert.equal(other.message, 'disk');
});
