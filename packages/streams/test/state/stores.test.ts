/**
 * The stores' commit protocol with a commit in flight: processing goes on while the transaction
 * commits, so a store holds the commit's values and newer ones at once. Reads must see the newest,
 * the backend must get exactly the commit's, and a failed commit must leave only the backend.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbEnvironment, MemoryBackend } from '../../src/state/backend.ts';
import { PlainKeyValueStore, SegmentedWindowStore, TtlKeyValueStore } from '../../src/state/stores.ts';
import type { StoreContext } from '../../src/state/stores.ts';
import { Serdes, deserializeDetaches } from '../../src/serde/index.ts';

function context(time = { now: 1_000 }): StoreContext {
  return { streamTime: () => time.now, recordTime: () => time.now, requestCommit: () => {} };
}

/** The values a backend holds, decoded: key → JSON value (the 8-byte timestamp prefix dropped). */
function backendContents(b: MemoryBackend): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of b.range()) out[k.toString()] = JSON.parse(v.subarray(8).toString());
  return out;
}

function kvStore(): { store: PlainKeyValueStore<string, number>; backend: MemoryBackend; changelog: Array<[string, unknown]> } {
  const backend = new MemoryBackend();
  const store = new PlainKeyValueStore<string, number>('s', backend, Serdes.string(), Serdes.json<number>(), { maxBufferBytes: 1 << 20 });
  const changelog: Array<[string, unknown]> = [];
  store.init(context(), { send: (k, v) => changelog.push([k.toString(), v === null ? null : JSON.parse(v.subarray(8).toString())]) });
  return { store, backend, changelog };
}

describe('stores with a commit in flight', () => {
  it('read the newest values, give the backend exactly the commit’s, and changelog each generation once', () => {
    const { store, backend, changelog } = kvStore();
    store.put('a', 1);
    store.put('b', 2);
    store.put('gone', 9);
    store.flush();
    assert.deepEqual(changelog, [['a', 1], ['b', 2], ['gone', 9]]);
    store.freeze();
    // Processing goes on while the commit is in flight.
    store.put('a', 10);
    store.put('c', 3);
    store.delete('gone');
    assert.equal(store.get('a'), 10);
    assert.equal(store.get('b'), 2);
    assert.equal(store.get('c'), 3);
    assert.equal(store.get('gone'), undefined);
    assert.deepEqual(backendContents(backend), {}, 'nothing reaches the backend before the commit is through');
    assert.deepEqual([...store.all()], [['a', 10], ['b', 2], ['c', 3]]);
    assert.equal(store.hasPendingWrites(), true);

    store.applyFrozen(5);
    assert.deepEqual(backendContents(backend), { a: 1, b: 2, gone: 9 }, 'the backend holds the commit’s values, not the newer ones');
    assert.equal(backend.checkpoint(), 5);
    assert.equal(store.get('a'), 10, 'the newer value is still read');
    assert.equal(store.get('gone'), undefined);
    assert.deepEqual([...store.all()], [['a', 10], ['b', 2], ['c', 3]]);

    // The next commit writes what changed since the first one started, and only that.
    changelog.length = 0;
    store.flush();
    assert.deepEqual(changelog.sort(), [['a', 10], ['c', 3], ['gone', null]]);
    store.freeze();
    store.applyFrozen(8);
    assert.deepEqual(backendContents(backend), { a: 10, b: 2, c: 3 });
    assert.equal(store.hasPendingWrites(), false);
  });

  it('a failed commit drops the commit’s values and everything written since', () => {
    const { store, backend } = kvStore();
    store.put('a', 1);
    store.flush();
    store.freeze();
    store.applyFrozen(1);
    store.put('a', 2);
    store.flush();
    store.freeze();
    store.put('a', 3);
    store.put('b', 4);
    store.discard();
    assert.equal(store.get('a'), 1);
    assert.equal(store.get('b'), undefined);
    assert.deepEqual(backendContents(backend), { a: 1 });
    assert.equal(store.hasPendingWrites(), false);
    // The store commits normally afterwards.
    store.put('b', 5);
    store.flush();
    store.freeze();
    store.applyFrozen(2);
    assert.deepEqual(backendContents(backend), { a: 1, b: 5 });
  });

  it('a window store answers ranges across the commit in flight, before and after it is applied', () => {
    const backend = new MemoryBackend();
    const time = { now: 60_000 };
    const store = new SegmentedWindowStore<string, number>('w', backend, Serdes.string(), Serdes.json<number>(), { maxBufferBytes: 1 << 20 }, 3_600_000, 'key-first');
    store.init(context(time), undefined);
    store.put('k', 1, 0);
    store.put('k', 2, 60_000);
    assert.deepEqual(store.fetchRange('k', 0, 120_000), [{ start: 0, value: 1 }, { start: 60_000, value: 2 }]);
    store.freeze();
    store.put('k', 20, 60_000);
    store.put('k', 3, 120_000);
    assert.deepEqual(store.fetchRange('k', 0, 120_000), [{ start: 0, value: 1 }, { start: 60_000, value: 20 }, { start: 120_000, value: 3 }]);
    store.applyFrozen(undefined);
    assert.deepEqual(store.fetchRange('k', 0, 120_000), [{ start: 0, value: 1 }, { start: 60_000, value: 20 }, { start: 120_000, value: 3 }]);
    assert.deepEqual(
      store.fetchAll(0, 120_000).map((w) => [w.start, w.value]),
      [[0, 1], [60_000, 20], [120_000, 3]],
    );
  });

  it('a TTL store lists the newest copy of each key across the commit in flight', () => {
    const backend = new MemoryBackend();
    const time = { now: 1_000 };
    const store = new TtlKeyValueStore<string, number>('t', backend, Serdes.string(), Serdes.json<number>(), { maxBufferBytes: 1 << 20 }, 60_000);
    store.init(context(time), undefined);
    store.put('x', 1);
    store.put('y', 2);
    store.freeze();
    store.put('x', 11);
    assert.deepEqual([...store.all()].sort(), [['x', 11], ['y', 2]]);
    store.applyFrozen(undefined);
    assert.equal(store.get('x'), 11);
    assert.deepEqual([...store.all()].sort(), [['x', 11], ['y', 2]]);
  });
});

