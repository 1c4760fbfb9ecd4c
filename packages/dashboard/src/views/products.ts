/** Products: the top products by views, add-to-carts, purchases (units) and revenue, from /products/top. */
import { h, fill, select } from '../dom.ts';
import { count, money } from '../format.ts';
import { rangeById } from '../time.ts';
import type { ProductMetric, ProductRow } from '../types.ts';
import { header, type View, type ViewContext, type ViewSpec } from '../view.ts';

const LISTS: Array<{ metric: ProductMetric; title: string }> = [
  { metric: 'revenue', title: 'Top by revenue' },
  { metric: 'purchases', title: 'Top by units sold' },
  { metric: 'adds', title: 'Top by add-to-carts' },
  { metric: 'views', title: 'Top by views' },
];
const PRODUCT_RANGES: Array<[string, string]> = [
  ['today', 'Today'],
  ['yesterday', 'Yesterday'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['90d', 'Last 90 days'],
];

function list(title: string, metric: ProductMetric, rows: ProductRow[]): HTMLElement {
  const value = (r: ProductRow) => (metric === 'revenue' ? r.revenue : r[metric]);
  const top = Math.max(1, ...rows.map(value));
  const cell = (r: ProductRow, m: ProductMetric) => {
    const text = m === 'revenue' ? money(r.revenue, r.currency) : count(r[m]);
    if (m !== metric) return h('td', { class: 'num' }, text);
    return h('td', { class: 'num bar-cell ranked' }, h('span', { class: 'bar', style: `width:${((value(r) / top) * 100).toFixed(1)}%`, 'aria-hidden': 'true' }), h('span', { class: 'num' }, text));
  };
  return h(
    'div',
    { class: 'card products', 'data-metric': metric },
    h(
      'table',
      {},
      h('caption', {}, title),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'num' }, '#'), h('th', { scope: 'col' }, 'Product'), ...(['views', 'adds', 'purchases', 'revenue'] as const).map((m) => h('th', { scope: 'col', class: 'num' }, { views: 'Views', adds: 'Carts', purchases: 'Units', revenue: 'Revenue' }[m])))),
      h(
        'tbody',
        {},
        ...(rows.length === 0
          ? [h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No products in this range yet.'))]
          : rows.map((r, i) => h('tr', {}, h('td', { class: 'num muted' }, String(i + 1)), h('th', { scope: 'row', class: 'product', title: r.productId }, r.productId), ...(['views', 'adds', 'purchases', 'revenue'] as const).map((m) => cell(r, m))))),
      ),
    ),
  );
}

export const productsView: ViewSpec = {
  id: 'products',
  title: 'Products',
  create(ctx: ViewContext): View {
    const { api, merchant, params } = ctx;
    const rangeId = PRODUCT_RANGES.some(([id]) => id === params.get('range')) ? params.get('range')! : '7d';
    const range = rangeById(rangeId, '7d');
    const controls = h('form', { class: 'controls', 'aria-label': 'Product settings', onsubmit: (e: Event) => e.preventDefault() }, select('products-range', 'Range', PRODUCT_RANGES, rangeId, (v) => ctx.setParams({ range: v })));
    const body = h('div', { class: 'grid2' }, h('p', { class: 'muted' }, 'Loading…'));
    const section = h(
      'section',
      { class: 'view', 'aria-labelledby': 'products-title', id: 'products' },
      header('products-title', 'Products', `Views and add-to-carts count events; units and revenue come from orders (${merchant.timezone}).`, controls),
      body,
    );
    async function refresh(): Promise<void> {
      const r = range.resolve(Date.now(), merchant.timezone);
      const answers = await Promise.all(LISTS.map((l) => api.topProducts(l.metric, r.from, r.to, 10)));
      fill(body, ...LISTS.map((l, i) => list(l.title, l.metric, answers[i]!.products)));
    }
    return { el: section, refresh, intervalMs: 15_000, destroy() {} };
  },
};
