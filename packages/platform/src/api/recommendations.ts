/**
 * The recommendations API (docs/recommendations.md): `GET /v1/merchants/{id}/recommendations`.
 * Storefront widgets call it from the browser, so it takes the merchant's (public) write key, as
 * HTTP Basic user name or `writeKey` parameter, like the collector; servers may send a read token
 * as a bearer token instead.
 *
 * Answers come from the models in memory (recs/table.ts): no store query on the request path.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PlatformError, PlatformErrors } from '../errors.ts';
import { checkWriteKey, type Merchant, type MerchantLookup } from '../merchants/model.ts';
import { recommend } from '../recs/models.ts';
import type { RecsTable } from '../recs/table.ts';
import type { CoConfig } from '../recs/cooccurrence.ts';
import type { Scoring } from '../recs/scoring.ts';
import { assignVariant, buildReport, type Experiment } from '../experiments/index.ts';
import { authorizeReadToken } from './analytics.ts';

/** An experiment the API serves: its variants say what each shows (the model asked for, or popular products). */
export interface ServedExperiment {
  experiment: Experiment;
  merchant: string;
  currency: string;
  shows: ReadonlyMap<string, 'model' | 'popular'>;
}

export const RECS_MODELS = { 'frequently-bought-together': 'f', 'others-you-may-like': 'o' } as const;
export type RecsModelName = keyof typeof RECS_MODELS;

export interface RecommendationsOptions {
  table: RecsTable;
  merchants: MerchantLookup & { byReadToken(token: string): Merchant | undefined };
  /** The models' configuration (their capacity and half-life), as the topology uses it. */
  co: { f: CoConfig; o: CoConfig };
  scoring?: Scoring;
  /** How many of a visitor's recent views personalise "others you may like". Default 5. */
  personalViews?: number;
  /** Purchases older than this are not left out any more. Default 7 days. */
  boughtWindowMs?: number;
  experiments?: readonly ServedExperiment[];
  now?: () => number;
}

const invalid = (parameter: string, message: string) => new PlatformError(PlatformErrors.INVALID_PARAMETER, `${parameter}: ${message}`, { details: { parameter } });

function authorize(req: FastifyRequest, o: RecommendationsOptions): Merchant {
  const id = (req.params as { id: string }).id;
  const header = req.headers.authorization;
  let merchant: Merchant | undefined;
  if (header !== undefined && /^bearer /i.test(header)) {
    merchant = o.merchants.byReadToken(header.slice(7).trim());
    if (merchant === undefined) throw new PlatformError(PlatformErrors.UNAUTHORIZED, 'Unknown read token.');
  } else {
    let key = (req.query as Record<string, unknown>)['writeKey'];
    if (key === undefined && header !== undefined && /^basic /i.test(header)) key = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8').split(':')[0];
    const check = checkWriteKey(o.merchants, key);
    if (!check.ok) throw new PlatformError(PlatformErrors.UNAUTHORIZED, check.message);
    merchant = check.merchant;
  }
  if (merchant.id !== id) throw new PlatformError(PlatformErrors.FORBIDDEN, `This key belongs to another merchant, not to ${id}.`);
  return merchant;
}

function one(q: Record<string, unknown>, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(name, 'give it once (several products: product_id=a,b)');
  return v;
}

/** An opaque token the storefront sends back on the exposure and click events of these items. */
export function attributionToken(model: RecsModelName, now: number): string {
  return `${RECS_MODELS[model]}.${now.toString(36)}.${randomBytes(6).toString('base64url')}`;
}

