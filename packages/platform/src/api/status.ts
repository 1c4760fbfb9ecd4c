/**
 * GET /v1/merchants/{id}/status: the health of the pipeline behind a merchant's dashboard, read
 * only from the platform's Prometheus registry (the same numbers `/metrics` exposes), never from a
 * second source. A role whose metrics are absent from the registry does not run in this process,
 * and the answer says so (`running: false`) instead of showing zeros.
 *
 * Scope: the counters are this process's, for all merchants, except Meta CAPI's, which carry a
 * `merchant` label and are filtered to the merchant asked. docs/dashboard.md lists each number's
 * metric. Authentication: the merchant's read token, as for the analytics API.
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Merchant } from '../merchants/model.ts';
import { authorizeReadToken } from './analytics.ts';

export interface StatusOptions {
  /** The platform's registry (platform.registry): the only source of the numbers. */
  registry: Pick<Registry, 'getMetricsAsJSON'>;
  merchantById(id: string): Merchant | undefined;
  merchantByReadToken(token: string): Merchant | undefined;
}

/** The metric names the status reads (docs/dashboard.md). */
export const STATUS_METRICS = {
  collectorEvents: 'shopstream_collector_events_total',
  collectorRejected: 'shopstream_collector_rejected_events_total',
  decisions: 'shopstream_pipeline_decisions_total',
  streamsLag: 'shopstream_streams_consumer_lag',
  streamsTasks: 'shopstream_streams_active_tasks',
  streamsCommits: 'shopstream_streams_commits_total',
  cubesEvents: 'shopstream_cubes_events_total',
  cubesCommits: 'shopstream_cubes_commits_total',
  cubesLastCommit: 'shopstream_cubes_last_commit_timestamp_seconds',
  lakeFiles: 'shopstream_lake_files_total',
  lakeLastCommit: 'shopstream_lake_last_commit_timestamp_seconds',
  capiEvents: 'shopstream_capi_events_total',
  capiInflight: 'shopstream_capi_inflight_requests',
  capiPending: 'shopstream_capi_pending_events',
  capiLastCommit: 'shopstream_capi_last_commit_timestamp_seconds',
  capiBreaker: 'shopstream_capi_breaker_state',
  capiDlq: 'shopstream_capi_dlq_total',
  roleFailed: 'shopstream_role_failed',
} as const;

export interface LagRow {
  /** The role the consumer belongs to (`pipeline`, `capi`, …), from the streams application id. */
  role: string;
  application: string;
  topic: string;
  partition: string;
  /** Records not processed yet. */
  records: number;
}

export interface StatusResponse {
  merchant: { id: string; timezone: string; currency: string };
  /** When the registry was read (ISO-8601). */
  at: string;
  /** `process`: the numbers are this process's (all merchants, except capi's, which are the merchant's). */
  scope: 'process';
  collector: { running: boolean; accepted: number; rejected: number; rejectedByCode: Record<string, number> };
  pipeline: { running: boolean; lag: number | null; decisions: Record<string, number>; commits: Record<string, number> };
  cubes: { running: boolean; lastCommitAt: string | null; lag: number | null; events: Record<string, number>; commits: Record<string, number> };
  lake: { running: boolean; lag: number | null; files: number; filesByTopic: Record<string, number>; lastCommitAt: string | null };
  capi: {
    running: boolean;
    /** The merchant's events: acknowledged by Meta, retried, dead-lettered (capi.dlq). */
    acknowledged: number;
    retried: number;
    dlq: number;
    /** The merchant's dead-lettered events by reason code. */
    dlqByReason: Record<string, number>;
    /** Requests to Meta in flight and events waiting for an answer (this process, all merchants). */
    inflight: number | null;
    pending: number | null;
    /** The merchant's pixel circuit breaker: closed, half_open, open (null: no state yet). */
    breaker: 'closed' | 'half_open' | 'open' | null;
    lastCommitAt: string | null;
    lag: number | null;
  };
  /** Roles of this process that stopped on an error they cannot recover from (restart the process; /healthz fails). */
  failedRoles: string[];
  /** Consumer lag of every streams application of this process, per input partition. */
  lag: LagRow[];
}

interface JsonValue {
  value: number;
  labels: Record<string, string | number | undefined>;
  metricName?: string;
}
interface JsonMetric {
  name: string;
  values: JsonValue[];
}


/** The role a streams application or consumer group stands for: `shop1.shopstream-pipeline` → `pipeline`, `shopstream-capi-forwarder` → `capi`. */
export function roleOfApplication(application: string): string {
  const m = /shopstream-([a-z0-9_]+)(?:-[a-z0-9_-]+)?$/.exec(application);
  return m === null ? application : m[1]!;
}

/** Sums a metric's values by one label (values without it are summed under ''), keeping those that pass `where`. */
function sumBy(metric: JsonMetric | undefined, label: string, where: (v: JsonValue) => boolean = () => true): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of metric?.values ?? []) {
    if (!where(v) || !Number.isFinite(v.value)) continue;
    const k = String(v.labels[label] ?? '');
    out[k] = (out[k] ?? 0) + v.value;
  }
  return out;
}

