/**
 * The A/B report of a recommendations experiment: the seed's metrics for every variant, and every
 * treatment against the control with its lift, 95% confidence intervals, p-value and warnings.
 * Pure: it reads visitor summaries (attribution.ts) in one pass, keeping sufficient statistics per
 * variant (counts, means, variances, covariances), never the visitors themselves.
 *
 * Metrics (the unit of analysis is always the visitor, the unit of randomisation; docs/experiments.md):
 * - ctr: share of exposed visitors who clicked a recommendation at least once (two-proportion z-test).
 * - clicks_per_exposure: Σ clicks / Σ exposures over exposed visitors (ratio, delta method).
 * - revenue_per_visitor: mean revenue over all visitors (Welch, normal approximation).
 * - revenue_per_engaged_visitor: mean revenue over the visitors who clicked a recommendation.
 *   Descriptive: who engages depends on the variant, so its lift is not a causal effect.
 * - aov: Σ revenue / Σ orders over all visitors (ratio, delta method).
 * - multi_item_conversion: share of visitors with an order of two or more items (two-proportion z-test).
 * The primary metric is ctr.
 */
import { PlatformError, PlatformErrors } from '../errors.ts';
import { controlOf, validateExperiment, type Experiment } from './assign.ts';
import type { VisitorSummary } from './attribution.ts';
import {
  PairMoments,
  chiSquareGoodnessOfFit,
  meanTest,
  proportionTest,
  ratioEstimate,
  ratioTest,
  type Comparison,
  type Interval,
} from './stats.ts';

export const METRICS = ['ctr', 'clicks_per_exposure', 'revenue_per_visitor', 'revenue_per_engaged_visitor', 'aov', 'multi_item_conversion'] as const;
export type MetricName = (typeof METRICS)[number];
export const PRIMARY_METRIC: MetricName = 'ctr';

type MetricKind = 'proportion' | 'mean' | 'ratio';
const KIND: Record<MetricName, MetricKind> = {
  ctr: 'proportion',
  clicks_per_exposure: 'ratio',
  revenue_per_visitor: 'mean',
  revenue_per_engaged_visitor: 'mean',
  aov: 'ratio',
  multi_item_conversion: 'proportion',
};
/** The units each metric is computed over, for messages. */
const UNIT: Record<MetricName, string> = {
  ctr: 'exposed visitors',
  clicks_per_exposure: 'exposed visitors',
  revenue_per_visitor: 'visitors',
  revenue_per_engaged_visitor: 'engaged visitors',
  aov: 'visitors',
  multi_item_conversion: 'visitors',
};
/** What a unit with a non-zero value means, for the normal-approximation rule of means and ratios. */
const NON_ZERO: Partial<Record<MetricName, string>> = {
  clicks_per_exposure: 'exposed visitors (all have exposures)',
  revenue_per_visitor: 'visitors with revenue',
  revenue_per_engaged_visitor: 'engaged visitors with revenue',
  aov: 'visitors with orders',
};

export interface ReportOptions {
  /** A comparison with fewer units than this in either arm is flagged `small_sample`. Default 100. */
  minUnits?: number;
  /** Proportions: expected successes and failures per arm under H0 (pooled) below this → `normal_approximation`. Default 10. */
  minExpected?: number;
  /** Means and ratios: units with a non-zero value (ratios: denominator) per arm below this → `normal_approximation`. Default 30. */
  minNonZero?: number;
  /** A lift whose 95% interval is wider than this (hi − lo, in lift units) is flagged `wide_ci`. Default 1 (100 points). */
  maxCiWidth?: number;
  /** The sample-ratio check flags a mismatch below this p-value. Default 0.001. */
  srmAlpha?: number;
  /** The currency the money is in, echoed in the report. */
  currency?: string;
}

type Thresholds = Required<Omit<ReportOptions, 'currency'>>;

export const DEFAULT_REPORT_OPTIONS: Readonly<Thresholds> = Object.freeze({ minUnits: 100, minExpected: 10, minNonZero: 30, maxCiWidth: 1, srmAlpha: 0.001 });

/** One visitor's summary with the variant it was assigned. */
export type SummaryRow = VisitorSummary & { variant: string };

export type WarningCode =
  | 'small_sample'
  | 'normal_approximation'
  | 'wide_ci'
  | 'undefined_lift'
  | 'sample_ratio_mismatch'
  | 'unknown_variant'
  | 'other_currency_orders'
  | 'no_visitors';

export interface ReportWarning {
  code: WarningCode;
  metric?: MetricName;
  message: string;
}

