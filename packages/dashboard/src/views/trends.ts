/**
 * Trends: any metric of the analytics API over a chosen range and granularity, split by device,
 * country or traffic source. Ratios (conversion rate, AOV, bot share) are asked with the counts
 * they are made of, so the range's total is exact (orders / sessions, not an average of ratios).
 */
import { TimeChart } from '../chart.ts';
import { h, fill, select, table } from '../dom.ts';
import { bucketLabel, count, money, moneyShort, percent } from '../format.ts';
import { RANGES, bucketStarts, rangeById } from '../time.ts';
import { METRICS, type Dimension, type Granularity, type Metric } from '../types.ts';
import { header, type View, type ViewContext, type ViewSpec } from '../view.ts';

export const METRIC_LABELS: Record<Metric, string> = {
  events: 'Events (human)',
  page_viewed: 'Page views',
  product_viewed: 'Product views',
  product_added: 'Add-to-carts',
  checkout_started: 'Checkouts started',
  orders: 'Orders',
  revenue: 'Revenue',
  items: 'Items sold',
  sessions: 'Sessions',
  visitors: 'Visitors',
  conversion_rate: 'Conversion rate',
  aov: 'Average order value',
  bot_events: 'Bot events',
  bot_share: 'Bot share',
};

const SPLITS: Array<[string, string]> = [
  ['', 'Nothing'],
  ['device_type', 'Device'],
  ['country', 'Country'],
  ['traffic_source', 'Traffic source'],
];

/** A ratio and the two counts it divides. */
const RATIOS: Partial<Record<Metric, { num: Metric; den: Metric | Metric[] }>> = {
  conversion_rate: { num: 'orders', den: 'sessions' },
  aov: { num: 'revenue', den: 'orders' },
  bot_share: { num: 'bot_events', den: ['bot_events', 'events'] },
};
const MONEY = new Set<Metric>(['revenue', 'aov']);
const MAX_SERIES = 8;

interface Group {
  key: string;
  label: string;
  currency: string;
  /** Per bucket: the metric, and the ratio's parts. */
  values: Map<number, number | null>;
  num: Map<number, number>;
  den: Map<number, number>;
  weight: number;
}

