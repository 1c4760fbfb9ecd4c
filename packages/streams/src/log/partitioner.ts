/**
 * Kafka's default partitioner for keyed records: murmur2 of the key bytes, positive, modulo the
 * partition count. Identical to the Java client's `Utils.murmur2`, so that Java and TypeScript
 * producers place a key on the same partition.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const m = 0x5bd1e995;
  const r = 24;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = (data[i]! & 0xff) | ((data[i + 1]! & 0xff) << 8) | ((data[i + 2]! & 0xff) << 16) | ((data[i + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length % 4;
  if (tail >= 3) h ^= (data[length4 + 2]! & 0xff) << 16;
  if (tail >= 2) h ^= (data[length4 + 1]! & 0xff) << 8;
  if (tail >= 1) {
    h ^= data[length4]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a non-null key, as Kafka's DefaultPartitioner computes it. */
export function partitionForKey(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/** Spreads null-keyed records round-robin, per topic. */
export class NullKeyPartitioner {
  private readonly next = new Map<string, number>();
  partition(topic: string, partitions: number): number {
    const n = this.next.get(topic) ?? 0;
    this.next.set(topic, n + 1);
    return n % partitions;
  }
}
