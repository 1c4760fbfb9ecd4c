/**
 * Enrichment: device, browser and OS from the user agent (ua-parser-js 1.x, MIT), the traffic
 * source from the campaign fields and the referrer, and the country. Pure functions; the user-agent
 * parse is cached, because a shop's traffic repeats a few hundred user agents.
 */
import { UAParser } from 'ua-parser-js';
import { isbot } from 'isbot';
import type { CanonicalEvent } from '../contract/index.ts';

export type DeviceType = 'desktop' | 'mobile' | 'tablet' | 'tv' | 'console' | 'wearable' | 'other' | 'unknown';
export type TrafficSource = 'direct' | 'organic_search' | 'paid' | 'social' | 'email' | 'referral';

export interface Device {
  type: DeviceType;
  browser: string | null;
  os: string | null;
}

export interface Enrichment {
  device: Device;
  trafficSource: TrafficSource;
  /** ISO 3166 alpha-2, upper case, or null. */
  country: string | null;
}

const UNKNOWN_DEVICE: Device = Object.freeze({ type: 'unknown', browser: null, os: null });

/** A bounded cache: cleared when full (user agents are few; the rare flood of unique ones stays bounded). */
class BoundedCache<V> {
  private map = new Map<string, V>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get(k: string): V | undefined {
    return this.map.get(k);
  }
  set(k: string, v: V): void {
    if (this.map.size >= this.max) this.map = new Map();
    this.map.set(k, v);
  }
}

const deviceCache = new BoundedCache<Device>(10_000);

export function parseDevice(userAgent: string | null): Device {
  if (userAgent === null || userAgent === '') return UNKNOWN_DEVICE;
  const hit = deviceCache.get(userAgent);
  if (hit !== undefined) return hit;
  const r = new UAParser(userAgent.length > 1024 ? userAgent.slice(0, 1024) : userAgent).getResult();
  const t = r.device.type;
  const type: DeviceType =
    t === undefined
      ? r.os.name === undefined && r.browser.name === undefined
        ? 'unknown'
        : 'desktop'
      : t === 'mobile' || t === 'tablet' || t === 'console' || t === 'wearable'
        ? t
        : t === 'smarttv'
          ? 'tv'
          : 'other';
  const device: Device = Object.freeze({ type, browser: r.browser.name ?? null, os: r.os.name ?? null });
  deviceCache.set(userAgent, device);
  return device;
}

const SEARCH_ENGINES = ['google.', 'bing.com', 'duckduckgo.com', 'search.yahoo.', 'yahoo.com', 'baidu.com', 'yandex.', 'ecosia.org', 'qwant.com', 'search.brave.com', 'naver.com', 'seznam.cz'];
const SOCIAL = ['facebook.com', 'fb.com', 'instagram.com', 't.co', 'twitter.com', 'x.com', 'linkedin.com', 'lnkd.in', 'pinterest.', 'tiktok.com', 'reddit.com', 'youtube.com', 'youtu.be', 'snapchat.com', 'threads.net', 'whatsapp.com', 'telegram.org', 'vk.com'];
const WEBMAIL = ['mail.google.com', 'outlook.live.com', 'outlook.office.com', 'mail.yahoo.com', 'mail.proton.me', 'webmail.'];
const PAID_MEDIUMS = new Set(['cpc', 'ppc', 'paid', 'paidsearch', 'paid_search', 'paid-search', 'cpm', 'cpv', 'cpa', 'display', 'banner', 'paid_social', 'paid-social', 'paidsocial', 'retargeting', 'affiliate']);
const EMAIL_MEDIUMS = new Set(['email', 'e-mail', 'e_mail', 'newsletter', 'mail']);
const SOCIAL_MEDIUMS = new Set(['social', 'social-network', 'social_network', 'social-media', 'social_media', 'sm', 'organic_social', 'organic-social']);
const SEARCH_SOURCES = ['google', 'bing', 'duckduckgo', 'yahoo', 'baidu', 'yandex', 'ecosia', 'qwant', 'brave', 'naver'];
const SOCIAL_SOURCES = ['facebook', 'fb', 'instagram', 'ig', 'twitter', 'x', 'linkedin', 'pinterest', 'tiktok', 'reddit', 'youtube', 'snapchat', 'threads'];

function hostOf(url: string | null | undefined): string | null {
  if (!url) return null;
  const start = url.indexOf('//');
  if (start < 0) return null;
  let end = start + 2;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */ || c === 58 /* : */) break;
    end++;
  }
  const host = url.slice(start + 2, end).toLowerCase();
  const at = host.lastIndexOf('@');
  return at >= 0 ? host.slice(at + 1) : host;
}

function hostMatches(host: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    if (p.endsWith('.')) {
      // "google." matches google.com, www.google.co.uk …
      if (host.startsWith(p) || host.includes(`.${p}`)) return true;
    } else if (host === p || host.endsWith(`.${p}`)) return true;
  }
  return false;
}

/**
 * The traffic source of an event, from its campaign (utm_*) fields, click ids and referrer, as
 * analytics tools classify it (the rules are in docs/pipeline.md):
 * - a paid medium, or an ad click id (gclid, msclkid, fbclid with a paid medium…) → paid;
 * - an email medium or source → email; a social medium, or a social source → social;
 * - medium "organic", or a search engine as source → organic_search;
 * - other campaign fields → referral;
 * - without campaign fields: no referrer, or a referrer on the page's own host → direct; a search
 *   engine → organic_search; a social site → social; a webmail → email; anything else → referral.
 */
export function trafficSource(e: Pick<CanonicalEvent, 'context'>): TrafficSource {
  const c = e.context.campaign;
  const page = e.context.page;
  const url = page?.url ?? null;
  const medium = c?.medium?.trim().toLowerCase() ?? '';
  const source = c?.source?.trim().toLowerCase() ?? '';
  if (medium !== '' && PAID_MEDIUMS.has(medium)) return 'paid';
  if (url !== null && (url.includes('gclid=') || url.includes('msclkid=') || url.includes('dclid=') || url.includes('gbraid=') || url.includes('wbraid='))) return 'paid';
  if (medium !== '' || source !== '') {
    if (EMAIL_MEDIUMS.has(medium) || EMAIL_MEDIUMS.has(source)) return 'email';
    if (SOCIAL_MEDIUMS.has(medium) || SOCIAL_SOURCES.includes(source)) return 'social';
    if (medium === 'organic' || SEARCH_SOURCES.includes(source)) return 'organic_search';
    return 'referral';
  }
  const ref = hostOf(page?.referrer);
  if (ref === null || ref === '') return 'direct';
  const own = hostOf(url);
  if (own !== null && (ref === own || ref.endsWith(`.${own}`) || own.endsWith(`.${ref}`))) return 'direct';
  if (hostMatches(ref, WEBMAIL)) return 'email';
  if (hostMatches(ref, SEARCH_ENGINES)) return 'organic_search';
  if (hostMatches(ref, SOCIAL)) return 'social';
  return 'referral';
}

const botCache = new BoundedCache<boolean>(10_000);

/** isbot's verdict on a user agent, cached (its pattern is one large regular expression). */
export function isBotUserAgent(userAgent: string | null): boolean {
  if (userAgent === null || userAgent === '') return false;
  let hit = botCache.get(userAgent);
  if (hit === undefined) {
    hit = isbot(userAgent);
    botCache.set(userAgent, hit);
  }
  return hit;
}

export function enrich(e: CanonicalEvent): Enrichment {
  return { device: parseDevice(e.context.userAgent), trafficSource: trafficSource(e), country: e.context.country };
}
