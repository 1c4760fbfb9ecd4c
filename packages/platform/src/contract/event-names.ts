/**
 * Canonical event names. Track calls carry one of Segment's E-commerce v2 names; page calls become
 * `Page Viewed` and identify calls `Identify`.
 *
 * A track name is recognised when it is one of these exactly, or the same ignoring case and every
 * character that is not a letter or a digit (`product_viewed`, `product viewed`, `ProductViewed`,
 * `PRODUCT-VIEWED`), or one of Segment's E-commerce v1 names, which the v2 spec says its events are
 * "aliased to" (`Viewed Product`, `Added Product`, `Completed Order`, …), with the same tolerance.
 * See https://segment.com/docs/connections/spec/ecommerce/v2/.
 */

export const TRACK_EVENT_NAMES = [
  'Products Searched',
  'Product List Viewed',
  'Product Clicked',
  'Product Viewed',
  'Product Added',
  'Product Removed',
  'Cart Viewed',
  'Checkout Started',
  'Order Completed',
] as const;

export const CANONICAL_EVENT_NAMES = [...TRACK_EVENT_NAMES, 'Page Viewed', 'Identify'] as const;

export type TrackEventName = (typeof TRACK_EVENT_NAMES)[number];
export type CanonicalEventName = (typeof CANONICAL_EVENT_NAMES)[number];

/** E-commerce v1 names (and the GA Enhanced E-commerce `Started Order`) → v2 names. */
const LEGACY: Readonly<Record<string, TrackEventName>> = {
  'Searched Products': 'Products Searched',
  'Viewed Product Category': 'Product List Viewed',
  'Clicked Product': 'Product Clicked',
  'Viewed Product': 'Product Viewed',
  'Added Product': 'Product Added',
  'Removed Product': 'Product Removed',
  'Viewed Cart': 'Cart Viewed',
  'Started Checkout': 'Checkout Started',
  'Started Order': 'Checkout Started',
  'Completed Order': 'Order Completed',
};

/** Lower-case letters and digits only: "Product_Viewed" → "productviewed". */
function squash(raw: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    let c = raw.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) out += String.fromCharCode(c);
  }
  return out;
}

const EXACT = new Map<string, TrackEventName>();
const SQUASHED = new Map<string, TrackEventName>();
for (const name of TRACK_EVENT_NAMES) {
  EXACT.set(name, name);
  SQUASHED.set(squash(name), name);
}
for (const [legacy, name] of Object.entries(LEGACY)) {
  EXACT.set(legacy, name);
  SQUASHED.set(squash(legacy), name);
}

/** No accepted name is longer than this; longer input is not looked at character by character. */
const MAX_NAME_LENGTH = 64;

/**
 * The canonical name of a track event name as a client sent it, or undefined when it is not one of
 * the commerce events Shopstream accepts.
 */
export function canonicalEventName(raw: string): TrackEventName | undefined {
  const exact = EXACT.get(raw);
  if (exact !== undefined || raw.length > MAX_NAME_LENGTH) return exact;
  return SQUASHED.get(squash(raw));
}
