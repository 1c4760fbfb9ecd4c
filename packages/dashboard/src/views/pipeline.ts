/**
 * Pipeline health, from the platform's metrics only (GET /v1/merchants/{id}/status reads the
 * Prometheus registry): consumer lag per role, rejected events and their reasons, Meta delivery,
 * the lake's files and last commit, the cubes' last commit. A role without metrics in this process
 * is shown as not running, never as zeros; a role that stopped on an error (`failedRoles`) is shown
 * as stopped, with what to do.
 */
import { h, fill, table } from '../dom.ts';
import { ago, clockTime, count } from '../format.ts';
import type { StatusResponse } from '../types.ts';
import { header, notRunning, type View, type ViewContext, type ViewSpec } from '../view.ts';

function pill(running: boolean, failed: boolean): HTMLElement {
  if (failed) return h('span', { class: 'pill failed' }, 'Stopped on an error');
  return h('span', { class: running ? 'pill ok' : 'pill off' }, running ? 'Running' : 'Not running');
}

/** What a role that stopped on an error it cannot recover from means, and what to do. */
function stopped(what: string): HTMLElement {
  return h(
    'p',
    { class: 'stopped' },
    `${what} stopped on an error it cannot recover from (a log outage is retried, not this). Restart the process: /healthz answers 503 until then, so an orchestrator does it. ` +
      'Its logs say why. Nothing acknowledged is lost: it goes on from its last commit.',
  );
}

function role(id: string, title: string, running: boolean, failed: boolean, body: Array<HTMLElement | null>, whenOff: string): HTMLElement {
  return h(
    'article',
    { class: 'card role', id: `role-${id}`, 'data-running': String(running), 'data-failed': String(failed), 'aria-labelledby': `role-${id}-title` },
    h('header', {}, h('h3', { id: `role-${id}-title` }, title), pill(running, failed)),
    ...(failed ? [stopped(whenOff)] : running ? body : [notRunning(whenOff)]),
  );
}

