/**
 * What Meta's answers mean for the forwarder (classification), the backoff, and the circuit breaker.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs, CircuitBreaker, classifyGraphResponse, eventsUrl, isThrottleCode, requestBody } from '../../src/capi/graph.ts';

const err = (e: Record<string, unknown>) => JSON.stringify({ error: { message: 'm', type: 'OAuthException', fbtrace_id: 'AbC', ...e } });

describe('classifyGraphResponse', () => {
  it('200 is ok, with the events Meta says it received', () => {
    assert.deepEqual(classifyGraphResponse(200, '{"events_received":3,"messages":[],"fbtrace_id":"x"}', 3), { kind: 'ok', received: 3 });
  });
  it('429, 5xx, throttling codes and transient errors are retried', () => {
    assert.equal(classifyGraphResponse(429, err({ code: 4 }), 1).kind, 'retry');
    assert.deepEqual(classifyGraphResponse(500, err({ code: 1, is_transient: true }), 1), {
      kind: 'retry',
      why: 'server_error',
      status: 500,
      error: { message: 'm', type: 'OAuthException', code: 1, is_transient: true, fbtrace_id: 'AbC' },
    });
    for (const code of [4, 17, 32, 613, 80004]) {
      const o = classifyGraphResponse(400, err({ code }), 1);
      assert.equal(o.kind === 'retry' && o.why, 'throttled', `code ${code}`);
    }
    assert.equal(classifyGraphResponse(400, err({ code: 2, is_transient: true }), 1).kind, 'retry');
    assert.equal(classifyGraphResponse(502, '<html>bad gateway</html>', 1).kind, 'retry');
  });
  it('code 100 is an invalid event (split the batch), except subcode 33 (the pixel): settings', () => {
    assert.equal(classifyGraphResponse(400, err({ code: 100, error_subcode: 2804003, is_transient: false }), 1).kind, 'invalid');
    assert.equal(classifyGraphResponse(400, err({ code: 100, error_subcode: 33 }), 1).kind, 'config');
  });
  it('an invalid token or a missing permission is a settings problem of the pixel', () => {
    assert.equal(classifyGraphResponse(400, err({ code: 190 }), 1).kind, 'config');
    assert.equal(classifyGraphResponse(403, err({ code: 10 }), 1).kind, 'config');
  });
  it("keeps only Meta's error fields", () => {
    const o = classifyGraphResponse(400, JSON.stringify({ error: { code: 100, message: 'x', access_token: 'secret', extra: 1 } }), 1);
    assert.deepEqual(o.kind === 'invalid' && o.error, { code: 100, message: 'x' });
  });
  it('isThrottleCode', () => {
    assert.deepEqual([1, 4, 17, 32, 100, 190, 613, 80000, 80014, 80015].map(isThrottleCode), [false, true, true, true, false, false, true, true, true, false]);
  });
});

describe('requests', () => {
  it('the token goes in the body, never the URL; events are passed through as JSON', () => {
    assert.equal(eventsUrl('http://127.0.0.1:9/', 'v21.0', '123 4'), 'http://127.0.0.1:9/v21.0/123%204/events');
    const body = JSON.parse(requestBody(['{"event_name":"PageView"}', '{"event_name":"Purchase"}'], 'tok"en', 'TEST1'));
    assert.deepEqual(body, { data: [{ event_name: 'PageView' }, { event_name: 'Purchase' }], access_token: 'tok"en', test_event_code: 'TEST1' });
    assert.equal('test_event_code' in JSON.parse(requestBody([], 't', undefined)), false);
  });
  it('backoff: full jitter under an exponential ceiling capped at the maximum', () => {
    assert.equal(backoffMs(0, 100, 10_000, () => 0.999), 99);
    assert.equal(backoffMs(3, 100, 10_000, () => 0.5), 400);
    assert.equal(backoffMs(20, 100, 10_000, () => 0.5), 5_000);
    assert.equal(backoffMs(5, 100, 10_000, () => 0), 0);
  });
});

describe('CircuitBreaker', () => {
  it('opens after the threshold, lets one probe through after openMs, closes on its success', () => {
    const b = new CircuitBreaker({ failureThreshold: 3, openMs: 1000, maxOpenMs: 8000 });
    b.failure(0);
    b.failure(0);
    assert.equal(b.allows(0), true);
    b.failure(0);
    assert.equal(b.state, 'open');
    assert.equal(b.allows(999), false);
    assert.equal(b.allows(1000), true);
    assert.equal(b.state, 'half_open');
    b.started();
    assert.equal(b.allows(1000), false, 'one probe at a time');
    b.success();
    assert.equal(b.state, 'closed');
    assert.equal(b.consecutiveFailures, 0);
  });
  it('a failed probe opens it again for twice as long, up to the maximum', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000, maxOpenMs: 3000 });
    b.failure(0);
    let now = 1000;
    for (const expected of [2000, 3000, 3000]) {
      assert.equal(b.allows(now), true);
      b.started();
      b.failure(now);
      assert.equal(b.retryAt, now + expected);
      now += expected;
    }
  });
});
