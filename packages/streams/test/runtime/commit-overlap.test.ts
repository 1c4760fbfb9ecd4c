/**
 * The run loop goes on processing while a commit is in flight. A log whose transactions take
 * 300 ms to commit shows it: records are processed during the commit, the records they send wait
 * for the next transaction, and the output (a running count per key, with a changelogged store)
 * is exact, through a restart that restores the state from the backend and the changelog.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamsApp, StreamsBuilder, Serdes } from '../../src/index.ts';
import type { GroupMember, Log, Transaction } from '../../src/index.ts';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import { produce, readTopic, unique, waitFor } from './helpers.ts';

const S = Serdes.string();

/** The log, with every transaction commit held for `delayMs` first; counts what is processed meanwhile. */
function slowCommits(log: Log, delayMs: number, processed: () => number): { log: Log; overlapped: () => number } {
  let overlapped = 0;
  const wrapTxn = (txn: Transaction): Transaction => ({
    send: (r) => txn.send(r),
    abort: () => txn.abort(),
    commit: async (offsets) => {
      const before = processed();
      await new Promise((r) => setTimeout(r, delayMs));
      overlapped += processed() - before;
      return txn.commit(offsets);
    },
  });
  const wrapMember = (m: GroupMember): GroupMember =>
    new Proxy(m, {
      get(target, p) {
        if (p === 'beginTransaction') return () => wrapTxn(target.beginTransaction());
        const v = Reflect.get(target, p) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  const wrapped = new Proxy(log, {
    get(target, p) {
      if (p === 'joinGroup') return async (o: Parameters<Log['joinGroup']>[0]) => wrapMember(await target.joinGroup(o));
      const v = Reflect.get(target, p) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { log: wrapped, overlapped: () => overlapped };
}

test('the loop processes while a commit is in flight; outputs and state stay exact through a restart', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'overlap-log-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'overlap-state-'));
  const log = await openEmbeddedLog({ dir, fsync: false });
  const input = unique('in');
  const output = unique('out');
  await log.admin.createTopics([
    { name: input, partitions: 2 },
    { name: output, partitions: 2 },
  ]);
  let seen = 0;
  const build = () => {
    const b = new StreamsBuilder();
    b.stream(input, { keySerde: S, valueSerde: S })
      .peek(() => seen++)
      .groupByKey()
      .count({ name: 'counts', caching: false })
      .toStream()
      .to(output, { keySerde: S, valueSerde: Serdes.long() });
    return b.build();
  };
  const total = async (app: StreamsApp) => (await app.metrics.recordsIn.get()).values.reduce((a, v) => a + v.value, 0);
  const applicationId = unique('app');
  const send = (from: number, to: number) =>
    produce(
      log,
      Array.from({ length: to - from }, (_, j) => ({ topic: input, key: Buffer.from(`k${(from + j) % 10}`), value: Buffer.from(String(from + j)), timestamp: 1_000 + from + j })),
      50,
    );
  try {
    const slow = slowCommits(log, 300, () => seen);
    const app = new StreamsApp(build(), { applicationId, log: slow.log, stateDir, commitIntervalMs: 20 });
    await app.start();
    // Records arrive while commits are in flight.
    for (let i = 0; i < 600; i += 50) {
      await send(i, i + 50);
      await new Promise((r) => setTimeout(r, 40));
    }
    await waitFor(async () => (await total(app)) === 600, 20_000, 'all records processed');
    await app.close();
    assert.ok(slow.overlapped() > 0, 'records were processed while a commit was in flight');

    // A restart (plain log) goes on from the committed state; then every count is exact.
    const app2 = new StreamsApp(build(), { applicationId, log, stateDir, commitIntervalMs: 20 });
    await app2.start();
    await send(600, 700);
    const out = await readTopic(log, output, (r) => r.length >= 700, 20_000);
    await app2.close();
    assert.equal(out.length, 700, 'one output per input: nothing lost, nothing twice');
    const counts = new Map<string, number[]>();
    for (const r of out) counts.set(r.key!.toString(), [...(counts.get(r.key!.toString()) ?? []), Serdes.long().deserialize(r.value)!]);
    for (const [k, seq] of counts) assert.deepEqual(seq, Array.from({ length: 70 }, (_, i) => i + 1), `running count of ${k}`);
  } finally {
    await log.admin.deleteTopics([input, output]);
    await log.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
});
