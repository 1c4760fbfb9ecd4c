/**
 * Finds the bytes of each element of a batch body's top-level `"batch"` array, so that the
 * collector writes each event to the log exactly as the client sent it, without serialising it
 * again (re-encoding costs more than everything else the collector does per event).
 *
 * The body has already been parsed by JSON.parse, so it is valid JSON; this scanner only has to
 * find boundaries. When it cannot be sure it saw what JSON.parse saw (an escaped key, say), it
 * returns undefined and the caller serialises the parsed elements instead.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** `"batch"` as bytes. */
const BATCH_KEY = Buffer.from('"batch"');

function skipWs(b: Uint8Array, i: number): number {
  while (i < b.length) {
    const c = b[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
  return i;
}

/**
 * `i` is at an opening quote; returns the index just after the closing quote. The next quote is
 * found by the native `indexOf` (most of an event's bytes are inside strings); it closes the
 * string unless an odd run of backslashes precedes it.
 */
function skipString(b: Uint8Array, i: number): number {
  let q = i;
  for (;;) {
    q = b.indexOf(QUOTE, q + 1);
    if (q < 0) return -1;
    let k = q - 1;
    while (b[k] === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q + 1;
  }
}

/** Returned by batchElementRanges when an element nests deeper than allowed. */
export const TOO_DEEP = 'too-deep' as const;

/** `i` is at the first byte of a value; returns the index just after it, -1 on malformed input, -2 when nested deeper than `maxDepth`. */
function skipValue(b: Uint8Array, i: number, maxDepth: number): number {
  const c = b[i];
  if (c === QUOTE) return skipString(b, i);
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    while (i < b.length) {
      const d = b[i]!;
      if (d === QUOTE) {
        i = skipString(b, i);
        if (i < 0) return -1;
        continue;
      }
      if (d === LBRACE || d === LBRACKET) {
        if (++depth > maxDepth) return -2;
      } else if (d === RBRACE || d === RBRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // A number, true, false or null.
  while (i < b.length) {
    const d = b[i]!;
    if (d === COMMA || d === RBRACE || d === RBRACKET || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) return i;
    i++;
  }
  return i;
}

function isBatchKey(b: Uint8Array, start: number, end: number): boolean {
  if (end - start !== BATCH_KEY.length) return false;
  for (let k = 0; k < BATCH_KEY.length; k++) if (b[start + k] !== BATCH_KEY[k]) return false;
  return true;
}

/**
 * Returns [start, end) byte ranges of the elements of the top-level "batch" array (the last one,
 * as JSON.parse keeps the last of duplicate keys), or undefined when the body is not shaped so, or
 * TOO_DEEP when a value nests deeper than `maxDepth` levels counted from the body's top.
 */
export function batchElementRanges(b: Uint8Array, maxDepth = Infinity): Array<[number, number]> | typeof TOO_DEEP | undefined {
  let i = skipWs(b, 0);
  if (b[i] !== LBRACE) return undefined;
  i = skipWs(b, i + 1);
  let found: Array<[number, number]> | undefined;
  if (b[i] === RBRACE) return undefined;
  while (i < b.length) {
    if (b[i] !== QUOTE) return undefined;
    const keyStart = i;
    i = skipString(b, i);
    if (i < 0) return undefined;
    const keyEnd = i;
    // An escape inside a key could spell "batch" another way: let the caller fall back.
    for (let k = keyStart; k < keyEnd; k++) if (b[k] === BACKSLASH) return undefined;
    i = skipWs(b, i);
    if (b[i] !== COLON) return undefined;
    i = skipWs(b, i + 1);
    if (isBatchKey(b, keyStart, keyEnd)) {
      if (b[i] !== LBRACKET) return undefined;
      const ranges: Array<[number, number]> = [];
      i = skipWs(b, i + 1);
      if (b[i] === RBRACKET) i++;
      else {
        while (i < b.length) {
          const start = i;
          i = skipValue(b, i, maxDepth - 2);
          if (i === -2) return TOO_DEEP;
          if (i < 0) return undefined;
          ranges.push([start, i]);
          i = skipWs(b, i);
          if (b[i] === COMMA) {
            i = skipWs(b, i + 1);
            continue;
          }
          if (b[i] === RBRACKET) {
            i++;
            break;
          }
          return undefined;
        }
      }
      found = ranges;
    } else {
      i = skipValue(b, i, maxDepth - 1);
      if (i === -2) return TOO_DEEP;
      if (i < 0) return undefined;
    }
    i = skipWs(b, i);
    if (b[i] === COMMA) {
      i = skipWs(b, i + 1);
      continue;
    }
    if (b[i] === RBRACE) return found;
    return undefined;
  }
  return undefined;
}
