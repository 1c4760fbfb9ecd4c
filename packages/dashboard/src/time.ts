/** Dates in the shop's time zone, and the ranges the views ask the API for. */
import type { Granularity } from './types.ts';

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** The shop's local date of an instant, `YYYY-MM-DD`. */
export function localDate(ms: number, timeZone: string): string {
  let f = dateFormats.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    dateFormats.set(timeZone, f);
  }
  const parts: Record<string, string> = {};
  for (const p of f.formatToParts(ms)) parts[p.type] = p.value;
  return `${parts['year']}-${parts['month']}-${parts['day']}`;
}

/** `YYYY-MM-DD` plus n days (calendar arithmetic; no time zone involved). */
export function addDays(date: string, n: number): string {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y!, m! - 1, d! + n)).toISOString().slice(0, 10);
}

export interface RangeChoice {
  id: string;
  label: string;
  /** The granularities that make sense for it (the first is the default). */
  granularities: Granularity[];
  /** `from` and `to` for the API: instants (`…Z`) or local dates of the shop. */
  resolve(now: number, timeZone: string): { from: string; to: string };
}

const iso = (ms: number) => new Date(ms).toISOString();

export const RANGES: RangeChoice[] = [
  { id: '1h', label: 'Last 60 minutes', granularities: ['minute'], resolve: (now) => ({ from: iso(now - 3_600_000), to: iso(now) }) },
  { id: '6h', label: 'Last 6 hours', granularities: ['minute', 'hour'], resolve: (now) => ({ from: iso(now - 6 * 3_600_000), to: iso(now) }) },
  { id: 'today', label: 'Today', granularities: ['hour', 'minute'], resolve: (now, tz) => ({ from: localDate(now, tz), to: addDays(localDate(now, tz), 1) }) },
  { id: '24h', label: 'Last 24 hours', granularities: ['hour', 'minute'], resolve: (now) => ({ from: iso(now - 86_400_000), to: iso(now) }) },
  { id: 'yesterday', label: 'Yesterday', granularities: ['hour', 'minute'], resolve: (now, tz) => ({ from: addDays(localDate(now, tz), -1), to: localDate(now, tz) }) },
  { id: '7d', label: 'Last 7 days', granularities: ['day', 'hour'], resolve: (now, tz) => ({ from: addDays(localDate(now, tz), -6), to: addDays(localDate(now, tz), 1) }) },
  { id: '30d', label: 'Last 30 days', granularities: ['day', 'hour'], resolve: (now, tz) => ({ from: addDays(localDate(now, tz), -29), to: addDays(localDate(now, tz), 1) }) },
  { id: '90d', label: 'Last 90 days', granularities: ['day', 'hour'], resolve: (now, tz) => ({ from: addDays(localDate(now, tz), -89), to: addDays(localDate(now, tz), 1) }) },
];

export function rangeById(id: string | undefined, fallback: string): RangeChoice {
  return RANGES.find((r) => r.id === id) ?? RANGES.find((r) => r.id === fallback)!;
}

/** Steps of a granularity between two instants (ms); day steps are local days (23–25 h), found by the API's labels. */
export function stepMs(granularity: Granularity): number {
  return granularity === 'minute' ? 60_000 : granularity === 'hour' ? 3_600_000 : 86_400_000;
}

/**
 * Every bucket start of [from, to): the API lists only buckets with data, charts need the others as
 * zeros. Minute and hour buckets are instants a fixed step apart (local hours start at the range's
 * local hour); days are local midnights, found by asking the zone.
 */
export function bucketStarts(fromIso: string, toIso: string, granularity: Granularity, timeZone: string): number[] {
  const from = Date.parse(fromIso);
  const to = Date.parse(toIso);
  const out: number[] = [];
  if (granularity === 'minute') {
    for (let t = Math.floor(from / 60_000) * 60_000; t < to; t += 60_000) out.push(t);
    return out;
  }
  if (granularity === 'hour') {
    // The local hour that contains `from`: the zone's offset may be a whole number of quarter hours.
    const offset = offsetMs(timeZone, from);
    const start = Math.floor((from + offset) / 3_600_000) * 3_600_000 - offset;
    for (let t = start; t < to; t += 3_600_000) out.push(t);
    return out;
  }
  let date = localDate(from, timeZone);
  for (let i = 0; i < 1000; i++) {
    const t = localMidnight(date, timeZone);
    if (t >= to) break;
    if (t + 86_400_000 > from) out.push(t);
    date = addDays(date, 1);
  }
  return out;
}

const offsetFormats = new Map<string, Intl.DateTimeFormat>();
/** The zone's offset from UTC at an instant, in ms (east positive). */
export function offsetMs(timeZone: string, ms: number): number {
  let f = offsetFormats.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    offsetFormats.set(timeZone, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(ms)) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const local = Date.UTC(p['year']!, p['month']! - 1, p['day']!, p['hour']!, p['minute']!, p['second']!);
  return local - (ms - (((ms % 1000) + 1000) % 1000));
}

/** The instant of a local date's midnight in a zone. */
export function localMidnight(date: string, timeZone: string): number {
  const [y, m, d] = date.split('-').map(Number);
  const wall = Date.UTC(y!, m! - 1, d!);
  let t = wall - offsetMs(timeZone, wall);
  t = wall - offsetMs(timeZone, t);
  return t;
}
