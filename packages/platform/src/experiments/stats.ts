/**
 * The statistics of the A/B report: pure functions over sufficient statistics (counts, means,
 * variances, covariances), no I/O, no dependencies. Formulas and choices are in docs/experiments.md.
 *
 * - The normal distribution: `normalCdf` (Taylor series for |x| < 3, continued fraction beyond;
 *   absolute error below 1e-15), `normalQuantile` (Acklam's rational approximation, relative error
 *   1.15e-9, then one Halley step on `normalCdf`, which takes it to about 1e-15).
 * - `chiSquareSf`: the chi-square survival function for a whole number of degrees of freedom, in
 *   closed form (a finite sum), for the sample-ratio check and tests.
 * - `proportionTest`: two-proportion z-test (pooled standard error under H0), a Wald interval for
 *   the difference (unpooled), and an interval for the lift by the delta method on the log of the
 *   risk ratio (Katz).
 * - `meanTest`: Welch's unpooled standard error with the normal approximation (large samples), and the
 *   lift's interval by the delta method on the log of the ratio of means.
 * - `ratioTest`: a ratio of two per-unit sums (AOV = revenue / orders, clicks / exposures) whose
 *   variance comes from the delta method with the covariance of numerator and denominator.
 * - `bootstrapRatio`: a seeded percentile bootstrap of the same comparisons (units resampled within
 *   each arm), to cross-check the delta method.
 *
 * Everything here speaks of "control" (arm 1, the reference) and "treatment" (arm 2). The lift is
 * treatment / control − 1.
 */
import { Rng } from '../simulate/rng.ts';

// ---- the normal distribution -------------------------------------------------------------------

const SQRT_2PI = Math.sqrt(2 * Math.PI);
const INV_SQRT_2PI = 1 / SQRT_2PI;

/** The standard normal density. */
export function normalPdf(x: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/**
 * The upper tail Q(x) = 1 − Φ(x) for x ≥ 3, by the continued fraction
 * Q(x) = φ(x) / (x + 1/(x + 2/(x + 3/(x + …)))), evaluated from the bottom. At x = 3, 120 levels
 * agree with the exact value to well under 1e-16 absolute (and the error falls fast with x).
 */
function upperTailCf(x: number): number {
  let f = x;
  for (let k = 120; k >= 1; k--) f = x + k / f;
  return normalPdf(x) / f;
}

/**
 * The standard normal CDF Φ(x). For |x| < 3: Φ(x) = 1/2 + φ(x)·Σ x^(2n+1) / (1·3·5···(2n+1))
 * (Marsaglia 2004, "Evaluating the Normal Distribution"), summed until the terms stop changing the
 * sum. For |x| ≥ 3: the continued fraction of the upper tail, so that tiny tails keep their
 * relative precision. Absolute error below 1e-15 everywhere (the tests check published values).
 */
export function normalCdf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 3) return x > 40 ? 1 : 1 - upperTailCf(x);
  if (x <= -3) return x < -40 ? 0 : upperTailCf(-x);
  let term = x;
  let sum = x;
  const x2 = x * x;
  for (let n = 1; n < 200; n++) {
    term *= x2 / (2 * n + 1);
    const next = sum + term;
    if (next === sum) break;
    sum = next;
  }
  return 0.5 + normalPdf(x) * sum;
}

/** 1 − Φ(x), without the cancellation of computing it as 1 − normalCdf(x) for large x. */
export function normalSf(x: number): number {
  return normalCdf(-x);
}

/** The two-sided p-value of a z statistic: 2·(1 − Φ(|z|)). */
export function twoSidedP(z: number): number {
  return Math.min(1, 2 * normalCdf(-Math.abs(z)));
}

const ACKLAM_A = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239] as const;
const ACKLAM_B = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1] as const;
const ACKLAM_C = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783] as const;
const ACKLAM_D = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416] as const;
const P_LOW = 0.02425;

function acklamTail(q: number): number {
  const [c0, c1, c2, c3, c4, c5] = ACKLAM_C;
  const [d0, d1, d2, d3] = ACKLAM_D;
  return (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) / ((((d0 * q + d1) * q + d2) * q + d3) * q + 1);
}

