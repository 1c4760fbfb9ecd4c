/**
 * Queries over the cubes in a merchant's time zone: hour and day buckets are made of quarter-hour
 * rows (minute buckets of minute rows), shifted by the zone's UTC offset. A range that contains a
 * daylight-saving change is cut into segments of constant offset; rows of one local bucket from two
 * segments are added together (a local day with a change has 23 or 25 hours).
 */
import { HyperLogLog } from './hll.ts';
import { METRICS, type Metric } from './metrics.ts';
import { MINUTE_MS, QUARTER_MS, type Grain } from './model.ts';
import type { CubeStore, Dimension, EventSliceRow, SliceQuery } from './store.ts';

/** `all`: one bucket for the whole range (e.g. distinct visitors of the last 5 minutes); minute slots up to 2 days, quarter hours beyond. */
export type Granularity = 'minute' | 'hour' | 'day' | 'all';

/** The longest range read from minute slots by `all` (minute slots are kept 14 days; quarter hours are coarser). */
export const ALL_MINUTE_RANGE_MS = 2 * 86_400_000;

export { METRICS, type Metric };

/** Metrics that count events of one name: the event_type dimension, fixed. */
const EVENT_OF: Partial<Record<Metric, string>> = {
  page_viewed: 'Page Viewed',
  product_viewed: 'Product Viewed',
  product_added: 'Product Added',
  checkout_started: 'Checkout Started',
};

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The UTC offset of a time zone at an instant, in minutes (east positive). */
export function offsetMinutes(timeZone: string, ms: number): number {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timeZone, f);
  }
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(new Date(ms))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const local = Date.UTC(parts['year']!, parts['month']! - 1, parts['day']!, parts['hour']!, parts['minute']!, parts['second']!);
  return Math.round((local - (ms - (ms % 1000))) / MINUTE_MS);
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Cuts [from, to) (ms, on quarter-hour boundaries) into spans of one UTC offset. */
export function offsetSegments(timeZone: string, from: number, to: number): Array<{ from: number; to: number; offsetMin: number }> {
  const out: Array<{ from: number; to: number; offsetMin: number }> = [];
  let start = from;
  let off = offsetMinutes(timeZone, start);
  const step = 6 * 3_600_000;
  for (let t = start; t < to; ) {
    const next = Math.min(to, t + step);
    const o = offsetMinutes(timeZone, next - 1);
    if (o !== off) {
      // Find the first quarter hour with the new offset.
      let lo = Math.floor(t / QUARTER_MS);
      let hi = Math.ceil((next - 1) / QUARTER_MS);
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (offsetMinutes(timeZone, mid * QUARTER_MS) === off) lo = mid + 1;
        else hi = mid;
      }
      const change = lo * QUARTER_MS;
      out.push({ from: start, to: change, offsetMin: off });
      start = change;
      off = offsetMinutes(timeZone, change);
      t = change;
      continue;
    }
    t = next;
  }
  if (start < to) out.push({ from: start, to, offsetMin: off });
  return out;
}

