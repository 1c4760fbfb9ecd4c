import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import type { EmbeddedLog, EmbeddedLogOptions } from '../../src/log/embedded/index.ts';
import { encodeJournalEntry } from '../../src/log/embedded/format.ts';
import type { ConsumedRecord, GroupMember, Log, TopicPartition } from '../../src/log/types.ts';
import { describeLogConformance } from './conformance.ts';

const dirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `shopstream-${prefix}-`));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function open(dir: string, options: Partial<EmbeddedLogOptions> = {}): Promise<EmbeddedLog> {
  return openEmbeddedLog({ dir, retentionCheckIntervalMs: 0, ...options });
}

function hasCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code, `expected ${code}, got ${String((err as Error).stack ?? err)}`);
    return true;
  };
}

const text = (b: Buffer | null): string | null => (b === null ? null : b.toString('utf8'));

/** Everything committed in the partitions, from `from` (default: 0) to the end. */
async function readAll(log: Log, tps: readonly TopicPartition[], from = 0): Promise<ConsumedRecord[]> {
  const reader = log.createReader({ maxRecords: 5000 });
  try {
    reader.assign(tps.map((tp) => ({ ...tp, offset: from })));
    const out: ConsumedRecord[] = [];
    while (true) {
      const batch = await reader.poll(20);
      if (batch.length === 0) return out;
      out.push(...batch);
    }
  } finally {
    await reader.close();
  }
}

function segmentFiles(dir: string, topic: string, partition: number): string[] {
  return fs
    .readdirSync(path.join(dir, 'topics', topic, String(partition)))
    .filter((f) => f.endsWith('.log'))
    .sort();
}

async function earliest(log: Log, topic: string, partition = 0): Promise<number> {
  return (await log.admin.listOffsets([{ topic, partition }], 'earliest'))[0]!.offset;
}

async function latest(log: Log, topic: string, partition = 0): Promise<number> {
  return (await log.admin.listOffsets([{ topic, partition }], 'latest'))[0]!.offset;
}

describeLogConformance('embedded', async () => {
  const dir = tempDir('conformance');
  const log = await openEmbeddedLog({ dir });
  return {
    log,
    cleanup: async () => {
      await log.close();
    },
  };
});

