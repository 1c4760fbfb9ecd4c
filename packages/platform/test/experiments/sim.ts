/**
 * Seeded simulation of visitor summaries for the experiment tests: a simple generative model of one
 * arm, fast enough for hundreds of A/A runs.
 */
import { seededRandom } from '../../src/experiments/stats.ts';
import type { SummaryRow } from '../../src/experiments/report.ts';

export interface ArmModel {
  /** P(the visitor sees a recommendation widget at least once). */
  exposedRate: number;
  /** P(clicks a recommendation at least once | exposed): the CTR of the report. */
  ctr: number;
  /** P(at least one order). */
  conversion: number;
  /** Median order value, minor units (order values are log-normal). */
  aovMedian: number;
  /** Sigma of the log of an order's value. */
  aovSigma: number;
  /** P(an order has two or more items). */
  multiItemRate: number;
}

export const BASELINE: ArmModel = { exposedRate: 0.9, ctr: 0.04, conversion: 0.5, aovMedian: 5000, aovSigma: 0.4, multiItemRate: 0.3 };

export type Rnd = () => number;

export function gaussian(rnd: Rnd): number {
  // Box–Muller; 1 − u keeps the log finite.
  const u = 1 - rnd();
  const v = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Extra events after the first: P(k more) = (1 − p)·p^k. */
function more(rnd: Rnd, p: number): number {
  let k = 0;
  while (rnd() < p && k < 50) k++;
  return k;
}

export function simulateVisitor(variant: string, m: ArmModel, rnd: Rnd): SummaryRow {
  const exposed = rnd() < m.exposedRate;
  const exposures = exposed ? 1 + more(rnd, 0.5) : 0;
  const engaged = exposed && rnd() < m.ctr;
  const clicks = engaged ? 1 + more(rnd, 0.4) : 0;
  const orders = rnd() < m.conversion ? (rnd() < 0.15 ? 2 : 1) : 0;
  let revenue = 0;
  let multiItemOrders = 0;
  for (let i = 0; i < orders; i++) {
    revenue += Math.round(m.aovMedian * Math.exp(m.aovSigma * gaussian(rnd)));
    if (rnd() < m.multiItemRate) multiItemOrders++;
  }
  const attributed = engaged && orders > 0 && rnd() < 0.5;
  return {
    variant,
    exposed,
    engaged,
    exposures,
    clicks,
    orders,
    revenue,
    multiItemOrders,
    attributedOrders: attributed ? 1 : 0,
    attributedRevenue: attributed ? Math.round(revenue * 0.3) : 0,
    attributedItems: attributed ? 1 : 0,
    otherCurrencyOrders: 0,
  };
}

/** `n` visitors per arm, arms given in order, interleaved as a stream would be. */
export function simulate(arms: readonly { name: string; model: ArmModel }[], n: number, seed: number): SummaryRow[] {
  const rnd = seededRandom(seed);
  const out: SummaryRow[] = [];
  for (let i = 0; i < n; i++) for (const a of arms) out.push(simulateVisitor(a.name, a.model, rnd));
  return out;
}

/** The expected revenue per visitor of a model: conversion × E[orders | converted] × E[order value]. */
export function expectedRevenuePerVisitor(m: ArmModel): number {
  return m.conversion * 1.15 * m.aovMedian * Math.exp((m.aovSigma * m.aovSigma) / 2);
}
