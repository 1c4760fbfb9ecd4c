import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Serdes, windowedSerde } from '../../src/index.ts';

test('long serde is Java-compatible big-endian two\'s complement', () => {
  const L = Serdes.long();
  for (const n of [0, 1, -1, 255, -256, 2 ** 31, -(2 ** 31) - 1, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]) {
    const b = L.serialize(n)!;
    const ref = Buffer.alloc(8);
    ref.writeBigInt64BE(BigInt(n));
    assert.deepEqual(b, ref, `bytes of ${n}`);
    assert.equal(L.deserialize(b), n);
  }
  assert.throws(() => L.serialize(1.5));
  assert.equal(L.serialize(null), null);
});

test('string and json serdes reject invalid UTF-8 instead of replacing it', () => {
  assert.throws(() => Serdes.string().deserialize(Buffer.from([0xff, 0xfe])));
  assert.throws(() => Serdes.json().deserialize(Buffer.from([0x22, 0xc3, 0x22])));
  assert.equal(Serdes.string().deserialize(Buffer.from('héllo')), 'héllo');
  assert.deepEqual(Serdes.json().deserialize(Buffer.from('{"a":[1,"é"]}')), { a: [1, 'é'] });
});

test('windowed serde round-trips key, start and end', () => {
  const W = windowedSerde(Serdes.string());
  const w = { key: 'k', start: 60_000, end: 120_000 };
  assert.deepEqual(W.deserialize(W.serialize(w)), w);
});