describe('embedded log', () => {
  it('keeps topics, records and group offsets across close and reopen; a closed log throws CLOSED', async () => {
    const dir = tempDir('reopen');
    const log = await open(dir);
    await log.admin.createTopics([{ name: 'events', partitions: 2, config: { 'retention.ms': 86_400_000, 'x.custom': 'kept' } }]);
    const producer = log.createProducer();
    await producer.send(Array.from({ length: 10 }, (_, i) => ({ topic: 'events', key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`), timestamp: 1000 + i })));
    const member = await log.joinGroup({ groupId: 'g', topics: ['events'], transactional: false });
    const seen: ConsumedRecord[] = [];
    while (seen.length < 10) seen.push(...(await member.poll(1000)).records);
    await member.commitOffsets([
      { topic: 'events', partition: 0, offset: 1 },
      { topic: 'events', partition: 1, offset: 2 },
    ]);
    const before = await readAll(log, [
      { topic: 'events', partition: 0 },
      { topic: 'events', partition: 1 },
    ]);
    await member.close();
    await log.close();
    await log.close(); // idempotent

    await assert.rejects(log.admin.listTopics(), hasCode('SHOP_ERR_CLOSED'));
    assert.throws(() => log.createProducer(), hasCode('SHOP_ERR_CLOSED'));
    await assert.rejects(producer.send([{ topic: 'events', key: null, value: null }]), hasCode('SHOP_ERR_CLOSED'));
    await assert.rejects(member.poll(1), hasCode('SHOP_ERR_CLOSED'));
    assert.ok(!fs.existsSync(path.join(dir, 'LOCK')), 'close releases the lock');

    const log2 = await open(dir);
    try {
      const described = (await log2.admin.describeTopics(['events'])).get('events');
      assert.equal(described?.partitions, 2);
      assert.equal(described?.config['retention.ms'], 86_400_000);
      assert.equal(described?.config['x.custom'], 'kept');
      const again = await readAll(log2, [
        { topic: 'events', partition: 0 },
        { topic: 'events', partition: 1 },
      ]);
      assert.deepEqual(
        again.map((r) => [r.partition, r.offset, text(r.key), text(r.value), r.timestamp]),
        before.map((r) => [r.partition, r.offset, text(r.key), text(r.value), r.timestamp]),
      );
      assert.deepEqual(
        (
          await log2.admin.committedOffsets('g', [
            { topic: 'events', partition: 0 },
            { topic: 'events', partition: 1 },
          ])
        ).map((o) => o.offset),
        [1, 2],
      );
      const p0 = before.filter((r) => r.partition === 0).length;
      const [meta] = await log2.createProducer().send([{ topic: 'events', partition: 0, key: null, value: Buffer.from('after') }]);
      assert.equal(meta!.offset, p0);
    } finally {
      await log2.close();
    }
  });

  it('refuses a directory locked by a live process, and takes over the lock of a dead one', async () => {
    const dir = tempDir('lock');
    const log = await open(dir);
    await assert.rejects(open(dir), (err: unknown) => {
      hasCode('SHOP_ERR_LOG_LOCKED')(err);
      assert.match((err as Error).message, new RegExp(`${process.pid}`));
      assert.ok((err as Error).message.includes(dir));
      return true;
    });
    await log.close();
    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await once(dead, 'exit');
    fs.writeFileSync(path.join(dir, 'LOCK'), `${dead.pid}\n`);
    const log2 = await open(dir);
    assert.equal(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8').trim(), String(process.pid));
    await log2.close();
  });

  it('rejects unknown topics and bad partitions', async () => {
    const dir = tempDir('errors');
    const log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 't', partitions: 2 }]);
      const producer = log.createProducer();
      await assert.rejects(producer.send([{ topic: 'nope', key: null, value: null }]), hasCode('SHOP_ERR_UNKNOWN_TOPIC'));
      await assert.rejects(producer.send([{ topic: 't', partition: 2, key: null, value: null }]), hasCode('SHOP_ERR_INVALID_ARGUMENT'));
      await assert.rejects(log.admin.createTopics([{ name: 'bad/name', partitions: 1 }]), hasCode('SHOP_ERR_INVALID_ARGUMENT'));
      assert.throws(() => log.createReader().assign([{ topic: 'nope', partition: 0, offset: 0 }]), hasCode('SHOP_ERR_UNKNOWN_TOPIC'));
      await producer.send([{ topic: 't', partition: 1, key: null, value: Buffer.from('old') }]);
      await log.admin.deleteTopics(['t', 'never-existed']);
      assert.deepEqual(await log.admin.listTopics(), []);
      await assert.rejects(producer.send([{ topic: 't', key: null, value: null }]), hasCode('SHOP_ERR_UNKNOWN_TOPIC'));
      // the name can be reused, with another partition count, and nothing of the old topic shows
      await log.admin.createTopics([{ name: 't', partitions: 3 }]);
      await producer.send([{ topic: 't', partition: 2, key: null, value: Buffer.from('new') }]);
    } finally {
      await log.close();
    }
    const again = await open(dir);
    try {
      assert.equal((await again.admin.describeTopics(['t'])).get('t')?.partitions, 3);
      assert.deepEqual(await readAll(again, [0, 1, 2].map((partition) => ({ topic: 't', partition }))).then((rs) => rs.map((r) => [r.partition, r.offset, text(r.value)])), [[2, 0, 'new']]);
      assert.ok(!fs.existsSync(path.join(dir, 'trash')));
    } finally {
      await again.close();
    }
  });

  it('group-commits concurrent sends and keeps their order', async () => {
    const dir = tempDir('group-commit');
    const log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 't', partitions: 1 }]);
      const producer = log.createProducer();
      const metas = await Promise.all(Array.from({ length: 300 }, (_, i) => producer.send([{ topic: 't', key: null, value: Buffer.from(String(i)) }])));
      assert.deepEqual(
        metas.map((m) => m[0]!.offset),
        Array.from({ length: 300 }, (_, i) => i),
      );
      const records = await readAll(log, [{ topic: 't', partition: 0 }]);
      assert.deepEqual(
        records.map((r) => text(r.value)),
        Array.from({ length: 300 }, (_, i) => String(i)),
      );
    } finally {
      await log.close();
    }
  });

  it('retention by time deletes old segments, advances the log start, and readers jump to it', async () => {
    const dir = tempDir('retention-time');
    let log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 't', partitions: 1, config: { 'segment.bytes': 1000, 'retention.ms': 3_600_000 } }]);
      const producer = log.createProducer();
      const old = Date.now() - 2 * 3_600_000;
      const value = Buffer.alloc(300, 1);
      // 336-byte frames, two per segment: offsets 0..9 are old, 10..14 recent
      for (let i = 0; i < 15; i++) await producer.send([{ topic: 't', key: null, value, timestamp: i < 10 ? old + i : Date.now() }]);
      const reader = log.createReader();
      reader.assign([{ topic: 't', partition: 0, offset: 0 }]);
      assert.equal(segmentFiles(dir, 't', 0).length, 8);
      assert.equal(await earliest(log, 't'), 0);
      await log.runRetention();
      assert.equal(await earliest(log, 't'), 10);
      assert.equal(await latest(log, 't'), 15);
      assert.equal(segmentFiles(dir, 't', 0).length, 3);
      const got = await reader.poll(1000);
      assert.equal(got[0]!.offset, 10);
      assert.ok(reader.position({ topic: 't', partition: 0 }) > 10);
      await reader.close();
      await log.close();
      log = await open(dir);
      assert.equal(await earliest(log, 't'), 10);
      assert.deepEqual(
        (await readAll(log, [{ topic: 't', partition: 0 }])).map((r) => r.offset),
        [10, 11, 12, 13, 14],
      );
    } finally {
      await log.close();
    }
  });

  it('retention by time also rolls and deletes an expired active segment', async () => {
    const dir = tempDir('retention-active');
    let log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 't', partitions: 1, config: { 'retention.ms': 60_000 } }]);
      const producer = log.createProducer();
      await producer.send([0, 1, 2].map((i) => ({ topic: 't', key: null, value: Buffer.from(`old${i}`), timestamp: Date.now() - 120_000 })));
      await log.runRetention();
      assert.equal(await earliest(log, 't'), 3);
      assert.equal(await latest(log, 't'), 3);
      assert.deepEqual(await readAll(log, [{ topic: 't', partition: 0 }]), []);
      await log.close();
      log = await open(dir);
      assert.equal(await earliest(log, 't'), 3);
      const [meta] = await log.createProducer().send([{ topic: 't', key: null, value: Buffer.from('new') }]);
      assert.equal(meta!.offset, 3);
      assert.deepEqual(
        (await readAll(log, [{ topic: 't', partition: 0 }])).map((r) => text(r.value)),
        ['new'],
      );
    } finally {
      await log.close();
    }
  });

  it('retention by size deletes the oldest segments beyond retention.bytes', async () => {
    const dir = tempDir('retention-size');
    const log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 't', partitions: 1, config: { 'segment.bytes': 1000, 'retention.bytes': 2000 } }]);
      const producer = log.createProducer();
      const value = Buffer.alloc(300, 2);
      for (let i = 0; i < 20; i++) await producer.send([{ topic: 't', key: null, value }]);
      assert.equal(segmentFiles(dir, 't', 0).length, 10);
      await log.runRetention();
      // Kafka's rule: delete the oldest while the rest still holds >= retention.bytes
      assert.equal(await earliest(log, 't'), 14);
      const files = segmentFiles(dir, 't', 0);
      assert.equal(files.length, 3);
      const bytes = files.reduce((n, f) => n + fs.statSync(path.join(dir, 'topics', 't', '0', f)).size, 0);
      assert.ok(bytes >= 2000 - 672 && bytes < 2000 + 672, `${bytes} bytes left`);
      assert.deepEqual(
        (await readAll(log, [{ topic: 't', partition: 0 }])).map((r) => r.offset),
        [14, 15, 16, 17, 18, 19],
      );
      // retention never touches the active segment's committed data
      await log.runRetention();
      assert.equal(await earliest(log, 't'), 14);
    } finally {
      await log.close();
    }
  });

  it('compaction keeps the latest record per key and removes tombstones', async () => {
    const dir = tempDir('compaction');
    let log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 'm', partitions: 1, config: { 'cleanup.policy': 'compact', 'segment.bytes': 200, 'delete.retention.ms': 0 } }]);
      const producer = log.createProducer();
      const ts = Date.now() - 1000;
      const pad = (s: string): Buffer => Buffer.from(s.padEnd(60, '.'));
      const writes: Array<[string, string | null]> = [
        ['a', 'a1'],
        ['b', 'b1'],
        ['a', 'a2'],
        ['c', 'c1'],
        ['b', null],
        ['a', 'a3'],
        ['z', 'z1'],
        ['z', 'z2'],
        ['z', 'z3'],
      ];
      // ~97-byte frames, two per segment: [0,1] [2,3] [4,5] [6,7] [8 (active)]
      for (const [k, v] of writes) await producer.send([{ topic: 'm', key: Buffer.from(k), value: v === null ? null : pad(v), timestamp: ts }]);
      assert.equal(segmentFiles(dir, 'm', 0).length, 5);
      await log.runRetention();
      const expected = [
        [3, 'c', 'c1'],
        [5, 'a', 'a3'],
        [8, 'z', 'z3'],
      ];
      const view = (rs: ConsumedRecord[]): unknown[] => rs.map((r) => [r.offset, text(r.key), r.value === null ? null : text(r.value)!.replace(/\.+$/, '')]);
      assert.deepEqual(view(await readAll(log, [{ topic: 'm', partition: 0 }])), expected);
      assert.equal(await earliest(log, 'm'), 0, 'compaction keeps the log start offset');
      assert.equal(await latest(log, 'm'), 9);
      assert.equal(segmentFiles(dir, 'm', 0).length, 4, 'the emptied middle segment is gone');
      // a reader in a compacted gap moves on to the next record
      assert.deepEqual(view(await readAll(log, [{ topic: 'm', partition: 0 }], 4)), expected.slice(1));
      await log.close();
      log = await open(dir);
      assert.deepEqual(view(await readAll(log, [{ topic: 'm', partition: 0 }])), expected);
      const [meta] = await log.createProducer().send([{ topic: 'm', key: Buffer.from('a'), value: pad('a4') }]);
      assert.equal(meta!.offset, 9);
    } finally {
      await log.close();
    }
  });

  it('discards data and journal entries that were not completely committed', async () => {
    const dir = tempDir('torn');
    let log = await open(dir);
    await log.admin.createTopics([{ name: 't', partitions: 1 }]);
    await log.createProducer().send([0, 1, 2].map((i) => ({ topic: 't', key: null, value: Buffer.from(`v${i}`) })));
    await log.close();
    const segment = path.join(dir, 'topics', 't', '0', segmentFiles(dir, 't', 0)[0]!);
    const size = fs.statSync(segment).size;
    const { seq } = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint.json'), 'utf8')) as { seq: number };
    // garbage after the committed end, a journal entry (valid crc) claiming it, and a torn entry
    fs.appendFileSync(segment, Buffer.alloc(120, 0xab));
    const claim = encodeJournalEntry({ s: seq + 1, p: [['t', 0, 5, 0, size + 120]] });
    const torn = encodeJournalEntry({ s: seq + 2, p: [['t', 0, 6, 0, size + 200]] }).subarray(0, 20);
    fs.appendFileSync(path.join(dir, 'journal'), Buffer.concat([claim, torn]));
    log = await open(dir);
    try {
      assert.equal(await latest(log, 't'), 3);
      assert.equal(fs.statSync(segment).size, size);
      assert.deepEqual(
        (await readAll(log, [{ topic: 't', partition: 0 }])).map((r) => text(r.value)),
        ['v0', 'v1', 'v2'],
      );
      const [meta] = await log.createProducer().send([{ topic: 't', key: null, value: Buffer.from('v3') }]);
      assert.equal(meta!.offset, 3);
    } finally {
      await log.close();
    }
  });

  it('runs rebalance callbacks inside poll; a commit in onRevoke still counts', async () => {
    const dir = tempDir('callbacks');
    const log = await open(dir);
    try {
      await log.admin.createTopics([
        { name: 'in', partitions: 2 },
        { name: 'out', partitions: 1 },
      ]);
      const events: string[] = [];
      let m1: GroupMember | null = null;
      m1 = await log.joinGroup({
        groupId: 'g',
        topics: ['in'],
        transactional: true,
        clientId: 'm1',
        onAssign: async (parts) => {
          events.push(`assign ${parts.length}`);
        },
        onRevoke: async (parts) => {
          events.push(`revoke ${parts.length}`);
          const txn = m1!.beginTransaction();
          txn.send({ topic: 'out', key: null, value: Buffer.from('from-onRevoke') });
          await txn.commit(parts.map((tp) => ({ ...tp, offset: 0 })));
        },
      });
      assert.deepEqual(events, [], 'callbacks wait for poll');
      await m1.poll(1);
      assert.deepEqual(events, ['assign 2']);
      const joining = log.joinGroup({ groupId: 'g', topics: ['in'], transactional: true, clientId: 'm2' });
      let joined = false;
      void joining.then(() => {
        joined = true;
      });
      while (!joined) await m1.poll(20);
      const m2 = await joining;
      assert.deepEqual(events.slice(0, 2), ['assign 2', 'revoke 2']);
      while (events.length < 3) await m1.poll(20);
      assert.deepEqual(events, ['assign 2', 'revoke 2', 'assign 1']);
      assert.equal(m1.assignment().length + m2.assignment().length, 2);
      assert.ok(m2.generation > 1 && m1.generation === m2.generation);
      assert.deepEqual(
        (await readAll(log, [{ topic: 'out', partition: 0 }])).map((r) => text(r.value)),
        ['from-onRevoke'],
      );
      await m2.close();
      await m1.close();
    } finally {
      await log.close();
    }
  });

  it('a member that has not polled gives its partitions up at once; its owner may still seek them, and learns at the next poll', async () => {
    const dir = tempDir('give-up');
    const log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 'in', partitions: 2 }]);
      const first = await log.joinGroup({ groupId: 'g', topics: ['in'], transactional: true });
      const seen = first.assignment();
      assert.equal(seen.length, 2);
      const generation = first.generation;
      // A second member joins before `first` ever polled: `first` gives both partitions up without callbacks.
      const second = await log.joinGroup({ groupId: 'g', topics: ['in'], transactional: true });
      assert.equal(first.assignment().length + second.assignment().length, 2);
      // The owner of `first` acts on what it read before (StreamsApp seeks the tasks it built): no error.
      for (const tp of seen) first.seek(tp, 0);
      await first.poll(1);
      assert.ok(first.generation > generation, 'the poll shows the new generation');
      // After that poll, a partition it does not own is an error again.
      const notMine = seen.find((tp) => !first.assignment().some((a) => a.partition === tp.partition))!;
      assert.throws(() => first.seek(notMine, 0), hasCode('SHOP_ERR_INVALID_ARGUMENT'));
      await second.close();
      await first.close();
    } finally {
      await log.close();
    }
  });

  it('fences a member that does not poll within rebalanceTimeoutMs', async () => {
    const dir = tempDir('rebalance-timeout');
    const log = await open(dir);
    try {
      await log.admin.createTopics([{ name: 'in', partitions: 2 }]);
      const slow = await log.joinGroup({ groupId: 'g', topics: ['in'], transactional: true, rebalanceTimeoutMs: 200 });
      await slow.poll(1);
      const txn = slow.beginTransaction();
      txn.send({ topic: 'in', key: null, value: Buffer.from('zombie') });
      const started = Date.now();
      const fresh = await log.joinGroup({ groupId: 'g', topics: ['in'], transactional: true });
      assert.ok(Date.now() - started >= 150);
      assert.equal(fresh.assignment().length, 2);
      await assert.rejects(txn.commit([]), hasCode('SHOP_ERR_FENCED'));
      await assert.rejects(slow.poll(1), hasCode('SHOP_ERR_FENCED'));
      assert.equal(await latest(log, 'in', 0), 0);
      assert.equal(await latest(log, 'in', 1), 0);
      await fresh.close();
      await slow.close();
    } finally {
      await log.close();
    }
  });

  it('survives SIGKILL: nothing acknowledged is lost, nothing is duplicated, no uncommitted record is visible', { timeout: 90_000 }, async (t) => {
    const dir = tempDir('crash');
    const fixture = fileURLToPath(new URL('./fixtures/crash-child.ts', import.meta.url));
    // same as the fixture's: outputs per input record
    const outputsFor = (sp: number, so: number): number => 1 + ((so * 7 + sp * 13) % 50);
    const setup = await open(dir, { fsync: false });
    await setup.admin.createTopics([
      { name: 'src', partitions: 2 },
      { name: 'out', partitions: 3 },
      { name: 'plain', partitions: 2 },
    ]);
    const feeder = setup.createProducer();
    for (let b = 0; b < 10; b++) {
      await feeder.send(Array.from({ length: 5000 }, (_, i) => ({ topic: 'src', partition: i % 2, key: null, value: Buffer.from(`s${b * 5000 + i}`) })));
    }
    await setup.close();

    const ackedPlain = new Set<string>();
    const ackedTxn: Array<[number, number]> = [];
    for (let run = 0; run < 5; run++) {
      const child = spawn(process.execPath, [fixture, dir, `r${run}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      let buffered = '';
      let txns = 0;
      let markReady!: () => void;
      let fail!: (err: Error) => void;
      const ready = new Promise<void>((resolve, reject) => {
        markReady = resolve;
        fail = reject;
      });
      child.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          const [kind, ...rest] = line.split(' ');
          if (kind === 'READY') markReady();
          else if (kind === 'ACK') {
            const [id, from, to] = rest;
            for (let s = Number(from); s < Number(to); s++) ackedPlain.add(`${id}:${s}`);
          } else if (kind === 'TXN') {
            txns++;
            for (const pair of rest) {
              const [sp, so] = pair.split(':').map(Number);
              ackedTxn.push([sp!, so!]);
            }
          } else if (kind === 'ERROR') fail(new Error(`child failed: ${line}`));
        }
      });
      const exited = once(child, 'exit');
      exited.then(() => fail(new Error(`child exited early: ${stderr}`)), () => undefined);
      await ready;
      // let it work, then kill it at a random moment
      const until = Date.now() + 250 + Math.random() * 900;
      while (Date.now() < until || txns === 0) {
        await new Promise((r) => setTimeout(r, 20));
        if (child.exitCode !== null) assert.fail(`child exited on its own: ${stderr}`);
      }
      child.kill('SIGKILL');
      const [code, signal] = (await exited) as [number | null, string | null];
      assert.equal(signal, 'SIGKILL', `child ended with ${code}/${signal}: ${stderr}`);
    }

    const log = await open(dir);
    try {
      // dense, ordered offsets everywhere
      const all = new Map<string, ConsumedRecord[]>();
      for (const [topic, partitions] of [
        ['src', 2],
        ['out', 3],
        ['plain', 2],
      ] as const) {
        const records: ConsumedRecord[] = [];
        for (let p = 0; p < partitions; p++) {
          const part = await readAll(log, [{ topic, partition: p }]);
          assert.deepEqual(
            part.map((r) => r.offset),
            Array.from({ length: await latest(log, topic, p) }, (_, i) => i),
            `${topic}/${p}: offsets are dense from 0 to the end`,
          );
          for (const r of part) records.push(r);
        }
        all.set(topic, records);
      }
      // plain sends: every acknowledged one is there, none twice
      const plain = all.get('plain')!.map((r) => text(r.value)!);
      assert.equal(new Set(plain).size, plain.length, 'no plain record is duplicated');
      const present = new Set(plain);
      const lost = [...ackedPlain].filter((v) => !present.has(v));
      assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged sends lost`);
      assert.ok(ackedPlain.size > 0);
      // transactions: committed input offsets cover every acknowledged one
      const committed = new Map(
        (
          await log.admin.committedOffsets('crash-group', [
            { topic: 'src', partition: 0 },
            { topic: 'src', partition: 1 },
          ])
        ).map((o) => [o.partition, o.offset]),
      );
      assert.ok(ackedTxn.length > 0);
      for (const [sp, so] of ackedTxn) assert.ok(so < (committed.get(sp) ?? 0), `acknowledged transaction of ${sp}:${so} is committed`);
      // every committed input record has all its outputs exactly once; nothing else is visible
      const outputs = new Map<string, Set<number>>();
      for (const r of all.get('out')!) {
        const { sp, so, j, n } = JSON.parse(text(r.value)!) as { sp: number; so: number; j: number; n: number };
        assert.ok(so < (committed.get(sp) ?? 0), `output of uncommitted input ${sp}:${so} is visible`);
        assert.equal(n, outputsFor(sp, so));
        const key = `${sp}:${so}`;
        let seen = outputs.get(key);
        if (seen === undefined) outputs.set(key, (seen = new Set()));
        assert.ok(!seen.has(j), `output ${j} of ${key} is duplicated`);
        seen.add(j);
      }
      for (const [sp, end] of committed) {
        for (let so = 0; so < end; so++) {
          assert.equal(outputs.get(`${sp}:${so}`)?.size, outputsFor(sp, so), `outputs of ${sp}:${so} are complete`);
        }
      }
      t.diagnostic(
        `5 kills; ${ackedTxn.length} inputs in acknowledged transactions, committed src offsets ${[...committed.values()].join('/')}, ` +
          `${all.get('out')!.length} outputs, ${ackedPlain.size} acknowledged plain records of ${plain.length} present`,
      );
    } finally {
      await log.close();
    }
  });
});
