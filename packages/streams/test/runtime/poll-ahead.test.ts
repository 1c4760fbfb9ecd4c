/**
 * Polls ahead: while its tasks still hold records, the run loop polls without waiting for the
 * answer and goes on working (a remote log's round trip to the thread that owns the log, or a
 * broker's, is no longer idle time). The task set then waits for the poll to settle: a new task
 * seeks its partitions to their committed offsets, and a seek must not race a poll under way, whose
 * records could come from before the seek and make the task skip or repeat records.
 *
 * Two applications of one group on a remote log (as stream threads use it; the owner answers each
 * poll after 3 ms, as a busy log thread would) work through a backlog with a slow processor, so that
 * polls are under way most of the time; the second joins and then leaves halfway, so that the tasks
 * move twice while polls are ahead. The output holds every input once, and records were processed
 * while polls were under way (without polls ahead none is: the check fails on the loop that waited
 * for each poll). No member was told to seek while one of its polls was under way: with eager
 * rebalances the tasks are all closed on revocation, so the loop usually waits for its poll before
 * it builds tasks again; the wait in syncTasks makes that hold in every order of events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { StreamsApp, serveLog, connectRemoteLog } from '../../src/index.ts';
import type { GroupMember, Log, LogServer } from '../../src/index.ts';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import { produce, readTopic, slowCopy, unique, waitFor, withMembers } from './helpers.ts';

const PARTITIONS = 4;
const RECORDS = 8_000;

interface Watch {
  /** Seeks asked for while a poll of the same member was under way. */
  seeksDuringPoll: number;
  /** Records processed by an application while a poll of its member was under way. */
  workDuringPoll: number;
  polls: number;
  /** Polls under way, per application. */
  polling: Record<string, number>;
}

/** The owner's members answer each poll after `ms`, as a busy log thread or a broker's round trip would. */
function slowPolls(log: Log, ms: number): Log {
  return withMembers(log, (m) => ({
    poll: async (wait: number) => {
      await new Promise((r) => setTimeout(r, ms));
      return m.poll(wait);
    },
  }));
}

/** The log of application `app`, watching what its member is asked while one of its polls is under way. */
function watched(log: Log, w: Watch, app: string): Log {
  w.polling[app] = 0;
  return withMembers(log, (m) => ({
    poll: async (ms: number) => {
      w.polls++;
      w.polling[app]!++;
      try {
        return await m.poll(ms);
      } finally {
        w.polling[app]!--;
      }
    },
    seek: (...a: Parameters<GroupMember['seek']>) => {
      if (w.polling[app]! > 0) w.seeksDuringPoll++;
      return m.seek(...a);
    },
  }));
}

test('remote log: polls ahead while tasks move between two members; no seek races a poll, every record is processed once', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'poll-ahead-log-'));
  const dirs = [mkdtempSync(join(tmpdir(), 'poll-ahead-a-')), mkdtempSync(join(tmpdir(), 'poll-ahead-b-'))];
  const owner = await openEmbeddedLog({ dir, fsync: false });
  const servers: LogServer[] = [];
  const remote = async (): Promise<Log> => {
    const { port1, port2 } = new MessageChannel();
    servers.push(serveLog(slowPolls(owner, 3), port1));
    return connectRemoteLog(port2);
  };
  const input = unique('in');
  const output = unique('out');
  await owner.admin.createTopics([
    { name: input, partitions: PARTITIONS },
    { name: output, partitions: PARTITIONS },
  ]);
  await produce(
    owner,
    Array.from({ length: RECORDS }, (_, i) => ({ topic: input, partition: i % PARTITIONS, key: Buffer.from(`k${i}`), value: Buffer.from(String(i)), timestamp: 1_000 + i })),
  );
  let processed = 0;
  const w: Watch = { seeksDuringPoll: 0, workDuringPoll: 0, polls: 0, polling: {} };
  // A slow processor (~50 µs a record): the tasks hold records most of the time.
  const build = (app: string) =>
    slowCopy(input, output, 0.05, () => {
      processed++;
      if (w.polling[app]! > 0) w.workDuringPoll++;
    });
  const applicationId = unique('app');
  const [logA, logB] = [await remote(), await remote()];
  const a = new StreamsApp(build('a'), { applicationId, log: watched(logA, w, 'a'), stateDir: dirs[0]!, commitIntervalMs: 50 });
  const b = new StreamsApp(build('b'), { applicationId, log: watched(logB, w, 'b'), stateDir: dirs[1]!, commitIntervalMs: 50 });
  try {
    await a.start();
    await waitFor(() => processed >= RECORDS / 5, 60_000, 'a fifth of the records processed');
    await b.start();
    await waitFor(() => b.activeTasks().length > 0 && a.activeTasks().length > 0, 60_000, 'the tasks split between a and b');
    await waitFor(() => processed >= RECORDS / 2, 60_000, 'half of the records processed');
    await b.close();
    const out = await readTopic(owner, output, (rs) => rs.length >= RECORDS, 60_000);
    // Give a duplicate, were there one, the time to show.
    await new Promise((r) => setTimeout(r, 500));
    const all = await readTopic(owner, output, (rs) => rs.length >= out.length, 10_000);
    assert.equal(all.length, RECORDS);
    assert.equal(new Set(all.map((r) => r.value!.toString())).size, RECORDS);
    assert.equal(w.seeksDuringPoll, 0, 'a member was told to seek while one of its polls was under way');
    assert.ok(w.workDuringPoll > RECORDS / 4, `only ${w.workDuringPoll} records were processed while a poll of their application was under way: the test shows nothing`);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await Promise.all([logA.close(), logB.close()]);
    await Promise.all(servers.map((s) => s.close()));
    await owner.close();
    for (const d of [dir, ...dirs]) rmSync(d, { recursive: true, force: true });
  }
});