function facts(items: Array<[string, string | HTMLElement]>): HTMLElement {
  return h('dl', { class: 'facts' }, ...items.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

const when = (iso: string | null, now: number, timeZone: string) => (iso === null ? 'none yet' : `${ago(Date.parse(iso), now)}, ${clockTime(Date.parse(iso), timeZone)}`);

function lagText(records: number | null): string {
  return records === null ? 'not measured' : `${count(records)} records`;
}

export function renderStatus(s: StatusResponse): Array<HTMLElement | null> {
  const now = Date.parse(s.at);
  const at = (iso: string | null) => when(iso, now, s.merchant.timezone);
  const rejectedRows = Object.entries(s.collector.rejectedByCode).sort((a, b) => b[1] - a[1]).map(([code, n]) => ['collector', code, count(n)]);
  const pipelineRejected = s.pipeline.decisions['rejected'] ?? 0;
  if (pipelineRejected > 0) rejectedRows.push(['pipeline', 'validation (SHOP_ERR_…, see events.rejected)', count(pipelineRejected)]);
  const failed = new Set(s.failedRoles);
  const lagRoles = [
    { role: 'pipeline', running: s.pipeline.running, lag: s.pipeline.lag, note: 'events.raw and events.validations' },
    { role: 'cubes', running: s.cubes.running, lag: s.cubes.lag, note: `events.filtered; last commit ${at(s.cubes.lastCommitAt)}` },
    { role: 'lake', running: s.lake.running, lag: s.lake.lag, note: `last commit ${at(s.lake.lastCommitAt)}` },
    { role: 'capi', running: s.capi.running, lag: s.capi.lag, note: `last commit ${at(s.capi.lastCommitAt)}` },
  ];
  return [
    failed.size > 0
      ? h(
          'div',
          { class: 'alert', id: 'failed-roles', role: 'alert' },
          `Stopped on an error: ${[...failed].join(', ')}. Restart the process (its logs say why); /healthz answers 503 until then.`,
        )
      : null,
    h(
      'div',
      { class: 'roles' },
      role('collector', 'Collector', s.collector.running, false, [facts([['Events accepted', count(s.collector.accepted)], ['Events rejected', count(s.collector.rejected)]])], 'The collector'),
      role(
        'pipeline',
        'Pipeline',
        s.pipeline.running,
        failed.has('pipeline'),
        [facts([['Consumer lag', lagText(s.pipeline.lag)], ['Commits', count(s.pipeline.commits['committed'] ?? 0)], ['Aborted commits', count(s.pipeline.commits['aborted'] ?? 0)], ['Rejected by validation', count(pipelineRejected)]])],
        'The pipeline',
      ),
      role(
        'cubes',
        'Cubes (analytics)',
        s.cubes.running,
        failed.has('cubes'),
        [
          facts([
            ['Last commit', at(s.cubes.lastCommitAt)],
            ['Events added', count(Object.values(s.cubes.events).reduce((a, b) => a + b, 0))],
            ['Commits', count(s.cubes.commits['committed'] ?? 0)],
            ['Failed or fenced commits', count((s.cubes.commits['failed'] ?? 0) + (s.cubes.commits['fenced'] ?? 0))],
          ]),
        ],
        'The cubes role',
      ),
      role(
        'lake',
        'Lake (Parquet)',
        s.lake.running,
        failed.has('lake'),
        [facts([['Files written', count(s.lake.files)], ['Last commit', at(s.lake.lastCommitAt)]]), h('p', { class: 'note' }, 'Files appear when a segment is cut: by size, by event-time span, or after 10 minutes by default.')],
        'The lake sink',
      ),
      role(
        'capi',
        'Meta delivery (CAPI)',
        s.capi.running,
        failed.has('capi'),
        [
          facts([
            ['Acknowledged by Meta', count(s.capi.acknowledged)],
            ['Retried', count(s.capi.retried)],
            ['Dead-lettered (DLQ)', h('span', { class: s.capi.dlq > 0 ? 'bad' : '' }, count(s.capi.dlq))],
            ['Pixel circuit', s.capi.breaker === null ? '–' : s.capi.breaker.replace('_', ' ')],
            ['Requests in flight', s.capi.inflight === null ? '–' : count(s.capi.inflight)],
            ['Waiting for Meta', s.capi.pending === null ? '–' : `${count(s.capi.pending)} events`],
            ['Last commit', at(s.capi.lastCommitAt)],
          ]),
          Object.keys(s.capi.dlqByReason).length > 0
            ? table('Dead-lettered by reason', ['Reason', 'Events'], Object.entries(s.capi.dlqByReason).map(([k, v]) => [k, count(v)]), [false, true])
            : null,
        ],
        'Meta Conversions API forwarding',
      ),
    ),
    h(
      'div',
      { class: 'grid2' },
      h(
        'div',
        { class: 'card' },
        h('h3', {}, 'Consumer lag per role'),
        table(
          'Records each role has not processed yet',
          ['Role', 'Lag', 'Note'],
          lagRoles.map((r) => [r.role, failed.has(r.role) ? 'stopped on an error' : r.running ? lagText(r.lag) : 'not running in this deployment', r.running ? r.note : '–']),
          [false, true, false],
        ),
        s.lag.length > 0
          ? h('details', { class: 'data' }, h('summary', {}, 'Per partition'), table('Consumer lag per input partition', ['Application', 'Topic', 'Partition', 'Records'], s.lag.map((l) => [l.application, l.topic, l.partition, count(l.records)]), [false, false, true, true]))
          : null,
      ),
      h(
        'div',
        { class: 'card' },
        h('h3', {}, 'Rejected events'),
        rejectedRows.length === 0 ? h('p', { class: 'muted', id: 'no-rejections' }, 'No event has been rejected since this process started.') : table('Rejected events by reason', ['Stage', 'Reason', 'Events'], rejectedRows, [false, false, true]),
      ),
    ),
  ];
}

export const pipelineView: ViewSpec = {
  id: 'pipeline',
  title: 'Pipeline',
  create(ctx: ViewContext): View {
    const body = h('div', { class: 'stack' }, h('p', { class: 'muted' }, 'Loading…'));
    const sub = h('p', { class: 'sub' }, 'From the platform’s metrics (this process, all shops; Meta delivery for your shop only).');
    const section = h('section', { class: 'view', 'aria-labelledby': 'pipeline-title', id: 'pipeline' }, header('pipeline-title', 'Pipeline health', sub), body);
    async function refresh(): Promise<void> {
      const s = await ctx.api.status();
      fill(body, ...renderStatus(s));
    }
    return { el: section, refresh, intervalMs: 2_000, destroy() {} };
  },
};
