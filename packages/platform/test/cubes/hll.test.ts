/**
 * The unique-visitor sketch: the hash matches the MurmurHash3 reference, estimates stay within 3
 * standard errors (small counts exact), duplicates change nothing, merging equals sketching the
 * union (byte for byte, at equal or different precisions) and is commutative and associative,
 * serialization round-trips and rejects malformed bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  HllFormatError,
  HyperLogLog,
  HLL_DEFAULT_PRECISION,
  hash64,
  murmur3x86128,
} from '../../src/cubes/hll.ts';

const ids = (from: number, to: number, prefix = 'visitor-'): string[] => {
  const out: string[] = [];
  for (let i = from; i < to; i++) out.push(`${prefix}${i}`);
  return out;
};

const sketch = (list: Iterable<string>, p?: number): HyperLogLog => {
  const h = new HyperLogLog(p);
  for (const id of list) h.add(id);
  return h;
};

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const words = (w: number[]): string => w.map((x) => x.toString(16).padStart(8, '0')).join('');
const se = (p: number): number => 1.04 / Math.sqrt(2 ** p);

describe('hash', () => {
  it('matches the MurmurHash3_x86_128 reference vectors', () => {
    const enc = new TextEncoder();
    // From the reference implementation's tests (words printed as %08x, out[0] first).
    assert.equal(words(murmur3x86128(enc.encode('Hello, world!'), 123)), '61c9129e5a1aacd7a41621629e37c886');
    assert.equal(words(murmur3x86128(enc.encode('Hello, world!'), 321)), 'd5fbdcb3c26c4193045880c5a7170f0f');
    assert.equal(words(murmur3x86128(enc.encode('xxxxxxxxxxxxxxxxxxxxxxxxxxxx'), 123)), '5e40bab278825a164cf929d31fec6047');
    assert.equal(words(murmur3x86128(enc.encode(''), 123)), 'fedc524526f3e79926f3e79926f3e799');
  });

  it('is pinned: these values are persisted inside sketches and must never change', () => {
    assert.equal(hash64('visitor-1').toString(16).padStart(16, '0'), '7af8f4a22b1c9899');
    assert.equal(hash64('anon-Ωmega-日本').toString(16).padStart(16, '0'), 'f0d93ef12831184f');
    assert.equal(hash64('😀').toString(16).padStart(16, '0'), 'f0e2fa84701463f2');
    assert.equal(hash64(''), 0n);
  });

  it('hashes the UTF-8 bytes TextEncoder produces, lone surrogates included', () => {
    const enc = new TextEncoder();
    const long = 'ü€😀x'.repeat(200);
    for (const s of ['a', 'é', '日本語テキスト', '😀 emoji', 'a\ud800b', 'x\udc00', '\ud83d', '\udc00\ud800', long]) {
      const [h1, h2] = murmur3x86128(enc.encode(s));
      assert.equal(hash64(s), (BigInt(h1) << 32n) | BigInt(h2), JSON.stringify(s.slice(0, 12)));
    }
  });
});

describe('HyperLogLog accuracy', () => {
  it('estimates 0..1,000,000 distinct ids within 3 standard errors, counts up to 100 exactly', (t) => {
    const p = HLL_DEFAULT_PRECISION;
    const h = new HyperLogLog();
    const rows: string[] = [];
    let added = 0;
    for (const n of [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]) {
      for (; added < n; added++) h.add(`visitor-${added}`);
      const est = h.estimate();
      const err = n === 0 ? 0 : (est - n) / n;
      rows.push(`n=${n} estimate=${est} error=${(err * 100).toFixed(2)}% ${h.isSparse ? 'sparse' : 'dense'}`);
      if (n <= 100) assert.equal(est, n, `exact at n=${n}`);
      else assert.ok(Math.abs(err) <= 3 * se(p), `n=${n}: estimate ${est}, error ${(err * 100).toFixed(2)}% > 3 SE`);
    }
    for (const row of rows) t.diagnostic(row);
  });

  it('stays within 3 standard errors at the other precisions', () => {
    for (const p of [10, 14, 16]) {
      const h = new HyperLogLog(p);
      let added = 0;
      for (const n of [50, 5_000, 50_000, 200_000]) {
        for (; added < n; added++) h.add(`p${p}-${added}`);
        const err = (h.estimate() - n) / n;
        assert.ok(Math.abs(err) <= 3 * se(p), `p=${p} n=${n}: error ${(err * 100).toFixed(2)}%`);
      }
    }
  });

  it('ignores duplicates (same registers, same estimate)', () => {
    for (const n of [40, 5_000]) {
      const once = sketch(ids(0, n));
      const dup = new HyperLogLog();
      for (let r = 0; r < 3; r++) for (let i = n - 1; i >= 0; i--) dup.add(`visitor-${(i * 7 + r) % n}`);
      assert.deepEqual(dup.serialize(), once.serialize());
      assert.equal(dup.estimate(), once.estimate());
    }
  });

  it('turns dense just past 3m/16 sparse entries and keeps estimating', () => {
    const limit = HyperLogLog.sparseLimit(12);
    assert.equal(limit, 768);
    const h = new HyperLogLog();
    for (let i = 0; i < limit; i++) h.add(`visitor-${i}`);
    assert.equal(h.isSparse, true);
    assert.equal(h.estimate(), limit);
    h.add(`visitor-${limit}`);
    assert.equal(h.isSparse, false);
    assert.ok(Math.abs(h.estimate() / (limit + 1) - 1) <= 3 * se(12));
  });

  it('rejects precisions outside 10..16', () => {
    for (const p of [9, 17, 12.5, Number.NaN]) assert.throws(() => new HyperLogLog(p), RangeError);
    assert.equal(new HyperLogLog().precision, 12);
  });
});

describe('HyperLogLog merge', () => {
  // [size of A, size of B] covering sparse+sparse (staying sparse and turning dense), sparse+dense,
  // dense+sparse and dense+dense; A and B overlap by a third of B.
  const shapes: Array<[number, number]> = [[0, 0], [0, 5], [5, 0], [20, 30], [500, 600], [3, 4_000], [4_000, 3], [20_000, 30_000]];

  for (const [na, nb] of shapes) {
    it(`merge(sketch(A), sketch(B)) is byte-identical to sketch(A ∪ B) for |A|=${na}, |B|=${nb}`, () => {
      const a = ids(0, na);
      const b = ids(na - Math.floor(nb / 3), na - Math.floor(nb / 3) + nb);
      const union = sketch([...a, ...b]);
      const sb = sketch(b);
      const before = sb.serialize();
      const merged = sketch(a).merge(sb);
      assert.deepEqual(merged.serialize(), union.serialize());
      assert.equal(merged.isSparse, union.isSparse);
      assert.equal(merged.estimate(), union.estimate());
      assert.deepEqual(sb.serialize(), before, 'the argument is not modified');
    });
  }

  it('is commutative, associative and idempotent', () => {
    const sets = [ids(0, 7), ids(5, 400), ids(300, 9_000), ids(8_000, 8_100, 'other-')];
    const all = sketch(sets.flat()).serialize();
    const s = sets.map((x) => sketch(x));
    for (let i = 0; i < s.length; i++) {
      for (let j = 0; j < s.length; j++) {
        assert.deepEqual(s[i]!.clone().merge(s[j]!).serialize(), s[j]!.clone().merge(s[i]!).serialize(), `${i}∪${j}`);
        for (let k = 0; k < s.length; k++) {
          const left = s[i]!.clone().merge(s[j]!).merge(s[k]!);
          const right = s[i]!.clone().merge(s[j]!.clone().merge(s[k]!));
          assert.deepEqual(left.serialize(), right.serialize(), `(${i}∪${j})∪${k}`);
        }
      }
    }
    const [s0, s1, s2, s3] = s as [HyperLogLog, HyperLogLog, HyperLogLog, HyperLogLog];
    assert.deepEqual(s3.clone().merge(s1).merge(s0).merge(s2).serialize(), all);
    for (const x of s) assert.deepEqual(x.clone().merge(x).serialize(), x.serialize());
  });

  it('folds a finer sketch down to the lower precision, equal to building at that precision', () => {
    for (const [na, nb] of [[5, 7], [2_000, 10], [10, 20_000], [30_000, 40_000]] as const) {
      const a = ids(0, na);
      const b = ids(na, na + nb);
      const want = sketch([...a, ...b], 12).serialize();
      const fine = sketch(a, 14);
      const coarse = sketch(b, 12);
      const m1 = fine.clone().merge(coarse);
      const m2 = coarse.clone().merge(fine);
      assert.equal(m1.precision, 12);
      assert.equal(fine.precision, 14, 'the argument keeps its precision');
      assert.deepEqual(m1.serialize(), want, `fine ∪ coarse, |A|=${na} |B|=${nb}`);
      assert.deepEqual(m2.serialize(), want, `coarse ∪ fine, |A|=${na} |B|=${nb}`);
    }
    const wide = sketch(ids(0, 100_000), 16);
    assert.deepEqual(new HyperLogLog(10).merge(wide).serialize(), sketch(ids(0, 100_000), 10).serialize());
  });

  it('keeps the highest rank when hashes share a sparse index, whatever the order', () => {
    // Same top 25 bits; the remaining 39 bits give ranks 1, 7 and 39.
    const base = 0xabcde800 | 0;
    const hashes: Array<[number, number]> = [[base | 0x40, 5], [base | 0x01, 5], [base, 1]];
    const orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]];
    const want = new HyperLogLog().addHash(base, 1).serialize();
    for (const order of orders) {
      const one = new HyperLogLog();
      for (const k of order) one.addHash(...hashes[k]!);
      assert.deepEqual(one.serialize(), want, `add order ${order}`);
      const parts = order.map((k) => new HyperLogLog().addHash(...hashes[k]!));
      const merged = parts[0]!.clone().merge(parts[1]!).merge(parts[2]!);
      assert.deepEqual(merged.serialize(), want, `merge order ${order}`);
      assert.equal(merged.estimate(), 1);
    }
    // The all-zero hash ('' hashes to 0) has the largest rank: 40 sparse, 64 - p + 1 dense.
    assert.equal(hex(sketch(['']).serialize()), '120128');
    const dense = sketch(ids(0, 2_000, 'z'));
    const direct = dense.clone().addHash(0, 0);
    assert.equal(direct.serialize()[1]! >>> 2, 53);
    assert.deepEqual(dense.clone().merge(sketch([''])).serialize(), direct.serialize());
    const [h1, h2] = [Number(hash64('visitor-1') >> 32n) | 0, Number(hash64('visitor-1') & 0xffffffffn) | 0];
    assert.deepEqual(new HyperLogLog().addHash(h1, h2).serialize(), sketch(['visitor-1']).serialize());
  });

  it('clone is independent', () => {
    const a = sketch(ids(0, 10));
    const c = a.clone();
    c.add('someone-else');
    assert.equal(a.estimate(), 10);
    assert.equal(c.estimate(), 11);
  });
});

describe('HyperLogLog serialization', () => {
  it('round-trips sparse and dense sketches at every precision', () => {
    for (const p of [10, 12, 16]) {
      for (const n of [0, 1, 5, 150, 3_000, 70_000]) {
        const h = sketch(ids(0, n), p);
        const bytes = h.serialize();
        const back = HyperLogLog.deserialize(bytes);
        assert.equal(back.precision, p);
        assert.equal(back.isSparse, h.isSparse);
        assert.equal(back.estimate(), h.estimate());
        assert.deepEqual(back.serialize(), bytes);
        // The copy keeps working like the original.
        for (const id of ids(n, n + 50, 'more-')) { back.add(id); h.add(id); }
        assert.deepEqual(back.serialize(), h.serialize(), `p=${p} n=${n}`);
      }
    }
  });

  it('is small: 2 bytes empty, under 32 bytes for 5 ids, 1 + 3m/4 bytes dense', () => {
    assert.equal(new HyperLogLog().serialize().length, 2);
    const five = sketch(ids(0, 5));
    assert.equal(five.isSparse, true);
    assert.ok(five.serialize().length < 32, `${five.serialize().length} bytes`);
    assert.equal(sketch(ids(0, 5_000)).serialize().length, 1 + 3072);
    assert.equal(sketch(ids(0, 50_000), 16).serialize().length, 1 + 49_152);
  });

  it('is pinned: the format of version 1 must not change', () => {
    assert.equal(hex(sketch(['a', 'b', 'c']).serialize()), '120382eccf3a80a7d9e304c0e6f1c801');
    const dense = sketch(ids(0, 300, 'v'), 10);
    assert.equal(dense.isSparse, false);
    assert.equal(dense.serialize()[0], 0x18);
    assert.equal(createHash('sha256').update(dense.serialize()).digest('hex'), '9349163279f33e904ecd37db9f8c45ac0fecbd86ded6519caa21a26a142e9b6c');
  });

  it('rejects malformed bytes', () => {
    const sparse = sketch(ids(0, 5)).serialize();
    const dense = sketch(ids(0, 2_000)).serialize();
    const bad: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array(0)],
      ['version 0', Uint8Array.of(0x02, 0x00)],
      ['version 2', Uint8Array.of(0x22, 0x00)],
      ['version 15', Uint8Array.of(0xf2, 0x00)],
      ['precision 17', Uint8Array.of(0x17, 0x00)],
      ['sparse without count', Uint8Array.of(0x12)],
      ['sparse truncated', sparse.subarray(0, sparse.length - 1)],
      ['sparse trailing byte', Uint8Array.of(...sparse, 0)],
      ['count larger than the data', Uint8Array.of(0x12, 0x05, 0x41)],
      ['rank 0', Uint8Array.of(0x12, 0x01, 0x40)],
      ['rank 41', Uint8Array.of(0x12, 0x01, 0x29 + 0x40)],
      ['repeated index', Uint8Array.of(0x12, 0x02, 0x41, 0x01)],
      ['zero delta', Uint8Array.of(0x12, 0x02, 0x41, 0x00)],
      ['index past 2^25', Uint8Array.of(0x12, 0x01, 0x81, 0x80, 0x80, 0x80, 0x08)],
      ['non-canonical varint', Uint8Array.of(0x12, 0x01, 0xc1, 0x00)],
      ['varint too long', Uint8Array.of(0x12, 0x01, 0x81, 0x80, 0x80, 0x80, 0x80, 0x01)],
      ['dense truncated', dense.subarray(0, dense.length - 1)],
      ['dense trailing byte', Uint8Array.of(...dense, 0)],
      ['dense register above 64 - p + 1', Uint8Array.of(...dense.subarray(0, 10), 0xff, ...dense.subarray(11))],
      ['dense header, sparse body', Uint8Array.of(0x1a, ...sparse.subarray(1))],
    ];
    for (const [name, bytes] of bad) assert.throws(() => HyperLogLog.deserialize(bytes), HllFormatError, name);
    // A single flipped byte in a sparse sketch is caught by the structure checks here.
    assert.throws(() => HyperLogLog.deserialize(Uint8Array.of(sparse[0]!, 0x7f, ...sparse.subarray(2))), HllFormatError);
  });

  it('turns an over-long sparse list into a dense sketch on read', () => {
    // 200 entries labelled precision 10 (limit 192), as a writer with a larger limit could write.
    // Sparse entries do not depend on p, so a p = 16 sparse body relabelled p = 10 is valid.
    const entries = sketch(ids(0, 200), 16).serialize();
    assert.equal(entries[0], 0x16);
    const asP10 = Uint8Array.of(0x10, ...entries.subarray(1));
    const back = HyperLogLog.deserialize(asP10);
    assert.equal(back.isSparse, false);
    assert.deepEqual(back.serialize(), sketch(ids(0, 200), 10).serialize());
  });
});