export interface MetricComparison {
  /** The metric in this variant. */
  value: number | null;
  /** The metric in the control. */
  control: number | null;
  /** value − control. */
  difference: number | null;
  difference_ci95: Interval | null;
  /** value / control − 1. */
  lift: number | null;
  /** 95% interval of the lift (delta method on the log ratio). */
  ci95: Interval | null;
  p_value: number | null;
  /** p_value < 0.05. */
  significant: boolean;
  /** Units of analysis behind the numbers. */
  units: { control: number; variant: number };
}

export interface VariantReport {
  name: string;
  share: number;
  control: boolean;
  visitors: number;
  exposed: number;
  engaged: number;
  totals: {
    exposures: number;
    clicks: number;
    orders: number;
    revenue: number;
    multi_item_orders: number;
    multi_item_visitors: number;
    attributed_orders: number;
    attributed_revenue: number;
    attributed_items: number;
    other_currency_orders: number;
  };
  metrics: Record<MetricName, number | null>;
  /** Null for the control. */
  vs_control: Record<MetricName, MetricComparison> | null;
  warnings: ReportWarning[];
}

export interface ExperimentReport {
  experiment: { id: string; variants: { name: string; share: number }[] };
  control: string;
  primary_metric: MetricName;
  currency: string | null;
  confidence: 0.95;
  /** Visitor counts against the shares (Pearson chi-square); a small p-value means broken assignment or logging. */
  sample_ratio: { p_value: number; statistic: number };
  variants: VariantReport[];
  /** Warnings about the experiment as a whole. */
  warnings: ReportWarning[];
}

/** Sufficient statistics of one variant. */
class Arm {
  visitors = 0;
  exposed = 0;
  engagedExposed = 0;
  engaged = 0;
  multiItemVisitors = 0;
  withRevenue = 0;
  engagedWithRevenue = 0;
  withOrders = 0;
  /** Over exposed visitors: clicks / exposures. */
  readonly exposure = new PairMoments();
  /** Over all visitors: revenue / orders. */
  readonly money = new PairMoments();
  /** Over engaged visitors: revenue. */
  readonly engagedMoney = new PairMoments();
  readonly totals = {
    exposures: 0,
    clicks: 0,
    orders: 0,
    revenue: 0,
    multi_item_orders: 0,
    multi_item_visitors: 0,
    attributed_orders: 0,
    attributed_revenue: 0,
    attributed_items: 0,
    other_currency_orders: 0,
  };

  add(s: SummaryRow): void {
    this.visitors++;
    const t = this.totals;
    t.exposures += s.exposures;
    t.clicks += s.clicks;
    t.orders += s.orders;
    t.revenue += s.revenue;
    t.multi_item_orders += s.multiItemOrders;
    t.attributed_orders += s.attributedOrders;
    t.attributed_revenue += s.attributedRevenue;
    t.attributed_items += s.attributedItems;
    t.other_currency_orders += s.otherCurrencyOrders;
    if (s.multiItemOrders > 0) {
      this.multiItemVisitors++;
      t.multi_item_visitors++;
    }
    if (s.revenue > 0) this.withRevenue++;
    if (s.orders > 0) this.withOrders++;
    this.money.add(s.revenue, s.orders);
    if (s.exposed) {
      this.exposed++;
      if (s.engaged) this.engagedExposed++;
      this.exposure.add(s.clicks, s.exposures);
    }
    if (s.engaged) {
      this.engaged++;
      if (s.revenue > 0) this.engagedWithRevenue++;
      this.engagedMoney.add(s.revenue);
    }
  }

  /** The metric's value, computed exactly as the comparisons compute it. */
  metric(m: MetricName): number | null {
    switch (m) {
      case 'ctr':
        return this.exposed > 0 ? this.engagedExposed / this.exposed : null;
      case 'multi_item_conversion':
        return this.visitors > 0 ? this.multiItemVisitors / this.visitors : null;
      case 'clicks_per_exposure':
        return ratioEstimate(this.exposure.ratio())?.ratio ?? null;
      case 'aov':
        return ratioEstimate(this.money.ratio())?.ratio ?? null;
      case 'revenue_per_visitor':
        return this.visitors > 0 ? this.money.mean().mean : null;
      case 'revenue_per_engaged_visitor':
        return this.engaged > 0 ? this.engagedMoney.mean().mean : null;
    }
  }

