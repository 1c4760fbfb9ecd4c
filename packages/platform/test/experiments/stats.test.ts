import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PairMoments,
  bootstrapRatio,
  chiSquareGoodnessOfFit,
  chiSquareSf,
  meanTest,
  normalCdf,
  normalQuantile,
  normalSf,
  proportionTest,
  ratioEstimate,
  ratioTest,
  seededRandom,
  twoSidedP,
  zCritical,
  type Comparison,
} from '../../src/experiments/stats.ts';
import { BASELINE, gaussian, simulate } from './sim.ts';

function close(actual: number | null | undefined, expected: number, tol: number, what = ''): void {
  assert.ok(actual !== null && actual !== undefined, `${what}: got ${String(actual)}`);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} is not within ${tol} of ${expected}`);
}

function relClose(actual: number, expected: number, rel: number, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${what}: ${actual} vs ${expected} (relative error ${Math.abs(actual - expected) / Math.abs(expected)})`);
}

// Reference values from mpmath (40 digits) and scipy.stats.norm.
const CDF: [number, number][] = [
  [-20, 2.7536241186062337e-89],
  [-10, 7.619853024160525e-24],
  [-8, 6.22096057427178e-16],
  [-5, 2.866515718791939e-7],
  [-3, 0.0013498980316300946],
  [-2, 0.02275013194817921],
  [-1.96, 2.4997895148220435e-2],
  [-1, 0.15865525393145705],
  [-0.5, 0.3085375387259869],
  [0, 0.5],
  [0.3, 0.6179114221889526],
  [1, 0.8413447460685429],
  [2.9999, 0.998649658717045],
  [3.5, 0.9997673709209645],
  [5, 0.9999997133484281],
];

test('normalCdf matches published values to 1e-15 absolute, and tails to 1e-13 relative', () => {
  for (const [x, p] of CDF) {
    close(normalCdf(x), p, 1e-15, `Φ(${x})`);
    if (p < 0.01) relClose(normalCdf(x), p, 1e-13, `Φ(${x}) relative`);
    close(normalSf(-x), p, 1e-15, `Q(${-x})`);
  }
  assert.equal(normalCdf(-50), 0);
  assert.equal(normalCdf(50), 1);
  assert.ok(Number.isNaN(normalCdf(NaN)));
  // Continuous across the switch between the series and the continued fraction at |x| = 3.
  close(normalCdf(2.9999999999), normalCdf(3), 1e-12, 'at 3');
  close(normalCdf(-2.9999999999), normalCdf(-3), 1e-12, 'at -3');
  // Monotone on a fine grid.
  let prev = 0;
  for (let x = -8; x <= 8; x += 0.01) {
    const p = normalCdf(x);
    assert.ok(p >= prev, `Φ not monotone at ${x}`);
    prev = p;
  }
});

test('normalQuantile matches published quantiles and inverts normalCdf', () => {
  const Q: [number, number][] = [
    [0.5, 0],
    [0.975, 1.959963984540054],
    [0.95, 1.6448536269514722],
    [0.995, 2.5758293035489004],
    [0.999, 3.090232306167813],
    [0.025, -1.959963984540054],
    [0.02, -2.053748910631823],
    [1e-5, -4.264890793922825],
    [1e-10, -6.361340902404056],
    [1e-20, -9.262340089798409],
    [0.3, -0.5244005127080409],
  ];
  for (const [p, z] of Q) close(normalQuantile(p), z, 1e-13 * Math.max(1, Math.abs(z)), `Φ⁻¹(${p})`);
  assert.equal(normalQuantile(0), -Infinity);
  assert.equal(normalQuantile(1), Infinity);
  assert.ok(Number.isNaN(normalQuantile(1.5)));
  for (let p = 0.0005; p < 1; p += 0.0123) close(normalCdf(normalQuantile(p)), p, 1e-14, `round trip ${p}`);
  close(zCritical(0.95), 1.959963984540054, 1e-13, 'z 95%');
  close(twoSidedP(1.959963984540054), 0.05, 1e-14, 'p at 1.96');
});

