/**
 * Bots: human events against bot events over time and the bot share (analytics API: events,
 * bot_events), and why the pipeline decided what it did (the platform's metric
 * shopstream_pipeline_decisions_total{decision}, through the status endpoint).
 */
import { PALETTE, TimeChart } from '../chart.ts';
import { h, fill, select, setText, table } from '../dom.ts';
import { bucketLabel, count, percent } from '../format.ts';
import { RANGES, bucketStarts, rangeById } from '../time.ts';
import type { Granularity } from '../types.ts';
import { header, notRunning, type View, type ViewContext, type ViewSpec } from '../view.ts';

const DECISIONS: Array<{ decision: string; kind: 'human' | 'bot' | 'other'; meaning: string }> = [
  { decision: 'human_validated', kind: 'human', meaning: 'Human: the visitor’s browser had passed the beacon check when the event arrived.' },
  { decision: 'human_released', kind: 'human', meaning: 'Human: held until the beacon check came in, then released.' },
  { decision: 'human_trusted_source', kind: 'human', meaning: 'Human: sent with a server write key (the shop’s own backend).' },
  { decision: 'bot_user_agent', kind: 'bot', meaning: 'Bot: the user agent is a known crawler or tool (isbot).' },
  { decision: 'bot_not_validated', kind: 'bot', meaning: 'Bot: no beacon check within the grace period (no JavaScript ran).' },
  { decision: 'held', kind: 'other', meaning: 'Waited for a beacon check (each is counted again when decided).' },
  { decision: 'duplicate', kind: 'other', meaning: 'Dropped: the same messageId was seen before.' },
  { decision: 'order_duplicate', kind: 'other', meaning: 'Dropped: the same order was completed twice.' },
  { decision: 'rejected', kind: 'other', meaning: 'Refused by validation (sent to events.rejected).' },
];
const BOT_RANGES = ['1h', 'today', '24h', '7d', '30d'];

