/**
 * Exactly-once under SIGKILL, on both logs.
 *
 * A child process (fixtures/crash-worker.ts) runs StreamsApp with the topology
 *   input (4 partitions, key visitor) → dedupe by id (TTL store) → groupByKey → 1-min windows,
 *   10-min grace, emitted on window close → count → `${visitor}@${windowStart}` = count → output
 * and the test SIGKILLs it at random moments while it processes >= 100,000 records (~10% exact
 * duplicates), restarting it each time. With emit-on-window-close every window is emitted exactly
 * once, so the output must equal the expected multiset exactly: no key missing, none extra, none
 * emitted twice, every count exact. The test never excludes any output key from the comparison:
 * the flush records' own windows never close (nothing comes after them), so they must not appear.
 *
 *  - embedded: the worker owns the log directory (fsync: false; SIGKILL keeps the page cache, so
 *    fsync is not needed for SIGKILL safety), the test owns it before and after.
 *  - Kafka, part A: one instance (stable instanceId), SIGKILLed and restarted >= 5 times.
 *  - Kafka, part B: two instances; one is SIGKILLed for good halfway; the survivor restores the
 *    dead one's tasks from their changelogs and finishes.
 *  - "no dedupe" variants (both logs, 5 kills): the same without the dedupe step.
 *    With it, a record replayed after a crash is absorbed by the restored dedupe store, so state that
 *    ran ahead of the committed offsets would go unnoticed; without it, it is a wrong count. (A run
 *    with processingGuarantee 'at-least-once' passed the dedupe tests every time we tried; the variants catch it
 *    only when a kill lands between its sends and its offset commit, a few ms per cycle.)
 *  - a deterministic case: a record that was late before a SIGKILL must stay late after the restart.
 *
 * Set CRASH_SEED to replay a data set (kill timing stays random).
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Serdes } from '../../src/index.ts';
import type { ConsumedRecord, Log, ProducerRecord, TopicPartition } from '../../src/index.ts';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import { connectKafkaLog } from '../../src/log/kafka/index.ts';
import { DEDUPE_TTL_MS, GRACE_MS, INPUT_PARTITIONS, WINDOW_MS } from './fixtures/crash-worker.ts';
import type { CrashEvent, WorkerConfig } from './fixtures/crash-worker.ts';
import { produce, unique } from './helpers.ts';

const WORKER = fileURLToPath(new URL('./fixtures/crash-worker.ts', import.meta.url));
const BOOTSTRAP = process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092';
const ORIGINALS = 100_000;
const KILLS = 6;
/**
 * The no-dedupe variants: with the dedupe step, a replayed record is absorbed (its id is in the
 * restored dedupe store), so state running AHEAD of the committed offsets would go unnoticed (an
 * at-least-once run passes too). Without it, every record processed twice is a wrong count.
 */
const VARIANT_KILLS = 5;
/** Group tuning of the Kafka workers: a SIGKILLed member is evicted after this. */
const SESSION_TIMEOUT_MS = 3_000;
const S = Serdes.string();
const E = Serdes.json<CrashEvent>();
const L = Serdes.long();

// ---- the data set -------------------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Dataset {
  seed: number;
  /** Input records in produce order (originals and duplicates), without the flush records. */
  records: ProducerRecord[];
  duplicates: number;
  /** `${visitor}@${windowStart}` → count of distinct ids (of all records without dedupe). */
  expected: Map<string, number>;
  flushTs: number;
}

/**
 * Event times start 3 hours ago (a multiple of the window size): Kafka applies time retention by
 * record timestamp (7 days for the input, store retention + 1 day for the changelogs), so data with
 * event times from long ago is deleted by the broker's next retention check (every 5 minutes) while
 * the test runs; and it rejects timestamps too far in the future.
 */
