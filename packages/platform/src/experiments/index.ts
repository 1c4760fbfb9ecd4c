/**
 * Experiments: assignment of visitors to variants (assign.ts), what a visitor did with the
 * recommendations (attribution.ts), the statistics (stats.ts) and the A/B report (report.ts).
 * Pure modules, no I/O; the streams topology and the API call them. See docs/experiments.md.
 */
export {
  assignVariant,
  assignmentPoint,
  variantAt,
  validateExperiment,
  controlOf,
  ASSIGNMENT_HASH_PREFIX,
  EXPERIMENT_ID_PATTERN,
  VARIANT_NAME_PATTERN,
  MAX_VARIANTS,
} from './assign.ts';
export type { Experiment, Variant } from './assign.ts';
export {
  attributionConfig,
  newVisitorState,
  applyEvent,
  visitorSummary,
  eventRole,
  isWidgetList,
  attributionToken,
  productKey,
  DEFAULT_ATTRIBUTION,
  VISITOR_STATE_VERSION,
} from './attribution.ts';
export type { AttributionConfig, VisitorState, VisitorSummary, EventRole } from './attribution.ts';
export {
  normalCdf,
  normalSf,
  normalPdf,
  normalQuantile,
  twoSidedP,
  zCritical,
  chiSquareSf,
  chiSquareGoodnessOfFit,
  proportionTest,
  meanTest,
  ratioTest,
  ratioEstimate,
  bootstrapRatio,
  seededRandom,
  PairMoments,
} from './stats.ts';
export type { Comparison, Interval, ProportionSample, MeanSample, RatioSample, UnitValues, BootstrapOptions, BootstrapResult } from './stats.ts';
export { buildReport, METRICS, PRIMARY_METRIC, DEFAULT_REPORT_OPTIONS } from './report.ts';
export type { ReportOptions, SummaryRow, ExperimentReport, VariantReport, MetricComparison, ReportWarning, WarningCode, MetricName } from './report.ts';
