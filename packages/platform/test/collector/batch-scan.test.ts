import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TOO_DEEP, batchElementRanges } from '../../src/collector/batch-scan.ts';
import { exceedsDepth } from '../../src/collector/body.ts';
import { Rng } from '../../src/simulate/rng.ts';

function slices(text: string): string[] | undefined {
  const b = Buffer.from(text);
  const r = batchElementRanges(b);
  if (r === TOO_DEEP) throw new Error('too deep');
  return r?.map(([s, e]) => b.subarray(s, e).toString());
}

describe('batchElementRanges', () => {
  it('finds each element of the batch array, whatever the spacing and nesting', () => {
    const body = ' {\n "sentAt": "x", "batch" : [ {"a":[1,{"b":"]}"}]} ,\t{"c":"\\"}\\\\"} ,3, "s", null, [1,[2]] ] , "context": {"batch": [9]} } ';
    assert.deepEqual(slices(body), ['{"a":[1,{"b":"]}"}]}', '{"c":"\\"}\\\\"}', '3', '"s"', 'null', '[1,[2]]']);
    const parsed = JSON.parse(body).batch as unknown[];
    assert.deepEqual(slices(body)!.map((x) => JSON.parse(x)), parsed);
  });

  it('finds the same elements JSON.stringify wrote, for strings full of quotes and backslash runs (seeded)', () => {
    const rng = new Rng(20261126);
    const rnd = () => rng.next();
    const alphabet = ['"', '\\', '\\\\', 'a', ']', '}', ',', ':', '{', '[', 'é', '\n', ' '];
    const str = () => Array.from({ length: Math.floor(rnd() * 12) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
    const value = (depth: number): unknown => {
      const k = Math.floor(rnd() * (depth > 3 ? 3 : 5));
      if (k === 0) return str();
      if (k === 1) return Math.floor(rnd() * 1000) - 500;
      if (k === 2) return rnd() < 0.5 ? null : true;
      if (k === 3) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [str(), value(depth + 1)]));
    };
    for (let round = 0; round < 300; round++) {
      const batch = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => value(0));
      const body = JSON.stringify({ sentAt: str(), batch, context: { batch: str() } });
      assert.deepEqual(slices(body), batch.map((e) => JSON.stringify(e)), body);
    }
  });

  it('takes the last batch key, as JSON.parse does', () => {
    assert.deepEqual(slices('{"batch":[1],"batch":[2,3]}'), ['2', '3']);
  });

  it('handles multi-byte UTF-8 inside strings', () => {
    assert.deepEqual(slices('{"batch":[{"n":"café ☕ 𝄞"},{"n":"\\u00e9"}]}'), ['{"n":"café ☕ 𝄞"}', '{"n":"\\u00e9"}']);
  });

  it('returns undefined when it cannot be sure (escaped keys, no batch, not an object)', () => {
    assert.equal(slices('{"b\\u0061tch":[1]}'), undefined);
    assert.equal(slices('{"events":[1]}'), undefined);
    assert.equal(slices('[1,2]'), undefined);
    assert.equal(slices('{"batch":{}}'), undefined);
    assert.deepEqual(slices('{"batch":[]}'), []);
  });

  it('says when a value nests deeper than allowed, counting from the body top', () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    assert.equal(batchElementRanges(Buffer.from(`{"batch":[${deep(62)}]}`), 64)?.length, 1);
    assert.equal(batchElementRanges(Buffer.from(`{"batch":[${deep(63)}]}`), 64), TOO_DEEP);
    assert.equal(batchElementRanges(Buffer.from(`{"context":${deep(64)},"batch":[]}`), 64), TOO_DEEP);
    assert.equal(exceedsDepth(Buffer.from(deep(64)), 64), false);
    assert.equal(exceedsDepth(Buffer.from(deep(65)), 64), true);
    assert.equal(exceedsDepth(Buffer.from(`["${'['.repeat(100)}"]`), 64), false, 'brackets in strings do not count');
  });
});