test('chiSquareSf matches scipy.stats.chi2.sf for odd and even degrees of freedom', () => {
  const cases: [number, number, number][] = [
    [0.5, 1, 0.47950012218695337],
    [3.84, 1, 0.05004352124870519],
    [10.83, 1, 0.0009986863791802592],
    [5, 2, 0.0820849986238988],
    [7.5, 3, 0.0575584519726364],
    [30, 5, 1.4748581038443073e-5],
    [100, 99, 0.4529585113209314],
    [148.23, 99, 0.0010000659269003437],
    [50, 99, 0.9999900545468124],
    [2000, 1000, 4.1436785914539184e-69],
  ];
  for (const [x, df, p] of cases) relClose(chiSquareSf(x, df), p, 1e-11, `χ²(${x}, ${df})`);
  assert.equal(chiSquareSf(0, 3), 1);
  assert.throws(() => chiSquareSf(1, 0), RangeError);
  const g = chiSquareGoodnessOfFit([500, 500], [0.5, 0.5]);
  assert.deepEqual(g, { statistic: 0, df: 1, pValue: 1 });
  // 520 vs 480 at 50/50: χ² = (20² + 20²)/500 = 1.6.
  close(chiSquareGoodnessOfFit([520, 480], [1, 1]).statistic, 1.6, 1e-12);
});

test('two-proportion z-test: 200/5000 vs 300/5000, computed by hand', () => {
  // p₁ = 0.04, p₂ = 0.06, pooled p̄ = 0.05.
  // z = 0.02 / √(0.05·0.95·(2/5000)) = 0.02 / 0.0043589 = 4.58831; z² = 21.0526, Pearson's chi-square of
  // the 2×2 table without continuity correction (R: prop.test(c(300, 200), c(5000, 5000), correct = FALSE)).
  // Difference CI: 0.02 ± 1.959964·√(0.04·0.96/5000 + 0.06·0.94/5000) = 0.02 ± 1.959964·0.0043543.
  // Lift CI (Katz): 1.5·exp(±1.959964·√(1/200 − 1/5000 + 1/300 − 1/5000)) − 1.
  const c = proportionTest({ successes: 200, n: 5000 }, { successes: 300, n: 5000 });
  close(c.control, 0.04, 1e-15);
  close(c.value, 0.06, 1e-15);
  close(c.difference, 0.02, 1e-15);
  close(c.z, 4.588314677411235, 1e-12, 'z');
  close(c.z! * c.z!, 21.05263157894737, 1e-10, 'z² = chi-square');
  relClose(c.pValue!, 4.468387345230041e-6, 1e-9, 'p');
  close(c.differenceCi![0], 0.0114657127280387, 1e-12, 'diff lo');
  close(c.differenceCi![1], 0.028534287271961292, 1e-12, 'diff hi');
  close(c.lift, 0.5, 1e-12, 'lift');
  close(c.liftCi![0], 0.2597238919254461, 1e-12, 'lift lo');
  close(c.liftCi![1], 0.7861056811115565, 1e-12, 'lift hi');
  assert.equal(c.significant, true);
  assert.deepEqual(c.units, { control: 5000, treatment: 5000 });
  // Symmetric: swapping the arms flips the sign of z and keeps the p-value.
  const s = proportionTest({ successes: 300, n: 5000 }, { successes: 200, n: 5000 });
  close(s.z, -4.588314677411235, 1e-12);
  close(s.pValue, c.pValue!, 1e-18);
});

test('two-proportion z-test edge cases: no data, no successes, all successes', () => {
  const none = proportionTest({ successes: 0, n: 0 }, { successes: 3, n: 10 });
  assert.equal(none.control, null);
  assert.equal(none.pValue, null);
  assert.equal(none.significant, false);
  const zero = proportionTest({ successes: 0, n: 100 }, { successes: 0, n: 100 });
  assert.equal(zero.pValue, null, 'no variance under H0: no test');
  assert.equal(zero.lift, null);
  const oneSided = proportionTest({ successes: 0, n: 100 }, { successes: 5, n: 100 });
  assert.equal(oneSided.lift, null, 'lift of a zero control is undefined');
  assert.ok(oneSided.pValue !== null && oneSided.pValue < 0.05);
  assert.equal(oneSided.liftCi, null);
  const all = proportionTest({ successes: 100, n: 100 }, { successes: 100, n: 100 });
  assert.equal(all.pValue, null);
  close(all.lift, 0, 1e-15);
});

test('Welch mean comparison (normal approximation), computed by hand', () => {
  // se = √(900/400 + 1600/500) = √5.45; z = 5/se; lift CI: 1.1·exp(±1.96·√(900/(400·50²) + 1600/(500·55²))) − 1.
  const c = meanTest({ n: 400, mean: 50, variance: 900 }, { n: 500, mean: 55, variance: 1600 });
  close(c.z, 2.1417646843905964, 1e-12, 'z');
  close(c.pValue, 0.03221242260406628, 1e-12, 'p');
  close(c.differenceCi![0], 0.42441800720575174, 1e-10);
  close(c.differenceCi![1], 9.575581992794248, 1e-10);
  close(c.lift, 0.1, 1e-12);
  close(c.liftCi![0], 0.008623421605979287, 1e-12);
  close(c.liftCi![1], 0.1996548702719787, 1e-12);
  assert.equal(c.significant, true);
  assert.equal(meanTest({ n: 1, mean: 5, variance: 0 }, { n: 10, mean: 6, variance: 1 }).pValue, null, 'needs n ≥ 2');
});

