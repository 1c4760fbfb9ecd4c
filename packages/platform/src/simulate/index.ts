/**
 * The traffic simulator that knows the truth (docs/simulator.md): plan a simulation, send it to a
 * collector, compare the pipeline's topics with the truth.
 */
export { planSimulation, resolveOptions, laneOf, settleTruth } from './plan.ts';
export type { SimulationOptions, SimulationPlan, SimAction, GroundTruth, ResolvedParams, VisitorClass, RecsPlan, RecsTruth, RecsCounts } from './plan.ts';
export { react, expandBatch, resolveRecs, recsRequestPath, parseRecsAnswer, DEFAULT_RECS, RECS_MODEL_NAMES, WIDGET_SPAN_MS } from './react.ts';
export type { RecsOptions, ResolvedRecs, RecsModelName, RecsAnswer, WidgetSlot, WidgetShop, PlannedWidget, WidgetOutcome } from './react.ts';
export { runSimulation, parseRetryAfter } from './run.ts';
export type { RunOptions, RunResult } from './run.ts';
export { computeTruth, hourOf } from './truth.ts';
export type { TruthInput, TruthEvent, TruthCounts, MerchantCounts, HourCounts } from './truth.ts';
export { simulateCommand, SIMULATE_USAGE } from './cli.ts';
export type { SimulateIo } from './cli.ts';