export const trendsView: ViewSpec = {
  id: 'trends',
  title: 'Trends',
  create(ctx: ViewContext): View {
    const { api, merchant, params } = ctx;
    const tz = merchant.timezone;
    const metric = (METRICS as readonly string[]).includes(params.get('metric') ?? '') ? (params.get('metric') as Metric) : 'orders';
    const range = rangeById(params.get('range') ?? undefined, '24h');
    const granularity = (range.granularities as string[]).includes(params.get('granularity') ?? '') ? (params.get('granularity') as Granularity) : range.granularities[0]!;
    const split = (SPLITS.map((s) => s[0]) as string[]).includes(params.get('split') ?? '') ? (params.get('split') as Dimension | '') : '';

    const controls = h(
      'form',
      { class: 'controls', 'aria-label': 'Chart settings', onsubmit: (e: Event) => e.preventDefault() },
      select('trends-metric', 'Metric', METRICS.map((m) => [m, METRIC_LABELS[m]]), metric, (v) => ctx.setParams({ metric: v })),
      select('trends-range', 'Range', RANGES.map((r) => [r.id, r.label]), range.id, (v) => ctx.setParams({ range: v, granularity: rangeById(v, '24h').granularities[0]! })),
      select('trends-granularity', 'Per', range.granularities.map((g) => [g, g]), granularity, (v) => ctx.setParams({ granularity: v })),
      select('trends-split', 'Split by', SPLITS, split, (v) => ctx.setParams({ split: v })),
    );
    const summary = h('p', { class: 'summary', id: 'trends-summary' }, 'Loading…');
    const chart = new TimeChart({ label: METRIC_LABELS[metric], timeZone: tz, height: 320, format: (v) => (MONEY.has(metric) ? moneyShort(v, merchant.currency) : fmt(v, merchant.currency)) });
    const note = h('p', { class: 'note' });
    const data = h('details', { class: 'data' }, h('summary', {}, 'Data table'));
    const section = h(
      'section',
      { class: 'view', 'aria-labelledby': 'trends-title', id: 'trends' },
      header('trends-title', 'Trends', `${METRIC_LABELS[metric]} per ${granularity}, ${range.label.toLowerCase()}${split ? `, by ${SPLITS.find((s) => s[0] === split)![1].toLowerCase()}` : ''} (${tz})`, controls),
      h('div', { class: 'card' }, summary, chart.el, note, data),
    );

    function fmt(v: number, currency: string): string {
      if (MONEY.has(metric)) return money(v, currency);
      if (metric === 'conversion_rate' || metric === 'bot_share') return percent(v);
      return count(v);
    }

    async function refresh(): Promise<void> {
      const r = range.resolve(Date.now(), tz);
      const ratio = RATIOS[metric];
      const asked = new Set<Metric>([metric]);
      if (ratio) for (const m of [ratio.num, ...[ratio.den].flat()]) asked.add(m);
      const res = await api.metrics({ granularity, metrics: [...asked], from: r.from, to: r.to, groupBy: split ? [split] : [] });
      const buckets = bucketStarts(res.from, res.to, granularity, tz);
      const groups = new Map<string, Group>();
      for (const row of res.series) {
        const dim = split ? row.group[split] ?? '' : '';
        const currency = row.group['currency'] ?? merchant.currency;
        const key = JSON.stringify([dim, MONEY.has(metric) ? currency : '']);
        let g = groups.get(key);
        if (g === undefined) {
          g = { key, label: split ? (dim === '' ? '(unknown)' : dim) : METRIC_LABELS[metric], currency, values: new Map(), num: new Map(), den: new Map(), weight: 0 };
          groups.set(key, g);
        }
        const t = Date.parse(row.bucket);
        const v = row[metric];
        g.values.set(t, typeof v === 'number' ? v : null);
        if (ratio) {
          const num = (row[ratio.num] as number | null | undefined) ?? 0;
          const den = [ratio.den].flat().reduce((a, m) => a + ((row[m] as number | null | undefined) ?? 0), 0);
          g.num.set(t, (g.num.get(t) ?? 0) + num);
          g.den.set(t, (g.den.get(t) ?? 0) + den);
          g.weight += den;
        } else {
          g.weight += typeof v === 'number' ? v : 0;
        }
      }
      const currencies = new Set([...groups.values()].map((g) => g.currency));
      if (MONEY.has(metric) && currencies.size > 1) for (const g of groups.values()) g.label = `${g.label} (${g.currency})`;
      const ranked = [...groups.values()].sort((a, b) => b.weight - a.weight);
      const shown = ranked.slice(0, MAX_SERIES);
      const rest = ranked.slice(MAX_SERIES);
      // The smaller groups as one series: counts add up; ratios are recomputed from their parts.
      if (rest.length > 0 && !(MONEY.has(metric) && currencies.size > 1)) {
        const other: Group = { key: 'other', label: `Other (${rest.length})`, currency: merchant.currency, values: new Map(), num: new Map(), den: new Map(), weight: 0 };
        for (const g of rest) {
          for (const t of buckets) {
            if (ratio) {
              other.num.set(t, (other.num.get(t) ?? 0) + (g.num.get(t) ?? 0));
              other.den.set(t, (other.den.get(t) ?? 0) + (g.den.get(t) ?? 0));
            } else {
              other.values.set(t, (other.values.get(t) ?? 0) + (g.values.get(t) ?? 0));
            }
          }
        }
        if (ratio) for (const t of buckets) other.values.set(t, (other.den.get(t) ?? 0) === 0 ? null : (other.num.get(t) ?? 0) / other.den.get(t)!);
        shown.push(other);
      }
      const empty = ratio ? null : 0;
      const values = shown.map((g) => buckets.map((t) => (g.values.has(t) ? g.values.get(t)! : empty)));
      const currency = shown[0]?.currency ?? merchant.currency;

      // The range's figure: a sum for counts, the ratio of sums for ratios, the peak for visitors (a visitor counts once per bucket).
      const total = (g: Group): number | null => {
        if (ratio) {
          const n = [...g.num.values()].reduce((a, b) => a + b, 0);
          const d = [...g.den.values()].reduce((a, b) => a + b, 0);
          return d === 0 ? null : n / d;
        }
        const vs = [...g.values.values()].filter((v): v is number => v !== null);
        return metric === 'visitors' ? Math.max(0, ...vs) : vs.reduce((a, b) => a + b, 0);
      };
      const all: Group = { key: 'all', label: 'all', currency, values: new Map(), num: new Map(), den: new Map(), weight: 0 };
      for (const g of ranked.filter((x) => x.currency === currency)) {
        for (const [t, v] of g.values) if (v !== null) all.values.set(t, (all.values.get(t) ?? 0) + v);
        for (const [t, v] of g.num) all.num.set(t, (all.num.get(t) ?? 0) + v);
        for (const [t, v] of g.den) all.den.set(t, (all.den.get(t) ?? 0) + v);
      }
      const whole = total(all);
      const what = metric === 'visitors' ? `Peak ${METRIC_LABELS[metric].toLowerCase()} per ${granularity}` : ratio ? METRIC_LABELS[metric] : `Total ${METRIC_LABELS[metric].toLowerCase()}`;
      const wholeText = whole === null ? '–' : fmt(whole, currency);
      let peak: { t: number; v: number } | undefined;
      if (!ratio) {
        for (const t of buckets) {
          const v = all.values.get(t) ?? 0;
          if (peak === undefined || v > peak.v) peak = { t, v };
        }
      }
      fill(summary, h('strong', {}, `${what}: `), h('span', { 'data-value': whole === null ? '' : String(whole), id: 'trends-total' }, wholeText), peak && peak.v > 0 ? ` · busiest ${granularity} ${bucketLabel(peak.t, tz, granularity)} (${fmt(peak.v, currency)})` : '');
      const groupText = split
        ? ` By ${SPLITS.find((s) => s[0] === split)![1].toLowerCase()}: ${shown
            .slice(0, 4)
            .map((g) => `${g.label} ${(() => { const x = total(g); return x === null ? '–' : fmt(x, g.currency); })()}`)
            .join(', ')}${shown.length > 4 ? ', …' : ''}.`
        : '';
      chart.set(
        buckets,
        shown.map((g, i) => ({ label: g.label, fill: shown.length === 1 && i === 0 })),
        values,
        `${METRIC_LABELS[metric]} per ${granularity}, ${range.label.toLowerCase()}: ${what.toLowerCase()} ${wholeText}.${groupText}`,
        granularity === 'day' && shown.length <= 2,
      );
      fill(
        note,
        res.series.length === 0 ? 'No data in this range yet.' : '',
        rest.length > 0 && MONEY.has(metric) && currencies.size > 1 ? `${rest.length} smaller groups are not shown (amounts in different currencies do not add up).` : '',
        MONEY.has(metric) ? ` Amounts in ${[...currencies].join(', ') || merchant.currency}.` : '',
        metric === 'visitors' ? ' Visitors are distinct per bucket (HyperLogLog, ≈1.6 % error beyond 100).' : '',
      );
      const rows = buckets
        .map((t, i) => ({ t, i }))
        .filter(({ i }) => values.some((vs) => vs[i] !== null && vs[i] !== 0))
        .map(({ t, i }) => [
          bucketLabel(t, tz, granularity),
          ...shown.map((g, j) => {
            const v = values[j]![i];
            return v === null || v === undefined ? '–' : fmt(v, g.currency);
          }),
        ]);
      fill(data, h('summary', {}, `Data table (${rows.length} ${granularity}s with data)`), table(`${METRIC_LABELS[metric]} per ${granularity}`, [granularity, ...shown.map((g) => g.label)], rows, [false, ...shown.map(() => true)]));
    }

    return { el: section, refresh, intervalMs: range.id === '1h' || range.id === '6h' ? 5_000 : 15_000, destroy: () => chart.destroy() };
  },
};
