/** The answers of the analytics API (docs/api.md) and of the status endpoint (packages/platform/src/api/status.ts). */

import type { Metric } from '../../platform/src/cubes/metrics.ts';
import type { ProductRow } from '../../platform/src/cubes/store.ts';

export type Granularity = 'minute' | 'hour' | 'day';

// The platform's own lists and row types (metrics.ts has no imports; the rest are types only).
export { METRICS, type Metric } from '../../platform/src/cubes/metrics.ts';
export type { Dimension, ProductRow } from '../../platform/src/cubes/store.ts';

export type SeriesRow = { bucket: string; group: Record<string, string> } & Partial<Record<Metric, number | null>>;

export interface MetricsResponse {
  merchant: string;
  timezone: string;
  granularity: Granularity | 'all';
  from: string;
  to: string;
  series: SeriesRow[];
}

export interface FunnelStep {
  step: 'listing' | 'product' | 'cart' | 'checkout' | 'order';
  sessions: number;
  rate: number | null;
  fromPrevious: number | null;
}

export interface Funnel {
  group: Record<string, string>;
  sessions: number;
  steps: FunnelStep[];
}

export type FunnelResponse = { merchant: string; from: string; to: string } & (Funnel | { funnels: Funnel[] });

export type ProductMetric = 'views' | 'adds' | 'purchases' | 'revenue';


export interface ProductsResponse {
  merchant: string;
  metric: ProductMetric;
  from: string;
  to: string;
  products: ProductRow[];
}

// The status endpoint's answer, as the platform declares it (type only: nothing of the platform is bundled).
export type { LagRow, StatusResponse } from '../../platform/src/api/status.ts';
