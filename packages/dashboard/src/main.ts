/**
 * The merchant dashboard: sign-in with a read token, a shell with the views, and the refresh loop.
 * Every number comes from the analytics API (/v1/merchants/{id}/metrics, /funnel, /products/top) or
 * from the platform's metrics (/v1/merchants/{id}/status); docs/dashboard.md says which.
 */
import './style.css';
import { Api, ApiError } from './api.ts';
import { h, fill, setText } from './dom.ts';
import { clockTime } from './format.ts';
import type { MerchantInfo, View, ViewSpec } from './view.ts';
import { nowView } from './views/now.ts';
import { trendsView } from './views/trends.ts';
import { funnelView } from './views/funnel.ts';
import { productsView } from './views/products.ts';
import { botsView } from './views/bots.ts';
import { pipelineView } from './views/pipeline.ts';
import { experimentsView } from './views/experiments.ts';

const VIEWS: ViewSpec[] = [nowView, trendsView, funnelView, productsView, botsView, experimentsView, pipelineView];
const SESSION_KEY = 'shopstream.session';
const SIGNED_OUT_KEY = 'shopstream.signedOut';

interface Session {
  merchant: string;
  token: string;
  demo?: boolean;
  /** The merchant's time zone and currency, known from an earlier check (or the demo's config). */
  info?: MerchantInfo;
}

const app = document.getElementById('app')!;

function demoConfig(): Session | undefined {
  const el = document.getElementById('shopstream-config');
  if (el === null) return undefined;
  try {
    const c = JSON.parse(el.textContent ?? '{}') as { demo?: { merchant?: unknown; readToken?: unknown; timezone?: unknown; currency?: unknown } };
    const d = c.demo;
    if (typeof d?.merchant === 'string' && typeof d.readToken === 'string') {
      const info = typeof d.timezone === 'string' && typeof d.currency === 'string' ? { id: d.merchant, timezone: d.timezone, currency: d.currency } : undefined;
      return { merchant: d.merchant, token: d.readToken, demo: true, ...(info && { info }) };
    }
  } catch {
    // no demo
  }
  return undefined;
}

function savedSession(): Session | undefined {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
    if (s !== null && typeof s.merchant === 'string' && typeof s.token === 'string') {
      if (typeof s.info?.timezone !== 'string' || typeof s.info.currency !== 'string') delete s.info;
      return s;
    }
  } catch {
    // ignore
  }
  return undefined;
}

/** What a refused token means, in words, with the API's code. */
function refusal(err: ApiError): string {
  if (err.status === 401) return `This read token is not valid (${err.status} ${err.code}). ${err.message}`;
  if (err.status === 403) return `Refused (${err.status} ${err.code}): ${err.message}`;
  if (err.status === 404) return `There is no such merchant (${err.status} ${err.code}). ${err.message}`;
  return `Sign-in failed (${err.status || 'network'} ${err.code}): ${err.message}`;
}

function signIn(message?: string, prefill?: Partial<Session>): void {
  stopLoop();
  window.onhashchange = null;
  document.title = 'Sign in · Shopstream';
  const error = h('div', { id: 'signin-error', class: message ? 'alert' : 'alert hidden', role: 'alert' }, message ?? '');
  const merchant = h('input', { id: 'signin-merchant', name: 'merchant', autocomplete: 'username', required: true, spellcheck: 'false', value: prefill?.merchant ?? '' });
  const token = h('input', { id: 'signin-token', name: 'token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin card', 'aria-labelledby': 'signin-title', novalidate: true },
    h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'Shopstream'),
    h('h1', { id: 'signin-title' }, 'Sign in to your shop'),
    error,
    h('label', { for: 'signin-merchant' }, 'Merchant id'),
    merchant,
    h('label', { for: 'signin-token' }, 'Read token'),
    token,
    button,
    h('p', { class: 'hint' }, 'Your read token (rt_…) is listed by ', h('code', {}, 'shopstream merchants list'), '. It is kept in this browser tab only (sessionStorage) and sent as a bearer token.'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const s: Session = { merchant: merchant.value.trim(), token: token.value.trim() };
    if (s.merchant === '' || s.token === '') {
      fill(error, 'Enter the merchant id and its read token.');
      error.classList.remove('hidden');
      return;
    }
    button.disabled = true;
    setText(button, 'Signing in…');
    void open(s).finally(() => {
      button.disabled = false;
      setText(button, 'Sign in');
    });
  });
  fill(app, h('main', { class: 'signin-page' }, form));
  app.setAttribute('aria-busy', 'false');
  (prefill?.merchant ? token : merchant).focus();
}

