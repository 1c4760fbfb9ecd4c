/**
 * The analytics API (docs/api.md): metrics series, the session funnel and top products, per
 * merchant, from the cube store. Authentication: a merchant's read token as a bearer token.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PlatformError, PlatformErrors } from '../errors.ts';
import type { Merchant } from '../merchants/model.ts';
import { FUNNEL_STEPS, MINUTE_MS, QUARTER_MS } from '../cubes/model.ts';
import { ALL_MINUTE_RANGE_MS, METRICS, localToUtc, metricsSeries, type Granularity, type Metric } from '../cubes/query.ts';
import { DIMENSIONS, FUNNEL_DIMENSIONS, VISITOR_DIMENSIONS, type CubeStore, type Dimension } from '../cubes/store.ts';

export interface AnalyticsOptions {
  store: CubeStore;
  merchantById(id: string): Merchant | undefined;
  merchantByReadToken(token: string): Merchant | undefined;
}

/** The widest range one request may ask for, per granularity (bounds the work of one query). */
const MAX_RANGE_MS: Record<Granularity, number> = { minute: 2 * 86_400_000, hour: 93 * 86_400_000, day: 800 * 86_400_000, all: 800 * 86_400_000 };
const PRODUCT_METRICS = ['views', 'adds', 'purchases', 'revenue'] as const;

const invalid = (parameter: string, message: string) => new PlatformError(PlatformErrors.INVALID_PARAMETER, `${parameter}: ${message}`, { details: { parameter } });

/** The merchant of the route (`:id`), checked against the request's read token (a bearer token): 401 without or with an unknown one, 403 for another merchant's. */
export function authorizeReadToken(req: FastifyRequest, o: Pick<AnalyticsOptions, 'merchantById' | 'merchantByReadToken'>): Merchant {
  const id = (req.params as { id: string }).id;
  const header = req.headers.authorization;
  const token = header !== undefined && /^bearer /i.test(header) ? header.slice(7).trim() : undefined;
  if (token === undefined || token === '') {
    throw new PlatformError(PlatformErrors.UNAUTHORIZED, 'Send the merchant\'s read token: "Authorization: Bearer <read token>".');
  }
  const owner = o.merchantByReadToken(token);
  if (owner === undefined) throw new PlatformError(PlatformErrors.UNAUTHORIZED, 'Unknown read token; see `shopstream merchants list` for the current ones.');
  if (owner.id !== id) throw new PlatformError(PlatformErrors.FORBIDDEN, `This read token belongs to another merchant, not to ${id}.`);
  const merchant = o.merchantById(id);
  if (merchant === undefined) throw new PlatformError(PlatformErrors.MERCHANT_UNKNOWN, `No merchant ${id}.`);
  return merchant;
}

function one(q: Record<string, unknown>, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(name, 'give it once');
  return v;
}

/**
 * An ISO-8601 date or date-time. With `Z` or an offset, that instant; without, a wall-clock time in
 * the merchant's time zone (a date alone is its local midnight). Impossible dates are refused.
 */
function time(q: Record<string, unknown>, name: string, fallback: number, timeZone: string): number {
  const v = one(q, name);
  if (v === undefined) return fallback;
  // An unencoded '+' of an offset arrives as a space (query-string decoding): it is read as '+'.
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,3})?)?)?(Z|[+ -]\d{2}:?\d{2})?$/.exec(v);
  if (m === null) throw invalid(name, `"${v}" is not an ISO-8601 date or time (e.g. 2026-11-26 or 2026-11-26T10:00:00Z)`);
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  const local = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec), frac === '' ? 0 : Math.round(Number(frac) * 1000));
  const t = new Date(local);
  if (t.getUTCFullYear() !== Number(y) || t.getUTCMonth() !== Number(mo) - 1 || t.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(sec) > 59) {
    throw invalid(name, `"${v}" is not a valid date`);
  }
  if (zone === undefined) return localToUtc(local, timeZone);
  if (zone === 'Z') return local;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return local - sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
}

function list<T extends string>(q: Record<string, unknown>, name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const v = one(q, name);
  if (v === undefined || v === '') return [...fallback];
  const out: T[] = [];
  for (const item of v.split(',').map((s) => s.trim())) {
    if (!(allowed as readonly string[]).includes(item)) throw invalid(name, `unknown value "${item}"; one of ${allowed.join(', ')}`);
    if (!out.includes(item as T)) out.push(item as T);
  }
  return out;
}

function filters(q: Record<string, unknown>, allowed: readonly Dimension[]): Array<{ dimension: Dimension; value: string }> {
  const v = one(q, 'filter');
  if (v === undefined || v === '') return [];
  const out = v.split(',').map((pair) => {
    const i = pair.indexOf(':');
    if (i <= 0) throw invalid('filter', `"${pair}" is not dimension:value`);
    const dimension = pair.slice(0, i).trim() as Dimension;
    if (!allowed.includes(dimension)) throw invalid('filter', `unknown dimension "${dimension}"; one of ${allowed.join(', ')}`);
    return { dimension, value: pair.slice(i + 1).trim() };
  });
  const seen = new Set<Dimension>();
  for (const f of out) {
    if (seen.has(f.dimension)) throw invalid('filter', `${f.dimension} is given twice; give one value per dimension`);
    seen.add(f.dimension);
  }
  return out;
}