/**
 * The standard normal quantile Φ⁻¹(p) for p in (0, 1) (−Infinity at 0, Infinity at 1, NaN outside).
 * Peter Acklam's rational approximation (relative error < 1.15e-9), refined by one Halley step
 * against `normalCdf`: the result is accurate to about 1e-15 relative (the tests check published values).
 */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  let x: number;
  if (p < P_LOW) {
    x = acklamTail(Math.sqrt(-2 * Math.log(p)));
  } else if (p <= 1 - P_LOW) {
    const q = p - 0.5;
    const r = q * q;
    const [a0, a1, a2, a3, a4, a5] = ACKLAM_A;
    const [b0, b1, b2, b3, b4] = ACKLAM_B;
    x = ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) / (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1);
  } else {
    x = -acklamTail(Math.sqrt(-2 * Math.log1p(-p)));
  }
  // Halley step. In the upper half, work with the upper tail so that p near 1 keeps its precision.
  const e = x <= 0 ? normalCdf(x) - p : 1 - p - normalSf(x);
  const u = e * SQRT_2PI * Math.exp(0.5 * x * x);
  return x - u / (1 + 0.5 * x * u);
}

/** The two-sided critical value for a confidence level: z such that P(|Z| ≤ z) = level. */
export function zCritical(level: number): number {
  return normalQuantile(0.5 + level / 2);
}

// ---- chi-square ----------------------------------------------------------------------------------

/**
 * P(X ≥ x) for X ~ χ²(df), df a whole number ≥ 1, in closed form:
 * even df: e^(−x/2) Σ_{i<df/2} (x/2)^i / i!;
 * odd df: 2·Q(√x) + 2φ(√x) Σ_{i=1}^{(df−1)/2} x^(i−1/2) / (1·3···(2i−1)).
 * Terms are formed in log space, so large x and df do not underflow before they should.
 */
export function chiSquareSf(x: number, df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`chiSquareSf: df must be a whole number ≥ 1; got ${df}.`);
  if (Number.isNaN(x)) return NaN;
  if (x <= 0) return 1;
  let sum = 0;
  if (df % 2 === 0) {
    let logTerm = -x / 2;
    const logHalf = Math.log(x / 2);
    for (let i = 0; i < df / 2; i++) {
      if (i > 0) logTerm += logHalf - Math.log(i);
      sum += Math.exp(logTerm);
    }
    return Math.min(1, sum);
  }
  const s = Math.sqrt(x);
  let logTerm = -0.5 * x - 0.5 * Math.log(2 * Math.PI) + Math.log(s); // log(φ(√x)·√x), the term i = 1
  const logX = Math.log(x);
  for (let i = 1; i <= (df - 1) / 2; i++) {
    if (i > 1) logTerm += logX - Math.log(2 * i - 1);
    sum += Math.exp(logTerm);
  }
  return Math.min(1, 2 * normalSf(s) + 2 * sum);
}

/**
 * Pearson's chi-square goodness-of-fit of observed counts against expected proportions
 * (which are normalised): the statistic, its degrees of freedom (categories − 1) and p-value.
 */
export function chiSquareGoodnessOfFit(observed: readonly number[], proportions: readonly number[]): { statistic: number; df: number; pValue: number } {
  if (observed.length !== proportions.length || observed.length < 2) {
    throw new RangeError('chiSquareGoodnessOfFit: needs at least two categories, with one proportion per observed count.');
  }
  let n = 0;
  let total = 0;
  for (let i = 0; i < observed.length; i++) {
    n += observed[i]!;
    total += proportions[i]!;
  }
  let statistic = 0;
  for (let i = 0; i < observed.length; i++) {
    const expected = (n * proportions[i]!) / total;
    const d = observed[i]! - expected;
    statistic += expected > 0 ? (d * d) / expected : 0;
  }
  const df = observed.length - 1;
  return { statistic, df, pValue: n === 0 ? 1 : chiSquareSf(statistic, df) };
}

// ---- comparisons ---------------------------------------------------------------------------------

export type Interval = [number, number];