test('ratio metric by the delta method with covariance, computed by hand', () => {
  // (revenue, orders) per visitor.
  const control: [number, number][] = [[100, 1], [0, 0], [300, 2], [50, 1], [0, 0], [220, 1]];
  const treatment: [number, number][] = [[80, 1], [400, 2], [0, 0], [150, 1], [90, 1], [0, 0], [310, 2]];
  const arm = (xs: [number, number][]) => {
    const m = new PairMoments();
    for (const [y, x] of xs) m.add(y, x);
    return m.ratio();
  };
  const e1 = ratioEstimate(arm(control))!;
  close(e1.ratio, 134, 1e-12);
  close(e1.variance, 798.3359999999999, 1e-9);
  const c = ratioTest(arm(control), arm(treatment));
  close(c.value, 147.14285714285714, 1e-10);
  close(c.z, 0.37090977400826786, 1e-12);
  close(c.pValue, 0.7107047350150588, 1e-12);
  close(c.differenceCi![0], -56.306719166719404, 1e-9);
  close(c.differenceCi![1], 82.59243345243368, 1e-9);
  close(c.liftCi![0], -0.33525544924940387, 1e-12);
  close(c.liftCi![1], 0.8139026979741653, 1e-12);
  assert.equal(c.significant, false);
  assert.equal(ratioEstimate({ n: 3, meanNum: 0, meanDen: 0, varNum: 0, varDen: 0, covNumDen: 0 }), null);
});

test('a ratio whose denominator is 1 for every unit is a mean: ratioTest and meanTest agree', () => {
  const rnd = seededRandom(3);
  const a = new PairMoments();
  const b = new PairMoments();
  for (let i = 0; i < 1000; i++) {
    a.add(100 + 20 * gaussian(rnd));
    b.add(104 + 25 * gaussian(rnd));
  }
  const r = ratioTest(a.ratio(), b.ratio());
  const m = meanTest(a.mean(), b.mean());
  for (const k of ['value', 'control', 'z', 'pValue', 'lift'] as const) close(r[k], m[k]!, 1e-9 * Math.max(1, Math.abs(m[k]!)), k);
  close(r.liftCi![0], m.liftCi![0], 1e-12);
  close(r.liftCi![1], m.liftCi![1], 1e-12);
});

test('PairMoments (one pass) equals the two-pass formulas, on money-sized numbers', () => {
  const rnd = seededRandom(11);
  const ys: number[] = [];
  const xs: number[] = [];
  const m = new PairMoments();
  for (let i = 0; i < 5000; i++) {
    const x = Math.floor(rnd() * 3);
    const y = x * Math.round(1e7 + 1e5 * gaussian(rnd)); // large, nearly equal values: where naive Σy² − nȳ² loses digits
    xs.push(x);
    ys.push(y);
    m.add(y, x);
  }
  const n = xs.length;
  const my = ys.reduce((s, v) => s + v, 0) / n;
  const mx = xs.reduce((s, v) => s + v, 0) / n;
  let vy = 0;
  let vx = 0;
  let cxy = 0;
  for (let i = 0; i < n; i++) {
    vy += (ys[i]! - my) ** 2;
    vx += (xs[i]! - mx) ** 2;
    cxy += (ys[i]! - my) * (xs[i]! - mx);
  }
  const r = m.ratio();
  relClose(r.meanNum, my, 1e-12);
  relClose(r.meanDen, mx, 1e-12);
  relClose(r.varNum, vy / (n - 1), 1e-10);
  relClose(r.varDen, vx / (n - 1), 1e-10);
  relClose(r.covNumDen, cxy / (n - 1), 1e-10);
  relClose(m.sumNum, ys.reduce((s, v) => s + v, 0), 1e-12);
});

test('seededRandom is deterministic per seed and roughly uniform', () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  const c = seededRandom(43);
  const xa = Array.from({ length: 5 }, a);
  assert.deepEqual(xa, Array.from({ length: 5 }, b));
  assert.notDeepEqual(xa, Array.from({ length: 5 }, c));
  const r = seededRandom(1);
  let s = 0;
  for (let i = 0; i < 100_000; i++) s += r();
  close(s / 100_000, 0.5, 0.005);
});

