/**
 * A decoding worker thread of the lake sink (workers.ts): gets packed records, decodes them with the
 * built-in decoder of their topic (`readRawRecord` + `normalizeEvent` for events.raw) and stages
 * them (stage.ts), and sends the staged batch back with its buffers transferred.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decoderOf, jsonDecoder, type DecoderSpec, type LakeDecoder } from './decode.ts';
import { unpackRecords, type PackedRecords } from '@shopstream/streams/remote';
import { stageRecords } from './stage.ts';

const decoders = new Map<string, LakeDecoder>((workerData as { specs: [string, DecoderSpec][] }).specs.map(([topic, spec]) => [topic, decoderOf(spec)]));
const decoderFor = (topic: string) => decoders.get(topic) ?? jsonDecoder;

parentPort!.on('message', (m: { id: number; packed: PackedRecords; out: ArrayBuffer }) => {
  // The input buffer (and the output buffer when it was too small) go back to be used again.
  const spare = [m.packed.buffer];
  try {
    const b = stageRecords(unpackRecords(m.packed), decoderFor, m.out);
    if (b.bytes.buffer !== m.out) spare.push(m.out);
    const transfer = [b.time.buffer, b.hive.buffer, b.start.buffer, b.end.buffer, b.bytes.buffer].map((x) => x as ArrayBuffer);
    parentPort!.postMessage({ id: m.id, batch: b, spare }, [...transfer, ...spare]);
  } catch (err) {
    spare.push(m.out);
    parentPort!.postMessage({ id: m.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err), spare }, spare);
  }
});
