/**
 * The traffic simulator that knows the truth (docs/simulator.md): plan a simulation, send it to a
 * collector, compare the pipeline's topics with the truth.
 */
export { planSimulation, resolveOptions, laneOf } from './plan.ts';
export type { SimulationOptions, SimAction, GroundTruth, ResolvedParams, VisitorClass } from './plan.ts';
export { runSimulation, parseRetryAfter } from './run.ts';
export type { RunOptions, RunResult } from './run.ts';
export { computeTruth, hourOf } from './truth.ts';
export type { TruthInput, TruthEvent, TruthCounts, MerchantCounts, HourCounts } from './truth.ts';
export { simulateCommand, SIMULATE_USAGE } from './cli.ts';
export type { SimulateIo } from './cli.ts';
