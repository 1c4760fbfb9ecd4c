/**
 * Serves the merchant dashboard (packages/dashboard, built by Vite into its `dist/`) at `/`.
 *
 * - The files are read once and compressed in memory (brotli and gzip, node:zlib); each answer
 *   picks the best encoding the client accepts, with `Vary: Accept-Encoding` and an ETag.
 * - `/assets/*` are Vite's content-hashed files: cached for a year, immutable. The page itself is
 *   `no-cache` (revalidated with its ETag), so a new build shows at the next load.
 * - In demo mode (`npm start` only) the page is told which merchant to sign in as, through a JSON
 *   `<script type="application/json" id="shopstream-config">` in the page. Nothing else enables it.
 * - Without a build, `/` answers 503 with a page that says how to build it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, resolve, sep } from 'node:path';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export interface DashboardOptions {
  /** The built dashboard. Default: packages/dashboard/dist of this repository. */
  distDir?: string;
  /**
   * Signs the page in as this merchant at once. Only the embedded demo (`npm start`) sets it. With
   * the merchant's time zone and currency, the page shows at once and checks the token alongside.
   */
  demo?: { merchant: string; readToken: string; timezone?: string; currency?: string };
}

export const DEFAULT_DASHBOARD_DIST = resolve(import.meta.dirname, '../../../dashboard/dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.svg', '.txt']);

/** The page's Content-Security-Policy: everything from this origin; no inline script. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Asset {
  type: string;
  etag: string;
  identity: Buffer;
  gzip?: Buffer;
  br?: Buffer;
}

interface Site {
  indexMtimeMs: number;
  index: Asset;
  assets: Map<string, Asset>;
}

function asset(path: string, bytes: Buffer): Asset {
  const ext = extname(path).toLowerCase();
  const a: Asset = { type: TYPES[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"`, identity: bytes };
  if (COMPRESSIBLE.has(ext) && bytes.length > 512) {
    a.gzip = gzipSync(bytes, { level: 9 });
    a.br = brotliCompressSync(bytes, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: bytes.length } });
  }
  return a;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The page with the demo sign-in, as JSON that no script executes (`<` escaped, so it cannot close the element). */
function withConfig(html: string, demo: DashboardOptions['demo']): string {
  if (demo === undefined) return html;
  const json = JSON.stringify({ demo: { merchant: demo.merchant, readToken: demo.readToken, timezone: demo.timezone, currency: demo.currency } }).replace(/</g, '\\u003c');
  const tag = `<script id="shopstream-config" type="application/json">${json}</script>`;
  return html.includes('</head>') ? html.replace('</head>', `${tag}</head>`) : tag + html;
}

function load(dist: string, demo: DashboardOptions['demo']): Site | undefined {
  const indexPath = join(dist, 'index.html');
  if (!existsSync(indexPath)) return undefined;
  const indexMtimeMs = statSync(indexPath).mtimeMs;
  const assets = new Map<string, Asset>();
  const assetsDir = join(dist, 'assets');
  if (existsSync(assetsDir)) {
    for (const file of walk(assetsDir)) assets.set(`/assets/${relative(assetsDir, file).split(sep).join('/')}`, asset(file, readFileSync(file)));
  }
  return { indexMtimeMs, index: asset(indexPath, Buffer.from(withConfig(readFileSync(indexPath, 'utf8'), demo))), assets };
}

/** The encoding to send: brotli, then gzip, when the client accepts it (q=0 refuses). */
export function pickEncoding(accept: string | undefined, a: Asset): 'br' | 'gzip' | undefined {
  if (accept === undefined || a.gzip === undefined) return undefined;
  const accepted = new Map<string, number>();
  for (const part of accept.toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';');
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)).find((m) => m !== null);
    accepted.set(name!.trim(), q ? Number(q[1]) : 1);
  }
  const ok = (e: string) => (accepted.get(e) ?? accepted.get('*') ?? 0) > 0;
  if (a.br !== undefined && ok('br')) return 'br';
  if (ok('gzip')) return 'gzip';
  return undefined;
}

function send(req: FastifyRequest, reply: FastifyReply, a: Asset, cacheControl: string, extra: Record<string, string> = {}): FastifyReply {
  reply.header('content-type', a.type).header('cache-control', cacheControl).header('etag', a.etag).header('x-content-type-options', 'nosniff');
  for (const [k, v] of Object.entries(extra)) reply.header(k, v);
  if (a.gzip !== undefined) reply.header('vary', 'Accept-Encoding');
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === a.etag)) return reply.code(304).send();
  const encoding = pickEncoding(req.headers['accept-encoding'], a);
  const body = encoding === 'br' ? a.br! : encoding === 'gzip' ? a.gzip! : a.identity;
  if (encoding !== undefined) reply.header('content-encoding', encoding);
  return reply.header('content-length', String(body.length)).send(body);
}

const HTML_HEADERS = { 'content-security-policy': CSP, 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' };

function notBuilt(dist: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Shopstream: dashboard not built</title></head>
<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5">
<h1>The dashboard is not built yet</h1>
<p>The platform is running (the collector, <a href="/metrics">metrics</a> and the analytics API answer), but it found no dashboard build in <code>${dist.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)}</code>.</p>
<p>Build it, then reload this page:</p>
<pre style="background:#f3f4f6;padding:.75rem 1rem;border-radius:6px">npm run build -w @shopstream/dashboard</pre>
<p><code>npm start</code> builds it for you when it is missing or older than its sources.</p>
</body></html>`;
}

export function dashboardRoutes(app: FastifyInstance, options: DashboardOptions = {}): void {
  const dist = resolve(options.distDir ?? DEFAULT_DASHBOARD_DIST);
  let site: Site | undefined;
  /** Reloads when the build changed (a rebuild while the platform runs); undefined without a build. */
  const current = (): Site | undefined => {
    const indexPath = join(dist, 'index.html');
    if (!existsSync(indexPath)) return (site = undefined);
    if (site === undefined || statSync(indexPath).mtimeMs !== site.indexMtimeMs) site = load(dist, options.demo);
    return site;
  };
  // Read and compress the build now, so the first visitor does not wait for brotli.
  current();

  const page = async (req: FastifyRequest, reply: FastifyReply) => {
    const s = current();
    if (s === undefined) {
      return reply.code(503).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').header('retry-after', '5').send(notBuilt(dist));
    }
    return send(req, reply, s.index, 'no-cache', HTML_HEADERS);
  };
  app.get('/', page);
  app.get('/index.html', page);

  app.get('/assets/*', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    const a = current()?.assets.get(path);
    if (a === undefined) return reply.code(404).header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store').send(`No dashboard asset ${path}; reload the page.`);
    return send(req, reply, a, 'public, max-age=31536000, immutable');
  });
}
