/**
 * Per-merchant rate limits: a token bucket per merchant, counted in events, per collector instance.
 * A request takes as many tokens as it has events, or none: it is accepted whole or refused whole
 * with the time after which it would fit.
 */
import type { RateLimit } from '../merchants/model.ts';

interface Bucket {
  tokens: number;
  updatedAt: number;
  rate: number;
  burst: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly defaults: RateLimit | undefined;
  private readonly now: () => number;

  /** `defaults` applies to merchants without their own limit; undefined means no limit for them. */
  constructor(defaults: RateLimit | undefined, now: () => number = Date.now) {
    this.defaults = defaults;
    this.now = now;
  }

  /**
   * Takes `n` tokens of the merchant's bucket. Returns 0 when granted, else the milliseconds to wait
   * before a request of this size would be granted.
   */
  take(merchantId: string, limit: RateLimit | undefined, n: number): number {
    const l = limit ?? this.defaults;
    if (!l) return 0;
    const now = this.now();
    let b = this.buckets.get(merchantId);
    if (!b || b.rate !== l.eventsPerSecond || b.burst !== l.burst) {
      b = { tokens: l.burst, updatedAt: now, rate: l.eventsPerSecond, burst: l.burst };
      this.buckets.set(merchantId, b);
    }
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.updatedAt) * b.rate) / 1000);
    b.updatedAt = now;
    // A request larger than the burst is granted on a full bucket and leaves it in debt, so that it
    // can ever be granted, and the merchant's rate still holds over time.
    const need = Math.min(n, b.burst);
    if (b.tokens >= need) {
      b.tokens -= n;
      return 0;
    }
    return Math.max(1, Math.ceil(((need - b.tokens) / b.rate) * 1000));
  }

  /** Gives back tokens of a request that was not accepted after all (the log refused the write). */
  refund(merchantId: string, n: number): void {
    const b = this.buckets.get(merchantId);
    if (b) b.tokens = Math.min(b.burst, b.tokens + n);
  }
}