  compare(m: MetricName, treatment: Arm): Comparison {
    switch (m) {
      case 'ctr':
        return proportionTest({ successes: this.engagedExposed, n: this.exposed }, { successes: treatment.engagedExposed, n: treatment.exposed });
      case 'multi_item_conversion':
        return proportionTest({ successes: this.multiItemVisitors, n: this.visitors }, { successes: treatment.multiItemVisitors, n: treatment.visitors });
      case 'clicks_per_exposure':
        return ratioTest(this.exposure.ratio(), treatment.exposure.ratio());
      case 'aov':
        return ratioTest(this.money.ratio(), treatment.money.ratio());
      case 'revenue_per_visitor':
        return meanTest(this.money.mean(), treatment.money.mean());
      case 'revenue_per_engaged_visitor':
        return meanTest(this.engagedMoney.mean(), treatment.engagedMoney.mean());
    }
  }

  /** Units with a non-zero value (means) or denominator (ratios), for the normal-approximation rule. */
  nonZero(m: MetricName): number {
    switch (m) {
      case 'clicks_per_exposure':
        return this.exposed;
      case 'revenue_per_visitor':
        return this.withRevenue;
      case 'revenue_per_engaged_visitor':
        return this.engagedWithRevenue;
      case 'aov':
        return this.withOrders;
      default:
        return 0;
    }
  }

  proportion(m: MetricName): { successes: number; n: number } {
    return m === 'ctr' ? { successes: this.engagedExposed, n: this.exposed } : { successes: this.multiItemVisitors, n: this.visitors };
  }
}

const NUMBER_FIELDS = [
  'exposures',
  'clicks',
  'orders',
  'revenue',
  'multiItemOrders',
  'attributedOrders',
  'attributedRevenue',
  'attributedItems',
  'otherCurrencyOrders',
] as const satisfies readonly (keyof VisitorSummary)[];

function checkRow(s: SummaryRow, i: number): void {
  if (s === null || typeof s !== 'object' || typeof s.variant !== 'string') {
    throw new PlatformError(PlatformErrors.INVALID_PARAMETER, `Visitor summary #${i} must be an object with a string variant.`, { details: { field: `summaries[${i}]` } });
  }
  for (const f of NUMBER_FIELDS) {
    const v = s[f];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new PlatformError(PlatformErrors.INVALID_PARAMETER, `Visitor summary #${i}: ${f} must be a finite number ≥ 0; got ${String(v)}.`, {
        details: { field: `summaries[${i}].${f}` },
      });
    }
  }
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(3);
}

/** The warnings of one comparison, by the rule of docs/experiments.md ("When the report says it cannot conclude"). */
function comparisonWarnings(m: MetricName, c: Comparison, control: Arm, treatment: Arm, o: Thresholds): ReportWarning[] {
  const out: ReportWarning[] = [];
  const unit = UNIT[m];
  const n1 = c.units.control;
  const n2 = c.units.treatment;
  if (Math.min(n1, n2) < o.minUnits) {
    out.push({ code: 'small_sample', metric: m, message: `${m}: ${fmt(n1)} ${unit} in the control and ${fmt(n2)} in this variant; at least ${o.minUnits} in each are needed to conclude.` });
  }
  if (KIND[m] === 'proportion') {
    const a = control.proportion(m);
    const b = treatment.proportion(m);
    const n = a.n + b.n;
    if (n > 0) {
      const pooled = (a.successes + b.successes) / n;
      const least = Math.min(a.n, b.n) * Math.min(pooled, 1 - pooled);
      if (least < o.minExpected) {
        out.push({
          code: 'normal_approximation',
          metric: m,
          message: `${m}: the smaller arm expects ${fmt(least)} ${pooled <= 0.5 ? 'successes' : 'failures'} under no difference; the normal approximation needs at least ${o.minExpected}.`,
        });
      }
    }
  } else {
    const k = Math.min(control.nonZero(m), treatment.nonZero(m));
    if (k < o.minNonZero) {
      out.push({
        code: 'normal_approximation',
        metric: m,
        message: `${m}: ${fmt(k)} ${NON_ZERO[m]} in the smaller arm; the normal approximation needs at least ${o.minNonZero}.`,
      });
    }
  }
  if (c.lift === null || c.liftCi === null) {
    out.push({
      code: 'undefined_lift',
      metric: m,
      message: `${m}: no lift or interval: ${c.control === null || c.value === null ? `no ${unit} in an arm` : c.control === 0 ? 'the control is 0' : c.value === 0 ? "this variant's value is 0" : 'too little data in an arm'}.`,
    });
  } else if (c.liftCi[1] - c.liftCi[0] > o.maxCiWidth) {
    out.push({
      code: 'wide_ci',
      metric: m,
      message: `${m}: the lift's 95% interval [${fmt(c.liftCi[0])}, ${fmt(c.liftCi[1])}] is wider than ${fmt(o.maxCiWidth)}; collect more data before reading it.`,
    });
  }
  return out;
}

