import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildReport, METRICS, type ExperimentReport, type SummaryRow } from '../../src/experiments/report.ts';
import type { Experiment } from '../../src/experiments/assign.ts';
import { isPlatformError, PlatformErrors } from '../../src/errors.ts';
import { BASELINE, expectedRevenuePerVisitor, simulate, type ArmModel } from './sim.ts';

const AB: Experiment = { id: 'recs-ab', variants: [{ name: 'control', share: 0.5 }, { name: 'treatment', share: 0.5 }] };

function treatmentOf(r: ExperimentReport) {
  const v = r.variants.find((x) => !x.control)!;
  return { v, vs: v.vs_control! };
}

/** P(X ≤ k) for X ~ Binomial(n, p). */
function binomialCdf(k: number, n: number, p: number): number {
  let term = (1 - p) ** n;
  let sum = term;
  for (let i = 1; i <= k; i++) {
    term *= ((n - i + 1) / i) * (p / (1 - p));
    sum += term;
  }
  return sum;
}

/** The central 99.9% range of Binomial(n, p): counts outside it happen with probability < 0.1%. */
function binomialRange(n: number, p: number): [number, number] {
  let lo = 0;
  while (binomialCdf(lo, n, p) < 0.0005) lo++;
  let hi = lo;
  while (binomialCdf(hi, n, p) < 0.9995) hi++;
  return [lo, hi];
}

test('(a) a true effect: CTR 4% → 6% and revenue per visitor +10%, 5,000 visitors per arm: positive, significant lifts', () => {
  // The treatment lifts CTR by half, and revenue per visitor by 10% (conversion ×1.05, order value ×1.1/1.05).
  // Conversion is high (50%) so that 5,000 visitors per arm have the power to see +10% revenue (about
  // 95%, measured over 50 seeds); at a storefront's 3% it would take about 30 times more visitors.
  const treatment: ArmModel = { ...BASELINE, ctr: 0.06, conversion: BASELINE.conversion * 1.05, aovMedian: (BASELINE.aovMedian * 1.1) / 1.05 };
  assert.ok(Math.abs(expectedRevenuePerVisitor(treatment) / expectedRevenuePerVisitor(BASELINE) - 1.1) < 1e-12);
  for (const seed of [1, 2, 3]) {
    const rows = simulate([{ name: 'control', model: BASELINE }, { name: 'treatment', model: treatment }], 5000, seed);
    const report = buildReport(AB, rows, { currency: 'USD' });
    const { v, vs } = treatmentOf(report);
    assert.equal(v.visitors, 5000);
    for (const m of ['ctr', 'revenue_per_visitor'] as const) {
      const c = vs[m];
      assert.ok(c.lift! > 0 && c.significant && c.p_value! < 0.05, `seed ${seed} ${m}: ${JSON.stringify(c)}`);
      assert.ok(c.ci95![0] > 0, `${m}: the lift's interval excludes 0`);
      assert.ok(c.difference_ci95![0] > 0, `${m}: the difference's interval excludes 0`);
    }
    // The intervals contain the truth (true CTR lift 0.5, revenue lift 0.1).
    assert.ok(vs.ctr.ci95![0] < 0.5 && 0.5 < vs.ctr.ci95![1], `ctr ${JSON.stringify(vs.ctr.ci95)}`);
    assert.ok(vs.revenue_per_visitor.ci95![0] < 0.1 && 0.1 < vs.revenue_per_visitor.ci95![1]);
    assert.deepEqual(v.warnings, [], 'enough data: no warnings');
    assert.deepEqual(report.warnings, []);
  }
});

test('(b) A/A: at most 3 of 20 runs significant on CTR, and the false-positive rate over 400 runs is 5% within binomial tolerance', () => {
  const runs = 400;
  const significant: Record<string, number> = Object.fromEntries(METRICS.map((m) => [m, 0]));
  let first20 = 0;
  for (let run = 0; run < runs; run++) {
    const rows = simulate([{ name: 'control', model: BASELINE }, { name: 'treatment', model: BASELINE }], 2000, 10_000 + run);
    const { vs } = treatmentOf(buildReport(AB, rows));
    for (const m of METRICS) if (vs[m].significant) significant[m]!++;
    if (run < 20 && vs.ctr.significant) first20++;
  }
  // P(more than 3 of 20 | 5%) = 1.6%.
  assert.ok(first20 <= 3, `${first20} of the first 20 A/A runs significant on CTR`);
  const [lo, hi] = binomialRange(runs, 0.05); // [7, 36] for 400 runs
  assert.ok(significant['ctr']! >= lo && significant['ctr']! <= hi, `CTR: ${significant['ctr']} of ${runs} significant, expected within [${lo}, ${hi}]`);
  // The other metrics' tests are calibrated too.
  for (const m of METRICS) assert.ok(significant[m]! >= lo && significant[m]! <= hi, `${m}: ${significant[m]} of ${runs} significant`);
});

