/**
 * Worker threads that decode the lake sink's records (decode-worker.ts): the JSON parse and
 * `normalizeEvent` of each record, ~8 µs, run beside the thread that reads the log and cuts. Batches
 * go round-robin to the threads (threads.ts); each batch's promise resolves with its staged records
 * (stage.ts). A thread that dies is replaced, and its batches fail (the sink then goes on from its
 * committed offsets).
 */
import type { ConsumedRecord } from '@shopstream/streams';
import { ThreadPool } from '../threads.ts';
import type { DecoderSpec } from './decode.ts';
import { packRecords, type PackedRecords, type SlabPool, type StagedBatch } from './stage.ts';

export class DecodePool {
  private readonly slabs: SlabPool;
  private readonly pool: ThreadPool<{ packed: PackedRecords; out: ArrayBuffer }, StagedBatch>;

  constructor(threads: number, specs: [string, DecoderSpec][], slabs: SlabPool) {
    this.slabs = slabs;
    this.pool = new ThreadPool(new URL('./decode-worker.ts', import.meta.url), threads, {
      name: 'lake decode worker',
      workerData: { specs },
      // The buffers a thread is done with come back to the slab pool.
      onAside: (spare) => {
        for (const b of spare as ArrayBuffer[]) slabs.give(b);
      },
    });
  }

  /** Decodes and stages `records` in a worker (the batch's bytes are in a buffer of the slab pool when they fit). */
  decode(records: readonly ConsumedRecord[]): Promise<StagedBatch> {
    const packed = packRecords(records, this.slabs.take());
    const out = this.slabs.take();
    return this.pool.run({ packed, out }, [packed.buffer, out]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
