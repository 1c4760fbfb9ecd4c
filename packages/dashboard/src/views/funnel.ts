/**
 * Funnel: sessions that reached listing, product, cart, checkout and order, and the drop-off at each
 * step, from the analytics API's /funnel (sessions counted by when they started). The bars are drawn
 * inside the table, so the table is the chart.
 */
import { h, fill, select } from '../dom.ts';
import { count, percent } from '../format.ts';
import { rangeById } from '../time.ts';
import type { Dimension, Funnel, FunnelStep } from '../types.ts';
import { header, type View, type ViewContext, type ViewSpec } from '../view.ts';

const STEP_LABELS: Record<FunnelStep['step'], string> = {
  listing: 'Listing or search',
  product: 'Product page',
  cart: 'Cart',
  checkout: 'Checkout',
  order: 'Order',
};
const FUNNEL_RANGES: Array<[string, string]> = [
  ['today', 'Today'],
  ['yesterday', 'Yesterday'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['90d', 'Last 90 days'],
];
const SPLITS: Array<[string, string]> = [
  ['', 'Nothing'],
  ['device_type', 'Device'],
  ['country', 'Country'],
  ['traffic_source', 'Traffic source'],
  ['channel', 'Channel'],
];
const MAX_FUNNELS = 6;

function funnelTable(f: Funnel, title: string, id: string): HTMLElement {
  const top = Math.max(1, f.sessions, ...f.steps.map((s) => s.sessions));
  const rows = f.steps.map((s, i) => {
    const drop = s.fromPrevious === null || i === 0 ? null : 1 - s.fromPrevious;
    return h(
      'tr',
      { 'data-step': s.step },
      h('th', { scope: 'row' }, STEP_LABELS[s.step]),
      h('td', { class: 'bar-cell' }, h('span', { class: 'bar', style: `width:${((s.sessions / top) * 100).toFixed(1)}%`, 'aria-hidden': 'true' }), h('span', { class: 'num', 'data-value': String(s.sessions) }, count(s.sessions))),
      h('td', { class: 'num' }, percent(s.rate)),
      h('td', { class: 'num' }, i === 0 ? '–' : percent(s.fromPrevious)),
      h('td', { class: drop !== null && drop > 0.5 ? 'num bad' : 'num' }, drop === null ? '–' : `−${percent(drop)}`),
    );
  });
  const ordered = f.steps[f.steps.length - 1];
  return h(
    'div',
    { class: 'card funnel', id },
    h('table', {}, h('caption', {}, title, h('span', { class: 'muted' }, ` · ${count(f.sessions)} sessions started${ordered ? `, ${percent(ordered.rate)} ordered` : ''}`)),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Step'), h('th', { scope: 'col' }, 'Sessions'), h('th', { scope: 'col', class: 'num' }, 'Of sessions'), h('th', { scope: 'col', class: 'num' }, 'From previous'), h('th', { scope: 'col', class: 'num' }, 'Drop-off'))),
      h('tbody', {}, ...rows),
    ),
  );
}

export const funnelView: ViewSpec = {
  id: 'funnel',
  title: 'Funnel',
  create(ctx: ViewContext): View {
    const { api, merchant, params } = ctx;
    const rangeId = FUNNEL_RANGES.some(([id]) => id === params.get('range')) ? params.get('range')! : '7d';
    const range = rangeById(rangeId, '7d');
    const split = SPLITS.some(([v]) => v === params.get('split')) ? (params.get('split') as Dimension | '') : '';
    const controls = h(
      'form',
      { class: 'controls', 'aria-label': 'Funnel settings', onsubmit: (e: Event) => e.preventDefault() },
      select('funnel-range', 'Sessions started', FUNNEL_RANGES, rangeId, (v) => ctx.setParams({ range: v })),
      select('funnel-split', 'Split by', SPLITS, split, (v) => ctx.setParams({ split: v })),
    );
    const body = h('div', { class: 'funnels' }, h('p', { class: 'muted' }, 'Loading…'));
    const section = h(
      'section',
      { class: 'view', 'aria-labelledby': 'funnel-title', id: 'funnel' },
      header('funnel-title', 'Funnel', `Sessions that reached each step, in any order; drop-off is the share lost since the step before (${merchant.timezone}).`, controls),
      body,
    );

    async function refresh(): Promise<void> {
      const r = range.resolve(Date.now(), merchant.timezone);
      const res = await api.funnel(r.from, r.to, split || undefined);
      const funnels = 'funnels' in res ? [...res.funnels].sort((a, b) => b.sessions - a.sessions) : [res];
      const label = (g: Record<string, string>) => (split ? `${SPLITS.find((s) => s[0] === split)![1]}: ${g[split] || '(unknown)'}` : `All sessions, ${range.label.toLowerCase()}`);
      fill(
        body,
        funnels.length === 0 ? h('p', { class: 'muted' }, 'No sessions started in this range yet.') : null,
        ...funnels.slice(0, MAX_FUNNELS).map((f, i) => funnelTable(f, label(f.group), `funnel-${i}`)),
        funnels.length > MAX_FUNNELS ? h('p', { class: 'note' }, `${funnels.length - MAX_FUNNELS} smaller groups are not shown.`) : null,
      );
    }
    return { el: section, refresh, intervalMs: 15_000, destroy() {} };
  },
};
