/**
 * Experiments and the assignment of visitors to their variants. Pure: no I/O, no clock, no state.
 *
 * A visitor's variant is a function of (experiment id, visitor id) only, so every process, partition
 * and release that sees the same visitor puts it in the same variant, with nothing stored:
 *
 *   point   = first 53 bits (big-endian) of SHA-256( UTF-8("shopstream-ab-v1" NUL experimentId NUL visitorId) ) / 2^53
 *   variant = the first variant, in declared order, whose cumulative share exceeds `point`
 *
 * The point is uniform in [0, 1). Because the experiment id is hashed with the visitor id, a
 * visitor's point in one experiment says nothing about its point in another (SHA-256 outputs for
 * different inputs behave as independent). Experiment ids cannot contain NUL, so the input splits
 * back into its parts one way only. The prefix names the scheme: a different scheme must change it.
 *
 * Stability holds for the same experiment definition: changing the shares or the order of the
 * variants moves visitors. To ramp a treatment up, start a new experiment (new id).
 * See docs/experiments.md.
 */
import { hash } from 'node:crypto';
import { PlatformError, PlatformErrors } from '../errors.ts';

export interface Variant {
  readonly name: string;
  /** Share of visitors, in (0, 1]; the shares of an experiment add up to 1. */
  readonly share: number;
}

export interface Experiment {
  readonly id: string;
  readonly variants: readonly Variant[];
  /** The variant the others are compared with. Default: the first variant. */
  readonly control?: string;
}

/** The prefix of every hash input: names the assignment scheme (version 1). */
export const ASSIGNMENT_HASH_PREFIX = 'shopstream-ab-v1';
export const EXPERIMENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const VARIANT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_VARIANTS = 20;
/** How far from 1 the sum of the shares may be (floating-point slack). */
export const SHARE_SUM_TOLERANCE = 1e-9;

function invalid(message: string, field: string): PlatformError {
  return new PlatformError(PlatformErrors.INVALID_PARAMETER, message, { details: { field } });
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

/**
 * Checks an experiment definition (from configuration or an API request) and returns it as a
 * frozen `Experiment` (with `control` filled in). Throws a PlatformError with code
 * SHOP_ERR_INVALID_PARAMETER and `details.field` naming what is wrong.
 */
export function validateExperiment(input: unknown): Experiment & { readonly control: string } {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalid(`An experiment must be an object { id, variants: [{ name, share }] }; got ${describe(input)}.`, 'experiment');
  }
  const x = input as Record<string, unknown>;
  const id = x['id'];
  if (typeof id !== 'string' || !EXPERIMENT_ID_PATTERN.test(id)) {
    throw invalid(
      `experiment.id must be 1 to 128 characters of letters, digits, '.', '_', ':' and '-', starting with a letter or digit; got ${describe(id)}.`,
      'id',
    );
  }
  const variantsIn = x['variants'];
  if (!Array.isArray(variantsIn) || variantsIn.length < 2 || variantsIn.length > MAX_VARIANTS) {
    throw invalid(
      `experiment.variants must be an array of 2 to ${MAX_VARIANTS} variants { name, share }; got ${Array.isArray(variantsIn) ? `${variantsIn.length} variant(s)` : describe(variantsIn)}.`,
      'variants',
    );
  }
  const names = new Set<string>();
  const variants: Variant[] = [];
  let sum = 0;
  for (let i = 0; i < variantsIn.length; i++) {
    const v: unknown = variantsIn[i];
    const at = `variants[${i}]`;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid(`experiment.${at} must be an object { name, share }; got ${describe(v)}.`, at);
    const name = (v as Record<string, unknown>)['name'];
    const share = (v as Record<string, unknown>)['share'];
    if (typeof name !== 'string' || !VARIANT_NAME_PATTERN.test(name)) {
      throw invalid(
        `experiment.${at}.name must be 1 to 64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit; got ${describe(name)}.`,
        `${at}.name`,
      );
    }
    if (names.has(name)) throw invalid(`experiment.${at}.name ${JSON.stringify(name)} is used by another variant; names must be unique.`, `${at}.name`);
    names.add(name);
    if (typeof share !== 'number' || !Number.isFinite(share) || share <= 0 || share > 1) {
      throw invalid(`experiment.${at}.share must be a number greater than 0 and at most 1; got ${describe(share)}.`, `${at}.share`);
    }
    sum += share;
    variants.push(Object.freeze({ name, share }));
  }
  if (Math.abs(sum - 1) > SHARE_SUM_TOLERANCE) {
    throw invalid(`The shares of experiment.variants must add up to 1; they add up to ${sum}.`, 'variants');
  }
  const controlIn = x['control'];
  let control = variants[0]!.name;
  if (controlIn !== undefined && controlIn !== null) {
    if (typeof controlIn !== 'string' || !names.has(controlIn)) {
      throw invalid(`experiment.control must name one of the variants (${[...names].join(', ')}); got ${describe(controlIn)}.`, 'control');
    }
    control = controlIn;
  }
  return Object.freeze({ id, variants: Object.freeze(variants), control });
}