test('report shape: every variant, the control without comparisons, the metric definitions, JSON-safe', () => {
  const rows = simulate([{ name: 'control', model: BASELINE }, { name: 'treatment', model: BASELINE }], 300, 5);
  const r = buildReport(AB, rows, { currency: 'USD' });
  assert.deepEqual(r.experiment, { id: 'recs-ab', variants: [{ name: 'control', share: 0.5 }, { name: 'treatment', share: 0.5 }] });
  assert.equal(r.control, 'control');
  assert.equal(r.primary_metric, 'ctr');
  assert.equal(r.currency, 'USD');
  assert.equal(r.variants.length, 2);
  const [c, t] = r.variants;
  assert.equal(c!.vs_control, null);
  assert.equal(c!.control, true);
  assert.deepEqual(Object.keys(c!.metrics), [...METRICS]);
  assert.deepEqual(Object.keys(t!.vs_control!), [...METRICS]);
  for (const m of METRICS) {
    const x = t!.vs_control![m];
    assert.deepEqual(Object.keys(x), ['value', 'control', 'difference', 'difference_ci95', 'lift', 'ci95', 'p_value', 'significant', 'units']);
    assert.equal(x.value, t!.metrics[m]);
    assert.equal(x.control, c!.metrics[m]);
  }
  // Metric definitions against the totals.
  const mine = rows.filter((x) => x.variant === 'treatment');
  const exposed = mine.filter((x) => x.exposed);
  const engaged = mine.filter((x) => x.engaged);
  const sum = (xs: SummaryRow[], f: (x: SummaryRow) => number) => xs.reduce((s, x) => s + f(x), 0);
  assert.equal(t!.visitors, 300);
  assert.equal(t!.exposed, exposed.length);
  assert.equal(t!.engaged, engaged.length);
  assert.equal(t!.metrics.ctr, exposed.filter((x) => x.engaged).length / exposed.length);
  assert.ok(Math.abs(t!.metrics.clicks_per_exposure! - sum(exposed, (x) => x.clicks) / sum(exposed, (x) => x.exposures)) < 1e-12);
  assert.equal(t!.metrics.revenue_per_visitor, sum(mine, (x) => x.revenue) / 300);
  assert.ok(Math.abs(t!.metrics.revenue_per_engaged_visitor! - sum(engaged, (x) => x.revenue) / engaged.length) < 1e-9);
  assert.ok(Math.abs(t!.metrics.aov! / (sum(mine, (x) => x.revenue) / sum(mine, (x) => x.orders)) - 1) < 1e-12);
  assert.equal(t!.metrics.multi_item_conversion, mine.filter((x) => x.multiItemOrders > 0).length / 300);
  assert.deepEqual(t!.vs_control!.ctr.units, { control: c!.exposed, variant: t!.exposed });
  assert.deepEqual(t!.vs_control!.revenue_per_engaged_visitor.units, { control: c!.engaged, variant: t!.engaged });
  // Survives JSON unchanged (no NaN, no Infinity, no undefined).
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});

test('small samples are flagged: too few units, expected counts below 10, too few converters, wide intervals', () => {
  const rows = simulate([{ name: 'control', model: BASELINE }, { name: 'treatment', model: BASELINE }], 60, 9);
  const { v } = treatmentOf(buildReport(AB, rows));
  const codes = (m: string) => v.warnings.filter((w) => w.metric === m).map((w) => w.code);
  assert.ok(codes('ctr').includes('small_sample'), JSON.stringify(v.warnings));
  assert.ok(codes('ctr').includes('normal_approximation'), 'about 2 expected clickers per arm');
  assert.ok(codes('revenue_per_engaged_visitor').includes('normal_approximation'));
  assert.ok(codes('revenue_per_visitor').includes('small_sample'));
  for (const w of v.warnings) assert.ok(w.message.startsWith(`${w.metric}:`) && w.message.length > 30);
  // The interval rule alone: plenty of visitors, but a rare outcome leaves the CTR lift unknown within ±50 points.
  const rare = { ...BASELINE, ctr: 0.004 };
  const wide = treatmentOf(buildReport(AB, simulate([{ name: 'control', model: rare }, { name: 'treatment', model: rare }], 3000, 4))).v;
  assert.ok(wide.warnings.some((w) => w.metric === 'ctr' && w.code === 'wide_ci'), JSON.stringify(wide.warnings));
  // With thresholds set to 0, the same small report has no sample warnings.
  const none = treatmentOf(buildReport(AB, rows, { minUnits: 0, minExpected: 0, minNonZero: 0, maxCiWidth: 1e9 })).v;
  assert.ok(none.warnings.every((w) => w.code === 'undefined_lift'), JSON.stringify(none.warnings));
});