/** The comparison of one metric between a treatment and the control. Null where undefined. */
export interface Comparison {
  /** The metric in the control arm. */
  control: number | null;
  /** The metric in the treatment arm. */
  value: number | null;
  /** value − control. */
  difference: number | null;
  /** Confidence interval of the difference (Wald, unpooled). */
  differenceCi: Interval | null;
  /** value / control − 1. */
  lift: number | null;
  /** Confidence interval of the lift (delta method on the log of the ratio). */
  liftCi: Interval | null;
  /** Standard error of the log of the ratio value / control (delta method). */
  seLog: number | null;
  /** The test statistic. */
  z: number | null;
  /** Two-sided p-value of H0: no difference. */
  pValue: number | null;
  /** pValue < 1 − level. */
  significant: boolean;
  /** Units of analysis (e.g. visitors) in each arm. */
  units: { control: number; treatment: number };
}

export interface ProportionSample {
  /** Units with the outcome. */
  successes: number;
  /** Units. */
  n: number;
}

export interface MeanSample {
  n: number;
  mean: number;
  /** Sample variance (denominator n − 1). */
  variance: number;
}

/**
 * A ratio of two per-unit sums, Σnum / Σden over n units, from the per-unit means, variances and
 * covariance (all with denominator n − 1 for the variances and covariance).
 */
export interface RatioSample {
  n: number;
  meanNum: number;
  meanDen: number;
  varNum: number;
  varDen: number;
  covNumDen: number;
}

function empty(units: { control: number; treatment: number }, control: number | null, value: number | null): Comparison {
  return {
    control,
    value,
    difference: control !== null && value !== null ? value - control : null,
    differenceCi: null,
    lift: control !== null && value !== null && control > 0 ? value / control - 1 : null,
    liftCi: null,
    seLog: null,
    z: null,
    pValue: null,
    significant: false,
    units,
  };
}

function finish(
  c: Comparison,
  level: number,
  seDiff: number,
  seTest: number,
  seLog: number | null,
): Comparison {
  const k = zCritical(level);
  const d = c.difference!;
  if (Number.isFinite(seDiff) && seDiff >= 0) c.differenceCi = [d - k * seDiff, d + k * seDiff];
  if (Number.isFinite(seTest) && seTest > 0) {
    c.z = d / seTest;
    c.pValue = twoSidedP(c.z);
    c.significant = c.pValue < 1 - level;
  }
  if (seLog !== null && Number.isFinite(seLog) && c.lift !== null && c.value! > 0) {
    c.seLog = seLog;
    const logRatio = Math.log(c.value! / c.control!);
    c.liftCi = [Math.expm1(logRatio - k * seLog), Math.expm1(logRatio + k * seLog)];
  }
  return c;
}

/**
 * Two-proportion z-test of treatment against control.
 * - test: z = (p₂ − p₁) / √(p̄(1 − p̄)(1/n₁ + 1/n₂)), p̄ the pooled proportion; two-sided p-value.
 * - difference CI: (p₂ − p₁) ± z_{level}·√(p₁(1 − p₁)/n₁ + p₂(1 − p₂)/n₂) (Wald, unpooled).
 * - lift CI: exp(log(p₂/p₁) ± z_{level}·√(1/x₁ − 1/n₁ + 1/x₂ − 1/n₂)) − 1 (delta method on the log
 *   of the risk ratio, Katz et al. 1978); null when either arm has no successes.
 */
export function proportionTest(control: ProportionSample, treatment: ProportionSample, level = 0.95): Comparison {
  const units = { control: control.n, treatment: treatment.n };
  if (control.n <= 0 || treatment.n <= 0) return empty(units, control.n > 0 ? control.successes / control.n : null, treatment.n > 0 ? treatment.successes / treatment.n : null);
  const p1 = control.successes / control.n;
  const p2 = treatment.successes / treatment.n;
  const c = empty(units, p1, p2);
  const pooled = (control.successes + treatment.successes) / (control.n + treatment.n);
  const seTest = Math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n));
  const seDiff = Math.sqrt((p1 * (1 - p1)) / control.n + (p2 * (1 - p2)) / treatment.n);
  const seLog =
    control.successes > 0 && treatment.successes > 0
      ? Math.sqrt(Math.max(0, 1 / control.successes - 1 / control.n + 1 / treatment.successes - 1 / treatment.n))
      : null;
  return finish(c, level, seDiff, seTest, seLog);
}

