/**
 * Serdes turn typed keys and values into bytes and back. `null` always maps to `null`, so that
 * tombstones and null keys pass through every serde.
 */
export interface Serde<T> {
  serialize(data: T | null, topic?: string): Buffer | null;
  deserialize(data: Buffer | null, topic?: string): T | null;
}

import { isUtf8 } from 'node:buffer';

/** Built-in serdes whose deserialize keeps nothing of its input (it parses or copies it). */
const detaching = new WeakSet<Serde<unknown>>();
function detached<T>(serde: Serde<T>): Serde<T> {
  detaching.add(serde as Serde<unknown>);
  return serde;
}

/**
 * True when `serde.deserialize` keeps no reference to the bytes it is given, so that a store may
 * hand it a view of a reused buffer (LMDB's) instead of a copy. Only the built-in string, json,
 * long and double serdes say so; any other serde gets bytes of its own.
 */
export function deserializeDetaches(serde: Serde<unknown>): boolean {
  return detaching.has(serde);
}

/** Strict UTF-8: invalid bytes throw (so a bad record is dead-lettered, not turned into U+FFFD). isUtf8 + toString is twice as fast as a fatal TextDecoder. */
function decodeUtf8(b: Buffer): string {
  if (!isUtf8(b)) throw new TypeError('invalid UTF-8');
  return b.toString('utf8');
}

export const Serdes = {
  /** UTF-8 strings. Invalid UTF-8 throws, so a bad record goes to the dead-letter topic instead of becoming U+FFFD. */
  string(): Serde<string> {
    return detached({
      serialize: (s) => (s === null ? null : Buffer.from(s, 'utf8')),
      deserialize: (b) => (b === null ? null : decodeUtf8(b)),
    });
  },
  /** JSON values; the type parameter is not checked at run time (validate in a processor). */
  json<T = unknown>(): Serde<T> {
    return detached({
      serialize: (v) => (v === null ? null : Buffer.from(JSON.stringify(v), 'utf8')),
      deserialize: (b) => (b === null ? null : (JSON.parse(decodeUtf8(b)) as T)),
    });
  },
  /** Raw bytes, unchanged. */
  bytes(): Serde<Buffer> {
    return { serialize: (b) => b, deserialize: (b) => b };
  },
  /** 64-bit signed integers, big-endian, as Kafka's LongSerde (values must be safe integers). */
  long(): Serde<number> {
    return detached({
      // Two's complement in two 32-bit words (no BigInt on the hot path); exact for safe integers.
      serialize: (n) => {
        if (n === null) return null;
        if (!Number.isSafeInteger(n)) throw new RangeError(`long serde needs a safe integer, got ${n}`);
        const b = Buffer.allocUnsafe(8);
        const high = Math.floor(n / 4294967296);
        b.writeInt32BE(high, 0);
        b.writeUInt32BE(n - high * 4294967296, 4);
        return b;
      },
      deserialize: (b) => {
        if (b === null) return null;
        if (b.length !== 8) throw new Error(`long serde expects 8 bytes, got ${b.length}`);
        const v = b.readInt32BE(0) * 4294967296 + b.readUInt32BE(4);
        if (!Number.isSafeInteger(v)) throw new RangeError('long value beyond 2^53');
        return v;
      },
    });
  },
  /** IEEE-754 doubles, big-endian, as Kafka's DoubleSerde. */
  double(): Serde<number> {
    return detached({
      serialize: (n) => {
        if (n === null) return null;
        const b = Buffer.allocUnsafe(8);
        b.writeDoubleBE(n);
        return b;
      },
      deserialize: (b) => {
        if (b === null) return null;
        if (b.length !== 8) throw new Error(`double serde expects 8 bytes, got ${b.length}`);
        return b.readDoubleBE(0);
      },
    });
  },
  /** Builds a serde from two functions. */
  from<T>(serialize: (v: T) => Buffer, deserialize: (b: Buffer) => T): Serde<T> {
    return {
      serialize: (v) => (v === null ? null : serialize(v)),
      deserialize: (b) => (b === null ? null : deserialize(b)),
    };
  },
};

/** A key with the window it belongs to. */
export interface Windowed<K> {
  key: K;
  /** Inclusive start, ms. */
  start: number;
  /** Exclusive end, ms. */
  end: number;
}

/** A safe integer as a big-endian two's complement 64-bit integer, without BigInt (same bytes as writeBigInt64BE). */
function writeInt64BE(b: Buffer, n: number, offset: number): void {
  if (!Number.isSafeInteger(n)) {
    b.writeBigInt64BE(BigInt(n), offset); // throws as before for non-integers
    return;
  }
  const high = Math.floor(n / 4294967296);
  b.writeInt32BE(high, offset);
  b.writeUInt32BE(n - high * 4294967296, offset + 4);
}

function readInt64BE(b: Buffer, offset: number): number {
  const high = b.readInt32BE(offset);
  // Beyond 2^53 a double cannot hold the value exactly: Number(BigInt) rounds it as before.
  if (high >= 2097152 || high < -2097152) return Number(b.readBigInt64BE(offset));
  return high * 4294967296 + b.readUInt32BE(offset + 4);
}

/** Windowed keys on the wire: inner key bytes, then start and end as 8-byte big-endian integers. */
export function windowedSerde<K>(inner: Serde<K>): Serde<Windowed<K>> {
  return {
    serialize: (w, topic) => {
      if (w === null) return null;
      const k = inner.serialize(w.key, topic) ?? Buffer.alloc(0);
      const b = Buffer.allocUnsafe(k.length + 16);
      k.copy(b, 0);
      writeInt64BE(b, w.start, k.length);
      writeInt64BE(b, w.end, k.length + 8);
      return b;
    },
    deserialize: (b, topic) => {
      if (b === null) return null;
      if (b.length < 16) throw new Error('windowed key shorter than 16 bytes');
      const n = b.length - 16;
      return {
        key: inner.deserialize(b.subarray(0, n), topic) as K,
        start: readInt64BE(b, n),
        end: readInt64BE(b, n + 8),
      };
    },
  };
}