const T0 = Math.floor((Date.now() - 3 * 3_600_000) / WINDOW_MS) * WINDOW_MS;
const STEP_MS = 30; // event time advances 30 ms per original record (~50 minutes in all)
const DISORDER_MS = 2 * 60_000; // each event is up to 2 min older than its position: well within the grace
const VISITORS = 400;

/** `dedupe: false`: the expectation of the topology without de-duplication (duplicates count). */
function makeDataset(topic: string, seed: number, originals = ORIGINALS, dedupe = true): Dataset {
  const rand = mulberry32(seed);
  const events: CrashEvent[] = [];
  const pendingDups: Array<{ at: number; ev: CrashEvent }> = [];
  let duplicates = 0;
  let maxTs = 0;
  for (let i = 0; i < originals; i++) {
    const ev: CrashEvent = { id: `m${i}`, visitor: `v${Math.floor(rand() * VISITORS)}`, ts: T0 + i * STEP_MS - Math.floor(rand() * DISORDER_MS) };
    maxTs = Math.max(maxTs, ev.ts);
    events.push(ev);
    // ~10% are re-sent (same key, same id, same value) 1..40 records later.
    if (rand() < 0.1) pendingDups.push({ at: events.length + 1 + Math.floor(rand() * 40), ev });
    for (let j = 0; j < pendingDups.length; j++) {
      if (pendingDups[j]!.at <= events.length) {
        events.push(pendingDups[j]!.ev);
        duplicates++;
        pendingDups.splice(j--, 1);
      }
    }
  }
  for (const d of pendingDups) {
    events.push(d.ev);
    duplicates++;
  }
  const expected = new Map<string, number>();
  const seen = new Set<string>();
  for (const ev of events) {
    if (dedupe && seen.has(ev.id)) continue;
    seen.add(ev.id);
    const k = `${ev.visitor}@${Math.floor(ev.ts / WINDOW_MS) * WINDOW_MS}`;
    expected.set(k, (expected.get(k) ?? 0) + 1);
  }
  // The duplicates must be caught by the TTL store: a duplicate comes at most 40 records (+ disorder) after its original.
  assert.ok(40 * STEP_MS + DISORDER_MS < DEDUPE_TTL_MS && DISORDER_MS < GRACE_MS);
  const records = events.map((ev) => ({ topic, key: S.serialize(ev.visitor), value: E.serialize(ev), timestamp: ev.ts }));
  // Flush: every data window ends by maxTs + WINDOW_MS and closes once stream time passes end + grace.
  // Kept well under the window store's retention (1 day), which would drop windows without emitting them.
  const flushTs = (Math.floor(maxTs / WINDOW_MS) + 1) * WINDOW_MS + GRACE_MS + 5 * WINDOW_MS;
  return { seed, records, duplicates, expected, flushTs };
}

/** One flush record per input partition (explicit partition); their own windows never close. */
function flushRecords(topic: string, ds: Dataset): ProducerRecord[] {
  return Array.from({ length: INPUT_PARTITIONS }, (_, partition) => {
    const ev: CrashEvent = { id: `flush-${partition}`, visitor: `~flush-${partition}`, ts: ds.flushTs };
    return { topic, partition, key: S.serialize(ev.visitor), value: E.serialize(ev), timestamp: ev.ts };
  });
}

function seedFor(): number {
  const s = process.env.CRASH_SEED;
  return s === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(s);
}

// ---- the worker process -------------------------------------------------------------------------

interface Progress {
  type: 'progress';
  committed: number[];
  end: number[];
  tasks: string[];
  restored: number;
  recordsIn: number;
  lateDropped: number;
}
type WorkerEvent = Progress | { type: 'started' | 'closed' | 'error' | 'progress-error'; restored?: number; lateDropped?: number; message?: string };

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