/**
 * Checks the token against the status endpoint (401/403 refuse it), then shows the dashboard. When
 * the merchant's settings are known (a session of this tab, the demo), the dashboard shows at once
 * and the check runs alongside: a refusal brings the sign-in form back.
 */
async function open(s: Session): Promise<void> {
  const api = new Api(s.merchant, s.token);
  const optimistic = s.info !== undefined && s.info.id === s.merchant;
  if (optimistic) shell(api, s.info!, s);
  try {
    const status = await api.status();
    const info = status.merchant;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ ...s, info }));
    sessionStorage.removeItem(SIGNED_OUT_KEY);
    if (!optimistic || info.timezone !== s.info!.timezone || info.currency !== s.info!.currency) shell(api, info, { ...s, info });
  } catch (err) {
    sessionStorage.removeItem(SESSION_KEY);
    signIn(err instanceof ApiError ? refusal(err) : `Sign-in failed: ${String(err)}`, { merchant: s.merchant });
  }
}

function signOut(): void {
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.setItem(SIGNED_OUT_KEY, '1');
  signIn();
}

// The refresh loop of the current view.
let current: { view: View; timer: number | undefined; generation: number } | undefined;
let generation = 0;
function stopLoop(): void {
  if (current) {
    clearTimeout(current.timer);
    current.view.destroy();
    current = undefined;
  }
  generation++;
}

function shell(api: Api, merchant: MerchantInfo, s: Session): void {
  stopLoop();
  const live = h('span', { class: 'live', id: 'live' }, h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'live-text' }, 'Connecting…'));
  const links = VIEWS.map((v) => h('a', { href: `#/${v.id}`, 'data-view': v.id }, v.title));
  const main = h('main', { id: 'view', tabindex: '-1' });
  const banner = h('div', { class: 'alert hidden', role: 'alert', id: 'banner' });
  fill(
    app,
    h(
      'header',
      { class: 'top' },
      h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), h('span', {}, 'Shopstream')),
      h(
        'div',
        { class: 'shop' },
        h('strong', { id: 'shop-name' }, merchant.id),
        s.demo ? h('span', { class: 'badge' }, 'demo') : null,
        h('span', { class: 'muted' }, `${merchant.timezone} · ${merchant.currency}`),
      ),
      live,
      h('button', { type: 'button', class: 'link', onclick: () => signOut() }, 'Sign out'),
    ),
    h('nav', { class: 'tabs', 'aria-label': 'Dashboard views' }, ...links),
    banner,
    main,
  );
  app.setAttribute('aria-busy', 'false');

  const route = () => {
    const [path = '', query = ''] = location.hash.replace(/^#\/?/, '').split('?');
    const spec = VIEWS.find((v) => v.id === path) ?? VIEWS[0]!;
    for (const a of links) {
      if (a.dataset['view'] === spec.id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${spec.title} · ${merchant.id} · Shopstream`;
    stopLoop();
    const params = new URLSearchParams(query);
    const view = spec.create({
      api,
      merchant,
      params,
      setParams: (changes) => {
        const next = new URLSearchParams(params);
        for (const [k, v] of Object.entries(changes)) next.set(k, v);
        location.hash = `#/${spec.id}?${next}`;
      },
    });
    fill(main, view.el);
    const mine = ++generation;
    current = { view, timer: undefined, generation: mine };
    const tick = async () => {
      if (current?.generation !== mine) return;
      if (document.hidden) {
        current.timer = window.setTimeout(tick, 500);
        return;
      }
      main.setAttribute('aria-busy', 'true');
      try {
        await view.refresh();
        if (current?.generation !== mine) return;
        live.classList.remove('stale');
        setText(live.querySelector('.live-text')!, `Live · ${clockTime(Date.now(), merchant.timezone)}`);
        banner.classList.add('hidden');
      } catch (err) {
        if (current?.generation !== mine) return;
        if (err instanceof ApiError && err.refused) {
          sessionStorage.removeItem(SESSION_KEY);
          signIn(refusal(err), { merchant: merchant.id });
          return;
        }
        live.classList.add('stale');
        setText(live.querySelector('.live-text')!, 'Not updating');
        fill(banner, `Could not update this view: ${err instanceof Error ? err.message : String(err)} Retrying…`);
        banner.classList.remove('hidden');
      } finally {
        main.setAttribute('aria-busy', 'false');
      }
      if (current?.generation === mine) current.timer = window.setTimeout(tick, view.intervalMs);
    };
    void tick();
  };
  window.onhashchange = route;
  route();
}

const saved = savedSession();
const demo = demoConfig();
if (saved) void open(saved);
else if (demo && sessionStorage.getItem(SIGNED_OUT_KEY) === null) void open(demo);
else signIn();
