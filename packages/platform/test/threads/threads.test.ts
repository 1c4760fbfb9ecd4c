import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ThreadPool } from '../../src/threads.ts';

interface Req {
  op: 'echo' | 'throw' | 'exit' | 'slow';
  n: number;
  buf?: ArrayBuffer;
}

const WORKER = new URL('./echo-worker.ts', import.meta.url);

describe('ThreadPool', () => {
  it('answers every request, over all its threads, and moves transferred buffers', async () => {
    const asides: unknown[] = [];
    const pool = new ThreadPool<Req, { n: number; bytes: number }>(WORKER, 2, { name: 'echo pool', onAside: (a) => asides.push(...(a as unknown[])) });
    try {
      const bufs = Array.from({ length: 6 }, (_, i) => new ArrayBuffer(16 + i));
      const answers = await Promise.all(bufs.map((buf, n) => pool.run({ op: 'echo', n, buf }, [buf])));
      assert.deepEqual(answers, bufs.map((_, n) => ({ n: 2 * n, bytes: 16 + n })));
      // Moved: detached here, and handed back aside.
      assert.ok(bufs.every((b) => b.byteLength === 0));
      assert.deepEqual(asides.map((a) => (a as ArrayBuffer).byteLength).sort((a, b) => a - b), [16, 17, 18, 19, 20, 21]);
    } finally {
      await pool.close();
    }
  });

  it("fails a request the handler throws on with the pool's name, and goes on", async () => {
    const asides: unknown[] = [];
    const pool = new ThreadPool<Req, { n: number }>(WORKER, 1, { name: 'echo pool', onAside: (a) => asides.push(...(a as unknown[])) });
    try {
      await assert.rejects(pool.run({ op: 'throw', n: 7, buf: new ArrayBuffer(1) }), /^Error: echo pool: Error: refused 7/);
      assert.deepEqual(asides, ['from-throw']);
      assert.deepEqual(await pool.run({ op: 'echo', n: 1 }), { n: 2, bytes: 0 });
    } finally {
      await pool.close();
    }
  });

  it('fails the requests of a thread that dies, replaces it, and refuses requests once closed', async () => {
    const pool = new ThreadPool<Req, { n: number }>(WORKER, 1, { name: 'echo pool' });
    const slow = pool.run({ op: 'slow', n: 1 });
    const dying = pool.run({ op: 'exit', n: 2 });
    const queued = pool.run({ op: 'echo', n: 3 });
    assert.deepEqual(await slow, { n: 2, bytes: 0 });
    await assert.rejects(dying, /echo pool thread exited \(3\)/);
    await assert.rejects(queued, /echo pool thread exited \(3\)/);
    assert.deepEqual(await pool.run({ op: 'echo', n: 4 }), { n: 8, bytes: 0 });
    assert.equal(pool.size, 1);
    await pool.close();
    await assert.rejects(pool.run({ op: 'echo', n: 5 }), /echo pool is closed/);
  });
});
