/**
 * A Bloom filter over byte keys, so that a store answers "not there" without asking LMDB.
 *
 * Most reads of a stream processor's stores miss: a de-duplication store is asked about every new
 * message id, a window store about every new window. Kafka Streams' RocksDB answers those from the
 * Bloom filters of its SST files; LMDB has none, and a miss walks its B-tree like a hit. This
 * filter answers most misses in memory (about 1% false positives at 10 bits per key). It never
 * answers "absent" for a key that was added, which is all correctness needs: a false positive
 * only costs the LMDB read that would have happened anyway.
 *
 * Deleted keys stay in the filter until it is rebuilt. The owner rebuilds it from the keys it
 * holds when more distinct keys were added than it was sized for.
 */

/** Bits per expected key: 10 bits and 7 probes give about 0.8% false positives. */
const BITS_PER_KEY = 10;
const PROBES = 7;
/** The smallest filter: 64 Ki bits (8 KiB). */
const MIN_BITS = 1 << 16;
/** The largest filter: 2^30 bits (128 MiB), about 100 million keys at the nominal rate; past that the false-positive rate rises. */
const MAX_BITS = 2 ** 30;

export class BloomFilter {
  private readonly words: Int32Array;
  private readonly mask: number;
  /** Keys this filter is sized for. */
  readonly capacity: number;
  /** Distinct keys added so far (keys already reported present are not counted again). */
  private count = 0;

  constructor(expectedKeys: number) {
    let bits = MIN_BITS;
    while (bits < expectedKeys * BITS_PER_KEY && bits < MAX_BITS) bits *= 2;
    this.words = new Int32Array(bits >>> 5);
    this.mask = bits - 1;
    this.capacity = Math.floor(bits / BITS_PER_KEY);
  }

  /** True when more distinct keys were added than the filter was sized for (and it can still grow). */
  get full(): boolean {
    return this.count > this.capacity && this.mask + 1 < MAX_BITS;
  }

  add(key: Uint8Array): void {
    const h = hash(key);
    let h1 = h.h1;
    const h2 = h.h2;
    let fresh = false;
    for (let i = 0; i < PROBES; i++) {
      const bit = h1 & this.mask;
      const word = bit >>> 5;
      const m = 1 << (bit & 31);
      if ((this.words[word]! & m) === 0) {
        this.words[word]! |= m;
        fresh = true;
      }
      h1 = (h1 + h2) | 0;
    }
    if (fresh) this.count++;
  }

  /** False only for a key never added. */
  mightContain(key: Uint8Array): boolean {
    const h = hash(key);
    let h1 = h.h1;
    const h2 = h.h2;
    for (let i = 0; i < PROBES; i++) {
      const bit = h1 & this.mask;
      if ((this.words[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
      h1 = (h1 + h2) | 0;
    }
    return true;
  }
}

const out = { h1: 0, h2: 0 };

/** Two 32-bit hashes of the bytes in one pass (FNV-1a and a Murmur-style multiply), finalised with Murmur3's mix; h2 is odd so that its multiples reach every bit. */
function hash(key: Uint8Array): { h1: number; h2: number } {
  let a = 0x811c9dc5 | 0;
  let b = (0x9747b28c ^ key.length) | 0;
  for (let i = 0; i < key.length; i++) {
    const c = key[i]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  out.h1 = fmix(a);
  out.h2 = fmix(b ^ 0x27d4eb2f) | 1;
  return out;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
