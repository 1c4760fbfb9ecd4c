import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDevice, trafficSource } from '../../src/pipeline/enrich.ts';

function ctx(page: { url?: string | null; referrer?: string | null } | null, campaign: Record<string, string | null> | null = null) {
  return {
    context: {
      page: page === null ? null : { url: page.url ?? null, referrer: page.referrer ?? null, path: null, title: null, search: null },
      campaign: campaign === null ? null : { source: null, medium: null, name: null, term: null, content: null, ...campaign },
    },
  } as unknown as Parameters<typeof trafficSource>[0];
}

describe('enrichment', () => {
  it('parses device type, browser and OS from user agents', () => {
    assert.deepEqual(parseDevice('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'), { type: 'desktop', browser: 'Chrome', os: 'Windows' });
    assert.deepEqual(parseDevice('Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1'), { type: 'tablet', browser: 'Mobile Safari', os: 'iOS' });
    assert.deepEqual(parseDevice('Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36'), { type: 'mobile', browser: 'Chrome', os: 'Android' });
    assert.equal(parseDevice(null).type, 'unknown');
    assert.equal(parseDevice('').type, 'unknown');
    assert.equal(parseDevice('curl/8.0').type, 'unknown');
    // Cached: the same object comes back.
    const ua = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';
    assert.equal(parseDevice(ua), parseDevice(ua));
  });

  it('classifies traffic sources from campaign fields, click ids and referrers', () => {
    const cases: Array<[ReturnType<typeof ctx>, string]> = [
      [ctx({ url: 'https://shop.example/' }), 'direct'],
      [ctx(null), 'direct'],
      [ctx({ url: 'https://shop.example/p', referrer: 'https://shop.example/' }), 'direct'],
      [ctx({ url: 'https://shop.example/p', referrer: 'https://www.google.co.uk/' }), 'organic_search'],
      [ctx({ url: 'https://shop.example/p', referrer: 'https://duckduckgo.com/' }), 'organic_search'],
      [ctx({ url: 'https://shop.example/p?gclid=abc', referrer: 'https://www.google.com/' }), 'paid'],
      [ctx({ url: 'https://shop.example/p' }, { source: 'google', medium: 'cpc' }), 'paid'],
      [ctx({ url: 'https://shop.example/p' }, { source: 'google', medium: 'organic' }), 'organic_search'],
      [ctx({ url: 'https://shop.example/p' }, { source: 'newsletter', medium: 'email' }), 'email'],
      [ctx({ url: 'https://shop.example/p', referrer: 'https://mail.google.com/' }), 'email'],
      [ctx({ url: 'https://shop.example/p', referrer: 'https://l.instagram.com/' }), 'social'],
      [ctx({ url: 'https://shop.example/p', referrer: 'https://t.co/xyz' }), 'social'],
      [ctx({ url: 'https://shop.example/p' }, { source: 'facebook', medium: null }), 'social'],
      [ctx({ url: 'https://shop.example/p' }, { source: 'partner-blog', medium: 'referral' }), 'referral'],
      [ctx({ url: 'https://shop.example/p', referrer: 'https://someblog.example/post' }), 'referral'],
    ];
    for (const [c, expected] of cases) assert.equal(trafficSource(c), expected, JSON.stringify(c));
  });
});
