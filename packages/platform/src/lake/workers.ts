/**
 * Worker threads that decode the lake sink's records (decode-worker.ts): the JSON parse and
 * `normalizeEvent` of each record, ~8 µs, run beside the thread that reads the log and cuts. Batches
 * go round-robin to the workers; each batch's promise resolves with its staged records (stage.ts).
 * A worker that dies is replaced, and its batches fail (the sink then goes on from its committed
 * offsets).
 */
import { Worker } from 'node:worker_threads';
import type { ConsumedRecord } from '@shopstream/streams';
import { packRecords } from '@shopstream/streams/remote';
import type { DecoderSpec } from './decode.ts';
import type { SlabPool, StagedBatch } from './stage.ts';

interface Pending {
  resolve: (b: StagedBatch) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

export class DecodePool {
  private readonly specs: [string, DecoderSpec][];
  private readonly slabs: SlabPool;
  private readonly slots: Slot[] = [];
  private next = 0;
  private id = 0;
  private closed = false;

  constructor(threads: number, specs: [string, DecoderSpec][], slabs: SlabPool) {
    this.specs = specs;
    this.slabs = slabs;
    for (let i = 0; i < threads; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./decode-worker.ts', import.meta.url), { workerData: { specs: this.specs } });
    const slot: Slot = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (m: { id: number; batch?: StagedBatch; error?: string; spare?: ArrayBuffer[] }) => {
      for (const b of m.spare ?? []) this.slabs.give(b);
      const p = slot.pending.get(m.id);
      if (p === undefined) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.batch !== undefined) p.resolve(m.batch);
      else p.reject(new Error(`lake decode worker: ${m.error ?? 'no result'}`));
    });
    const fail = (err: Error) => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
    };
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => fail(new Error(`lake decode worker exited (${code})`)));
    return slot;
  }

  /** Decodes and stages `records` in a worker (the batch's bytes are in a buffer of the slab pool when they fit). */
  decode(records: readonly ConsumedRecord[]): Promise<StagedBatch> {
    if (this.closed) return Promise.reject(new Error('lake decode pool is closed'));
    const slot = this.slots[this.next++ % this.slots.length]!;
    const packed = packRecords(records, this.slabs.take());
    const out = this.slabs.take();
    const id = this.id++;
    return new Promise<StagedBatch>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      // Keep the process alive while a batch is out (the sink awaits it).
      slot.worker.ref();
      slot.worker.postMessage({ id, packed, out }, [packed.buffer, out]);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
