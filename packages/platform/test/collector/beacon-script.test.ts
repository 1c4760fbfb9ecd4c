/**
 * The beacon script, run in a tiny fake browser (node:vm with stubbed document, storage, fetch and
 * timers). Checks what it sends, where, and that it never throws into the page.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { beaconScript } from '../../src/collector/beacon/script.ts';
import { beaconRoutes } from '../../src/collector/beacon/routes.ts';

const SRC = 'https://collect.example.com/v1/beacon.js?writeKey=wk_shop%2Ba';

interface FetchCall {
  url: string;
  init: { method?: string; body?: string; credentials?: string; headers?: unknown; keepalive?: boolean } | undefined;
}

interface Reply {
  status: number;
  json?: unknown;
  headers?: Record<string, string>;
}

class MemoryStorage {
  data = new Map<string, string>();
  getItem(k: string): string | null {
    return this.data.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.data.set(k, String(v));
  }
  removeItem(k: string): void {
    this.data.delete(k);
  }
}

interface PageOptions {
  src?: string | null;
  attrs?: Record<string, string>;
  cookie?: string;
  local?: Record<string, string>;
  session?: MemoryStorage;
  globals?: Record<string, unknown>;
  /** Answers fetches, in order of calls; a function may throw/reject. */
  respond?: (call: FetchCall, n: number) => Reply | Promise<Reply>;
  now?: number;
  noStorage?: boolean;
}