describe('reads from LMDB', () => {
  it('decode values from LMDB’s reused buffer with the built-in serdes, and give other serdes bytes of their own', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stores-lmdb-'));
    const env = new LmdbEnvironment(dir);
    try {
      assert.equal(deserializeDetaches(Serdes.json() as never), true);
      assert.equal(deserializeDetaches(Serdes.bytes() as never), false);
      const kept: Buffer[] = [];
      const keeping = Serdes.from<Buffer>((b) => b, (b) => (kept.push(b), b));
      const json = new PlainKeyValueStore<string, { v: string }>('json', env.backend('json'), Serdes.string(), Serdes.json(), { maxBufferBytes: 1 << 20 });
      const bytes = new PlainKeyValueStore<string, Buffer>('bytes', env.backend('bytes'), Serdes.string(), Serdes.bytes(), { maxBufferBytes: 1 << 20 });
      const custom = new PlainKeyValueStore<string, Buffer>('custom', env.backend('custom'), Serdes.string(), keeping, { maxBufferBytes: 1 << 20 });
      for (const s of [json, bytes, custom]) s.init(context(), undefined);
      // Values of different lengths: a view that kept LMDB's larger buffer would show its tail.
      json.put('short', { v: 'a' });
      json.put('long', { v: 'b'.repeat(5000) });
      bytes.put('a', Buffer.from('first value'));
      bytes.put('b', Buffer.from('second, longer value'));
      custom.put('c', Buffer.from('custom one'));
      custom.put('d', Buffer.from('custom two, longer'));
      for (const s of [json, bytes, custom]) {
        s.flush();
        s.freeze();
        s.applyFrozen(1);
      }
      assert.deepEqual(json.get('long'), { v: 'b'.repeat(5000) });
      assert.deepEqual(json.get('short'), { v: 'a' });
      const a = bytes.get('a')!;
      const b = bytes.get('b')!;
      json.get('long');
      assert.equal(a.toString(), 'first value', 'a bytes value survives later reads');
      assert.equal(b.toString(), 'second, longer value');
      const c = custom.get('c')!;
      custom.get('d');
      json.get('long');
      assert.equal(c.toString(), 'custom one', 'a value a custom serde kept survives later reads');
      assert.equal(kept[0]!.toString(), 'custom one');
    } finally {
      env.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A memory backend that counts its point reads. */
class CountingBackend extends MemoryBackend {
  gets = 0;
  override get(key: Buffer): Buffer | undefined {
    this.gets++;
    return super.get(key);
  }
}

/** Commits what the store holds (flush, freeze, apply), as the runtime does after a transaction. */
function commit(store: { flush(): void; freeze(): void; applyFrozen(cp: number | undefined): void }): void {
  store.flush();
  store.freeze();
  store.applyFrozen(undefined);
}

describe('the read cache of committed values', () => {
  function cached(cacheBytes: number) {
    const backend = new CountingBackend();
    const store = new PlainKeyValueStore<string, { n: number }>('c', backend, Serdes.string(), Serdes.json(), { maxBufferBytes: 1 << 20, cacheBytes });
    store.init(context(), undefined);
    return { store, backend };
  }

  it('answers a hot key from memory once read, follows its commits, and knows a committed delete', () => {
    const { store, backend } = cached(1 << 20);
    store.put('a', { n: 1 });
    commit(store);
    assert.deepEqual(store.get('a'), { n: 1 });
    assert.deepEqual(store.get('a'), { n: 1 });
    assert.equal(backend.gets, 1, 'read once from the backend, then from the cache');
    store.put('a', { n: 2 });
    commit(store);
    assert.deepEqual(store.get('a'), { n: 2 }, 'the cache follows the commit');
    store.delete('a');
    commit(store);
    assert.equal(store.get('a'), undefined);
    assert.equal(backend.gets, 1, 'a committed value or delete of a cached key needs no backend read');
    // A key only written is not cached (a message id is written once and never read again).
    store.put('once', { n: 7 });
    commit(store);
    assert.deepEqual(store.get('once'), { n: 7 });
    assert.equal(backend.gets, 2);
  });

  it('after a discarded commit, reads the committed value again, even one a processor changed in place', () => {
    const { store, backend } = cached(1 << 20);
    store.put('a', { n: 1 });
    commit(store);
    const v = store.get('a')!;
    // A processor that updates its aggregate in place, then its commit fails.
    v.n++;
    store.put('a', v);
    store.flush();
    store.discard();
    assert.deepEqual(store.get('a'), { n: 1 }, 'the committed value, not the changed object');
    assert.equal(backend.gets, 2);
  });

  it('keeps at most its budget in stored bytes; once full, admits one read in eight and drops the oldest key for it', () => {
    // Each entry counts its key, its stored bytes (8-byte timestamp + value) and 64 bytes of
    // overhead: 2 + 15 + 64 = 81 bytes here, so two fit in 200.
    const { store, backend } = cached(200);
    for (const k of ['k1', 'k2', 'k3']) store.put(k, { n: 1 });
    commit(store);
    store.get('k1');
    store.get('k2');
    store.get('k1');
    store.get('k2');
    assert.equal(backend.gets, 2, 'k1 and k2 are cached');
    // Full: k3's first seven reads do not enter the cache (a key read in turn with more keys than
    // fit would otherwise evict every other key before its next read); the eighth does, in place of k1.
    for (let i = 1; i <= 7; i++) store.get('k3');
    assert.equal(backend.gets, 9);
    store.get('k3');
    assert.equal(backend.gets, 10);
    store.get('k3');
    store.get('k2');
    assert.equal(backend.gets, 10, 'k3 and k2 are cached');
    store.get('k1');
    assert.equal(backend.gets, 11, 'k1, the oldest, made room for k3');
    const { store: off, backend: b2 } = cached(0);
    off.put('x', { n: 1 });
    commit(off);
    off.get('x');
    off.get('x');
    assert.equal(b2.gets, 2, 'cacheBytes 0: no cache');
  });

  it('a TTL store does not answer an expired key that it had cached', () => {
    const backend = new CountingBackend();
    const time = { now: 1_000 };
    const store = new TtlKeyValueStore<string, number>('t', backend, Serdes.string(), Serdes.json<number>(), { maxBufferBytes: 1 << 20, cacheBytes: 1 << 20 }, 60_000);
    store.init(context(time), undefined);
    store.put('x', 1);
    commit(store);
    assert.equal(store.get('x'), 1);
    assert.equal(store.get('x'), 1);
    const reads = backend.gets;
    assert.ok(reads >= 1);
    // Stream time moves past the TTL: the commit drops the old segments from the backend.
    time.now = 200_000;
    store.put('y', 2);
    commit(store);
    assert.deepEqual([...backend.range()].length, 1, 'only y is left in the backend');
    assert.equal(store.get('x'), undefined, 'expired, although it was cached');
    assert.deepEqual(store.get('y'), 2);
  });
});
