/**
 * Experiments: the A/B report of each of the merchant's recommendation experiments, from
 * /experiments and /experiments/{id}/report: per variant its visitors and the seed's metrics, and
 * against the control the lift with its 95% interval, marked when significant; the report's warnings.
 */
import { h, fill } from '../dom.ts';
import { count, money, percent } from '../format.ts';
import { header, notRunning, type View, type ViewContext, type ViewSpec } from '../view.ts';

interface Comparison {
  value: number | null;
  control: number | null;
  lift: number | null;
  ci95: [number, number] | null;
  p_value: number | null;
  significant: boolean;
}
interface VariantReport {
  name: string;
  control: boolean;
  visitors: number;
  exposed: number;
  metrics: Record<string, number | null>;
  vs_control: Record<string, Comparison> | null;
  warnings: Array<{ code: string; message: string }>;
}
interface Report {
  experiment: { id: string };
  control: string;
  currency: string | null;
  variants: VariantReport[];
  warnings: Array<{ code: string; message: string }>;
}

const METRICS: Array<{ key: string; label: string; kind: 'rate' | 'money' }> = [
  { key: 'ctr', label: 'CTR (exposed visitors who clicked)', kind: 'rate' },
  { key: 'revenue_per_visitor', label: 'Revenue per visitor', kind: 'money' },
  { key: 'revenue_per_engaged_visitor', label: 'Revenue per engaged shopper', kind: 'money' },
  { key: 'aov', label: 'AOV', kind: 'money' },
  { key: 'multi_item_conversion', label: 'Visits to an order of 2+ items', kind: 'rate' },
];

function lift(c: Comparison | undefined): string {
  if (c === undefined || c.lift === null) return '–';
  const ci = c.ci95 === null ? '' : ` [${percent(c.ci95[0], 1)}, ${percent(c.ci95[1], 1)}]`;
  return `${c.lift >= 0 ? '+' : ''}${percent(c.lift, 1)}${ci}${c.significant ? ' ✓' : ''}`;
}

function table(r: Report): HTMLElement {
  const cur = r.currency ?? 'EUR';
  const fmt = (kind: 'rate' | 'money', v: number | null) => (v === null ? '–' : kind === 'rate' ? percent(v, 2) : money(Math.round(v), cur));
  return h(
    'div',
    { class: 'card experiment', 'data-experiment': r.experiment.id },
    h(
      'table',
      {},
      h('caption', {}, `${r.experiment.id}: each variant against ${r.control} (lift, 95% interval; ✓ significant at 95%)`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Metric'), ...r.variants.map((v) => h('th', { scope: 'col', class: 'num' }, `${v.name}${v.control ? ' (control)' : ''}`)))),
      h(
        'tbody',
        {},
        h('tr', {}, h('th', { scope: 'row' }, 'Visitors (exposed)'), ...r.variants.map((v) => h('td', { class: 'num' }, `${count(v.visitors)} (${count(v.exposed)})`))),
        ...METRICS.flatMap((m) => [
          h('tr', {}, h('th', { scope: 'row' }, m.label), ...r.variants.map((v) => h('td', { class: 'num' }, fmt(m.kind, v.metrics[m.key] ?? null)))),
          h('tr', { class: 'muted' }, h('th', { scope: 'row' }, 'lift'), ...r.variants.map((v) => h('td', { class: 'num', 'data-metric': m.key, 'data-significant': String(v.vs_control?.[m.key]?.significant ?? false) }, v.control ? '' : lift(v.vs_control?.[m.key])))),
        ]),
      ),
    ),
    ...[...r.warnings, ...r.variants.flatMap((v) => v.warnings)].map((w) => h('p', { class: 'muted warning' }, `${w.code}: ${w.message}`)),
  );
}

export const experimentsView: ViewSpec = {
  id: 'experiments',
  title: 'Experiments',
  create(ctx: ViewContext): View {
    const { api } = ctx;
    const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const section = h(
      'section',
      { class: 'view', 'aria-labelledby': 'experiments-title', id: 'experiments' },
      header('experiments-title', 'Experiments', 'A/B reports of the recommendation widgets, from the recommendations role; the lift of each metric against the control with its 95% interval.'),
      body,
    );
    async function refresh(): Promise<void> {
      let list: { experiments: Array<{ id: string }> };
      try {
        list = await api.get<{ experiments: Array<{ id: string }> }>('/experiments');
      } catch (err) {
        // The route exists only where the recommendations role runs.
        if ((err as { status?: number }).status !== 404) throw err;
        fill(body, notRunning('The recommendations role'));
        return;
      }
      if (list.experiments.length === 0) {
        fill(body, h('p', { class: 'muted' }, 'No experiment is configured for this shop (recs.experiments in the config file; docs/experiments.md).'));
        return;
      }
      const reports = await Promise.all(list.experiments.map((x) => api.get<Report>(`/experiments/${encodeURIComponent(x.id)}/report`)));
      fill(body, ...reports.map(table));
    }
    return { el: section, refresh, intervalMs: 10_000, destroy() {} };
  },
};