/** Per-visitor columns of one arm of a simulation. */
function columns(rows: ReturnType<typeof simulate>, variant: string) {
  const mine = rows.filter((r) => r.variant === variant);
  const exposed = mine.filter((r) => r.exposed);
  return {
    revenue: mine.map((r) => r.revenue),
    orders: mine.map((r) => r.orders),
    clicked: exposed.map((r): number => (r.engaged ? 1 : 0)),
    clicks: exposed.map((r) => r.clicks),
    exposures: exposed.map((r) => r.exposures),
  };
}

function moments(num: number[], den?: number[]): PairMoments {
  const m = new PairMoments();
  for (let i = 0; i < num.length; i++) m.add(num[i]!, den === undefined ? 1 : den[i]!);
  return m;
}

test('the delta method agrees with a seeded bootstrap on CTR, revenue per visitor, AOV and clicks per exposure', () => {
  const rows = simulate(
    [
      { name: 'a', model: BASELINE },
      { name: 'b', model: { ...BASELINE, ctr: 0.05, conversion: 0.52 } },
    ],
    5000,
    2024,
  );
  const a = columns(rows, 'a');
  const b = columns(rows, 'b');
  const cases: [string, Comparison, ReturnType<typeof bootstrapRatio>][] = [
    [
      'ctr',
      proportionTest({ successes: a.clicked.reduce((s, v) => s + v, 0), n: a.clicked.length }, { successes: b.clicked.reduce((s, v) => s + v, 0), n: b.clicked.length }),
      bootstrapRatio({ num: a.clicked }, { num: b.clicked }, { seed: 1 }),
    ],
    ['revenue_per_visitor', meanTest(moments(a.revenue).mean(), moments(b.revenue).mean()), bootstrapRatio({ num: a.revenue }, { num: b.revenue }, { seed: 2 })],
    [
      'aov',
      ratioTest(moments(a.revenue, a.orders).ratio(), moments(b.revenue, b.orders).ratio()),
      bootstrapRatio({ num: a.revenue, den: a.orders }, { num: b.revenue, den: b.orders }, { seed: 3 }),
    ],
    [
      'clicks_per_exposure',
      ratioTest(moments(a.clicks, a.exposures).ratio(), moments(b.clicks, b.exposures).ratio()),
      bootstrapRatio({ num: a.clicks, den: a.exposures }, { num: b.clicks, den: b.exposures }, { seed: 4 }),
    ],
  ];
  for (const [name, delta, boot] of cases) {
    close(boot.lift, delta.lift!, 1e-9, `${name} point estimate`);
    // 2000 resamples estimate a standard deviation to about ±1.6%; the delta method is a first-order
    // approximation: 10% is a comfortable bound at 5,000 visitors per arm.
    relClose(delta.seLog!, boot.seLog, 0.1, `${name} se of the log ratio`);
    const width = delta.liftCi![1] - delta.liftCi![0];
    close(boot.liftCi[0], delta.liftCi![0], 0.15 * width, `${name} lift CI low`);
    close(boot.liftCi[1], delta.liftCi![1], 0.15 * width, `${name} lift CI high`);
    const dWidth = delta.differenceCi![1] - delta.differenceCi![0];
    close(boot.differenceCi[0], delta.differenceCi![0], 0.15 * dWidth, `${name} difference CI low`);
    close(boot.differenceCi[1], delta.differenceCi![1], 0.15 * dWidth, `${name} difference CI high`);
    assert.equal(boot.dropped, 0);
  }
  // Same seed, same answer.
  assert.deepEqual(bootstrapRatio({ num: a.revenue }, { num: b.revenue }, { seed: 2, iterations: 200 }), bootstrapRatio({ num: a.revenue }, { num: b.revenue }, { seed: 2, iterations: 200 }));
});

test('the AOV interval (ratio, delta method) covers the true lift about 95% of the time', () => {
  // 300 simulated experiments, 2,000 visitors per arm, true AOV lift 5%.
  const truth = 0.05;
  let covered = 0;
  const runs = 300;
  for (let s = 0; s < runs; s++) {
    const rnd = seededRandom(7000 + s);
    const a = new PairMoments();
    const b = new PairMoments();
    for (let i = 0; i < 2000; i++) {
      for (const [m, median] of [[a, 5000], [b, 5250]] as const) {
        const orders = rnd() < 0.4 ? (rnd() < 0.2 ? 2 : 1) : 0;
        let revenue = 0;
        for (let k = 0; k < orders; k++) revenue += median * Math.exp(0.6 * gaussian(rnd));
        m.add(revenue, orders);
      }
    }
    const c = ratioTest(a.ratio(), b.ratio());
    if (c.liftCi![0] <= truth && truth <= c.liftCi![1]) covered++;
  }
  // Binomial(300, 0.95): sd 3.8 runs; accept within about ±3 sd.
  assert.ok(covered >= 274 && covered <= 296, `covered ${covered} of ${runs}`);
});
