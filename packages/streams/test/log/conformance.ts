/**
 * The Log conformance suite: the behaviour every Log implementation must show, written against
 * the Log interface only, so that it runs on the embedded log and on a real Kafka broker alike.
 * Every test uses its own topics and groups (random suffix) and polls in loops with generous
 * deadlines (rebalances on a broker take seconds).
 *
 *   describeLogConformance('embedded', async () => ({ log, cleanup }));
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { partitionForKey } from '../../src/log/partitioner.ts';
import type { ConsumedRecord, GroupMember, Log, TopicConfig, TopicPartition } from '../../src/log/types.ts';

export interface LogFixture {
  log: Log;
  cleanup(): Promise<void>;
}

/** Deadline for things that involve a broker round trip or a rebalance. */
const DEADLINE_MS = 30_000;

function uid(): string {
  return randomUUID().slice(0, 8);
}

function hasCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code, `expected ${code}, got ${String((err as Error).stack ?? err)}`);
    return true;
  };
}

function text(b: Buffer | null): string | null {
  return b === null ? null : b.toString('utf8');
}

export function describeLogConformance(name: string, factory: () => Promise<LogFixture>): void {
  describe(`Log conformance: ${name}`, () => {
    let fx: LogFixture;
    let log: Log;

    before(async () => {
      fx = await factory();
      log = fx.log;
    });

    after(async () => {
      if (fx !== undefined) await fx.cleanup();
    });

    async function topic(prefix: string, partitions: number, config?: TopicConfig): Promise<string> {
      const t = `${prefix}-${uid()}`;
      await log.admin.createTopics([{ name: t, partitions, ...(config === undefined ? {} : { config }) }]);
      const deadline = Date.now() + DEADLINE_MS;
      while (!(await log.admin.describeTopics([t])).has(t)) {
        if (Date.now() > deadline) assert.fail(`topic ${t} did not appear`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return t;
    }

    /** Reads `count` records from the given partitions, starting at the given offsets. */
    async function readRecords(tps: ReadonlyArray<TopicPartition & { offset: number }>, count: number): Promise<ConsumedRecord[]> {
      const reader = log.createReader();
      try {
        reader.assign(tps);
        const out: ConsumedRecord[] = [];
        const deadline = Date.now() + DEADLINE_MS;
        while (out.length < count && Date.now() < deadline) out.push(...(await reader.poll(500)));
        return out;
      } finally {
        await reader.close();
      }
    }

    /** Polls for a while and returns whatever arrives (to show that nothing does). */
    async function readFor(tps: ReadonlyArray<TopicPartition & { offset: number }>, ms: number): Promise<ConsumedRecord[]> {
      const reader = log.createReader();
      try {
        reader.assign(tps);
        const out: ConsumedRecord[] = [];
        const deadline = Date.now() + ms;
        while (Date.now() < deadline) out.push(...(await reader.poll(Math.max(1, deadline - Date.now()))));
        return out;
      } finally {
        await reader.close();
      }
    }

    /** Polls a member until `done` says so. */
    async function pollUntil(member: GroupMember, into: ConsumedRecord[], done: () => boolean, what: string): Promise<void> {
      const deadline = Date.now() + DEADLINE_MS;
      while (!done()) {
        if (Date.now() > deadline) assert.fail(`timed out: ${what}`);
        const { records } = await member.poll(200);
        into.push(...records);
      }
    }

    /** Keeps polling the given members (ignoring their errors) until `p` settles. */
    async function whilePolling<T>(members: GroupMember[], p: Promise<T>): Promise<T> {
      let settled = false;
      const tracked = p.finally(() => {
        settled = true;
      });
      tracked.catch(() => undefined);
      const deadline = Date.now() + DEADLINE_MS;
      while (!settled && Date.now() < deadline) {
        for (const m of members) {
          try {
            await m.poll(50);
          } catch {
            // fenced or rebalancing: fine here
          }
        }
        await new Promise((r) => setImmediate(r));
      }
      return tracked;
    }

    it('creates, describes and lists topics; a different partition count conflicts', async () => {
      const t = await topic('conf-topics', 3, { 'retention.ms': 3_600_000 });
      const missing = `conf-missing-${uid()}`;
      const described = await log.admin.describeTopics([t, missing]);
      assert.equal(described.size, 1);
      assert.equal(described.get(t)?.name, t);
      assert.equal(described.get(t)?.partitions, 3);
      const retention = described.get(t)?.config['retention.ms'];
      if (retention !== undefined) assert.equal(Number(retention), 3_600_000);
      assert.ok((await log.admin.listTopics()).includes(t));
      assert.ok(!(await log.admin.listTopics()).includes(missing));
      await log.admin.createTopics([{ name: t, partitions: 3 }]); // idempotent
      await assert.rejects(log.admin.createTopics([{ name: t, partitions: 4 }]), hasCode('SHOP_ERR_TOPIC_CONFLICT'));
      assert.equal((await log.admin.describeTopics([t])).get(t)?.partitions, 3);
    });

    it('produces and reads records in order, with keys, headers, timestamps and null values', async () => {
      const t = await topic('conf-order', 2);
      const producer = log.createProducer();
      try {
        const base = 1_700_000_000_000;
        const sent = [
          { topic: t, partition: 1, key: Buffer.from('k1'), value: Buffer.from('v1'), timestamp: base + 1, headers: [['h1', Buffer.from('x')] as const, ['h2', Buffer.from('')] as const] },
          { topic: t, partition: 1, key: null, value: Buffer.from('v2'), timestamp: base + 2 },
          { topic: t, partition: 1, key: Buffer.from('k3'), value: null, timestamp: base + 3 },
          { topic: t, partition: 1, key: Buffer.from(''), value: Buffer.from(''), timestamp: base + 4 },
          { topic: t, partition: 1, key: Buffer.from([0, 255, 1]), value: Buffer.alloc(70_000, 7), timestamp: base + 5 },
        ];
        const meta = await producer.send(sent);
        assert.equal(meta.length, sent.length);
        for (let i = 0; i < meta.length; i++) {
          assert.equal(meta[i]!.topic, t);
          assert.equal(meta[i]!.partition, 1);
          assert.equal(meta[i]!.offset, meta[0]!.offset + i);
        }
        const more = await producer.send([{ topic: t, partition: 1, key: null, value: Buffer.from('v6') }]);
        assert.equal(more[0]!.offset, meta[0]!.offset + sent.length);

        const got = await readRecords([{ topic: t, partition: 1, offset: meta[0]!.offset }], sent.length + 1);
        assert.equal(got.length, sent.length + 1);
        for (let i = 0; i < sent.length; i++) {
          const r = got[i]!;
          const s = sent[i]!;
          assert.equal(r.topic, t);
          assert.equal(r.partition, 1);
          assert.equal(r.offset, meta[i]!.offset);
          assert.equal(r.timestamp, s.timestamp);
          assert.deepEqual(r.key === null ? null : Buffer.from(r.key), s.key);
          assert.deepEqual(r.value === null ? null : Buffer.from(r.value), s.value);
          const headers = (s.headers ?? []).map(([k, v]) => [k, v.toString('hex')]);
          assert.deepEqual(
            r.headers.map(([k, v]) => [k, Buffer.from(v).toString('hex')]),
            headers,
          );
        }
        assert.equal(text(got[sent.length]!.value), 'v6');
        assert.ok(Math.abs(got[sent.length]!.timestamp - Date.now()) < 60_000, 'default timestamp is the wall clock');
        assert.deepEqual(await readFor([{ topic: t, partition: 0, offset: 0 }], 300), []);
      } finally {
        await producer.close();
      }
    });

    it('places keyed records on partition murmur2(key) % partitions', async () => {
      const partitions = 4;
      const t = await topic('conf-keys', partitions);
      const producer = log.createProducer();
      try {
        const keys = Array.from({ length: 40 }, (_, i) => `key-${i}-${uid()}`);
        const meta = await producer.send(keys.map((k) => ({ topic: t, key: Buffer.from(k), value: Buffer.from(k) })));
        const used = new Set<number>();
        for (let i = 0; i < keys.length; i++) {
          const expected = partitionForKey(Buffer.from(keys[i]!), partitions);
          assert.equal(meta[i]!.partition, expected, `partition of ${keys[i]}`);
          used.add(expected);
        }
        assert.ok(used.size > 1);
        const got = await readRecords(
          Array.from({ length: partitions }, (_, p) => ({ topic: t, partition: p, offset: 0 })),
          keys.length,
        );
        assert.equal(got.length, keys.length);
        for (const r of got) assert.equal(r.partition, partitionForKey(r.key!, partitions));
        // per partition, records come in send order
        for (let p = 0; p < partitions; p++) {
          const sentOrder = keys.filter((k) => partitionForKey(Buffer.from(k), partitions) === p);
          assert.deepEqual(got.filter((r) => r.partition === p).map((r) => text(r.value)), sentOrder);
        }
      } finally {
        await producer.close();
      }
    });

    it('lists earliest and latest offsets', async () => {
      const t = await topic('conf-offsets', 2);
      const tps = [{ topic: t, partition: 0 }, { topic: t, partition: 1 }];
      assert.deepEqual(
        (await log.admin.listOffsets(tps, 'earliest')).map((o) => o.offset),
        [0, 0],
      );
      assert.deepEqual(
        (await log.admin.listOffsets(tps, 'latest')).map((o) => o.offset),
        [0, 0],
      );
      const producer = log.createProducer();
      try {
        await producer.send([0, 1, 2].map((i) => ({ topic: t, partition: 0, key: null, value: Buffer.from(String(i)) })));
      } finally {
        await producer.close();
      }
      const latest = await log.admin.listOffsets(tps, 'latest');
      assert.deepEqual(
        latest.map((o) => [o.topic, o.partition, o.offset]),
        [
          [t, 0, 3],
          [t, 1, 0],
        ],
      );
      assert.deepEqual(
        (await log.admin.listOffsets(tps, 'earliest')).map((o) => o.offset),
        [0, 0],
      );
    });

    it('caughtUp: true only once poll has returned every committed record the log holds', async () => {
      const input = await topic('conf-caught-up', 1);
      const tp = { topic: input, partition: 0 };
      const producer = log.createProducer();
      await producer.send([0, 1, 2].map((i) => ({ topic: input, partition: 0, key: null, value: Buffer.from(`v${i}`) })));
      const member = await log.joinGroup({ groupId: `conf-caught-up-${uid()}`, topics: [input], transactional: false });
      try {
        assert.equal(member.caughtUp(tp), false, 'nothing has been returned yet');
        const records: ConsumedRecord[] = [];
        await pollUntil(member, records, () => records.length >= 3, 'the first records');
        await pollUntil(member, records, () => member.caughtUp(tp), 'caught up');
        assert.equal(records.length, 3);
        await producer.send([{ topic: input, partition: 0, key: null, value: Buffer.from('v3') }]);
        await pollUntil(member, records, () => records.length >= 4, 'the new record');
        await pollUntil(member, records, () => member.caughtUp(tp), 'caught up again');
        assert.deepEqual(records.map((r) => text(r.value)), ['v0', 'v1', 'v2', 'v3']);
      } finally {
        await member.close();
        await producer.close();
      }
    });

    it('commits a transaction: output records and group offsets become visible together', async () => {
      const input = await topic('conf-txn-in', 2);
      const output = await topic('conf-txn-out', 2);
      const groupId = `conf-txn-${uid()}`;
      const producer = log.createProducer();
      await producer.send(
        [0, 1, 2, 3].map((i) => ({ topic: input, partition: i % 2, key: Buffer.from(`k${i}`), value: Buffer.from(`in-${i}`) })),
      );
      await producer.close();
      const member = await log.joinGroup({ groupId, topics: [input], transactional: true });
      try {
        const records: ConsumedRecord[] = [];
        await pollUntil(member, records, () => records.length >= 4, 'input records');
        assert.equal(records.length, 4);
        const txn = member.beginTransaction();
        for (const r of records) txn.send({ topic: output, partition: r.partition, key: r.key, value: Buffer.from(`out-${text(r.value)}`) });
        const outTps = [0, 1].map((p) => ({ topic: output, partition: p, offset: 0 }));
        const inTps = [0, 1].map((p) => ({ topic: input, partition: p }));
        // nothing is visible before the commit
        assert.deepEqual(await readFor(outTps, 300), []);
        assert.deepEqual(await log.admin.committedOffsets(groupId, inTps), []);
        const offsets = [0, 1].map((p) => ({
          topic: input,
          partition: p,
          offset: Math.max(...records.filter((r) => r.partition === p).map((r) => r.offset)) + 1,
        }));
        await txn.commit(offsets);
        const out = await readRecords(outTps, 4);
        assert.deepEqual(out.map((r) => text(r.value)).sort(), ['out-in-0', 'out-in-1', 'out-in-2', 'out-in-3']);
        const committed = await log.admin.committedOffsets(groupId, inTps);
        assert.deepEqual(
          committed.map((o) => [o.topic, o.partition, o.offset]).sort(),
          offsets.map((o) => [o.topic, o.partition, o.offset]).sort(),
        );
      } finally {
        await member.close();
      }
    });

    it('never exposes an aborted transaction, and an abort does not move offsets', async () => {
      const input = await topic('conf-abort-in', 1);
      const output = await topic('conf-abort-out', 1);
      const groupId = `conf-abort-${uid()}`;
      const producer = log.createProducer();
      await producer.send([{ topic: input, partition: 0, key: null, value: Buffer.from('in-0') }]);
      await producer.close();
      const member = await log.joinGroup({ groupId, topics: [input], transactional: true });
      try {
        const records: ConsumedRecord[] = [];
        await pollUntil(member, records, () => records.length >= 1, 'input record');
        const aborted = member.beginTransaction();
        for (let i = 0; i < 3; i++) aborted.send({ topic: output, partition: 0, key: null, value: Buffer.from(`aborted-${i}`) });
        await aborted.abort();
        assert.deepEqual(await log.admin.committedOffsets(groupId, [{ topic: input, partition: 0 }]), []);
        const good = member.beginTransaction();
        good.send({ topic: output, partition: 0, key: null, value: Buffer.from('committed') });
        await good.commit([]);
        assert.deepEqual(await log.admin.committedOffsets(groupId, [{ topic: input, partition: 0 }]), []);
        const out = await readRecords([{ topic: output, partition: 0, offset: 0 }], 1);
        const late = await readFor([{ topic: output, partition: 0, offset: out.at(-1)!.offset + 1 }], 300);
        assert.deepEqual([...out, ...late].map((r) => text(r.value)), ['committed']);
      } finally {
        await member.close();
      }
    });

    it('splits co-partitioned topics between two members, and hands partitions over from the committed offsets when one leaves', async () => {
      const partitions = 4;
      const a = await topic('conf-group-a', partitions);
      const b = await topic('conf-group-b', partitions);
      const groupId = `conf-group-${uid()}`;
      const m1 = await log.joinGroup({ groupId, topics: [a, b], transactional: false, clientId: 'm1' });
      let m2: GroupMember | null = null;
      try {
        m2 = await whilePolling([m1], log.joinGroup({ groupId, topics: [a, b], transactional: false, clientId: 'm2' }));
        const members = [m1, m2];
        const collected = new Map<GroupMember, ConsumedRecord[]>([
          [m1, []],
          [m2, []],
        ]);
        const settled = (): boolean => {
          const all = members.flatMap((m) => m.assignment().map((tp) => `${tp.topic}/${tp.partition}`));
          return all.length === 2 * partitions && new Set(all).size === all.length && members.every((m) => m.assignment().length > 0);
        };
        let deadline = Date.now() + DEADLINE_MS;
        while (!settled()) {
          if (Date.now() > deadline) assert.fail('the assignment did not settle on two members');
          for (const m of members) collected.get(m)!.push(...(await m.poll(50)).records);
        }
        // co-partitioning: each member has the same partition numbers of both topics
        for (const m of members) {
          const of = (t: string): number[] => m.assignment().filter((tp) => tp.topic === t).map((tp) => tp.partition).sort();
          assert.deepEqual(of(a), of(b));
          assert.ok(of(a).length > 0);
        }
        // three records per partition of topic a
        const producer = log.createProducer();
        await producer.send(
          Array.from({ length: partitions * 3 }, (_, i) => ({
            topic: a,
            partition: i % partitions,
            key: null,
            value: Buffer.from(`a-${i % partitions}-${Math.floor(i / partitions)}`),
          })),
        );
        await producer.close();
        const owned = (m: GroupMember): number[] => m.assignment().filter((tp) => tp.topic === a).map((tp) => tp.partition);
        const complete = (m: GroupMember): boolean => {
          const recs = collected.get(m)!.filter((r) => r.topic === a);
          return owned(m).every((p) => recs.filter((r) => r.partition === p).length >= 3);
        };
        deadline = Date.now() + DEADLINE_MS;
        while (!members.every(complete)) {
          if (Date.now() > deadline) assert.fail('members did not receive their records');
          for (const m of members) collected.get(m)!.push(...(await m.poll(50)).records);
        }
        // each member commits the first two records of each of its partitions
        const committedAt = new Map<number, number>();
        for (const m of members) {
          const offsets = owned(m).map((p) => {
            const recs = collected.get(m)!.filter((r) => r.topic === a && r.partition === p);
            assert.equal(recs.length, 3, `member got exactly the 3 records of ${a}/${p}`);
            assert.deepEqual(recs.map((r) => text(r.value)), [0, 1, 2].map((i) => `a-${p}-${i}`));
            committedAt.set(p, recs[1]!.offset + 1);
            return { topic: a, partition: p, offset: recs[1]!.offset + 1 };
          });
          await m.commitOffsets(offsets);
        }
        const handedOver = owned(m2);
        await m2.close();
        m2 = null;
        // the survivor gets everything and resumes m2's partitions at the committed offsets
        const after: ConsumedRecord[] = [];
        deadline = Date.now() + DEADLINE_MS;
        const resumed = (): boolean => handedOver.every((p) => after.some((r) => r.topic === a && r.partition === p));
        while (!(m1.assignment().length === 2 * partitions && resumed())) {
          if (Date.now() > deadline) assert.fail('the survivor did not take over');
          after.push(...(await m1.poll(100)).records);
        }
        for (const p of handedOver) {
          const first = after.find((r) => r.topic === a && r.partition === p)!;
          assert.equal(first.offset, committedAt.get(p), `${a}/${p} resumes at the committed offset`);
          assert.equal(text(first.value), `a-${p}-2`);
        }
      } finally {
        if (m2 !== null) await m2.close();
        await m1.close();
      }
    });

    it('fences a stale member: its transaction commit throws FENCED and nothing of it becomes visible', async () => {
      const input = await topic('conf-fence-in', 1);
      const output = await topic('conf-fence-out', 1);
      const groupId = `conf-fence-${uid()}`;
      const producer = log.createProducer();
      await producer.send([{ topic: input, partition: 0, key: null, value: Buffer.from('in-0') }]);
      await producer.close();
      const zombie = await log.joinGroup({ groupId, topics: [input], transactional: true, instanceId: 'fence-instance' });
      let successor: GroupMember | null = null;
      try {
        const records: ConsumedRecord[] = [];
        await pollUntil(zombie, records, () => records.length >= 1, 'input record');
        const txn = zombie.beginTransaction();
        txn.send({ topic: output, partition: 0, key: null, value: Buffer.from('zombie') });
        // a restarted instance with the same instance id replaces (fences) the old one
        successor = await whilePolling([zombie], log.joinGroup({ groupId, topics: [input], transactional: true, instanceId: 'fence-instance' }));
        await assert.rejects(txn.commit([{ topic: input, partition: 0, offset: records[0]!.offset + 1 }]), hasCode('SHOP_ERR_FENCED'));
        assert.deepEqual(await log.admin.committedOffsets(groupId, [{ topic: input, partition: 0 }]), []);
        // the successor processes the same input from the committed position
        const again: ConsumedRecord[] = [];
        await pollUntil(successor, again, () => again.length >= 1, 'successor input');
        assert.equal(text(again[0]!.value), 'in-0');
        const good = successor.beginTransaction();
        good.send({ topic: output, partition: 0, key: null, value: Buffer.from('successor') });
        await good.commit([{ topic: input, partition: 0, offset: again[0]!.offset + 1 }]);
        const out = await readRecords([{ topic: output, partition: 0, offset: 0 }], 1);
        const late = await readFor([{ topic: output, partition: 0, offset: out.at(-1)!.offset + 1 }], 300);
        assert.deepEqual([...out, ...late].map((r) => text(r.value)), ['successor']);
      } finally {
        if (successor !== null) await successor.close();
        await zombie.close().catch(() => undefined);
      }
    });

    it('wakes a waiting reader when new records are committed', async () => {
      const t = await topic('conf-wait', 1);
      const [latest] = await log.admin.listOffsets([{ topic: t, partition: 0 }], 'latest');
      const reader = log.createReader();
      const producer = log.createProducer();
      let sent: Promise<unknown> | undefined;
      try {
        reader.assign([{ topic: t, partition: 0, offset: latest!.offset }]);
        const started = Date.now();
        const timer = setTimeout(() => {
          // The reader may see the record before the send's own answer (or a retry of it) is back:
          // `finally` waits for the send before closing the producer under it.
          sent = producer.send([{ topic: t, partition: 0, key: null, value: Buffer.from('late') }]);
        }, 200);
        const got: ConsumedRecord[] = [];
        while (got.length === 0 && Date.now() - started < DEADLINE_MS) got.push(...(await reader.poll(10_000)));
        clearTimeout(timer);
        assert.deepEqual(got.map((r) => text(r.value)), ['late']);
        assert.ok(Date.now() - started < 9_000, `woke after ${Date.now() - started} ms`);
        assert.equal(reader.position({ topic: t, partition: 0 }), got[0]!.offset + 1);
      } finally {
        await sent?.catch(() => undefined);
        await reader.close();
        await producer.close();
      }
    });
  });
}
