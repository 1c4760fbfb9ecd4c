/** Shared helpers for platform tests. */
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { ConsumedRecord, Log } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import { connectKafkaLog } from '@shopstream/streams/kafka';
import { readTopic } from '@shopstream/streams/testing';
import { normalizeRawRecord } from '../src/contract/index.ts';

export const KAFKA_BOOTSTRAP = process.env['KAFKA_BOOTSTRAP'] ?? '127.0.0.1:9092';
/** The PostgreSQL server the server-store tests use (tests work in schemas of their own and drop them). */
export const TEST_POSTGRES = process.env['SHOPSTREAM_TEST_POSTGRES'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export function tempDir(prefix = 'shopstream-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export type LogKind = 'embedded' | 'kafka';

/** Opens a log of the given kind; `close` also removes the embedded log's folder. */
export async function openTestLog(kind: LogKind): Promise<{ log: Log; close: () => Promise<void> }> {
  if (kind === 'kafka') {
    const log = await connectKafkaLog({ bootstrapServers: KAFKA_BOOTSTRAP, clientId: unique('test') });
    return { log, close: () => log.close() };
  }
  const t = tempDir();
  const log = await openEmbeddedLog({ dir: t.dir, fsync: false, retentionCheckIntervalMs: 0 });
  return {
    log,
    close: async () => {
      await log.close();
      t.cleanup();
    },
  };
}

export { readTopic };

/**
 * Reads a topic to its current end (latest offsets). Stops on the readers' positions, not on a
 * record count: on Kafka, transaction markers take offsets too.
 */
export async function readAll(log: Log, topic: string, timeoutMs = 30_000): Promise<ConsumedRecord[]> {
  const d = await log.admin.describeTopics([topic]);
  const n = d.get(topic)?.partitions ?? 0;
  const tps = Array.from({ length: n }, (_, partition) => ({ topic, partition }));
  const ends = await log.admin.listOffsets(tps, 'latest');
  const reader = log.createReader({ clientId: 'test-read-all' });
  const out: ConsumedRecord[] = [];
  try {
    reader.assign(tps.map((tp) => ({ ...tp, offset: 0 })));
    const deadline = Date.now() + timeoutMs;
    while (ends.some((e) => reader.position(e) < e.offset)) {
      if (Date.now() > deadline) throw new Error(`readAll(${topic}): timed out at ${out.length} records`);
      for (const r of await reader.poll(100)) out.push(r);
    }
  } finally {
    await reader.close();
  }
  return out;
}

/** The canonical event of an events.raw record, as the pipeline will compute it (fails the test if refused). */
export function canonical(r: ConsumedRecord): Record<string, unknown> {
  const result = normalizeRawRecord(r);
  if (!result.ok) throw new Error(`raw record at offset ${r.offset} is refused: ${result.reason.code} ${result.reason.message}`);
  return result.event as unknown as Record<string, unknown>;
}

export function json(r: ConsumedRecord): Record<string, unknown> {
  return JSON.parse(r.value!.toString('utf8')) as Record<string, unknown>;
}

/** A pino logger that writes into a string, to check what logs contain. */
export function capturingLogger(): { logger: Logger; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), text: () => chunks.join('') };
}

/** A TCP port free on 127.0.0.1 now (for a child process to listen on). */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
    s.on('error', fail);
  });
}