const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/** A gauge of Unix seconds as ISO-8601; 0 (never set) is null. */
function timestamp(metric: JsonMetric | undefined): string | null {
  const seconds = Math.max(0, ...(metric?.values ?? []).map((v) => v.value).filter((v) => Number.isFinite(v)));
  return seconds > 0 ? new Date(seconds * 1000).toISOString() : null;
}

/** Builds the status from the registry's JSON (exported for tests and for other front ends). */
export async function readStatus(registry: StatusOptions['registry'], merchant: Merchant, now = Date.now()): Promise<StatusResponse> {
  const metrics = new Map<string, JsonMetric>();
  for (const m of (await registry.getMetricsAsJSON()) as unknown as JsonMetric[]) metrics.set(m.name, m);
  const M = STATUS_METRICS;
  const get = (name: string) => metrics.get(name);

  const lag: LagRow[] = (get(M.streamsLag)?.values ?? [])
    .filter((v) => Number.isFinite(v.value))
    .map((v) => {
      const application = String(v.labels['application'] ?? '');
      return { role: roleOfApplication(application), application, topic: String(v.labels['topic'] ?? ''), partition: String(v.labels['partition'] ?? ''), records: v.value };
    })
    .sort((a, b) => a.role.localeCompare(b.role) || a.topic.localeCompare(b.topic) || Number(a.partition) - Number(b.partition));
  const streamsRoles = new Set((get(M.streamsTasks)?.values ?? []).map((v) => roleOfApplication(String(v.labels['application'] ?? ''))));
  for (const r of lag) streamsRoles.add(r.role);
  const lagOf = (role: string) => (lag.some((r) => r.role === role) ? lag.filter((r) => r.role === role).reduce((a, r) => a + r.records, 0) : null);
  const ofRole = (role: string) => (v: JsonValue) => roleOfApplication(String(v.labels['application'] ?? '')) === role;

  const collectorEvents = get(M.collectorEvents);
  const byOutcome = sumBy(collectorEvents, 'outcome');
  const rejectedByCode = sumBy(get(M.collectorRejected), 'code');

  const capiEvents = get(M.capiEvents);
  const capiInflight = get(M.capiInflight);
  const mine = (v: JsonValue) => v.labels['merchant'] === undefined || v.labels['merchant'] === merchant.id;
  const gaugeSum = (m: JsonMetric | undefined) => (m === undefined ? null : m.values.filter(mine).reduce((a, v) => a + (Number.isFinite(v.value) ? v.value : 0), 0));
  const breakerValue = get(M.capiBreaker)?.values.find((v) => v.labels['merchant'] === merchant.id)?.value;
  const capi = sumBy(capiEvents, 'outcome', mine);

  const failedRoles = (get(M.roleFailed)?.values ?? []).filter((v) => v.value > 0).map((v) => String(v.labels['role'] ?? '')).sort();
  const lakeFiles = get(M.lakeFiles);
  const lakeLast = get(M.lakeLastCommit);
  const filesByTopic = sumBy(lakeFiles, 'topic');

  return {
    merchant: { id: merchant.id, timezone: merchant.timezone, currency: merchant.currency },
    at: new Date(now).toISOString(),
    scope: 'process',
    collector: { running: collectorEvents !== undefined, accepted: byOutcome['accepted'] ?? 0, rejected: byOutcome['rejected'] ?? 0, rejectedByCode },
    pipeline: {
      running: streamsRoles.has('pipeline') && !failedRoles.includes('pipeline'),
      lag: lagOf('pipeline'),
      decisions: sumBy(get(M.decisions), 'decision'),
      commits: sumBy(get(M.streamsCommits), 'outcome', ofRole('pipeline')),
    },
    cubes: {
      running: get(M.cubesLastCommit) !== undefined || get(M.cubesEvents) !== undefined,
      lastCommitAt: timestamp(get(M.cubesLastCommit)),
      lag: lagOf('cubes'),
      events: sumBy(get(M.cubesEvents), 'topic'),
      commits: sumBy(get(M.cubesCommits), 'outcome'),
    },
    lake: { running: lakeFiles !== undefined || lakeLast !== undefined, lag: lagOf('lake'), files: total(filesByTopic), filesByTopic, lastCommitAt: timestamp(lakeLast) },
    capi: {
      running: (capiEvents !== undefined || capiInflight !== undefined) && !failedRoles.includes('capi'),
      acknowledged: capi['acknowledged'] ?? 0,
      retried: capi['retried'] ?? 0,
      dlq: capi['dlq'] ?? 0,
      dlqByReason: sumBy(get(M.capiDlq), 'reason', mine),
      inflight: gaugeSum(capiInflight),
      pending: gaugeSum(get(M.capiPending)),
      breaker: breakerValue === undefined ? null : breakerValue >= 2 ? 'open' : breakerValue >= 1 ? 'half_open' : 'closed',
      lastCommitAt: timestamp(get(M.capiLastCommit)),
      lag: lagOf('capi'),
    },
    failedRoles,
    lag,
  };
}

export function statusRoutes(app: FastifyInstance, o: StatusOptions): void {
  app.get('/v1/merchants/:id/status', async (req, reply) => {
    const merchant = authorizeReadToken(req, o);
    reply.header('cache-control', 'no-store');
    return readStatus(o.registry, merchant);
  });
}