export function recommendationsRoutes(app: FastifyInstance, o: RecommendationsOptions): void {
  const now = o.now ?? Date.now;
  const personalViews = o.personalViews ?? 5;
  const boughtWindowMs = o.boughtWindowMs ?? 7 * 86_400_000;
  app.get('/v1/merchants/:id/recommendations', async (req) => {
    const merchant = authorize(req, o);
    const q = req.query as Record<string, unknown>;
    const modelName = one(q, 'model');
    if (modelName === undefined || !(modelName in RECS_MODELS)) throw invalid('model', `one of ${Object.keys(RECS_MODELS).join(', ')}`);
    const model = modelName as RecsModelName;
    const products = (one(q, 'product_id') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (products.length > 50) throw invalid('product_id', 'at most 50 products');
    const visitorId = one(q, 'visitor_id');
    if (products.length === 0 && visitorId === undefined) throw invalid('product_id', 'give one or several products (product_id=a,b), or a visitor_id');
    const limitText = one(q, 'limit') ?? '10';
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalid('limit', 'an integer from 1 to 100');
    const fallbackText = one(q, 'fallback') ?? 'true';
    if (fallbackText !== 'true' && fallbackText !== 'false') throw invalid('fallback', 'true or false');

    const experimentId = one(q, 'experiment');
    let assigned: { id: string; variant: string; shows: 'model' | 'popular' } | undefined;
    if (experimentId !== undefined) {
      const x = o.experiments?.find((e) => e.merchant === merchant.id && e.experiment.id === experimentId);
      if (x === undefined) throw invalid('experiment', `no experiment ${experimentId} for merchant ${merchant.id}`);
      if (visitorId === undefined) throw invalid('visitor_id', 'an experiment assigns a visitor: give visitor_id');
      const variant = assignVariant(x.experiment, visitorId);
      assigned = { id: experimentId, variant, shows: x.shows.get(variant) ?? 'model' };
    }

    const m = RECS_MODELS[model];
    const seeds = [...products];
    const exclude = new Set<string>();
    let personalised = false;
    const visitor = visitorId === undefined ? undefined : o.table.visitor(merchant.id, visitorId);
    if (visitor !== undefined) {
      const t = now();
      for (const [id, at] of visitor.bought) if (t - at <= boughtWindowMs) exclude.add(id);
      if (m === 'o') {
        for (const [id] of visitor.views.slice(-personalViews)) if (!seeds.includes(id)) seeds.push(id);
        personalised = seeds.length > products.length;
      }
    }
    // A variant that shows popular products asks a model that knows nothing: the fallback answers.
    const source = assigned?.shows === 'popular' ? { get: () => undefined } : o.table.model(m, merchant.id);
    const r = recommend(source, seeds, limit, {
      co: o.co[m],
      ...(o.scoring !== undefined && { scoring: o.scoring }),
      exclude,
      ...((fallbackText === 'true' || assigned?.shows === 'popular') && { popularity: o.table.popularity(merchant.id) }),
    });
    return {
      model,
      items: r.items.map((i) => ({ product_id: i.id, score: i.score, ...(i.source === 'popular' && { popular: true }) })),
      fallback: r.fallback,
      known_products: r.knownSeeds,
      ...(visitorId !== undefined && { personalised }),
      ...(assigned !== undefined && { experiment: { id: assigned.id, variant: assigned.variant } }),
      attribution_token: attributionToken(model, now()),
    };
  });

  // The merchant's experiments (from the config file).
  // Reports are the merchant's business figures: the read token only (never the public write key).
  const reader = { merchantById: (id: string) => o.merchants.byId(id), merchantByReadToken: (t: string) => o.merchants.byReadToken(t) };
  app.get('/v1/merchants/:id/experiments', async (req) => {
    const merchant = authorizeReadToken(req, reader);
    return {
      experiments: (o.experiments ?? [])
        .filter((x) => x.merchant === merchant.id)
        .map((x) => ({ id: x.experiment.id, control: x.experiment.control ?? x.experiment.variants[0]!.name, variants: x.experiment.variants.map((v) => ({ name: v.name, share: v.share, recommendations: x.shows.get(v.name) ?? 'model' })) })),
    };
  });

  // The A/B report: each variant's figures against the control's, with lifts and 95% intervals.
  app.get('/v1/merchants/:id/experiments/:experiment/report', async (req) => {
    const merchant = authorizeReadToken(req, reader);
    const experimentId = (req.params as { experiment: string }).experiment;
    const x = o.experiments?.find((e) => e.merchant === merchant.id && e.experiment.id === experimentId);
    if (x === undefined) throw new PlatformError(PlatformErrors.NOT_FOUND, `No experiment ${experimentId} for merchant ${merchant.id}; experiments are set in the config file (recs.experiments).`);
    return buildReport(x.experiment, o.table.experimentRows(merchant.id, experimentId), { currency: x.currency });
  });
}
