/**
 * The Bloom filter in front of LMDB reads: it must never hide a key that was written (that would
 * lose state), and it should answer most misses itself.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BloomFilter } from '../../src/state/bloom.ts';
import { LmdbEnvironment } from '../../src/state/backend.ts';

const key = (s: string): Buffer => Buffer.from(s);

describe('BloomFilter', () => {
  it('reports every added key, and few that were never added', () => {
    const f = new BloomFilter(50_000);
    for (let i = 0; i < 50_000; i++) f.add(key(`msg-${i}`));
    for (let i = 0; i < 50_000; i++) assert.equal(f.mightContain(key(`msg-${i}`)), true, `msg-${i}`);
    let falsePositives = 0;
    for (let i = 50_000; i < 150_000; i++) if (f.mightContain(key(`msg-${i}`))) falsePositives++;
    // 10 bits per key, 7 probes: about 0.8% in theory; the filter rounds its size up, so fewer.
    assert.ok(falsePositives < 1_500, `${falsePositives} false positives in 100,000`);
    assert.equal(f.full, false);
  });

  it('knows the empty key and binary keys', () => {
    const f = new BloomFilter(0);
    assert.equal(f.mightContain(Buffer.alloc(0)), false);
    f.add(Buffer.alloc(0));
    f.add(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 255]));
    assert.equal(f.mightContain(Buffer.alloc(0)), true);
    assert.equal(f.mightContain(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 255])), true);
    assert.equal(f.mightContain(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 254])), false);
  });

  it('counts distinct keys only, and says when it is full', () => {
    const f = new BloomFilter(0);
    for (let round = 0; round < 5; round++) for (let i = 0; i < 1_000; i++) f.add(key(`k${i}`));
    assert.equal(f.full, false, 'the same 1,000 keys re-added do not fill it');
    for (let i = 0; i <= f.capacity; i++) f.add(key(`new-${i}`));
    assert.equal(f.full, true);
  });
});

describe('LmdbBackend with its key filter', () => {
  it('finds every written key through writes, growth, reopening, deletes and clear', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bloom-'));
    try {
      let env = new LmdbEnvironment(dir);
      let b = env.backend('s');
      assert.equal(b.get(key('a')), undefined); // builds the (empty) filter
      // Far more keys than the first filter's size: it must be rebuilt on the way.
      for (let batch = 0; batch < 20; batch++) {
        const puts: Array<[Buffer, Buffer]> = [];
        for (let i = 0; i < 2_000; i++) puts.push([key(`k-${batch}-${i}`), key(`v-${batch}-${i}`)]);
        b.write(puts, batch);
        assert.equal(b.get(key(`k-${batch}-0`))?.toString(), `v-${batch}-0`);
      }
      for (let batch = 0; batch < 20; batch++) for (let i = 0; i < 2_000; i += 97) assert.equal(b.get(key(`k-${batch}-${i}`), true)?.toString(), `v-${batch}-${i}`);
      assert.equal(b.get(key('k-20-0')), undefined);
      b.write([[key('k-3-5'), null]]);
      assert.equal(b.get(key('k-3-5')), undefined, 'a deleted key reads as absent');
      env.close();

      env = new LmdbEnvironment(dir); // a new process: the filter is built from the keys on disk
      b = env.backend('s');
      assert.equal(b.get(key('k-19-1999'))?.toString(), 'v-19-1999');
      assert.equal(b.get(key('k-0-0'))?.toString(), 'v-0-0');
      assert.equal(b.get(key('k-3-5')), undefined);
      b.clear();
      assert.equal(b.get(key('k-0-0')), undefined);
      b.write([[key('k-0-0'), key('again')]]);
      assert.equal(b.get(key('k-0-0'))?.toString(), 'again');
      env.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