test('undefined lifts: no engaged visitors in the control, an empty control', () => {
  const row = (variant: string, engaged: boolean): SummaryRow => ({
    variant,
    exposed: true,
    engaged,
    exposures: 1,
    clicks: engaged ? 1 : 0,
    orders: 0,
    revenue: 0,
    multiItemOrders: 0,
    attributedOrders: 0,
    attributedRevenue: 0,
    attributedItems: 0,
    otherCurrencyOrders: 0,
  });
  const rows = [...Array.from({ length: 200 }, () => row('control', false)), ...Array.from({ length: 200 }, (_, i) => row('treatment', i < 20))];
  const { vs, v } = treatmentOf(buildReport(AB, rows));
  assert.equal(vs.ctr.control, 0);
  assert.equal(vs.ctr.lift, null);
  assert.equal(vs.ctr.ci95, null);
  assert.ok(vs.ctr.significant, 'the difference is still tested');
  assert.equal(vs.revenue_per_engaged_visitor.control, null);
  assert.equal(vs.aov.value, null, 'no orders: no AOV');
  assert.ok(v.warnings.some((w) => w.code === 'undefined_lift' && w.metric === 'ctr'));
  const empty = buildReport(AB, rows.filter((r) => r.variant === 'treatment'));
  assert.ok(empty.warnings.some((w) => w.code === 'no_visitors'));
  assert.ok(empty.warnings.some((w) => w.code === 'sample_ratio_mismatch'));
  assert.deepEqual(JSON.parse(JSON.stringify(empty)), empty);
});

test('experiment-level checks: sample ratio mismatch, unknown variants, orders in other currencies', () => {
  const rows = simulate([{ name: 'control', model: BASELINE }, { name: 'treatment', model: BASELINE }], 1000, 3);
  assert.ok(buildReport(AB, rows).sample_ratio.p_value > 0.5);
  // Drop 20% of the treatment's visitors (say, a tracking bug in one variant): 1000 vs 800.
  let dropped = 0;
  const skewed = rows.filter((r) => !(r.variant === 'treatment' && dropped++ < 200));
  const srm = buildReport(AB, skewed);
  assert.ok(srm.sample_ratio.p_value < 0.001);
  assert.ok(srm.warnings.some((w) => w.code === 'sample_ratio_mismatch' && /control 1000, treatment 800/.test(w.message)));
  const odd = buildReport(AB, [...rows, { ...rows[0]!, variant: 'ghost' }, { ...rows[1]!, variant: 'ghost', otherCurrencyOrders: 2 }], { currency: 'USD' });
  assert.ok(odd.warnings.some((w) => w.code === 'unknown_variant' && /^2 visitor/.test(w.message)));
  assert.equal(odd.variants[0]!.visitors + odd.variants[1]!.visitors, 2000);
  const foreign = buildReport(AB, [{ ...rows[0]!, otherCurrencyOrders: 3 }, ...rows.slice(1)], { currency: 'USD' });
  assert.ok(foreign.warnings.some((w) => w.code === 'other_currency_orders' && /^3 order\(s\) in a currency other than USD/.test(w.message)));
});

test('three variants and a named control: each treatment against the control', () => {
  const exp: Experiment = {
    id: 'recs-3',
    control: 'popular',
    variants: [{ name: 'fbt', share: 1 / 3 }, { name: 'popular', share: 1 / 3 }, { name: 'oyml', share: 1 / 3 }],
  };
  const better = { ...BASELINE, ctr: 0.08 };
  const rows = simulate([{ name: 'fbt', model: better }, { name: 'popular', model: BASELINE }, { name: 'oyml', model: BASELINE }], 3000, 8);
  const r = buildReport(exp, rows);
  assert.equal(r.control, 'popular');
  assert.deepEqual(r.variants.map((v) => [v.name, v.control]), [['fbt', false], ['popular', true], ['oyml', false]]);
  assert.equal(r.variants[1]!.vs_control, null);
  assert.ok(r.variants[0]!.vs_control!.ctr.significant && r.variants[0]!.vs_control!.ctr.lift! > 0.5);
});

test('buildReport refuses an invalid experiment, options or rows', () => {
  const invalid = (err: unknown) => isPlatformError(err, PlatformErrors.INVALID_PARAMETER);
  assert.throws(() => buildReport({ id: 'x', variants: [] }, []), invalid);
  assert.throws(() => buildReport(AB, [], { minUnits: -1 }), invalid);
  const row = simulate([{ name: 'control', model: BASELINE }], 1, 1)[0]!;
  assert.throws(() => buildReport(AB, [{ ...row, revenue: NaN }]), (err: unknown) => invalid(err) && /revenue/.test((err as Error).message));
  // Any iterable will do: a generator, read once.
  function* gen() {
    yield row;
  }
  assert.equal(buildReport(AB, gen()).variants[0]!.visitors, 1);
});
