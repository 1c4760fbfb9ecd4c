/**
 * Now: the shop this minute and today, refreshed every 2 s. All from the analytics API:
 *  - minute buckets of the last 30 minutes (events, bot_events, visitors): events per second,
 *    visitors per minute (the sparkline), and the events chart;
 *  - one bucket over the last 5 minutes (`granularity=all`): distinct visitors in the last 5 minutes;
 *  - hour buckets of today in the shop's time zone: orders, revenue, sessions (split by currency,
 *    as the API does when money is asked). Orders and sessions add up over the currencies (a
 *    session counts under the currency of its first event), so conversion is Σ orders / Σ sessions;
 *    revenue and AOV are the shop's currency's, other currencies are listed apart.
 */
import { PALETTE, Sparkline, TimeChart } from '../chart.ts';
import { h, setText } from '../dom.ts';
import { bucketLabel, count, decimal, money, moneyShort, percent } from '../format.ts';
import { addDays, bucketStarts, localDate } from '../time.ts';
import type { MetricsResponse, SeriesRow } from '../types.ts';
import { header, type View, type ViewContext, type ViewSpec } from '../view.ts';

interface Kpi {
  el: HTMLElement;
  value: HTMLElement;
  note: HTMLElement;
  spark: Sparkline;
}

function kpi(id: string, label: string, color: string, dots = false): Kpi {
  const value = h('p', { class: 'value', id: `kpi-${id}-value`, 'aria-describedby': `kpi-${id}-note` }, '–');
  const note = h('p', { class: 'note', id: `kpi-${id}-note` }, '');
  const spark = new Sparkline(color, label, dots);
  const el = h('article', { class: 'kpi card', 'data-kpi': id, 'aria-labelledby': `kpi-${id}-label` }, h('h3', { id: `kpi-${id}-label` }, label), value, note, spark.el);
  return { el, value, note, spark };
}

function setValue(k: Kpi, text: string, raw: number | null, extra: Record<string, string> = {}): void {
  setText(k.value, text);
  k.value.dataset['value'] = raw === null ? '' : String(raw);
  for (const [a, v] of Object.entries(extra)) k.value.dataset[a] = v;
}

/** Values per bucket start (ms) of one metric, summed over the rows' groups (or only those that pass `where`). */
function byBucket(res: MetricsResponse, metric: keyof SeriesRow, where: (r: SeriesRow) => boolean = () => true): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of res.series) {
    const v = r[metric];
    if (typeof v !== 'number' || !where(r)) continue;
    const t = Date.parse(r.bucket);
    out.set(t, (out.get(t) ?? 0) + v);
  }
  return out;
}

const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