/**
 * Difference of two means with Welch's unpooled standard error √(s₁²/n₁ + s₂²/n₂) and the normal
 * approximation (the report asks for enough units that Student's t and the normal differ by little:
 * docs/experiments.md). Lift CI by the delta method on log(m₂/m₁):
 * Var ≈ s₁²/(n₁m₁²) + s₂²/(n₂m₂²). Needs n ≥ 2 in each arm.
 */
export function meanTest(control: MeanSample, treatment: MeanSample, level = 0.95): Comparison {
  const units = { control: control.n, treatment: treatment.n };
  const c = empty(units, control.n > 0 ? control.mean : null, treatment.n > 0 ? treatment.mean : null);
  if (control.n < 2 || treatment.n < 2) return c;
  const v1 = control.variance / control.n;
  const v2 = treatment.variance / treatment.n;
  const se = Math.sqrt(v1 + v2);
  const seLog =
    control.mean > 0 && treatment.mean > 0 ? Math.sqrt(v1 / (control.mean * control.mean) + v2 / (treatment.mean * treatment.mean)) : null;
  return finish(c, level, se, se, seLog);
}

/** The ratio Σnum/Σden of a sample and the delta-method variance of that ratio (null when Σden = 0). */
export function ratioEstimate(s: RatioSample): { ratio: number; variance: number } | null {
  if (s.n <= 0 || !(s.meanDen > 0)) return null;
  const r = s.meanNum / s.meanDen;
  // Var(R) ≈ (s_Y² − 2R·s_XY + R²·s_X²) / (n·X̄²)   (Y numerator, X denominator; Deng et al. 2018)
  const v = (s.varNum - 2 * r * s.covNumDen + r * r * s.varDen) / (s.n * s.meanDen * s.meanDen);
  return { ratio: r, variance: Math.max(0, v) };
}

/**
 * Difference of two ratio metrics (each Σnum/Σden over the units of an arm), with the delta-method
 * variance of each ratio (ratioEstimate); the test is a Wald z on the difference, the lift CI the
 * delta method on log(R₂/R₁): Var ≈ Var(R₁)/R₁² + Var(R₂)/R₂². Needs n ≥ 2 and Σden > 0 in each arm.
 */
export function ratioTest(control: RatioSample, treatment: RatioSample, level = 0.95): Comparison {
  const units = { control: control.n, treatment: treatment.n };
  const e1 = ratioEstimate(control);
  const e2 = ratioEstimate(treatment);
  const c = empty(units, e1?.ratio ?? null, e2?.ratio ?? null);
  if (e1 === null || e2 === null || control.n < 2 || treatment.n < 2) return c;
  const se = Math.sqrt(e1.variance + e2.variance);
  const seLog = e1.ratio > 0 && e2.ratio > 0 ? Math.sqrt(e1.variance / (e1.ratio * e1.ratio) + e2.variance / (e2.ratio * e2.ratio)) : null;
  return finish(c, level, se, se, seLog);
}

// ---- accumulating samples ------------------------------------------------------------------------

/**
 * Streaming means, variances and covariance of (num, den) pairs, one pair per unit (Welford's
 * update, numerically stable for sums of squares of money in minor units). `num` alone serves a mean
 * or a proportion; both serve a ratio.
 */
export class PairMoments {
  n = 0;
  /** Σnum and Σden, added exactly (integers below 2^53 stay exact); the means reported are these over n. */
  sumNum = 0;
  sumDen = 0;
  private wNum = 0; // Welford's running means, for the second moments only
  private wDen = 0;
  private m2Num = 0;
  private m2Den = 0;
  private cNumDen = 0;

  add(num: number, den = 1): void {
    this.n++;
    this.sumNum += num;
    this.sumDen += den;
    const dNum = num - this.wNum;
    const dDen = den - this.wDen;
    this.wNum += dNum / this.n;
    this.wDen += dDen / this.n;
    this.m2Num += dNum * (num - this.wNum);
    this.m2Den += dDen * (den - this.wDen);
    this.cNumDen += dNum * (den - this.wDen);
  }