/** The control variant's name: `experiment.control`, else the first variant. */
export function controlOf(experiment: Experiment): string {
  return experiment.control ?? experiment.variants[0]!.name;
}

const TWO_POW_53 = 2 ** 53;

/**
 * The visitor's point in [0, 1) for an experiment: the first 53 bits of
 * SHA-256("shopstream-ab-v1" NUL experimentId NUL visitorId) (UTF-8), big-endian, over 2^53.
 */
export function assignmentPoint(experimentId: string, visitorId: string): number {
  // One-shot hash to hex is the fastest form in Node (about 1 µs); strings are hashed as UTF-8.
  const hex = hash('sha256', `${ASSIGNMENT_HASH_PREFIX}\u0000${experimentId}\u0000${visitorId}`, 'hex');
  // 13 hex digits (52 bits) and the top bit of the 14th: the first 53 bits, exact in a double.
  return (parseInt(hex.slice(0, 13), 16) * 2 + (parseInt(hex[13]!, 16) >>> 3)) / TWO_POW_53;
}

/** Cumulative share thresholds of a validated experiment, kept per experiment object. */
const thresholds = new WeakMap<Experiment, { names: readonly string[]; upper: readonly number[] }>();

function plan(experiment: Experiment): { names: readonly string[]; upper: readonly number[] } {
  let p = thresholds.get(experiment);
  if (p === undefined) {
    const v = validateExperiment(experiment);
    let cum = 0;
    const upper: number[] = [];
    for (const x of v.variants) {
      cum += x.share;
      upper.push(cum);
    }
    upper[upper.length - 1] = Infinity; // the last variant takes whatever rounding leaves
    p = { names: v.variants.map((x) => x.name), upper };
    thresholds.set(experiment, p);
  }
  return p;
}

/** The variant a point in [0, 1) falls in, for a (validated) experiment. */
export function variantAt(experiment: Experiment, point: number): string {
  const { names, upper } = plan(experiment);
  for (let i = 0; i < upper.length; i++) if (point < upper[i]!) return names[i]!;
  return names[names.length - 1]!;
}

/**
 * The name of the visitor's variant in the experiment: deterministic, stable across processes and
 * releases, independent across experiments. Validates the experiment the first time it is seen
 * (throws SHOP_ERR_INVALID_PARAMETER), and the visitor id (a non-empty string).
 */
export function assignVariant(experiment: Experiment, visitorId: string): string {
  if (typeof visitorId !== 'string' || visitorId.length === 0) {
    throw invalid(`The visitor id must be a non-empty string; got ${describe(visitorId)}.`, 'visitorId');
  }
  plan(experiment); // validates the experiment before its id is hashed
  return variantAt(experiment, assignmentPoint(experiment.id, visitorId));
}
