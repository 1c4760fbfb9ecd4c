/**
 * A decoding worker thread of the lake sink (workers.ts): gets packed records, decodes them with the
 * built-in decoder of their topic (`readRawRecord` + `normalizeEvent` for events.raw) and stages
 * them (stage.ts), and sends the staged batch back with its buffers transferred.
 */
import { workerData } from 'node:worker_threads';
import { serveThread } from '../threads.ts';
import { decoderOf, jsonDecoder, type DecoderSpec, type LakeDecoder } from './decode.ts';
import { stageRecords, unpackRecords, type PackedRecords, type StagedBatch } from './stage.ts';

const decoders = new Map<string, LakeDecoder>((workerData as { specs: [string, DecoderSpec][] }).specs.map(([topic, spec]) => [topic, decoderOf(spec)]));
const decoderFor = (topic: string) => decoders.get(topic) ?? jsonDecoder;

interface Req {
  packed: PackedRecords;
  out: ArrayBuffer;
}

// The input buffer (and the output buffer when it was not used) go back aside, to be used again.
serveThread<Req, StagedBatch>(
  (m) => {
    const spare: ArrayBuffer[] = [m.packed.buffer];
    const b = stageRecords(unpackRecords(m.packed), decoderFor, m.out);
    if (b.bytes.buffer !== m.out) spare.push(m.out);
    const transfer = [b.time.buffer, b.hive.buffer, b.start.buffer, b.end.buffer, b.bytes.buffer].map((x) => x as ArrayBuffer);
    return { value: b, transfer: [...transfer, ...spare], aside: spare };
  },
  (m) => ({ transfer: [m.packed.buffer, m.out], aside: [m.packed.buffer, m.out] }),
);
