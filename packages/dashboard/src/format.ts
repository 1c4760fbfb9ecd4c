/** Numbers as a merchant reads them: money from the API's minor units, counts, rates, times in the shop's zone. */
import { currencyExponent } from '../../platform/src/contract/currencies.ts';

const LOCALE = typeof navigator === 'undefined' ? 'en-US' : navigator.language || 'en-US';
const cache = new Map<string, Intl.NumberFormat>();
function nf(key: string, options: Intl.NumberFormatOptions): Intl.NumberFormat {
  let f = cache.get(key);
  if (f === undefined) {
    f = new Intl.NumberFormat(LOCALE, options);
    cache.set(key, f);
  }
  return f;
}

/** The number of minor units in a major one (EUR 100, JPY 1, KWD 1000), from ISO 4217 (the platform's own table). */
export function minorPerMajor(currency: string): number {
  return 10 ** (currencyExponent(currency) ?? 2);
}

/** An amount given in minor units (cents), in its currency: `money(355030, 'EUR')` → "€3,550.30". */
export function money(minor: number, currency: string, compact = false): string {
  const exponent = currencyExponent(currency) ?? 2;
  const major = minor / 10 ** exponent;
  try {
    if (compact && Math.abs(major) >= 10_000) {
      return nf(`mc:${currency}`, { style: 'currency', currency, notation: 'compact', maximumFractionDigits: 1 }).format(major);
    }
    return nf(`m:${currency}:${exponent}`, { style: 'currency', currency, minimumFractionDigits: exponent, maximumFractionDigits: exponent }).format(major);
  } catch {
    return `${major.toFixed(exponent)} ${currency}`;
  }
}

/** A short amount for chart axes: no minor units, compact from a thousand ("€3K"). */
export function moneyShort(minor: number, currency: string): string {
  const major = minor / minorPerMajor(currency);
  try {
    return nf(`ms:${currency}`, { style: 'currency', currency, notation: Math.abs(major) >= 1000 ? 'compact' : 'standard', maximumFractionDigits: Math.abs(major) >= 1000 ? 1 : 0, minimumFractionDigits: 0 }).format(major);
  } catch {
    return `${Math.round(major)} ${currency}`;
  }
}

/** A chart tick: the time of day for spans up to a day and a half, else the date, in the shop's zone. */
export function tickLabel(ms: number, timeZone: string, spanMs: number): string {
  if (spanMs <= 36 * 3_600_000) return df(timeZone, { hour: '2-digit', minute: '2-digit' }, 't').format(ms);
  return df(timeZone, { day: 'numeric', month: 'short' }, 'dm').format(ms);
}

export function count(n: number): string {
  return nf('n', { maximumFractionDigits: 0 }).format(n);
}

export function decimal(n: number, digits = 1): string {
  return nf(`d${digits}`, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

export function compactCount(n: number): string {
  return Math.abs(n) < 10_000 ? count(n) : nf('c', { notation: 'compact', maximumFractionDigits: 1 }).format(n);
}

/** A ratio (0.205) as a percentage ("20.5 %"); null (a zero denominator) as "–". */
export function percent(r: number | null | undefined, digits = 1): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '–';
  return nf(`p${digits}`, { style: 'percent', minimumFractionDigits: digits, maximumFractionDigits: digits }).format(r);
}

const timeFormats = new Map<string, Intl.DateTimeFormat>();
function df(timeZone: string, options: Intl.DateTimeFormatOptions, key: string): Intl.DateTimeFormat {
  const k = `${timeZone}|${key}`;
  let f = timeFormats.get(k);
  if (f === undefined) {
    f = new Intl.DateTimeFormat(LOCALE, { timeZone, ...options });
    timeFormats.set(k, f);
  }
  return f;
}

/** A bucket start as the shop's local time, at the precision of the granularity. */
export function bucketLabel(ms: number, timeZone: string, granularity: 'minute' | 'hour' | 'day'): string {
  if (granularity === 'day') return df(timeZone, { weekday: 'short', day: 'numeric', month: 'short' }, 'd').format(ms);
  if (granularity === 'hour') return df(timeZone, { weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }, 'h').format(ms);
  return df(timeZone, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }, 'm').format(ms);
}

export function clockTime(ms: number, timeZone: string): string {
  return df(timeZone, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }, 's').format(ms);
}

/** "3 s ago", "4 min ago", "2 h ago". */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}