function toMetricComparison(c: Comparison): MetricComparison {
  return {
    value: c.value,
    control: c.control,
    difference: c.difference,
    difference_ci95: c.differenceCi,
    lift: c.lift,
    ci95: c.liftCi,
    p_value: c.pValue,
    significant: c.significant,
    units: { control: c.units.control, variant: c.units.treatment },
  };
}

/**
 * The report of an experiment from its visitors' summaries (one per visitor: a visitor in two rows
 * would count twice). Rows of variants the experiment does not have are counted and left out.
 * Throws SHOP_ERR_INVALID_PARAMETER for an invalid experiment, options or row.
 */
export function buildReport(experiment: Experiment, summaries: Iterable<SummaryRow>, options: ReportOptions = {}): ExperimentReport {
  const exp = validateExperiment(experiment);
  const control = controlOf(exp);
  const o: Thresholds = { ...DEFAULT_REPORT_OPTIONS };
  for (const k of ['minUnits', 'minExpected', 'minNonZero', 'maxCiWidth', 'srmAlpha'] as const) {
    const v = options[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new PlatformError(PlatformErrors.INVALID_PARAMETER, `Report option ${k} must be a finite number ≥ 0; got ${String(v)}.`, { details: { field: k } });
    }
    o[k] = v;
  }
  const arms = new Map<string, Arm>(exp.variants.map((v) => [v.name, new Arm()]));
  const unknown = new Map<string, number>();
  let i = 0;
  for (const s of summaries) {
    checkRow(s, i++);
    const arm = arms.get(s.variant);
    if (arm === undefined) unknown.set(s.variant, (unknown.get(s.variant) ?? 0) + 1);
    else arm.add(s);
  }

  const warnings: ReportWarning[] = [];
  const counts = exp.variants.map((v) => arms.get(v.name)!.visitors);
  const srm = chiSquareGoodnessOfFit(counts, exp.variants.map((v) => v.share));
  if (srm.pValue < o.srmAlpha) {
    warnings.push({
      code: 'sample_ratio_mismatch',
      message: `Visitors per variant (${exp.variants.map((v, j) => `${v.name} ${counts[j]}`).join(', ')}) do not match the shares (chi-square p = ${srm.pValue.toExponential(2)}): assignment or event collection differs between variants, and the comparisons cannot be trusted.`,
    });
  }
  if (unknown.size > 0) {
    let n = 0;
    for (const c of unknown.values()) n += c;
    warnings.push({
      code: 'unknown_variant',
      message: `${n} visitor(s) in variants the experiment does not have (${[...unknown.keys()].slice(0, 5).map((x) => JSON.stringify(x)).join(', ')}) were left out.`,
    });
  }
  let other = 0;
  for (const a of arms.values()) other += a.totals.other_currency_orders;
  if (other > 0) {
    warnings.push({
      code: 'other_currency_orders',
      message: `${other} order(s) in a currency other than ${options.currency ?? "the merchant's"} are counted but left out of revenue, orders and AOV.`,
    });
  }
  const controlArm = arms.get(control)!;
  if (controlArm.visitors === 0) warnings.push({ code: 'no_visitors', message: `The control (${control}) has no visitors: nothing to compare with.` });

  const variants: VariantReport[] = exp.variants.map((v) => {
    const arm = arms.get(v.name)!;
    const metrics = Object.fromEntries(METRICS.map((m) => [m, arm.metric(m)])) as Record<MetricName, number | null>;
    const isControl = v.name === control;
    const vw: ReportWarning[] = [];
    let vs: Record<MetricName, MetricComparison> | null = null;
    if (!isControl) {
      const entries: [MetricName, MetricComparison][] = [];
      for (const m of METRICS) {
        const c = controlArm.compare(m, arm);
        vw.push(...comparisonWarnings(m, c, controlArm, arm, o));
        entries.push([m, toMetricComparison(c)]);
      }
      vs = Object.fromEntries(entries) as Record<MetricName, MetricComparison>;
    }
    return {
      name: v.name,
      share: v.share,
      control: isControl,
      visitors: arm.visitors,
      exposed: arm.exposed,
      engaged: arm.engaged,
      totals: { ...arm.totals },
      metrics,
      vs_control: vs,
      warnings: vw,
    };
  });

  return {
    experiment: { id: exp.id, variants: exp.variants.map((v) => ({ name: v.name, share: v.share })) },
    control,
    primary_metric: PRIMARY_METRIC,
    currency: options.currency ?? null,
    confidence: 0.95,
    sample_ratio: { p_value: srm.pValue, statistic: srm.statistic },
    variants,
    warnings,
  };
}
