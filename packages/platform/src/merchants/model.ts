/**
 * A merchant (tenant). Merchants are kept in the compacted `merchants` topic, keyed by id; the
 * value is this object as JSON. The latest value of a key wins; a null value deletes the merchant.
 */
export interface MetaSettings {
  pixelId: string;
  accessToken: string;
  testEventCode?: string;
}

export interface RateLimit {
  /** Sustained events per second accepted for this merchant, per collector instance. */
  eventsPerSecond: number;
  /** Events that may arrive at once above the sustained rate. */
  burst: number;
}

export interface Merchant {
  id: string;
  /** Active write keys. Storefronts authenticate ingest with one of them. */
  writeKeys: string[];
  /**
   * Active server write keys: secret keys for the merchant's backends (an order import, Segment's
   * analytics-node), never put in a page. Their events need no beacon validation (the pipeline's
   * `trusted_source`), and the beacon routes refuse them. Absent in records written before they
   * existed: read as [].
   */
  serverWriteKeys?: string[];
  /** Write keys (browser or server) replaced by `merchants rotate-key`: refused with a message that says so. */
  revokedWriteKeys: string[];
  /** Read tokens for the analytics API and the dashboard. */
  readTokens: string[];
  /** IANA time zone, e.g. Europe/Paris. */
  timezone: string;
  /** ISO 4217 currency used when an event carries money without a currency. */
  currency: string;
  meta?: MetaSettings;
  rateLimit?: RateLimit;
  createdAt: number;
  updatedAt: number;
}

/** What the ingest and beacon routes need to know about merchants. */
export interface MerchantLookup {
  /** `server`: the key is one of the merchant's server write keys (absent: a browser write key). */
  byWriteKey(writeKey: string): { merchant: Merchant; revoked: boolean; server?: boolean } | undefined;
  byId(id: string): Merchant | undefined;
}

/** Longest write key looked up (longer ones are unknown without a lookup). */
export const MAX_WRITE_KEY_LENGTH = 256;

/**
 * Which kind of key authenticated a request: `browser`, a write key (public, in storefront pages);
 * `server`, a server write key (secret, for backends).
 */
export type WriteKeyKind = 'browser' | 'server';

export type WriteKeyCheck =
  | { ok: true; merchant: Merchant; kind: WriteKeyKind }
  | { ok: false; reason: 'missing' | 'unknown' | 'revoked'; message: string };

/** The one check of a write key, for every route that takes one. Messages say what to do. */
export function checkWriteKey(merchants: MerchantLookup, writeKey: unknown): WriteKeyCheck {
  if (typeof writeKey !== 'string' || writeKey.length === 0) {
    return { ok: false, reason: 'missing', message: 'No write key: send it as the HTTP Basic user name, or as "writeKey" in the body.' };
  }
  const found = writeKey.length > MAX_WRITE_KEY_LENGTH ? undefined : merchants.byWriteKey(writeKey);
  if (found === undefined) return { ok: false, reason: 'unknown', message: 'Unknown write key; check the source settings of your storefront.' };
  if (found.revoked) return { ok: false, reason: 'revoked', message: "This write key was rotated and no longer works; use the merchant's current write key." };
  return { ok: true, merchant: found.merchant, kind: found.server === true ? 'server' : 'browser' };
}
