/**
 * The server side of bench/ingest.bench.ts, in its own process so that the load generator does not
 * share its event loop. Modes:
 *   collector  the real collector on a fresh embedded log (fsync on, as in production)
 *   ceiling    the same Fastify setup and body decoding, with a route that parses and discards
 *   floor      the ceiling's route, then each event's bytes (the collector's boundary scan) appended to
 *              a fresh embedded log (fsync on) as one record keyed by its anonymousId, answered once
 *              durable: no authentication, no envelope check, no headers. The least a durable collector
 *              that writes one record per event must do; what is left of the ceiling for all the rest.
 *              BENCH_FLOOR_BODY=1: the whole body as one record instead (no cut; not a valid collector,
 *              it only shows what the durable append itself costs).
 * Prints `READY <port>` when listening; exits on SIGTERM, printing the embedded log's record count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { pino } from 'pino';
import { openEmbeddedLog } from '../packages/streams/src/log/embedded/index.ts';
import { buildCollector } from '../packages/platform/src/collector/server.ts';
import { MAX_JSON_DEPTH, decodeBody, type DecodedBody } from '../packages/platform/src/collector/body.ts';
import { TOO_DEEP, batchElementRanges } from '../packages/platform/src/collector/batch-scan.ts';
import type { ProducerRecord } from '../packages/streams/src/index.ts';
import { MerchantTable, putMerchant } from '../packages/platform/src/merchants/table.ts';
import { ensurePlatformTopics, topicNames } from '../packages/platform/src/topics.ts';
import { profiled } from './common.ts';

const mode = process.argv[2];
export const BENCH_WRITE_KEY = 'wk_bench_write_key';

/** Serves until SIGTERM; with BENCH_PROFILE=<dir>, profiles just that time (not start-up or shutdown). */
function untilTerm(name: string): Promise<void> {
  return profiled(`ingest-${name}`, () => new Promise<void>((resolve) => process.once('SIGTERM', () => resolve())));
}

if (mode === 'ceiling' || mode === 'floor') {
  const app = Fastify({ bodyLimit: 500 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (req, body, done) => {
    try {
      done(null, decodeBody(body as Buffer, req.headers['content-encoding'], 500 * 1024));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  if (mode === 'ceiling') {
    app.post('/v1/batch', async (req) => {
      if (((req.body as DecodedBody).value as { batch?: unknown[] }).batch === undefined) throw new Error('no batch');
      return { success: true };
    });
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'shopstream-bench-floor-'));
    const log = await openEmbeddedLog({ dir, fsync: process.env['BENCH_FSYNC'] !== '0', retentionCheckIntervalMs: 0 });
    const topics = topicNames();
    await ensurePlatformTopics(log, { partitions: 4 });
    const producer = log.createProducer({ clientId: 'floor' });
    const wholeBody = process.env['BENCH_FLOOR_BODY'] === '1';
    app.post('/v1/batch', async (req) => {
      const { bytes, value } = req.body as DecodedBody;
      const batch = (value as { batch?: { anonymousId?: string }[] }).batch;
      if (wholeBody) {
        await producer.send([{ topic: topics.raw, key: null, value: bytes }]);
        return { success: true };
      }
      const ranges = batchElementRanges(bytes, MAX_JSON_DEPTH);
      if (batch === undefined || ranges === undefined || ranges === TOO_DEEP || ranges.length !== batch.length) throw new Error('no batch');
      const records: ProducerRecord[] = batch.map((e, i) => ({ topic: topics.raw, key: Buffer.from(String(e.anonymousId)), value: bytes.subarray(ranges[i]![0], ranges[i]![1]) }));
      await producer.send(records);
      return { success: true };
    });
    app.addHook('onClose', async () => {
      await producer.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    });
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(`READY ${(app.server.address() as { port: number }).port}`);
  await untilTerm(mode);
  await app.close();
  process.exit(0);
} else if (mode === 'collector') {
  const dir = mkdtempSync(join(tmpdir(), 'shopstream-bench-ingest-'));
  const log = await openEmbeddedLog({ dir, fsync: process.env['BENCH_FSYNC'] !== '0', retentionCheckIntervalMs: 0 });
  const topics = topicNames();
  await ensurePlatformTopics(log, { partitions: 4 });
  const table = new MerchantTable(log, topics.merchants);
  await table.start();
  await putMerchant(log, topics.merchants, {
    id: 'bench',
    writeKeys: [BENCH_WRITE_KEY],
    revokedWriteKeys: [],
    readTokens: ['rt_bench_read_token'],
    timezone: 'UTC',
    currency: 'USD',
    createdAt: 0,
    updatedAt: 0,
  }, table);
  const app = await buildCollector({ log, topics, merchants: table, beaconSecrets: [Buffer.alloc(32, 1)], logger: pino({ level: 'warn' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  console.log(`READY ${(app.server.address() as { port: number }).port}`);
  await untilTerm('collector');
  await app.close();
  const ends = await log.admin.listOffsets([0, 1, 2, 3].map((partition) => ({ topic: topics.raw, partition })), 'latest');
  console.log(`RECORDS ${ends.reduce((a, e) => a + e.offset, 0)}`);
  await table.close();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
} else {
  console.error('usage: node bench/ingest-server.ts collector|ceiling|floor');
  process.exit(2);
}
