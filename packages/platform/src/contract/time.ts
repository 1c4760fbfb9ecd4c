/**
 * Client timestamps: ISO-8601 / RFC 3339 date-times with an offset or `Z`, or epoch milliseconds.
 *
 * Accepted text: `YYYY-MM-DDTHH:MM[:SS[.fraction]](Z|±HH:MM|±HHMM|±HH)`; `t`, `z` and a space
 * instead of `T` are accepted as RFC 3339 allows. Fractions are cut to milliseconds (not rounded, as
 * `Date` does). A date-time without an offset is refused: it would be in the sender's local time,
 * which the collector cannot know. Parsing is one pass over the characters (no regular expression,
 * no `Date.parse` and its engine-specific leniency), and checks every field's range, so
 * "2024-02-30T00:00:00Z" is refused instead of becoming March 1st.
 */

/** The largest |epoch ms| a JavaScript Date can hold. */
const MAX_EPOCH_MS = 8.64e15;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

function digit(s: string, i: number): number {
  const c = s.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : -1;
}

/** Two digits at i as a number, or -1. */
function two(s: string, i: number): number {
  const a = digit(s, i);
  const b = digit(s, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
}

/**
 * Epoch milliseconds of an ISO-8601 date-time with offset, or NaN when `s` is not one (or names a
 * day or time that does not exist).
 */
export function parseIsoTimestamp(s: string): number {
  const len = s.length;
  if (len < 17 || len > 64) return NaN; // shortest: 2024-01-01T00:00Z
  const y1 = two(s, 0);
  const y2 = two(s, 2);
  if (y1 < 0 || y2 < 0 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return NaN;
  const year = y1 * 100 + y2;
  const month = two(s, 5);
  const day = two(s, 8);
  if (month < 1 || month > 12 || day < 1) return NaN;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!)) return NaN;
  const sep = s.charCodeAt(10);
  if (sep !== 84 /* T */ && sep !== 116 /* t */ && sep !== 32 /* space */) return NaN;
  const hour = two(s, 11);
  const minute = two(s, 14);
  if (hour < 0 || hour > 23 || s.charCodeAt(13) !== 58 || minute < 0 || minute > 59) return NaN;
  let i = 16;
  let second = 0;
  let ms = 0;
  if (s.charCodeAt(i) === 58 /* : */) {
    second = two(s, i + 1);
    if (second < 0 || second > 59) return NaN;
    i += 3;
    if (s.charCodeAt(i) === 46 /* . */ || s.charCodeAt(i) === 44 /* , (ISO allows it) */) {
      i++;
      const start = i;
      let d: number;
      while ((d = digit(s, i)) >= 0) {
        const n = i - start;
        if (n < 3) ms += d * (n === 0 ? 100 : n === 1 ? 10 : 1);
        i++;
      }
      if (i === start) return NaN;
    }
  }
  // The offset.
  let offsetMinutes: number;
  const z = s.charCodeAt(i);
  if (z === 90 /* Z */ || z === 122 /* z */) {
    offsetMinutes = 0;
    i++;
  } else if (z === 43 /* + */ || z === 45 /* - */) {
    const oh = two(s, i + 1);
    if (oh < 0 || oh > 23) return NaN;
    i += 3;
    let om = 0;
    if (i < len) {
      if (s.charCodeAt(i) === 58) i++;
      om = two(s, i);
      if (om < 0 || om > 59) return NaN;
      i += 2;
    }
    offsetMinutes = (z === 45 ? -1 : 1) * (oh * 60 + om);
  } else {
    return NaN;
  }
  if (i !== len) return NaN;
  let t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (year < 100) {
    // Date.UTC maps years 0–99 to 1900–1999.
    const d = new Date(t);
    d.setUTCFullYear(year);
    t = d.getTime();
  }
  return t - offsetMinutes * 60_000;
}

/**
 * A client timestamp as epoch ms: an ISO-8601 string (see above), a number of epoch milliseconds
 * (fractions dropped), or a Date. NaN when it is none of these.
 */
export function parseTimestamp(v: unknown): number {
  if (typeof v === 'string') return parseIsoTimestamp(v);
  if (typeof v === 'number') {
    return Number.isFinite(v) && Math.abs(v) <= MAX_EPOCH_MS ? Math.floor(v) : NaN;
  }
  if (v instanceof Date) return v.getTime();
  return NaN;
}
