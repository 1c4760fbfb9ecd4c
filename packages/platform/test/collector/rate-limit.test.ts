import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../src/collector/rate-limit.ts';

describe('RateLimiter', () => {
  it('grants within the burst, refills at the rate, and says how long to wait', () => {
    let now = 0;
    const l = new RateLimiter(undefined, () => now);
    const limit = { eventsPerSecond: 100, burst: 200 };
    assert.equal(l.take('m', limit, 150), 0);
    assert.equal(l.take('m', limit, 100), 500, '50 tokens left, 50 more take 500 ms');
    now = 500;
    assert.equal(l.take('m', limit, 100), 0);
  });

  it('gives back the tokens of a request the log refused', () => {
    const l = new RateLimiter(undefined, () => 0);
    const limit = { eventsPerSecond: 10, burst: 100 };
    assert.equal(l.take('m', limit, 100), 0);
    assert.ok(l.take('m', limit, 100) > 0);
    l.refund('m', 100);
    assert.equal(l.take('m', limit, 100), 0);
  });

  it('grants a request larger than the burst on a full bucket, then holds the rate', () => {
    let now = 0;
    const l = new RateLimiter(undefined, () => now);
    const limit = { eventsPerSecond: 100, burst: 50 };
    assert.equal(l.take('m', limit, 120), 0);
    const wait = l.take('m', limit, 1);
    assert.equal(wait, 710, 'debt of 70 plus one token at 100/s');
    now = 710;
    assert.equal(l.take('m', limit, 1), 0);
  });

  it('applies the default limit to merchants without one, and none when there is no default', () => {
    const none = new RateLimiter(undefined, () => 0);
    assert.equal(none.take('m', undefined, 1e9), 0);
    const dflt = new RateLimiter({ eventsPerSecond: 1, burst: 1 }, () => 0);
    assert.equal(dflt.take('m', undefined, 1), 0);
    assert.ok(dflt.take('m', undefined, 1) > 0);
    assert.equal(dflt.take('other', undefined, 1), 0, 'buckets are per merchant');
  });
});