  mean(): MeanSample {
    return { n: this.n, mean: this.n > 0 ? this.sumNum / this.n : 0, variance: this.n > 1 ? this.m2Num / (this.n - 1) : 0 };
  }

  ratio(): RatioSample {
    const d = this.n > 1 ? this.n - 1 : 1;
    const n = this.n > 0 ? this.n : 1;
    return { n: this.n, meanNum: this.sumNum / n, meanDen: this.sumDen / n, varNum: this.m2Num / d, varDen: this.m2Den / d, covNumDen: this.cNumDen / d };
  }
}

// ---- seeded randomness and the bootstrap ---------------------------------------------------------

/** A seeded generator of numbers in [0, 1) (the simulator's mulberry32: 32-bit state, fast, good enough for resampling). */
export function seededRandom(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** Per-unit values of one arm: the numerator and, for a ratio, the denominator (1 per unit when absent). */
export interface UnitValues {
  num: ArrayLike<number>;
  den?: ArrayLike<number>;
}

export interface BootstrapOptions {
  /** Resamples. Default 2000. */
  iterations?: number;
  /** Default 1. */
  seed?: number;
  /** Default 0.95. */
  level?: number;
}

export interface BootstrapResult {
  /** Σnum/Σden of treatment over control, minus 1, on the original data. */
  lift: number;
  /** Percentile interval of the lift. */
  liftCi: Interval;
  /** Percentile interval of the difference of the ratios. */
  differenceCi: Interval;
  /** Standard deviation of log(R₂/R₁) over the resamples (compare with the delta method's seLog). */
  seLog: number;
  /** Standard deviation of R₂ − R₁ over the resamples. */
  seDifference: number;
  /** Resamples in which either ratio was undefined (Σden = 0), left out. */
  dropped: number;
}

function ratioOf(v: UnitValues): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < v.num.length; i++) {
    num += v.num[i]!;
    den += v.den === undefined ? 1 : v.den[i]!;
  }
  return num / den;
}

function resampleRatio(v: UnitValues, rnd: () => number): number {
  const n = v.num.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const j = Math.floor(rnd() * n);
    num += v.num[j]!;
    den += v.den === undefined ? 1 : v.den[j]!;
  }
  return num / den;
}

function quantileSorted(xs: readonly number[], q: number): number {
  // Linear interpolation between order statistics (type 7, as R's default).
  const h = (xs.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(xs.length - 1, lo + 1);
  return xs[lo]! + (h - lo) * (xs[hi]! - xs[lo]!);
}

function sd(xs: readonly number[]): number {
  let m = 0;
  for (const x of xs) m += x;
  m /= xs.length;
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}

/**
 * Seeded nonparametric bootstrap of the ratio metric Σnum/Σden (a mean or proportion when `den` is
 * absent): units are resampled with replacement within each arm, independently. Percentile
 * intervals. For tests and offline checks: it costs iterations × units.
 */
export function bootstrapRatio(control: UnitValues, treatment: UnitValues, options: BootstrapOptions = {}): BootstrapResult {
  const iterations = options.iterations ?? 2000;
  const level = options.level ?? 0.95;
  const rnd = seededRandom(options.seed ?? 1);
  const lifts: number[] = [];
  const logs: number[] = [];
  const diffs: number[] = [];
  let dropped = 0;
  for (let b = 0; b < iterations; b++) {
    const r1 = resampleRatio(control, rnd);
    const r2 = resampleRatio(treatment, rnd);
    if (!Number.isFinite(r1) || !Number.isFinite(r2)) {
      dropped++;
      continue;
    }
    diffs.push(r2 - r1);
    if (r1 > 0 && r2 > 0) {
      lifts.push(r2 / r1 - 1);
      logs.push(Math.log(r2 / r1));
    }
  }
  lifts.sort((a, b) => a - b);
  diffs.sort((a, b) => a - b);
  const a = (1 - level) / 2;
  return {
    lift: ratioOf(treatment) / ratioOf(control) - 1,
    liftCi: [quantileSorted(lifts, a), quantileSorted(lifts, 1 - a)],
    differenceCi: [quantileSorted(diffs, a), quantileSorted(diffs, 1 - a)],
    seLog: sd(logs),
    seDifference: sd(diffs),
    dropped,
  };
}
