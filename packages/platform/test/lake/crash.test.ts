/**
 * The lake sink under real kills: 200,000 events.raw records (realistic Segment messages of four
 * merchants over four event hours) are archived by a sink running in a child process
 * (fixtures/sink-child.ts), which is killed with SIGKILL at six random moments (after a random
 * number of files published, or after a random delay) and started again each time. Afterwards the
 * message ids in the lake must be exactly the ids sent (none missing, none twice), the (partition,
 * offset) pairs distinct, and hyparquet (a Parquet reader that is not DuckDB) must read every file
 * with the documented schema. On both logs, on local storage and on S3 (S3Mock, s3-server.ts).
 *
 * SHOPSTREAM_CRASH_SEED=<n> repeats a run's kill moments (the seed is printed as a diagnostic).
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { DuckDBInstance } from '@duckdb/node-api';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { seededRandom } from '../../src/experiments/stats.ts';
import { localCopies } from '../../src/lake/files.ts';
import type { S3Storage } from '../../src/lake/s3.ts';
import { LocalStorage, type LakeStorage } from '../../src/lake/storage.ts';
import { KAFKA_BOOTSTRAP, openTestLog, tempDir, unique, type LogKind } from '../helpers.ts';
import { produceEvents } from './fixtures/events.ts';
import type { ChildSpec } from './fixtures/sink-child.ts';
import { startS3, type TestS3 } from './s3-server.ts';

const CHILD = resolve(import.meta.dirname, 'fixtures/sink-child.ts');
const TOTAL = 200_000;
const KILLS = 6;
const PARTITIONS = 4;
const MERCHANTS = [
  { id: 'north-shoes', currency: 'EUR' },
  { id: 'acme-bags', currency: 'USD' },
  { id: 'fjord-jackets', currency: 'SEK' },
  { id: 'kestrel-hats', currency: 'GBP' },
];
const T0 = Date.UTC(2026, 10, 20, 8, 0, 0);

export const LAKE_COLUMNS = ['offset', 'partition', 'received_at', 'merchant', 'message_id', 'event', 'type', 'visitor_id', 'event_time', 'payload', 'payload_bytes', 'headers', 'reject_code'];

class SinkProcess {
  readonly child: ChildProcess;
  published = 0;
  read = 0;
  ready = false;
  done = false;
  output = '';
  private readonly waiters: Array<() => void> = [];
  readonly exited: Promise<void>;

  constructor(spec: ChildSpec) {
    this.child = spawn(process.execPath, [CHILD, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } });
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
    this.child.stderr!.on('data', (d) => (this.output = (this.output + String(d)).slice(-10_000)));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      if (line === 'ready') this.ready = true;
      else if (line === 'done') this.done = true;
      else if (line.startsWith('publish ')) this.published++;
      else if (line.startsWith('progress ')) this.read = Number(line.split(' ')[1]);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves when `cond` holds after a line, or rejects when the process exits first or after `timeoutMs`. */
  async until(cond: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`the sink process exited (${this.child.exitCode ?? this.child.signalCode}): ${this.output}`);
      if (Date.now() > deadline) throw new Error(`timed out; sink output: ${this.output}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

interface LakeCheck {
  files: number;
  rows: number;
  hyparquetMs: number;
}

/** Compares the lake with the ids sent: exact sets, no duplicates; hyparquet reads every file. */
async function checkLake(storage: LakeStorage, topic: string, ids: readonly string[]): Promise<LakeCheck> {
  const names = (await storage.list(`lake/${topic}/`)).filter((n) => n.endsWith('.parquet'));
  const copies = await localCopies(storage, names);
  try {
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    const list = copies.paths.map((p) => `'${p.replaceAll("'", "''")}'`).join(', ');
    const r = await c.runAndReadAll(`SELECT message_id, "partition", "offset", reject_code FROM read_parquet([${list}])`);
    c.closeSync();
    db.closeSync();
    const rows = r.getRows() as Array<[string | null, number, bigint, string | null]>;
    const lakeIds = rows.map((x) => x[0]);
    const sent = new Set(ids);
    const inLake = new Set(lakeIds);
    const missing = ids.filter((id) => !inLake.has(id));
    const unexpected = [...inLake].filter((id) => id === null || !sent.has(id));
    const duplicates = lakeIds.length - inLake.size;
    const positions = new Set(rows.map((x) => `${x[1]}/${x[2]}`)).size;
    assert.deepEqual(
      { rows: lakeIds.length, missing: missing.length, unexpected: unexpected.length, duplicates, distinctPositions: positions, rejected: rows.filter((x) => x[3] !== null).length },
      { rows: ids.length, missing: 0, unexpected: 0, duplicates: 0, distinctPositions: ids.length, rejected: 0 },
      `lake = input, exactly (first missing: ${missing.slice(0, 3).join(', ')}; first unexpected: ${unexpected.slice(0, 3).join(', ')})`,
    );
    // hyparquet reads every file, with the documented columns and metadata.
    const t0 = performance.now();
    const hyIds: string[] = [];
    for (const [i, path] of copies.paths.entries()) {
      const bytes = readFileSync(path);
      const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      const meta = parquetMetadata(file);
      assert.deepEqual(parquetSchema(meta).children.map((x) => x.element.name), LAKE_COLUMNS, names[i]);
      const kv = Object.fromEntries((meta.key_value_metadata ?? []).map((x) => [x.key, x.value]));
      assert.equal(kv['shopstream_lake_schema'], '1', names[i]);
      assert.equal(kv['shopstream_topic'], topic, names[i]);
      const fileRows = await parquetReadObjects({ file, compressors });
      assert.equal(String(fileRows[0]!['offset']), kv['shopstream_start_offset'], `${names[i]}: named after its first record`);
      for (const row of fileRows) {
        const id = row['message_id'] as string;
        hyIds.push(id);
        if (hyIds.length % 97 === 0) assert.equal((JSON.parse(row['payload'] as string) as { messageId: string }).messageId, id, 'the payload is the message');
      }
    }
    assert.equal(hyIds.length, ids.length, 'hyparquet reads every record');
    assert.equal(new Set(hyIds).size, ids.length, 'hyparquet: every id once');
    return { files: names.length, rows: lakeIds.length, hyparquetMs: performance.now() - t0 };
  } finally {
    copies.cleanup();
  }
}

