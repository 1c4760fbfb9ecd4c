/**
 * The owner's side of a remote log: serves a Log (usually the embedded log, which belongs to the
 * thread that opened it) to a RemoteLog on the other end of a MessagePort, so that stream threads
 * in worker threads can use it. Every call runs on the owner's log as if made there; rebalance
 * callbacks are sent back to the remote member and awaited, as the log awaits local ones.
 */
import type { MessagePort } from 'node:worker_threads';
import type { GroupMember, GroupOptions, Log, LogProducer, LogReader, TopicPartition, TopicPartitionOffset } from '../types.ts';
import { tpKey } from '../types.ts';
import { fromWire, packRecords, toWire, transferOf, unpackProducer, type Call, type CallbackCall, type CallbackReply, type PackedRecords, type PollReply } from './wire.ts';

export interface LogServer {
  /** Stops serving: closes the remote's producers, readers and members (the log itself stays open). */
  close(): Promise<void>;
}

type RemoteGroupOptions = Omit<GroupOptions, 'onRevoke' | 'onAssign' | 'assignor'> & { hasRevoke: boolean; hasAssign: boolean };

export function serveLog(log: Log, port: MessagePort): LogServer {
  const producers = new Map<number, LogProducer>();
  const readers = new Map<number, { reader: LogReader; assigned: TopicPartition[]; error: unknown }>();
  const members = new Map<number, { member: GroupMember | null; error: unknown }>();
  const callbacks = new Map<number, { resolve: () => void; reject: (err: unknown) => void }>();
  let nextCallback = 0;
  /** Once serving stops, rebalance callbacks are answered here: nobody is left to run them. */
  let stopped = false;
  let closing: Promise<void> | null = null;

  const askRemote = (cb: CallbackCall['cb'], h: number, generation: number, partitions: TopicPartition[]): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (stopped) {
        resolve();
        return;
      }
      const cid = nextCallback++;
      callbacks.set(cid, { resolve, reject });
      const call: CallbackCall = { cb, cid, h, generation, partitions: partitions.map((tp) => ({ topic: tp.topic, partition: tp.partition })) };
      port.postMessage(call);
    });

  const member = (h: number): GroupMember => {
    const m = members.get(h);
    if (m === undefined || m.member === null) throw new Error(`remote log: no group member ${h}`);
    if (m.error !== null) {
      const err = m.error;
      m.error = null;
      throw err;
    }
    return m.member;
  };

  const handlers: Record<string, (h: number, args: unknown[]) => unknown> = {
    hello: () => ({ kind: log.kind }),
    'admin.createTopics': (_h, [specs]) => log.admin.createTopics(specs as never),
    'admin.deleteTopics': (_h, [names]) => log.admin.deleteTopics(names as string[]),
    'admin.describeTopics': async (_h, [names]) => [...(await log.admin.describeTopics(names as string[]))],
    'admin.listTopics': () => log.admin.listTopics(),
    'admin.listOffsets': (_h, [tps, which]) => log.admin.listOffsets(tps as TopicPartition[], which as 'earliest' | 'latest'),
    'admin.committedOffsets': (_h, [groupId, tps]) => log.admin.committedOffsets(groupId as string, tps as TopicPartition[]),
    'producer.create': (h, [options]) => void producers.set(h, log.createProducer(options as never)),
    'producer.send': (h, [packed]) => producers.get(h)!.send(unpackProducer(packed as PackedRecords)),
    'producer.close': async (h) => {
      const p = producers.get(h);
      producers.delete(h);
      await p?.close();
    },
    'reader.create': (h, [options]) => void readers.set(h, { reader: log.createReader(options as never), assigned: [], error: null }),
    'reader.assign': (h, [partitions]) => {
      const r = readers.get(h)!;
      try {
        r.reader.assign(partitions as TopicPartitionOffset[]);
        r.assigned = (partitions as TopicPartitionOffset[]).map((tp) => ({ topic: tp.topic, partition: tp.partition }));
      } catch (err) {
        r.error = err;
      }
    },
    'reader.poll': async (h, [maxWaitMs]) => {
      const r = readers.get(h)!;
      if (r.error !== null) {
        const err = r.error;
        r.error = null;
        throw err;
      }
      const records = await r.reader.poll(maxWaitMs as number);
      return { records: records.length === 0 ? null : packRecords(records), positions: r.assigned.map((tp) => [tpKey(tp), r.reader.position(tp)]) };
    },
    'reader.close': async (h) => {
      const r = readers.get(h);
      readers.delete(h);
      await r?.reader.close();
    },
    'group.join': async (h, [o]) => {
      const { hasRevoke, hasAssign, ...rest } = o as RemoteGroupOptions;
      const slot: { member: GroupMember | null; error: unknown } = { member: null, error: null };
      members.set(h, slot);
      const options: GroupOptions = { ...rest };
      if (hasRevoke) options.onRevoke = (tps) => askRemote('revoke', h, slot.member?.generation ?? 0, tps);
      if (hasAssign) options.onAssign = (tps) => askRemote('assign', h, slot.member?.generation ?? 0, tps);
      try {
        slot.member = await log.joinGroup(options);
      } catch (err) {
        members.delete(h);
        throw err;
      }
      return { memberId: slot.member.memberId, generation: slot.member.generation, assignment: slot.member.assignment() };
    },
    'member.poll': async (h, [maxWaitMs]): Promise<PollReply> => {
      const m = member(h);
      const { records } = await m.poll(maxWaitMs as number);
      const assignment = m.assignment();
      return {
        records: records.length === 0 ? null : packRecords(records),
        generation: m.generation,
        assignment,
        caughtUp: assignment.filter((tp) => m.caughtUp(tp)).map(tpKey),
        positions: assignment.flatMap((tp): [string, number][] => {
          const p = m.position(tp);
          return p === undefined ? [] : [[tpKey(tp), p]];
        }),
      };
    },
    'member.seek': (h, [tp, offset]) => {
      const slot = members.get(h);
      try {
        member(h).seek(tp as TopicPartition, offset as number);
      } catch (err) {
        if (slot !== undefined) slot.error = err;
      }
    },
    'member.pause': (h, [tps]) => members.get(h)?.member?.pause(tps as TopicPartition[]),
    'member.resume': (h, [tps]) => members.get(h)?.member?.resume(tps as TopicPartition[]),
    'member.commitOffsets': (h, [offsets]) => member(h).commitOffsets(offsets as TopicPartitionOffset[]),
    'member.commit': async (h, [packed, offsets]) => {
      const txn = member(h).beginTransaction();
      try {
        if (packed !== null) for (const r of unpackProducer(packed as PackedRecords)) txn.send(r);
      } catch (err) {
        await txn.abort();
        throw err;
      }
      await txn.commit(offsets as TopicPartitionOffset[]);
    },
    'member.close': async (h) => {
      const m = members.get(h);
      if (m?.member == null) return;
      try {
        await m.member.close();
      } finally {
        members.delete(h);
      }
    },
    close: () => closeAll(),
  };

  /** Closes the remote's producers, readers and members (its members leave their groups). */
  async function closeAll(): Promise<void> {
    const all: Promise<unknown>[] = [];
    for (const p of producers.values()) all.push(p.close());
    for (const r of readers.values()) all.push(r.reader.close());
    for (const m of members.values()) if (m.member !== null) all.push(m.member.close());
    producers.clear();
    readers.clear();
    members.clear();
    await Promise.allSettled(all);
  }

  const onMessage = (m: Call | CallbackReply): void => {
    if ('cbReply' in m) {
      const c = callbacks.get(m.cbReply);
      callbacks.delete(m.cbReply);
      if (m.error === undefined) c?.resolve();
      else c?.reject(fromWire(m.error));
      return;
    }
    const handler = handlers[m.op];
    const id = m.id;
    let result: unknown;
    try {
      if (handler === undefined) throw new Error(`remote log: unknown call ${m.op}`);
      result = handler(m.h ?? -1, m.args);
    } catch (err) {
      if (id !== undefined) port.postMessage({ id, ok: false, error: toWire(err) });
      return;
    }
    if (id === undefined) {
      // calls without an answer: a failure shows on the remote's next call
      if (result instanceof Promise) result.catch(() => undefined);
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        const records = (value as { records?: PackedRecords | null } | undefined)?.records;
        port.postMessage({ id, ok: true, result: value }, transferOf(records ?? null));
      },
      (err: unknown) => port.postMessage({ id, ok: false, error: toWire(err) }),
    );
  };

  /** Stops serving, once: pending callbacks are answered, then the remote's objects are closed. */
  const stop = (): Promise<void> => {
    if (closing === null) {
      stopped = true;
      for (const c of callbacks.values()) c.resolve();
      callbacks.clear();
      closing = closeAll();
    }
    return closing;
  };

  port.on('message', onMessage);
  // The other end went away (its thread ended): leave its groups so that the others take its work.
  port.once('close', () => void stop());

  return {
    close(): Promise<void> {
      const stopping = closing === null;
      const done = stop();
      if (stopping) {
        port.off('message', onMessage);
        port.close();
      }
      return done;
    },
  };
}