class Worker {
  readonly name: string;
  readonly child: ChildProcess;
  readonly started = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  progress: Progress | undefined;
  restored = 0;
  lateDropped = 0;
  private expectedExit = false;
  private stderr: string[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private waiters: Array<{ pred: (e: WorkerEvent) => boolean; resolve: (e: WorkerEvent) => void; reject: (err: Error) => void }> = [];

  constructor(name: string, cfg: WorkerConfig) {
    this.name = name;
    this.child = spawn(process.execPath, [WORKER, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.onLine(line));
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 40) this.stderr.shift();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve({ code, signal });
        if (!this.expectedExit) this.failAll(new Error(`worker ${this.name} exited unexpectedly (code ${code}, signal ${signal})\n${this.stderr.join('\n')}`));
      });
    });
  }

  private onLine(line: string): void {
    let e: WorkerEvent;
    try {
      e = JSON.parse(line) as WorkerEvent;
    } catch {
      this.stderr.push(`stdout: ${line}`);
      return;
    }
    if (e.type === 'progress') {
      this.progress = e;
      this.restored = Math.max(this.restored, e.restored);
      this.lateDropped = Math.max(this.lateDropped, e.lateDropped);
    }
    if (e.type === 'closed') {
      this.restored = Math.max(this.restored, e.restored ?? 0);
      this.lateDropped = Math.max(this.lateDropped, e.lateDropped ?? 0);
    }
    if (e.type === 'error') {
      this.failAll(new Error(`worker ${this.name} failed: ${e.message}`));
      return;
    }
    for (const w of [...this.waiters]) {
      if (w.pred(e)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  }

  private failAll(err: Error): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(err);
  }

  waitFor(pred: (e: WorkerEvent) => boolean, timeoutMs: number, what: string): Promise<WorkerEvent> {
    if (this.exitInfo !== undefined) return Promise.reject(new Error(`worker ${this.name} has exited; cannot wait for ${what}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`worker ${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; last progress ${JSON.stringify(this.progress)}\n${this.stderr.join('\n')}`));
      }, timeoutMs);
      const done = (e: WorkerEvent) => {
        clearTimeout(timer);
        resolve(e);
      };
      this.waiters.push({ pred, resolve: done, reject: (err) => (clearTimeout(timer), reject(err)) });
    });
  }

  waitProgress(pred: (p: Progress) => boolean, timeoutMs: number, what: string): Promise<Progress> {
    return this.waitFor((e) => e.type === 'progress' && pred(e), timeoutMs, what) as Promise<Progress>;
  }

  async sigkill(): Promise<void> {
    this.expectedExit = true;
    this.child.kill('SIGKILL');
    const { signal } = await this.exited;
    assert.equal(signal, 'SIGKILL', `worker ${this.name} was killed`);
  }

  /** Graceful stop: the worker closes the app (final commit) and the log, then exits 0. */
  async stop(): Promise<void> {
    const closed = this.waitFor((e) => e.type === 'closed', 60_000, 'graceful close');
    this.expectedExit = true;
    this.child.kill('SIGTERM');
    await closed;
    const { code } = await this.exited;
    assert.equal(code, 0, `worker ${this.name} exited cleanly`);
  }

  /** Last resort in a failing test. */
  destroy(): void {
    this.expectedExit = true;
    if (this.exitInfo === undefined) this.child.kill('SIGKILL');
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface KillRecord {
  at: number;
  startCommitted: number;
  killCommitted: number;
  total: number;
  aliveMs: number;
}

/**
 * Runs `kills` incarnations of a worker, each SIGKILLed at a random moment after it has made
 * progress past a random target, then starts the last one and returns it (still running).
 */
async function killLoop(makeWorker: (n: number) => Worker, kills: number, workers: Worker[]): Promise<{ kills: KillRecord[]; last: Worker }> {
  const out: KillRecord[] = [];
  let durable = 0;
  const restarted = async (w: Worker, k: number) => {
    await w.waitFor((e) => e.type === 'started', 90_000, 'start');
    const first = await w.waitProgress(() => true, 30_000, 'first progress');
    const committed = sum(first.committed);
    // Committed offsets are durable: a restarted worker sees at least what its predecessor last reported;
    // and the predecessor had not finished (so the kill landed mid-stream).
    assert.ok(committed >= durable, `committed offsets went back from ${durable} to ${committed} after a SIGKILL`);
    if (k > 0) assert.ok(committed < sum(first.end), `kill ${k - 1}: the worker had already committed everything when it was killed`);
    return { first, firstAt: Date.now() };
  };
  for (let k = 0; k < kills; k++) {
    const w = makeWorker(k);
    workers.push(w);
    const { first, firstAt } = await restarted(w, k);
    const startCommitted = sum(first.committed);
    const total = sum(first.end);
    const target = Math.max(startCommitted + 1, Math.floor((total * (k + 0.3 + 0.6 * Math.random())) / (kills + 1.5)));
    const reached = await w.waitProgress((p) => sum(p.committed) >= target, 120_000, `committed >= ${target}`);
    // A random phase of the 100 ms commit cycle, short enough to land before the worker is done.
    const rate = (sum(reached.committed) - startCommitted) / Math.max(1, Date.now() - firstAt); // records per ms
    const left = (total - sum(reached.committed)) / Math.max(rate, 1e-3);
    await sleep(Math.floor(Math.random() * Math.min(250, left / 4)));
    const at = w.progress!;
    await w.sigkill();
    const killCommitted = sum(at.committed);
    assert.ok(killCommitted > startCommitted, `kill ${k}: the worker made progress before it was killed (${startCommitted} → ${killCommitted})`);
    assert.ok(killCommitted < sum(at.end), `kill ${k}: the worker had not finished when it was killed (${killCommitted} of ${sum(at.end)})`);
    out.push({ at: k, startCommitted, killCommitted, total: sum(at.end), aliveMs: Date.now() - w.started });
    durable = killCommitted;
  }
  const last = makeWorker(kills);
  workers.push(last);
  await restarted(last, kills);
  return { kills: out, last };
}

// ---- reading and checking -----------------------------------------------------------------------

/**
 * Reads a topic (read_committed) from the start to its last stable offset. With `atLeast`, it goes
 * on until that many records have been read or `timeoutMs` passed: on Kafka a SIGKILLed instance
 * leaves its transaction open until the transaction timeout aborts it, and until then the last
 * stable offset stays below the records committed after it. Whatever was read is returned, so
 * that a shortfall shows up in the exact comparison.
 */
async function readToEnd(log: Log, topic: string, atLeast = 0, timeoutMs = 60_000): Promise<ConsumedRecord[]> {
  const n = (await log.admin.describeTopics([topic])).get(topic)?.partitions ?? 0;
  const tps: TopicPartition[] = Array.from({ length: n }, (_, partition) => ({ topic, partition }));
  const reader = log.createReader({ clientId: 'crash-test-reader' });
  const out: ConsumedRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    reader.assign(tps.map((tp) => ({ ...tp, offset: 0 })));
    for (;;) {
      const ends = await log.admin.listOffsets(tps, 'latest');
      while (ends.some((e) => reader.position(e) < e.offset) && Date.now() < deadline) out.push(...(await reader.poll(500)));
      if (out.length >= atLeast || Date.now() >= deadline) break;
      await sleep(500);
    }
  } finally {
    await reader.close();
  }
  return out;
}

function sample<T>(xs: T[]): string {
  return `${xs.length}${xs.length > 0 ? `, e.g. ${JSON.stringify(xs.slice(0, 8))}` : ''}`;
}

/** The output must be exactly the expected multiset. Nothing is excluded. */
function assertExactlyOnce(expected: Map<string, number>, output: ConsumedRecord[]): void {
  const got = new Map<string, number[]>();
  for (const r of output) {
    const k = S.deserialize(r.key)!;
    const list = got.get(k) ?? [];
    list.push(L.deserialize(r.value)!);
    got.set(k, list);
  }
  const missing = [...expected.keys()].filter((k) => !got.has(k));
  const extra = [...got].filter(([k]) => !expected.has(k)).map(([k, v]) => ({ k, v }));
  const repeated = [...got].filter(([k, v]) => expected.has(k) && v.length > 1).map(([k, v]) => ({ k, v, want: expected.get(k) }));
  const wrong = [...got].filter(([k, v]) => v.length === 1 && expected.has(k) && v[0] !== expected.get(k)).map(([k, v]) => ({ k, got: v[0], want: expected.get(k) }));
  const expectedTotal = sum([...expected.values()]);
  const report =
    `output: ${output.length} records for ${got.size} keys; expected ${expected.size} keys (${expectedTotal} distinct events)\n` +
    `  missing keys: ${sample(missing)}\n  extra keys: ${sample(extra)}\n  emitted more than once: ${sample(repeated)}\n  wrong counts: ${sample(wrong)}`;
  assert.ok(missing.length === 0 && extra.length === 0 && repeated.length === 0 && wrong.length === 0, report);
  assert.equal(output.length, expected.size, report);
}

async function assertCommittedAtEnd(log: Log, groupId: string, topic: string): Promise<void> {
  const tps = Array.from({ length: INPUT_PARTITIONS }, (_, partition) => ({ topic, partition }));
  const ends = await log.admin.listOffsets(tps, 'latest');
  const committed = await log.admin.committedOffsets(groupId, tps);
  assert.deepEqual(
    committed.map((o) => o.offset),
    ends.map((o) => o.offset),
    'the group has committed every input record',
  );
}

/** The data's disorder is within the grace period: no record may ever be dropped as late, whatever the crashes. */
function assertNoLateDrops(workers: Worker[]): void {
  assert.deepEqual(
    workers.map((w) => w.lateDropped),
    workers.map(() => 0),
    'records dropped as late (stream time ahead of where it should be after a restart?)',
  );
}

function report(t: TestContext, name: string, fields: { [k: string]: unknown }): void {
  t.diagnostic(`${name}: ${Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ')}`);
}

// ---- embedded -----------------------------------------------------------------------------------

async function embeddedKillRun(t: TestContext, name: string, opts: { dedupe: boolean; originals: number; kills: number }): Promise<void> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'shopstream-crash-log-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'shopstream-crash-state-'));
  const workers: Worker[] = [];
  try {
    const input = 'crash-events';
    const output = 'crash-counts';
    const applicationId = 'crash-app';
    const ds = makeDataset(input, seedFor(), opts.originals, opts.dedupe);
    // The test owns the directory first: create the topics and produce everything, flush records included.
    let log: Log = await openEmbeddedLog({ dir, fsync: false });
    await log.admin.createTopics([
      { name: input, partitions: INPUT_PARTITIONS },
      { name: output, partitions: 4 },
    ]);
    await produce(log, [...ds.records, ...flushRecords(input, ds)], 5000);
    const inputEnds = (await log.admin.listOffsets(Array.from({ length: INPUT_PARTITIONS }, (_, partition) => ({ topic: input, partition })), 'latest')).map((o) => o.offset);
    assert.equal(sum(inputEnds), ds.records.length + INPUT_PARTITIONS);
    await log.close();
    const produced = Date.now();

    const cfg: WorkerConfig = { log: { kind: 'embedded', dir, fsync: false }, input, output, applicationId, stateDir, instanceId: 'only', dedupe: opts.dedupe };
    const { kills, last } = await killLoop((n) => new Worker(`${name}#${n}`, cfg), opts.kills, workers);
    await last.waitProgress((p) => p.committed.every((c, i) => c === inputEnds[i]), 120_000, 'all input committed');
    await last.stop();

    log = await openEmbeddedLog({ dir, fsync: false });
    try {
      await assertCommittedAtEnd(log, applicationId, input);
      const out = await readToEnd(log, output);
      report(t, name, {
        seed: ds.seed,
        records: ds.records.length,
        duplicates: ds.duplicates,
        windows: ds.expected.size,
        kills: kills.length,
        killedAt: kills.map((k) => `${k.killCommitted}/${k.total}`),
        restored: workers.map((w) => w.restored),
        lateDropped: sum(workers.map((w) => w.lateDropped)),
        produceMs: produced - t0,
        elapsedMs: Date.now() - t0,
      });
      assertExactlyOnce(ds.expected, out);
      assertNoLateDrops(workers);
    } finally {
      await log.close();
    }
  } finally {
    for (const w of workers) w.destroy();
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

test('embedded: exactly-once output through repeated SIGKILLs of the worker', { timeout: 150_000 }, (t) =>
  embeddedKillRun(t, 'embedded', { dedupe: true, originals: ORIGINALS, kills: KILLS }),
);

test('embedded, no dedupe (not idempotent under replay): exact counts through repeated SIGKILLs', { timeout: 120_000 }, (t) =>
  embeddedKillRun(t, 'embedded-nodedupe', { dedupe: false, originals: ORIGINALS, kills: VARIANT_KILLS }),
);

/**
 * A record's fate must not depend on where a crash happened. Here a record that is late (its
 * window closed and was emitted before the crash) arrives as the first record after the restart:
 * it must still be dropped, not re-open the emitted window and have it emitted a second time.
 */
test('embedded: a record that was late before a SIGKILL is still late after the restart (stream time survives a crash)', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shopstream-crash-log-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'shopstream-crash-state-'));
  const workers: Worker[] = [];
  const input = 'late-events';
  const output = 'late-counts';
  const rec = (id: string, ts: number): ProducerRecord => ({ topic: input, partition: 0, key: S.serialize('v1'), value: E.serialize({ id, visitor: 'v1', ts }), timestamp: ts });
  const M = 60_000;
  const inputTps = Array.from({ length: INPUT_PARTITIONS }, (_, partition) => ({ topic: input, partition }));
  const appendAndClose = async (records: ProducerRecord[]) => {
    const log = await openEmbeddedLog({ dir, fsync: false });
    try {
      if ((await log.admin.describeTopics([input])).size === 0) {
        await log.admin.createTopics([
          { name: input, partitions: INPUT_PARTITIONS },
          { name: output, partitions: 1 },
        ]);
      }
      await produce(log, records);
      return (await log.admin.listOffsets(inputTps, 'latest')).map((o) => o.offset);
    } finally {
      await log.close();
    }
  };
  const cfg: WorkerConfig = { log: { kind: 'embedded', dir, fsync: false }, input, output, applicationId: 'late-app', stateDir, instanceId: 'only' };
  try {
    // a opens window T; b moves stream time 30 minutes on: window T closes (end T+1m <= T+30m - 10m grace) and is emitted.
    let ends = await appendAndClose([rec('a', T0), rec('b', T0 + 30 * M)]);
    const first = new Worker('late#0', cfg);
    workers.push(first);
    await first.waitProgress((p) => p.committed.every((c, i) => c === ends[i]), 60_000, 'a and b committed');
    await first.sigkill();
    // c belongs to the closed window T (29 minutes behind stream time): late, to be dropped.
    // d closes window T+30m.
    ends = await appendAndClose([rec('c', T0 + 1000), rec('d', T0 + 120 * M)]);
    const second = new Worker('late#1', cfg);
    workers.push(second);
    await second.waitProgress((p) => p.committed.every((c, i) => c === ends[i]), 60_000, 'c and d committed');
    await second.stop();
    const log = await openEmbeddedLog({ dir, fsync: false });
    try {
      const out = await readToEnd(log, output);
      report(t, 'late after restart', { output: out.map((r) => `${S.deserialize(r.key)}=${L.deserialize(r.value)}`) });
      assertExactlyOnce(
        new Map([
          [`v1@${T0}`, 1],
          [`v1@${T0 + 30 * M}`, 1],
        ]),
        out,
      );
    } finally {
      await log.close();
    }
  } finally {
    for (const w of workers) w.destroy();
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
});

// ---- Kafka --------------------------------------------------------------------------------------

async function kafkaTopics(): Promise<{ log: Log; input: string; output: string; inputTps: TopicPartition[] }> {
  let log: Log;
  try {
    log = await connectKafkaLog({ bootstrapServers: BOOTSTRAP, clientId: 'crash-test' });
  } catch (err) {
    // Never skip: `npm test` starts a broker; run alone, start one with `npm run kafka:start`.
    throw new Error(`no Kafka broker at ${BOOTSTRAP} (start one with npm run kafka:start): ${(err as Error).message}`, { cause: err });
  }
  const input = unique('crash-events');
  const output = unique('crash-counts');
  await log.admin.createTopics([
    { name: input, partitions: INPUT_PARTITIONS },
    { name: output, partitions: 4 },
  ]);
  return { log, input, output, inputTps: Array.from({ length: INPUT_PARTITIONS }, (_, partition) => ({ topic: input, partition })) };
}

async function cleanupKafka(log: Log, applicationId: string, topics: string[]): Promise<void> {
  const all = await log.admin.listTopics();
  // The app's internal topics (changelogs) are prefixed by the application id.
  const internal = all.filter((n) => n.startsWith(`${applicationId}-`));
  await log.admin.deleteTopics([...topics, ...internal]).catch(() => undefined);
  await log.close();
}

function kafkaConfig(applicationId: string, input: string, output: string, stateDir: string, instanceId: string): WorkerConfig {
  return {
    log: { kind: 'kafka', bootstrap: BOOTSTRAP },
    input,
    output,
    applicationId,
    stateDir,
    instanceId,
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    heartbeatIntervalMs: 500,
  };
}

async function kafkaKillRun(t: TestContext, name: string, opts: { dedupe: boolean; originals: number; kills: number }): Promise<void> {
  const t0 = Date.now();
  const k = await kafkaTopics();
  const { log, input, output, inputTps } = k;
  const applicationId = unique('crash-app');
  const stateDir = mkdtempSync(join(tmpdir(), 'shopstream-crash-state-'));
  const workers: Worker[] = [];
  try {
    const ds = makeDataset(input, seedFor(), opts.originals, opts.dedupe);
    await produce(log, ds.records, 5000);
    const produced = Date.now();
    const cfg: WorkerConfig = { ...kafkaConfig(applicationId, input, output, stateDir, 'solo'), dedupe: opts.dedupe };
    const { kills, last } = await killLoop((n) => new Worker(`${name}#${n}`, cfg), opts.kills, workers);
    // The flush records arrive while the last incarnation runs.
    await produce(log, flushRecords(input, ds));
    const inputEnds = (await log.admin.listOffsets(inputTps, 'latest')).map((o) => o.offset);
    assert.equal(sum(inputEnds), ds.records.length + INPUT_PARTITIONS);
    await last.waitProgress((p) => p.committed.every((c, i) => c === inputEnds[i]), 120_000, 'all input committed');
    await last.stop();
    await assertCommittedAtEnd(log, applicationId, input);
    const out = await readToEnd(log, output, ds.expected.size);
    report(t, name, {
      seed: ds.seed,
      records: ds.records.length,
      duplicates: ds.duplicates,
      windows: ds.expected.size,
      kills: kills.length,
      killedAt: kills.map((x) => `${x.killCommitted}/${x.total}`),
      restored: workers.map((w) => w.restored),
      lateDropped: sum(workers.map((w) => w.lateDropped)),
      produceMs: produced - t0,
      elapsedMs: Date.now() - t0,
    });
    assertExactlyOnce(ds.expected, out);
    assertNoLateDrops(workers);
  } finally {
    for (const w of workers) w.destroy();
    await cleanupKafka(log, applicationId, [input, output]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

test('kafka A: exactly-once output through repeated SIGKILLs of a single instance', { timeout: 180_000 }, (t) =>
  kafkaKillRun(t, 'kafka A', { dedupe: true, originals: ORIGINALS, kills: KILLS }),
);

test('kafka A, no dedupe (not idempotent under replay): exact counts through repeated SIGKILLs', { timeout: 150_000 }, (t) =>
  kafkaKillRun(t, 'kafka A-nodedupe', { dedupe: false, originals: ORIGINALS, kills: VARIANT_KILLS }),
);

test('kafka B: two instances, one SIGKILLed for good halfway; the survivor restores its tasks and finishes exactly-once', { timeout: 180_000 }, async (t) => {
  const t0 = Date.now();
  const k = await kafkaTopics();
  const { log, input, output, inputTps } = k;
  const applicationId = unique('crash-app');
  const dirs = [mkdtempSync(join(tmpdir(), 'shopstream-crash-state-a-')), mkdtempSync(join(tmpdir(), 'shopstream-crash-state-b-'))];
  const workers: Worker[] = [];
  try {
    const ds = makeDataset(input, seedFor());
    await produce(log, ds.records, 5000);
    const produced = Date.now();
    const a = new Worker('kafkaB-a', kafkaConfig(applicationId, input, output, dirs[0]!, 'a'));
    const b = new Worker('kafkaB-b', kafkaConfig(applicationId, input, output, dirs[1]!, 'b'));
    workers.push(a, b);
    await Promise.all([a.waitFor((e) => e.type === 'started', 90_000, 'start'), b.waitFor((e) => e.type === 'started', 90_000, 'start')]);
    // Both have their share (2 tasks each) before the kill.
    await Promise.all([a.waitProgress((p) => p.tasks.length === 2, 60_000, '2 tasks'), b.waitProgress((p) => p.tasks.length === 2, 60_000, '2 tasks')]);
    const half = Math.floor(ds.records.length / 2);
    await a.waitProgress((p) => sum(p.committed) >= half, 120_000, `committed >= ${half}`);
    await sleep(Math.floor(Math.random() * 250));
    const [victim, survivor] = Math.random() < 0.5 ? [a, b] : [b, a];
    const victimTasks = victim.progress!.tasks;
    const atKill = survivor.progress!;
    await victim.sigkill();
    const killedAt = Date.now();
    assert.equal(victimTasks.length, 2, 'the victim owned tasks when it was killed');
    assert.ok(sum(atKill.committed) < ds.records.length, 'the kill landed before the end');
    await produce(log, flushRecords(input, ds));
    const inputEnds = (await log.admin.listOffsets(inputTps, 'latest')).map((o) => o.offset);
    const takeover = await survivor.waitProgress((p) => p.tasks.length === INPUT_PARTITIONS, 60_000, 'take over all tasks');
    const takeoverMs = Date.now() - killedAt;
    void takeover;
    await survivor.waitProgress((p) => p.committed.every((c, i) => c === inputEnds[i]), 120_000, 'all input committed');
    await survivor.stop();
    await assertCommittedAtEnd(log, applicationId, input);
    const out = await readToEnd(log, output, ds.expected.size);
    report(t, 'kafka B', {
      seed: ds.seed,
      records: ds.records.length,
      duplicates: ds.duplicates,
      windows: ds.expected.size,
      killed: victim.name,
      killedAt: `${sum(atKill.committed)}/${ds.records.length}`,
      victimTasks,
      takeoverMs,
      survivorRestored: survivor.restored,
      lateDropped: sum(workers.map((w) => w.lateDropped)),
      produceMs: produced - t0,
      elapsedMs: Date.now() - t0,
    });
    assert.ok(survivor.restored > 0, "the survivor restored the dead instance's state from the changelogs");
    assertExactlyOnce(ds.expected, out);
    assertNoLateDrops(workers);
  } finally {
    for (const w of workers) w.destroy();
    await cleanupKafka(log, applicationId, [input, output]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});