/** The range asked, widened to whole buckets of the data it reads (minutes, or quarter hours for hours, days, funnel and products). */
function range(q: Record<string, unknown>, granularity: Granularity, timeZone: string, unitMs: number | ((from: number, to: number) => number)): { from: number; to: number } {
  const now = Date.now();
  const to = time(q, 'to', now, timeZone);
  const from = time(q, 'from', to - (granularity === 'minute' ? 3_600_000 : granularity === 'hour' ? 86_400_000 : 30 * 86_400_000), timeZone);
  if (from >= to) throw invalid('from', 'must be before to');
  if (to - from > MAX_RANGE_MS[granularity]) throw invalid('from', `the range is longer than ${MAX_RANGE_MS[granularity] / 86_400_000} days for granularity ${granularity}`);
  const unit = typeof unitMs === 'number' ? unitMs : unitMs(from, to);
  return { from: Math.floor(from / unit) * unit, to: Math.ceil(to / unit) * unit };
}

const ALL_DIMENSIONS = Object.keys(DIMENSIONS) as Dimension[];

export function analyticsRoutes(app: FastifyInstance, o: AnalyticsOptions): void {
  app.get('/v1/merchants/:id/metrics', async (req) => {
    const merchant = authorizeReadToken(req, o);
    const q = req.query as Record<string, unknown>;
    const granularity = (one(q, 'granularity') ?? 'hour') as Granularity;
    if (!['minute', 'hour', 'day', 'all'].includes(granularity)) throw invalid('granularity', 'one of minute, hour, day, all');
    const unit = (f: number, t: number) => (granularity === 'minute' || (granularity === 'all' && t - f <= ALL_MINUTE_RANGE_MS) ? MINUTE_MS : QUARTER_MS);
    const { from, to } = range(q, granularity, merchant.timezone, unit);
    const metrics = list<Metric>(q, 'metrics', METRICS, ['events', 'sessions', 'orders', 'revenue']);
    const groupBy = list<Dimension>(q, 'group_by', ALL_DIMENSIONS, []);
    const filter = filters(q, ALL_DIMENSIONS);
    if (metrics.includes('visitors')) {
      const bad = [...groupBy, ...filter.map((f) => f.dimension)].find((d) => !VISITOR_DIMENSIONS.includes(d));
      if (bad !== undefined) throw invalid('metrics', `visitors cannot be split by ${bad}: a visitor is counted once per bucket, whatever it did`);
    }
    const series = await metricsSeries(o.store, { merchant: merchant.id, timeZone: merchant.timezone, currency: merchant.currency, from, to, granularity, metrics, groupBy, filters: filter });
    return { merchant: merchant.id, timezone: merchant.timezone, granularity, from: new Date(from).toISOString(), to: new Date(to).toISOString(), series };
  });

  app.get('/v1/merchants/:id/funnel', async (req) => {
    const merchant = authorizeReadToken(req, o);
    const q = req.query as Record<string, unknown>;
    const { from, to } = range(q, 'day', merchant.timezone, QUARTER_MS);
    const groupBy = list<Dimension>(q, 'group_by', FUNNEL_DIMENSIONS, []);
    const filter = filters(q, FUNNEL_DIMENSIONS);
    const rows = await o.store.funnel(merchant.id, Math.floor(from / QUARTER_MS), Math.ceil(to / QUARTER_MS), groupBy, filter);
    const funnels = rows.map((r) => ({
      group: r.group,
      sessions: r.sessions,
      steps: FUNNEL_STEPS.map((step, i) => ({
        step,
        sessions: r.steps[i]!,
        rate: r.sessions === 0 ? null : r.steps[i]! / r.sessions,
        fromPrevious: i === 0 ? (r.sessions === 0 ? null : r.steps[0]! / r.sessions) : r.steps[i - 1] === 0 ? null : r.steps[i]! / r.steps[i - 1]!,
      })),
    }));
    const result = { merchant: merchant.id, from: new Date(from).toISOString(), to: new Date(to).toISOString() };
    return groupBy.length === 0 ? { ...result, ...(funnels[0] ?? { group: {}, sessions: 0, steps: FUNNEL_STEPS.map((step) => ({ step, sessions: 0, rate: null, fromPrevious: null })) }) } : { ...result, funnels };
  });

  app.get('/v1/merchants/:id/products/top', async (req) => {
    const merchant = authorizeReadToken(req, o);
    const q = req.query as Record<string, unknown>;
    const { from, to } = range(q, 'day', merchant.timezone, QUARTER_MS);
    const metric = (one(q, 'metric') ?? 'revenue') as (typeof PRODUCT_METRICS)[number];
    if (!PRODUCT_METRICS.includes(metric)) throw invalid('metric', `one of ${PRODUCT_METRICS.join(', ')}`);
    const limitText = one(q, 'limit') ?? '10';
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalid('limit', 'an integer from 1 to 1000');
    const currency = one(q, 'currency');
    if (currency !== undefined && !/^[A-Z]{3}$/.test(currency)) throw invalid('currency', 'an ISO 4217 code, e.g. EUR');
    const products = await o.store.topProducts(merchant.id, Math.floor(from / QUARTER_MS), Math.ceil(to / QUARTER_MS), metric, limit, currency);
    return { merchant: merchant.id, metric, from: new Date(from).toISOString(), to: new Date(to).toISOString(), products };
  });
}
