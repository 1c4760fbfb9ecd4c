/**
 * The metrics the analytics API serves (docs/api.md). A module of its own, without imports, so that
 * the dashboard bundles this list instead of keeping a copy.
 */
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