export const botsView: ViewSpec = {
  id: 'bots',
  title: 'Bots',
  create(ctx: ViewContext): View {
    const { api, merchant, params } = ctx;
    const tz = merchant.timezone;
    const range = rangeById(BOT_RANGES.includes(params.get('range') ?? '') ? params.get('range')! : undefined, 'today');
    const granularity: Granularity = range.granularities[0]!;
    const controls = h(
      'form',
      { class: 'controls', 'aria-label': 'Bot settings', onsubmit: (e: Event) => e.preventDefault() },
      select('bots-range', 'Range', RANGES.filter((r) => BOT_RANGES.includes(r.id)).map((r) => [r.id, r.label]), range.id, (v) => ctx.setParams({ range: v })),
    );
    const figures = {
      human: h('p', { class: 'value', id: 'bots-human' }, '–'),
      bots: h('p', { class: 'value', id: 'bots-bots' }, '–'),
      share: h('p', { class: 'value', id: 'bots-share' }, '–'),
    };
    const chart = new TimeChart({ label: 'Human and bot events', timeZone: tz, height: 280, format: (v) => count(v), formatRight: (v) => percent(v, 0) });
    const reasons = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
    const data = h('details', { class: 'data' }, h('summary', {}, 'Data table'));
    const section = h(
      'section',
      { class: 'view', 'aria-labelledby': 'bots-title', id: 'bots' },
      header('bots-title', 'Bots', `Events the pipeline kept as human and those it set aside as bots, per ${granularity}, ${range.label.toLowerCase()} (${tz}).`, controls),
      h(
        'div',
        { class: 'kpis three' },
        h('article', { class: 'kpi card' }, h('h3', {}, 'Human events'), figures.human),
        h('article', { class: 'kpi card' }, h('h3', {}, 'Bot events'), figures.bots),
        h('article', { class: 'kpi card' }, h('h3', {}, 'Bot share'), figures.share),
      ),
      h('div', { class: 'card' }, h('h3', {}, 'Human and bot events'), chart.el, data),
      h('div', { class: 'card' }, h('h3', {}, 'Why: the pipeline’s decisions'), reasons),
    );

    async function refresh(): Promise<void> {
      const r = range.resolve(Date.now(), tz);
      const [res, status] = await Promise.all([api.metrics({ granularity, metrics: ['events', 'bot_events', 'bot_share'], from: r.from, to: r.to }), api.status()]);
      const buckets = bucketStarts(res.from, res.to, granularity, tz).filter((t) => t <= Date.now());
      const human = new Map<number, number>();
      const bots = new Map<number, number>();
      for (const row of res.series) {
        const t = Date.parse(row.bucket);
        human.set(t, (human.get(t) ?? 0) + (row.events ?? 0));
        bots.set(t, (bots.get(t) ?? 0) + (row.bot_events ?? 0));
      }
      const H = [...human.values()].reduce((a, b) => a + b, 0);
      const B = [...bots.values()].reduce((a, b) => a + b, 0);
      const share = H + B === 0 ? null : B / (H + B);
      setText(figures.human, count(H));
      figures.human.dataset['value'] = String(H);
      setText(figures.bots, count(B));
      figures.bots.dataset['value'] = String(B);
      setText(figures.share, percent(share));
      figures.share.dataset['value'] = share === null ? '' : String(share);
      const shareOf = (t: number) => {
        const a = human.get(t) ?? 0;
        const b = bots.get(t) ?? 0;
        return a + b === 0 ? null : b / (a + b);
      };
      chart.set(
        buckets,
        [
          { label: 'Human events', color: PALETTE[0]!, fill: true },
          { label: 'Bot events', color: PALETTE[6]!, fill: true },
          { label: 'Bot share', color: PALETTE[7]!, right: true, dash: true },
        ],
        [buckets.map((t) => human.get(t) ?? 0), buckets.map((t) => bots.get(t) ?? 0), buckets.map(shareOf)],
        `Per ${granularity}, ${range.label.toLowerCase()}: ${count(H)} human events and ${count(B)} bot events, a bot share of ${percent(share)}.`,
        granularity === 'day',
      );
      const rows = buckets.filter((t) => (human.get(t) ?? 0) + (bots.get(t) ?? 0) > 0).map((t) => [bucketLabel(t, tz, granularity), count(human.get(t) ?? 0), count(bots.get(t) ?? 0), percent(shareOf(t))]);
      fill(data, h('summary', {}, 'Data table'), table(`Human and bot events per ${granularity}`, [granularity, 'Human', 'Bots', 'Bot share'], rows, [false, true, true, true]));

      if (!status.pipeline.running && Object.keys(status.pipeline.decisions).length === 0) {
        fill(reasons, notRunning('The pipeline (bot filter)'));
        return;
      }
      const d = status.pipeline.decisions;
      const decided = DECISIONS.filter((x) => x.kind !== 'other').reduce((a, x) => a + (d[x.decision] ?? 0), 0);
      const botTotal = DECISIONS.filter((x) => x.kind === 'bot').reduce((a, x) => a + (d[x.decision] ?? 0), 0);
      fill(
        reasons,
        h('p', { class: 'note' }, `Since this process started, for all the shops it serves (metric shopstream_pipeline_decisions_total). ${count(botTotal)} of ${count(decided)} decided events were bots (${percent(decided === 0 ? null : botTotal / decided)}).`),
        table(
          'Pipeline decisions by reason',
          ['Decision', 'Events', 'Share of decided', 'What it means'],
          DECISIONS.map((x) => [x.decision, count(d[x.decision] ?? 0), x.kind === 'other' ? '–' : percent(decided === 0 ? null : (d[x.decision] ?? 0) / decided), x.meaning]),
          [false, true, true, false],
        ),
      );
    }
    return { el: section, refresh, intervalMs: range.id === '1h' ? 5_000 : 10_000, destroy: () => chart.destroy() };
  },
};