async function crashCase(tc: TestContext, kind: LogKind, storageKind: 'local' | 's3', s3: () => TestS3): Promise<void> {
  const started = performance.now();
  const seed = Number(process.env['SHOPSTREAM_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
  const random = seededRandom(seed);
  const t = tempDir('shopstream-lake-crash-');
  const topic = `${unique('crash')}.events.raw`;
  const run = unique('r');
  let logSpec: ChildSpec['log'];
  let ids: string[];
  let cleanupLog: () => Promise<void>;
  if (kind === 'embedded') {
    const dir = join(t.dir, 'log');
    const log = await openEmbeddedLog({ dir, fsync: false, retentionCheckIntervalMs: 0 });
    await log.admin.createTopics([{ name: topic, partitions: PARTITIONS }]);
    ids = await produceEvents(log, topic, { run, merchants: MERCHANTS, start: T0, spanMs: 4 * 3_600_000, total: TOTAL });
    await log.close(); // the child owns the log from now on
    logSpec = { kind: 'embedded', dir };
    cleanupLog = async () => {};
  } else {
    const { log, close } = await openTestLog('kafka');
    await log.admin.createTopics([{ name: topic, partitions: PARTITIONS }]);
    ids = await produceEvents(log, topic, { run, merchants: MERCHANTS, start: T0, spanMs: 4 * 3_600_000, total: TOTAL });
    logSpec = { kind: 'kafka', bootstrap: KAFKA_BOOTSTRAP };
    cleanupLog = async () => {
      await log.admin.deleteTopics([topic]).catch(() => {});
      await close();
    };
  }
  const produced = performance.now();
  let storage: LakeStorage;
  let storageSpec: ChildSpec['storage'];
  if (storageKind === 'local') {
    storage = new LocalStorage(join(t.dir, 'lake-root'));
    storageSpec = { kind: 'local', dir: join(t.dir, 'lake-root') };
  } else {
    const s = s3().storage();
    storage = s;
    storageSpec = { kind: 's3', endpoint: s3().endpoint, bucket: s.bucket, prefix: s.prefix, scratchDir: s.scratchDir };
  }
  const spec = (closeAtEnd: boolean): ChildSpec => ({ log: logSpec, topic, groupId: unique('lake-crash'), instanceId: 'lake-crash-1', storage: storageSpec, flushSize: 5000, expected: TOTAL, closeAtEnd });
  const groupSpec = spec(false);
  const kills: string[] = [];
  try {
    for (let k = 0; k < KILLS; k++) {
      const p = new SinkProcess({ ...groupSpec });
      try {
        await p.until(() => p.ready, 60_000);
        if (random() < 0.6) {
          const files = 1 + Math.floor(random() * 30);
          // Or when it has nothing left to do (every record read and cut).
          await p.until(() => p.published >= files || p.read >= TOTAL, 60_000);
          kills.push(`after ${p.published} files`);
        } else {
          const ms = 800 + Math.floor(random() * 3000);
          await new Promise((r) => setTimeout(r, ms));
          kills.push(`after ${ms} ms (${p.published} files)`);
        }
      } finally {
        await p.kill();
      }
    }
    const last = new SinkProcess({ ...groupSpec, closeAtEnd: true });
    await last.until(() => last.done, 90_000);
    await last.exited;
    assert.equal(last.child.exitCode, 0, last.output);
    const sunk = performance.now();
    const check = await checkLake(storage, topic, ids);
    if (storageKind === 's3') assert.deepEqual(await (storage as S3Storage).pendingUploads(), [], 'no multipart upload left open');
    tc.diagnostic(
      `${kind}/${storageKind}: seed ${seed}; ${TOTAL} events produced in ${((produced - started) / 1000).toFixed(1)} s; ${KILLS} SIGKILLs (${kills.join('; ')}); ` +
        `sink runs ${((sunk - produced) / 1000).toFixed(1)} s; lake: ${check.files} files, ${check.rows} rows; hyparquet read them in ${(check.hyparquetMs / 1000).toFixed(1)} s`,
    );
  } finally {
    await cleanupLog();
    if (storageKind === 's3') (storage as S3Storage).close();
    t.cleanup();
  }
}

describe('lake sink killed with SIGKILL at random moments: every event in the lake exactly once', () => {
  let s3: TestS3 | undefined;
  before(async () => {
    s3 = await startS3();
  });
  after(async () => {
    await s3?.stop();
  });
  for (const kind of ['embedded', 'kafka'] as LogKind[]) {
    for (const storageKind of ['local', 's3'] as const) {
      it(`${kind} log, ${storageKind} storage: ${TOTAL.toLocaleString('en-US')} events, ${KILLS} kills`, { timeout: 240_000 }, (tc) => crashCase(tc, kind, storageKind, () => s3!));
    }
  }
});