function page(opts: PageOptions = {}) {
  const calls: FetchCall[] = [];
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const local = new MemoryStorage();
  for (const [k, v] of Object.entries(opts.local ?? {})) local.setItem(k, v);
  const session = opts.session ?? new MemoryStorage();
  const script = opts.src === null ? null : {
    src: opts.src ?? SRC,
    getAttribute: (name: string) => opts.attrs?.[name] ?? null,
  };
  const respond = opts.respond ?? ((call: FetchCall): Reply => {
    if (call.url.includes('/challenge')) return { status: 200, json: { token: 'tok123', expiresAt: (opts.now ?? 1_000_000) + 300_000 } };
    return { status: 204 };
  });
  const sandbox: Record<string, unknown> = {
    document: {
      currentScript: script,
      querySelector: () => null,
      get cookie() {
        return opts.cookie ?? '';
      },
    },
    location: { href: 'https://shop.example/products/1' },
    URL,
    Date: class extends Date {
      static override now() {
        return opts.now ?? 1_000_000;
      }
    },
    setTimeout: (fn: () => void, ms: number) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    fetch: async (url: string, init?: FetchCall['init']) => {
      const call = { url, init };
      calls.push(call);
      const r = await respond(call, calls.length - 1);
      return {
        ok: r.status >= 200 && r.status < 300,
        status: r.status,
        headers: { get: (h: string) => r.headers?.[h.toLowerCase()] ?? null },
        json: async () => r.json,
      };
    },
    ...opts.globals,
  };
  if (!opts.noStorage) {
    sandbox['localStorage'] = local;
    sandbox['sessionStorage'] = session;
  }
  sandbox['window'] = sandbox;
  vm.createContext(sandbox);
  return {
    run: () => vm.runInContext(beaconScript, sandbox, { filename: 'beacon.js' }) as unknown,
    calls,
    timers,
    session,
    sandbox,
    /** Runs pending timers (those set so far), in order. */
    async tick() {
      const due = timers.splice(0);
      for (const t of due) t.fn();
      await settle();
    },
  };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

function bodyOf(call: FetchCall): Record<string, unknown> {
  return JSON.parse(String(call.init?.body)) as Record<string, unknown>;
}

test('the script is small and plain ES2017 (parses as a classic script)', () => {
  assert.ok(Buffer.byteLength(beaconScript) < 2048, `${Buffer.byteLength(beaconScript)} bytes`);
  assert.doesNotThrow(() => new vm.Script(beaconScript));
  assert.doesNotMatch(beaconScript, /\?\.|\?\?|catch\s*\{|\bimport\b|\bexport\b/, 'no syntax newer than ES2017');
});

test('reads analytics.js\'s anonymous id from localStorage, calls challenge then validate at the script\'s origin', async () => {
  const p = page({ local: { ajs_anonymous_id: '"0b7e4a52-2c1e-4a3b-9d0f-1e2f3a4b5c6d"' } });
  p.run();
  await settle();
  assert.equal(p.calls.length, 2);
  const [c, v] = p.calls as [FetchCall, FetchCall];
  const cu = new URL(c.url);
  assert.equal(cu.origin + cu.pathname, 'https://collect.example.com/v1/beacon/challenge');
  assert.equal(cu.searchParams.get('writeKey'), 'wk_shop+a');
  assert.equal(cu.searchParams.get('anonymousId'), '0b7e4a52-2c1e-4a3b-9d0f-1e2f3a4b5c6d');
  assert.equal(c.init?.credentials, 'omit');
  assert.equal(v.url, 'https://collect.example.com/v1/beacon/validate');
  assert.equal(v.init?.method, 'POST');
  assert.equal(v.init?.credentials, 'omit');
  assert.equal(v.init?.headers, undefined, 'a string body goes as text/plain: no preflight');
  assert.equal(typeof v.init?.body, 'string');
  assert.deepEqual(bodyOf(v), { writeKey: 'wk_shop+a', anonymousId: '0b7e4a52-2c1e-4a3b-9d0f-1e2f3a4b5c6d', token: 'tok123' });
  // Remembered for the token's lifetime.
  assert.equal(p.session.getItem('shopstream_bv:0b7e4a52-2c1e-4a3b-9d0f-1e2f3a4b5c6d'), String(1_000_000 + 300_000));
});

test('once per visitor per token lifetime: a second page load in the session sends nothing', async () => {
  const session = new MemoryStorage();
  const first = page({ local: { ajs_anonymous_id: '"v1"' }, session });
  first.run();
  await settle();
  assert.equal(first.calls.length, 2);
  const second = page({ local: { ajs_anonymous_id: '"v1"' }, session });
  second.run();
  await settle();
  assert.equal(second.calls.length, 0);
  // After the token's expiry it validates again.
  const later = page({ local: { ajs_anonymous_id: '"v1"' }, session, now: 1_000_000 + 300_000 });
  later.run();
  await settle();
  assert.equal(later.calls.length, 2);
  // Another visitor in the same session (analytics.reset()) validates too.
  const other = page({ local: { ajs_anonymous_id: '"v2"' }, session });
  other.run();
  await settle();
  assert.equal(other.calls.length, 2);
});

test('anonymous id sources: data attribute, window global, analytics.user(), cookie (quoted, URL-encoded or raw)', async () => {
  const cases: Array<[PageOptions, string]> = [
    [{ attrs: { 'data-anonymous-id': 'from-attr' }, local: { ajs_anonymous_id: '"from-ls"' } }, 'from-attr'],
    [{ globals: { shopstreamAnonymousId: 'from-global' }, local: { ajs_anonymous_id: '"from-ls"' } }, 'from-global'],
    [{ globals: { analytics: { user: () => ({ anonymousId: () => 'from-ajs' }) } }, local: { ajs_anonymous_id: '"from-ls"' } }, 'from-ajs'],
    [{ globals: { analytics: [] }, local: { ajs_anonymous_id: '"from-ls"' } }, 'from-ls'], // snippet stub, not loaded yet
    [{ local: { ajs_anonymous_id: 'raw-ls' } }, 'raw-ls'],
    [{ cookie: 'a=1; ajs_anonymous_id=%22from-cookie%22; b=2' }, 'from-cookie'],
    [{ cookie: 'ajs_anonymous_id="quoted"' }, 'quoted'],
    [{ cookie: 'x_ajs_anonymous_id=no; ajs_anonymous_id=raw-cookie' }, 'raw-cookie'],
  ];
  for (const [opts, expected] of cases) {
    const p = page(opts);
    p.run();
    await settle();
    assert.equal(p.calls.length, 2, expected);
    assert.equal(new URL(p.calls[0]!.url).searchParams.get('anonymousId'), expected);
    assert.equal(bodyOf(p.calls[1]!)['anonymousId'], expected);
  }
});

test('no anonymous id yet: looks again every second, up to 10 times, then gives up', async () => {
  const local: Record<string, string> = {};
  const p = page({ local });
  p.run();
  await settle();
  assert.equal(p.calls.length, 0);
  assert.equal(p.timers.length, 1);
  assert.equal(p.timers[0]!.ms, 1000);
  await p.tick();
  assert.equal(p.calls.length, 0);
  // analytics.js initialises: the next look finds the id.
  (p.sandbox['localStorage'] as MemoryStorage).setItem('ajs_anonymous_id', '"late"');
  await p.tick();
  assert.equal(p.calls.length, 2);
  assert.equal(bodyOf(p.calls[1]!)['anonymousId'], 'late');

  const never = page();
  never.run();
  for (let i = 0; i < 15; i++) await never.tick();
  assert.equal(never.calls.length, 0);
  assert.equal(never.timers.length, 0, 'stopped looking');
});

test('collector behind a path prefix: the base URL keeps it', async () => {
  const p = page({ src: 'https://edge.example/shopstream/v1/beacon.js?writeKey=k', local: { ajs_anonymous_id: '"a"' } });
  p.run();
  await settle();
  assert.ok(p.calls[0]!.url.startsWith('https://edge.example/shopstream/v1/beacon/challenge?'));
  assert.equal(p.calls[1]!.url, 'https://edge.example/shopstream/v1/beacon/validate');
});

test('on 503 it posts the same token again after Retry-After (capped), up to 3 tries', async () => {
  let validates = 0;
  const p = page({
    local: { ajs_anonymous_id: '"a"' },
    respond: (call) => {
      if (call.url.includes('/challenge')) return { status: 200, json: { token: 'tok', expiresAt: 2_000_000 } };
      validates++;
      return validates === 1 ? { status: 503, headers: { 'retry-after': '60' } } : { status: 204 };
    },
  });
  p.run();
  await settle();
  assert.equal(p.calls.length, 2);
  assert.equal(p.timers.length, 1);
  assert.equal(p.timers[0]!.ms, 5000, 'Retry-After is capped at 5 s');
  await p.tick();
  assert.equal(p.calls.length, 3);
  assert.deepEqual(bodyOf(p.calls[2]!), bodyOf(p.calls[1]!));
  assert.equal(p.session.getItem('shopstream_bv:a'), '2000000');
});

test('refused validation (403/409): nothing is remembered, no retry loop', async () => {
  const p = page({
    local: { ajs_anonymous_id: '"a"' },
    respond: (call) => (call.url.includes('/challenge') ? { status: 200, json: { token: 't', expiresAt: 2_000_000 } } : { status: 403 }),
  });
  p.run();
  await settle();
  assert.equal(p.calls.length, 2);
  assert.equal(p.timers.length, 0);
  assert.equal(p.session.getItem('shopstream_bv:a'), null);
});

test('never throws into the page: fetch rejects, throws, bad JSON, no storage, no script element, no fetch', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const variants: PageOptions[] = [
      { local: { ajs_anonymous_id: '"a"' }, respond: () => Promise.reject(new TypeError('Failed to fetch')) },
      { local: { ajs_anonymous_id: '"a"' }, respond: () => { throw new Error('sync throw'); } },
      { local: { ajs_anonymous_id: '"a"' }, respond: (c) => (c.url.includes('/challenge') ? { status: 200, json: null } : Promise.reject(new Error('x'))) },
      { local: { ajs_anonymous_id: '"a"' }, respond: () => ({ status: 500 }) },
      { noStorage: true, cookie: 'ajs_anonymous_id=%E0%A4%A' }, // malformed URI escape, storage missing
      { noStorage: true, globals: { shopstreamAnonymousId: 'a' } },
      { src: null },
      { src: 'not a url at all ::::' },
      { src: 'https://collect.example.com/v1/beacon.js' }, // no write key
      { local: { ajs_anonymous_id: '"a"' }, globals: { fetch: undefined } },
      { local: { ajs_anonymous_id: '"' + 'x'.repeat(500) + '"' } }, // too long: ignored
      { globals: { document: undefined } },
    ];
    for (const opts of variants) {
      const p = page(opts);
      assert.doesNotThrow(() => p.run(), JSON.stringify(opts));
      await settle();
      for (let i = 0; i < 12; i++) await p.tick();
    }
    // A throwing localStorage getter (Safari with storage blocked) is survived too.
    const p = page({ globals: { shopstreamAnonymousId: 'a' } });
    Object.defineProperty(p.sandbox, 'sessionStorage', { get() { throw new Error('SecurityError'); } });
    assert.doesNotThrow(() => p.run());
    await settle();
    assert.equal(p.calls.length, 2);
    await settle();
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('runs once even when the tag is on the page twice', async () => {
  const p = page({ local: { ajs_anonymous_id: '"a"' } });
  p.run();
  p.run();
  await settle();
  assert.equal(p.calls.length, 2);
});

test('end to end: the script against the real routes (fetch answered by app.inject) validates the visitor', async () => {
  const appended: Array<{ key: Buffer; value: Buffer }> = [];
  const app = Fastify();
  const m = { id: 'shop_a', writeKeys: ['wk_a'], revokedWriteKeys: [], readTokens: [], timezone: 'UTC', currency: 'EUR', createdAt: 0, updatedAt: 0 };
  await app.register(beaconRoutes, {
    merchants: { byWriteKey: (k) => (k === 'wk_a' ? { merchant: m, revoked: false } : undefined), byId: () => m },
    secrets: [Buffer.alloc(32, 5)],
    registry: new Registry(),
    now: () => 1_000_000,
    append: async (r) => { appended.push(r); },
  });
  const ua = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';
  const p = page({
    src: 'https://collect.example.com/v1/beacon.js?writeKey=wk_a',
    local: { ajs_anonymous_id: '"visitor-42"' },
    respond: async (call) => {
      const u = new URL(call.url);
      const isString = typeof call.init?.body === 'string';
      const res = await app.inject({
        method: (call.init?.method ?? 'GET') as 'GET' | 'POST',
        url: u.pathname + u.search,
        // What a browser adds: its User-Agent, and text/plain for a string body.
        headers: { 'user-agent': ua, origin: 'https://shop.example', ...(isString && { 'content-type': 'text/plain;charset=UTF-8' }) },
        ...(isString && { payload: call.init?.body }),
      });
      return { status: res.statusCode, json: res.body ? JSON.parse(res.body) : undefined, headers: res.headers as Record<string, string> };
    },
  });
  p.run();
  await settle();
  assert.equal(p.calls.length, 2);
  assert.equal(appended.length, 1);
  assert.equal(appended[0]!.key.toString(), 'visitor-42');
  assert.equal((JSON.parse(appended[0]!.value.toString()) as { merchantId: string }).merchantId, 'shop_a');
  assert.ok(Number(p.session.getItem('shopstream_bv:visitor-42')) > 1_000_000);
  await app.close();
});