/** ISO-8601 of an instant in local time, with the given UTC offset (minutes). */
function isoAt(utcMs: number, offsetMin: number): string {
  const sign = offsetMin >= 0 ? '+' : '-';
  const a = Math.abs(offsetMin);
  return `${new Date(utcMs + offsetMin * MINUTE_MS).toISOString().slice(0, 19)}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

/** The instant of a local wall-clock time (epoch ms as if UTC) in a zone; in a gap, the time after it; in an overlap, the first. */
export function localToUtc(localMs: number, timeZone: string): number {
  const first = localMs - offsetMinutes(timeZone, localMs - 86_400_000) * MINUTE_MS;
  const second = localMs - offsetMinutes(timeZone, localMs + 86_400_000) * MINUTE_MS;
  for (const utc of [Math.min(first, second), Math.max(first, second)]) {
    if (utc + offsetMinutes(timeZone, utc) * MINUTE_MS === localMs) return utc;
  }
  return Math.max(first, second);
}

/** ISO-8601 of a local bucket start, with the zone's offset at that instant. */
function isoLocal(localMs: number, timeZone: string): string {
  // The instant whose local time is localMs: try the offsets around it.
  let utc = localMs - offsetMinutes(timeZone, localMs) * MINUTE_MS;
  const off = offsetMinutes(timeZone, utc);
  utc = localMs - off * MINUTE_MS;
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  const hhmm = `${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
  return `${new Date(localMs).toISOString().slice(0, 19)}${sign}${hhmm}`;
}

export interface MetricsRequest {
  merchant: string;
  timeZone: string;
  currency: string;
  from: number;
  to: number;
  granularity: Granularity;
  metrics: readonly Metric[];
  groupBy: readonly Dimension[];
  filters: ReadonlyArray<{ dimension: Dimension; value: string }>;
}

export type SeriesRow = { bucket: string; group: Record<string, string> } & Partial<Record<Metric, number | null>>;

/** Aligns a range to the grain, and builds the slice query of each daylight-saving segment. */
function sliceQuery(r: MetricsRequest, groupBy: readonly Dimension[], filters: MetricsRequest['filters']): SliceQuery {
  const grain: Grain = r.granularity === 'minute' || (r.granularity === 'all' && r.to - r.from <= ALL_MINUTE_RANGE_MS) ? 'm' : 'q';
  const unit = grain === 'm' ? MINUTE_MS : QUARTER_MS;
  const size = r.granularity === 'minute' || r.granularity === 'all' ? 1 : r.granularity === 'hour' ? 4 : 96;
  const from = Math.floor(r.from / unit) * unit;
  const to = Math.ceil(r.to / unit) * unit;
  const segments = offsetSegments(r.timeZone, from, to).map((s) => ({ from: s.from / unit, to: s.to / unit, offset: (s.offsetMin * MINUTE_MS) / unit }));
  return { merchant: r.merchant, grain, from: from / unit, to: to / unit, segments, size, groupBy, filters, currency: r.currency };
}

/** The metrics series: one row per local bucket and group where an asked metric is not zero. */
export async function metricsSeries(store: CubeStore, r: MetricsRequest): Promise<SeriesRow[]> {
  const money = r.metrics.includes('revenue') || r.metrics.includes('aov');
  const groupBy = money && !r.groupBy.includes('currency') ? [...r.groupBy, 'currency' as const] : r.groupBy;
  const needsEvents = r.metrics.some((m) => m !== 'visitors');
  const byType = r.metrics.some((m) => EVENT_OF[m] !== undefined) && !groupBy.includes('event_type');
  const eventGroup = byType ? [...groupBy, 'event_type' as const] : groupBy;
  const q = sliceQuery(r, eventGroup, r.filters);
  const unitMs = q.grain === 'm' ? MINUTE_MS : QUARTER_MS;
  // A bucket's identity and label. Days: the local day (a day with a daylight-saving change has
  // rows from two segments, and they add up). Minutes and hours: their UTC start, labelled with
  // their own segment's offset (the repeated local hour of an autumn change is two buckets).
  // `all`: every slot is one bucket, labelled with the range's start.
  const day = r.granularity === 'day';
  const all = r.granularity === 'all';
  const identity = (b: number, offset: number) => (all ? 0 : day ? b : b * q.size - offset);
  const label = (b: number, offset: number) =>
    all ? new Date(q.from * unitMs).toISOString() : day ? isoLocal(b * q.size * unitMs, r.timeZone) : isoAt((b * q.size - offset) * unitMs, (offset * unitMs) / MINUTE_MS);
  const rows = new Map<string, { id: number; label: string; group: Record<string, string>; sums: EventSliceRow; types: Map<string, number>; sketch?: HyperLogLog }>();
  const rowOf = (b: number, offset: number, group: Record<string, string>) => {
    const id = identity(b, offset);
    const k = JSON.stringify([id, ...groupBy.map((d) => group[d] ?? '')]);
    let row = rows.get(k);
    if (row === undefined) {
      const g: Record<string, string> = {};
      for (const d of groupBy) g[d] = group[d] ?? '';
      rows.set(k, (row = { id, label: label(b, offset), group: g, sums: { bucket: b, offset, group: g, events: 0, sessions: 0, orders: 0, items: 0, revenue: 0, botEvents: 0 }, types: new Map() }));
    }
    return row;
  };
  if (needsEvents) {
    for (const s of await store.eventSlice(q)) {
      const row = rowOf(s.bucket, s.offset, s.group);
      const t = row.sums;
      t.events += s.events;
      t.sessions += s.sessions;
      t.orders += s.orders;
      t.items += s.items;
      t.revenue += s.revenue;
      t.botEvents += s.botEvents;
      const type = s.group['event_type'];
      if (type !== undefined) row.types.set(type, (row.types.get(type) ?? 0) + s.events);
    }
  }
  if (r.metrics.includes('visitors')) {
    const vq = sliceQuery(r, r.groupBy, r.filters);
    for (const s of await store.visitorSlice(vq)) {
      const row = rowOf(s.bucket, s.offset, money ? { ...s.group, currency: r.currency } : s.group);
      const h = HyperLogLog.deserialize(s.sketch);
      if (row.sketch === undefined) row.sketch = h;
      else row.sketch.merge(h);
    }
  }
  const out: SeriesRow[] = [];
  for (const row of [...rows.values()].sort((a, b) => a.id - b.id)) {
    const t = row.sums;
    const series: SeriesRow = { bucket: row.label, group: row.group };
    let any = false;
    for (const m of r.metrics) {
      const v = metricValue(m, t, row.types, row.sketch);
      series[m] = v;
      if (v !== null && v !== 0) any = true;
    }
    // Rows with data only for other metrics (e.g. bot events, when events were asked) are left out.
    if (any) out.push(series);
  }
  return out;
}

function metricValue(m: Metric, t: EventSliceRow, types: Map<string, number>, sketch: HyperLogLog | undefined): number | null {
  switch (m) {
    case 'events':
      return t.events;
    case 'orders':
      return t.orders;
    case 'revenue':
      return t.revenue;
    case 'items':
      return t.items;
    case 'sessions':
      return t.sessions;
    case 'visitors':
      return sketch === undefined ? 0 : sketch.estimate();
    case 'conversion_rate':
      return t.sessions === 0 ? null : t.orders / t.sessions;
    case 'aov':
      return t.orders === 0 ? null : t.revenue / t.orders;
    case 'bot_events':
      return t.botEvents;
    case 'bot_share':
      return t.events + t.botEvents === 0 ? null : t.botEvents / (t.events + t.botEvents);
    default: {
      const name = EVENT_OF[m]!;
      // Grouped by event_type by the caller: the row's own type; else the per-type sums.
      return types.size === 0 ? 0 : (types.get(name) ?? 0);
    }
  }
}
