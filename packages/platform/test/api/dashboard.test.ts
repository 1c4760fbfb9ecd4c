/**
 * The dashboard's static files: content types, brotli/gzip by Accept-Encoding, long caching of
 * hashed assets, ETags, the demo sign-in only when asked for, and a clear page (not a 500) when
 * the dashboard is not built.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import { dashboardRoutes, type DashboardOptions } from '../../src/api/dashboard.ts';
import { tempDir } from '../helpers.ts';

const SCRIPT = `console.log(${JSON.stringify('x'.repeat(4000))});\n`;

async function server(options: DashboardOptions): Promise<FastifyInstance> {
  const app = Fastify();
  dashboardRoutes(app, options);
  await app.ready();
  return app;
}

describe('dashboard files', () => {
  const t = tempDir();
  const dist = join(t.dir, 'dist');
  let app: FastifyInstance;
  let demo: FastifyInstance;
  before(async () => {
    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), `<!doctype html><html><head><title>t</title><script type="module" src="/assets/index-abc123.js"></script></head><body>${'<p>x</p>'.repeat(200)}</body></html>`);
    writeFileSync(join(dist, 'assets', 'index-abc123.js'), SCRIPT);
    writeFileSync(join(dist, 'assets', 'index-abc123.css'), `body{color:red}${'.a{margin:0}'.repeat(100)}`);
    app = await server({ distDir: dist });
    demo = await server({ distDir: dist, demo: { merchant: 'demo', readToken: 'rt_demo</script>' } });
  });
  after(async () => {
    await app.close();
    await demo.close();
    t.cleanup();
  });

  it('serves the page with its type, no-cache and security headers', async () => {
    const res = await app.inject({ method: 'GET', url: '/' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.headers['cache-control'], 'no-cache');
    assert.match(String(res.headers['content-security-policy']), /script-src 'self'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.ok(!res.body.includes('shopstream-config'), 'no demo sign-in unless asked for');
  });

  it('compresses with brotli or gzip, as the client accepts', async () => {
    const br = await app.inject({ method: 'GET', url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'gzip, deflate, br' } });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(br.headers['vary'], 'Accept-Encoding');
    assert.equal(br.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(brotliDecompressSync(br.rawPayload).toString(), SCRIPT);
    assert.ok(br.rawPayload.length < SCRIPT.length / 10);
    const gz = await app.inject({ method: 'GET', url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gunzipSync(gz.rawPayload).toString(), SCRIPT);
    const refused = await app.inject({ method: 'GET', url: '/assets/index-abc123.js', headers: { 'accept-encoding': 'br;q=0, gzip;q=0' } });
    assert.equal(refused.headers['content-encoding'], undefined);
    assert.equal(refused.body, SCRIPT);
    const css = await app.inject({ method: 'GET', url: '/assets/index-abc123.css', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  });

  it('caches hashed assets for a year and answers 304 to a matching ETag', async () => {
    const res = await app.inject({ method: 'GET', url: '/assets/index-abc123.js' });
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    const etag = String(res.headers['etag']);
    const again = await app.inject({ method: 'GET', url: '/assets/index-abc123.js', headers: { 'if-none-match': etag } });
    assert.equal(again.statusCode, 304);
    assert.equal((await app.inject({ method: 'GET', url: '/assets/nope.js' })).statusCode, 404);
  });

  it('in demo mode, tells the page which merchant to sign in as, in JSON that cannot close the script element', async () => {
    const res = await demo.inject({ method: 'GET', url: '/' });
    const m = /<script id="shopstream-config" type="application\/json">(.*?)<\/script>/.exec(res.body);
    assert.ok(m, 'the config element is in the page');
    assert.deepEqual(JSON.parse(m[1]!), { demo: { merchant: 'demo', readToken: 'rt_demo</script>' } });
  });

  it('without a build, / is a page that says how to build it (503, never a 500)', async () => {
    const none = await server({ distDir: join(t.dir, 'missing') });
    const res = await none.inject({ method: 'GET', url: '/' });
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(res.body, /npm run build -w @shopstream\/dashboard/);
    await none.close();
  });
});
