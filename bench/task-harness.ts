/**
 * The engine-alone benches' harness (bench/streams-task.bench.ts, bench/pipeline-task.bench.ts): one
 * task of a topology's first subtopology, LMDB stores and changelogs, no log (sends are counted and
 * dropped), a commit every 2,500 records.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConsumedRecord, Topology } from '../packages/streams/src/index.ts';
import { Task } from '../packages/streams/src/runtime/task.ts';
import { LmdbEnvironment } from '../packages/streams/src/state/backend.ts';

/**
 * Runs `records` through the task after `preload` (untimed; records of topics the task does not
 * read are left out); records/s over `records`. Fails when fewer than `minSends` records were sent.
 */
export function runInTask(topology: Topology, records: readonly ConsumedRecord[], o: { cacheBytes: number; minSends: number; preload?: readonly ConsumedRecord[] }): number {
  const dir = mkdtempSync(join(tmpdir(), 'bench-task-'));
  const env = new LmdbEnvironment(dir);
  let sent = 0;
  const task = new Task({
    applicationId: 'bench',
    topology,
    subtopology: topology.subtopologies()[0]!,
    partition: 0,
    collector: { send: () => void sent++, partitionsOf: () => 1 },
    openBackend: (spec) => env.backend(spec.name),
    maxBufferBytes: 1e9,
    cacheBytes: o.cacheBytes,
    changelogs: true,
    wallClock: () => Date.now(),
    requestCommit: () => {},
  });
  task.init();
  const inputs = new Set(task.inputPartitions().map((tp) => tp.topic));
  const preload = (o.preload ?? []).filter((r) => inputs.has(r.topic));
  if (preload.length > 0) {
    task.addRecords(preload);
    task.process();
    task.flush();
    task.applyCommitted(new Map());
  }
  sent = 0;
  const t0 = performance.now();
  for (let i = 0; i < records.length; i += 2500) {
    task.addRecords(records.slice(i, i + 2500));
    task.process();
    task.flush();
    task.applyCommitted(new Map());
  }
  const rate = records.length / ((performance.now() - t0) / 1000);
  task.close();
  env.close();
  rmSync(dir, { recursive: true, force: true });
  if (sent < o.minSends) throw new Error(`only ${sent} sends for ${records.length} records`);
  return rate;
}
