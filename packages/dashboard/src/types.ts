/** The answers of the analytics API (docs/api.md) and of the status endpoint (packages/platform/src/api/status.ts). */

export type Granularity = 'minute' | 'hour' | 'day';

export const METRICS = [
  'events',
  'page_viewed',
  'product_viewed',
  'product_added',
  'checkout_started',
  'orders',
  'revenue',
  'items',
  'sessions',
  'visitors',
  'conversion_rate',
  'aov',
  'bot_events',
  'bot_share',
] as const;
export type Metric = (typeof METRICS)[number];

export type Dimension = 'device_type' | 'country' | 'traffic_source' | 'channel' | 'event_type' | 'currency';

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

export interface ProductRow {
  productId: string;
  currency: string;
  views: number;
  adds: number;
  purchases: number;
  revenue: number;
}

export interface ProductsResponse {
  merchant: string;
  metric: ProductMetric;
  from: string;
  to: string;
  products: ProductRow[];
}

// The status endpoint's answer, as the platform declares it (type only: nothing of the platform is bundled).
export type { LagRow, StatusResponse } from '../../platform/src/api/status.ts';