export const nowView: ViewSpec = {
  id: 'now',
  title: 'Now',
  create(ctx: ViewContext): View {
    const { api, merchant } = ctx;
    const tz = merchant.timezone;
    const cur = merchant.currency;
    const k = {
      rate: kpi('events-rate', 'Events / second', PALETTE[0]!),
      visitors: kpi('visitors', 'Visitors, last 5 min', PALETTE[1]!),
      orders: kpi('orders', 'Orders today', PALETTE[2]!),
      revenue: kpi('revenue', 'Revenue today', PALETTE[4]!),
      conversion: kpi('conversion', 'Conversion today', PALETTE[3]!, true),
      aov: kpi('aov', 'Avg. order today', PALETTE[5]!, true),
    };
    const sub = h('p', { class: 'sub' }, 'Live from the analytics API, every 2 seconds.');
    const events = new TimeChart({ label: 'Events per minute, last 30 minutes', timeZone: tz, height: 220, format: (v) => count(v), legendLive: false });
    const today = new TimeChart({ label: 'Revenue and orders per hour, today', timeZone: tz, height: 220, format: (v) => moneyShort(v, cur), formatRight: (v) => count(v), legendLive: false });
    const section = h(
      'section',
      { class: 'view', 'aria-labelledby': 'now-title', id: 'now' },
      header('now-title', 'Now', sub),
      h('div', { class: 'kpis' }, ...Object.values(k).map((x) => x.el)),
      h(
        'div',
        { class: 'grid2' },
        h('div', { class: 'card' }, h('h3', {}, 'Last 30 minutes'), h('p', { class: 'note' }, 'Human and bot events per minute'), events.el),
        h('div', { class: 'card' }, h('h3', {}, 'Today by hour'), h('p', { class: 'note' }, `Revenue (${cur}, left) and orders (right), ${tz}`), today.el),
      ),
    );
    let first = true;

    async function refresh(): Promise<void> {
      const now = Date.now();
      const day = localDate(now, tz);
      const range = { from: day, to: addDays(day, 1) };
      const [minutes, money_, five] = await Promise.all([
        api.metrics({ granularity: 'minute', metrics: ['events', 'bot_events', 'visitors'], from: new Date(now - 30 * 60_000).toISOString(), to: new Date(now).toISOString() }),
        api.metrics({ granularity: 'hour', metrics: ['orders', 'revenue', 'sessions'], ...range }),
        api.metrics({ granularity: 'all', metrics: ['visitors'], from: new Date(now - 5 * 60_000).toISOString(), to: new Date(now).toISOString() }),
      ]);
      section.dataset['from'] = range.from;
      section.dataset['to'] = range.to;
      section.dataset['timezone'] = tz;
      setText(sub, `Live from the analytics API, every 2 seconds · today is ${day} in ${tz}.`);

      // Minutes: the last bucket is the current, partial minute.
      const mins = bucketStarts(minutes.from, minutes.to, 'minute', tz);
      const ev = byBucket(minutes, 'events');
      const bots = byBucket(minutes, 'bot_events');
      const vis = byBucket(minutes, 'visitors');
      const last = mins[mins.length - 1] ?? now;
      const prev = last - 60_000;
      const elapsed = Math.min(60, Math.max(1, (now - last) / 1000));
      const rate = ((ev.get(last) ?? 0) + (ev.get(prev) ?? 0)) / (60 + elapsed);
      setValue(k.rate, decimal(rate, 1), Math.round(rate * 100) / 100);
      setText(k.rate.note, `human events, ${count((ev.get(last) ?? 0) + (ev.get(prev) ?? 0))} in the last ${Math.round(60 + elapsed)} s`);
      const perSecond = mins.map((t) => (ev.get(t) ?? 0) / (t === last ? elapsed : 60));
      k.rate.spark.set(mins, perSecond, `Human events per second, per minute over the last 30 minutes; now ${decimal(rate, 1)}`);
      // Distinct visitors over the last 5 minutes: the API merges the minutes' sketches (granularity
      // all); the sparkline shows distinct visitors per minute.
      const visitors5 = five.series[0]?.visitors ?? 0;
      const visitorsNow = vis.get(last) ?? 0;
      setValue(k.visitors, count(visitors5), visitors5);
      setText(k.visitors.note, `distinct, since ${bucketLabel(Date.parse(five.from), tz, 'minute')}; ${count(visitorsNow)} this minute`);
      k.visitors.spark.set(mins, mins.map((t) => vis.get(t) ?? 0), `Distinct visitors per minute over the last 30 minutes; ${count(visitors5)} in the last 5 minutes, ${count(visitorsNow)} this minute`);
      events.set(
        mins,
        [
          { label: 'Human events', color: PALETTE[0]!, fill: true },
          { label: 'Bot events', color: PALETTE[6]!, dash: true },
        ],
        [mins.map((t) => ev.get(t) ?? 0), mins.map((t) => bots.get(t) ?? 0)],
        `Events per minute over the last 30 minutes: ${count(sum(ev))} human and ${count(sum(bots))} bot events.`,
      );

      // Today, by hour, in the shop's time zone.
      const hours = bucketStarts(money_.from, money_.to, 'hour', tz).filter((t) => t <= now);
      const inCur = (r: SeriesRow) => (r.group['currency'] ?? cur) === cur;
      const orders = byBucket(money_, 'orders');
      const ordersCur = byBucket(money_, 'orders', inCur);
      const revenue = byBucket(money_, 'revenue', inCur);
      const sessions = byBucket(money_, 'sessions');
      const totalOrders = sum(orders);
      const totalRevenue = sum(revenue);
      const totalSessions = sum(sessions);
      const others = new Map<string, number>();
      for (const r of money_.series) {
        const c = r.group['currency'] ?? cur;
        if (c !== cur && typeof r.revenue === 'number') others.set(c, (others.get(c) ?? 0) + r.revenue);
      }
      const sinceMidnight = `since midnight, ${tz}`;
      setValue(k.orders, count(totalOrders), totalOrders);
      setText(k.orders.note, sinceMidnight);
      k.orders.spark.set(hours, hours.map((t) => orders.get(t) ?? 0), `Orders per hour today: ${count(totalOrders)} in all`);
      setValue(k.revenue, money(totalRevenue, cur), totalRevenue, { currency: cur });
      setText(
        k.revenue.note,
        others.size === 0 ? sinceMidnight : `${sinceMidnight}; also ${[...others].map(([c, v]) => money(v, c)).join(', ')} in other currencies`,
      );
      k.revenue.spark.set(hours, hours.map((t) => revenue.get(t) ?? 0), `Revenue per hour today: ${money(totalRevenue, cur)} in all`);
      const conversion = totalSessions === 0 ? null : totalOrders / totalSessions;
      setValue(k.conversion, percent(conversion), conversion);
      setText(k.conversion.note, `${count(totalOrders)} orders / ${count(totalSessions)} sessions`);
      k.conversion.spark.set(
        hours,
        hours.map((t) => {
          const s = sessions.get(t) ?? 0;
          return s === 0 ? null : (orders.get(t) ?? 0) / s;
        }),
        `Conversion rate per hour today; ${percent(conversion)} for the day`,
      );
      const ordersInCur = sum(ordersCur);
      const aov = ordersInCur === 0 ? null : Math.round(totalRevenue / ordersInCur);
      setValue(k.aov, aov === null ? '–' : money(aov, cur), aov, { currency: cur });
      setText(k.aov.note, `revenue / orders in ${cur}`);
      k.aov.spark.set(
        hours,
        hours.map((t) => {
          const o = ordersCur.get(t) ?? 0;
          return o === 0 ? null : (revenue.get(t) ?? 0) / o;
        }),
        `Average order value per hour today; ${aov === null ? 'no orders yet' : money(aov, cur)} for the day`,
      );
      today.set(
        hours,
        [
          { label: `Revenue (${cur})`, color: PALETTE[4]!, fill: true },
          { label: 'Orders', color: PALETTE[2]!, right: true },
        ],
        [hours.map((t) => revenue.get(t) ?? 0), hours.map((t) => orders.get(t) ?? 0)],
        `Today by hour: ${money(totalRevenue, cur)} revenue from ${count(totalOrders)} orders.`,
      );
      if (first) {
        first = false;
        section.dataset['live'] = '1';
        performance.mark('shopstream:first-live');
      }
    }

    return {
      el: section,
      refresh,
      intervalMs: 2_000,
      destroy() {
        for (const x of Object.values(k)) x.spark.destroy();
        events.destroy();
        today.destroy();
      },
    };
  },
};
