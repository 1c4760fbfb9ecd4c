/**
 * Meta Conversions API `user_data`: the customer-information parameters, normalised and hashed the
 * way Meta specifies, from Segment traits. Pure functions, no I/O.
 *
 * Rules (docs/meta-capi.md has every rule with its example and source):
 * - Meta, "Customer Information Parameters":
 *   https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
 *   (em, ph, fn, ln, db, ge, ct, st, zp, country: normalise, then SHA-256, lower-case hex;
 *   external_id: hashing recommended; client_ip_address, client_user_agent, fbc, fbp: never hashed).
 * - Where that page is silent (which punctuation, which date layouts, what an external id's
 *   normal form is, an upper-case hash), Meta's own normaliser decides: the "Parameter Builder
 *   Library" (github.com/facebook/capi-param-builder, piiUtil) that the Meta Business SDK calls.
 *   Where that library contradicts the page it is not followed: it cuts every state, US or not, to
 *   two letters, drops every non-a-z letter of a city, and cuts a postal code at its first dash.
 * - Which trait feeds which parameter follows Segment's "Facebook Conversions API (Actions)"
 *   destination (segmentio/action-destinations, facebook-conversions-api/fb-capi-user-data.ts),
 *   widened to the snake_case and flat spellings Segment's identify spec also allows.
 *
 * A value that is already a SHA-256 digest (64 hex digits, any case, surrounding spaces allowed) is
 * passed through in lower case, never hashed twice; anything else that is unusable after
 * normalisation (empty, not a date, not a country…) is dropped rather than hashed, so every hashed
 * parameter that leaves here is exactly 64 lower-case hex digits.
 */
import { createHash } from 'node:crypto';

/** The customer-information parameters Meta wants hashed (external_id: "hashing recommended"). */
export const HASHED_FIELDS = ['em', 'ph', 'fn', 'ln', 'ge', 'db', 'ct', 'st', 'zp', 'country', 'external_id'] as const;
export type HashedField = (typeof HASHED_FIELDS)[number];

/**
 * Meta's `user_data` object as Shopstream sends it. Hashed parameters are 64 lower-case hex digits;
 * `em` and `ph` are a list when the traits carry several. Absent parameters are left out.
 */
export interface UserData {
  em?: string | string[];
  ph?: string | string[];
  fn?: string;
  ln?: string;
  db?: string;
  ge?: string;
  ct?: string;
  st?: string;
  zp?: string;
  country?: string;
  external_id?: string;
  /** As received, never hashed. */
  client_ip_address?: string;
  /** As received, never hashed. */
  client_user_agent?: string;
  /** The `_fbc` click id, as received, never hashed. */
  fbc?: string;
  /** The `_fbp` browser id, as received, never hashed. */
  fbp?: string;
}

/** What `userDataFrom` takes besides the traits. */
export interface UserDataExtra {
  userId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  fbc?: string | null;
  fbp?: string | null;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SHA256_HEX_ANY_CASE = /^[0-9a-fA-F]{64}$/;

/** True for exactly 64 lower-case hex digits: the form of every hashed parameter sent to Meta. */
export function isSha256Hex(s: string): boolean {
  return SHA256_HEX.test(s);
}

/** Longer input is not a name, an address part or an id: it is dropped rather than hashed. */
const MAX_INPUT_LENGTH = 1024;

function asText(value: unknown): string | null {
  let s: string;
  if (typeof value === 'string') s = value;
  else if (typeof value === 'number' && Number.isFinite(value)) s = String(value);
  else if (typeof value === 'bigint') s = String(value);
  else return null;
  return s.length > MAX_INPUT_LENGTH ? null : s;
}

/** Lower case, canonical composition (NFC), only letters, combining marks and digits kept. */
function lettersAndDigits(s: string): string {
  return s.normalize('NFC').toLowerCase().replace(/[^\p{L}\p{M}\p{N}]+/gu, '').normalize('NFC');
}

/** For table look-ups only: accents folded, lower case, letters only ("Côte d’Ivoire" → "cotedivoire"). */
function squash(s: string): string {
  return s
    .normalize('NFD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}]+/gu, '');
}

// ---------------------------------------------------------------------------------------------
// em, ph

/** Something@something.tld without whitespace; Meta's parameter builder also drops what is not an e-mail. */
const EMAIL = /^[^\s@]+@[^\s@.][^\s@]*\.[^\s@]+$/u;

function normalizeEmail(s: string): string | null {
  const e = s.trim().toLowerCase();
  return EMAIL.test(e) ? e : null;
}

/**
 * Digits only, leading zeros removed (so "+44 …" and the international prefix "0044 …" agree). A
 * "(0)" after the country code ("+44 (0)20 …") is the national trunk prefix, not dialled with the
 * country code: it goes too. The country code must already be in the number: nothing here can know
 * it. E.164 numbers have at most 15 digits; fewer than 7 cannot be a number with its country code.
 */
function normalizePhone(s: string): string | null {
  const digits = s
    .replace(/\(\s*0\s*\)/g, '')
    .replace(/\D+/g, '')
    .replace(/^0+/, '');
  return digits.length >= 7 && digits.length <= 15 ? digits : null;
}

// ---------------------------------------------------------------------------------------------
// ge

const FEMALE = new Set(['f', 'female', 'woman', 'girl', 'lady', 'feminine', 'mrs', 'ms', 'miss']);
const MALE = new Set(['m', 'male', 'man', 'boy', 'masculine', 'mr']);

function normalizeGender(s: string): string | null {
  const g = s.toLowerCase().replace(/[^a-z]+/g, '');
  if (FEMALE.has(g)) return 'f';
  if (MALE.has(g)) return 'm';
  return null;
}

// ---------------------------------------------------------------------------------------------
// db

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];

/** 1–12 for an English month name or its abbreviation of at least three letters ("sept", "feb"), else 0. */
function monthOfWord(w: string): number {
  if (w.length < 3) return 0;
  for (let i = 0; i < MONTHS.length; i++) if (MONTHS[i]!.startsWith(w)) return i + 1;
  return 0;
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

function ymd(year: number, month: number, day: number): string | null {
  if (!Number.isInteger(year) || year < 1900 || year > new Date().getUTCFullYear()) return null;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  return String(year) + String(month).padStart(2, '0') + String(day).padStart(2, '0');
}

/**
 * Three numbers in any of the usual orders, as Meta's parameter builder reads them: a year first
 * (more than 31) is year-month-day (year-day-month when the second is over 12); otherwise the year
 * is last and the order is month/day/year, or day/month/year when the first is over 12.
 */
function fromThree(g1: string, g2: string, g3: string): string | null {
  const [n1, n2, n3] = [Number(g1), Number(g2), Number(g3)];
  if (g1.length === 4 || n1 > 31) return n2 > 12 ? ymd(n1, n3, n2) : ymd(n1, n2, n3);
  if (g2.length === 4 || n2 > 31) return n3 > 12 ? ymd(n2, n1, n3) : ymd(n2, n3, n1);
  if (g3.length !== 4) return null; // a two-digit year names no century
  return n1 > 12 ? ymd(n3, n2, n1) : ymd(n3, n1, n2);
}

/** Words a written date may hold besides its month: ordinal suffixes, "of", weekdays, the ISO `T` and `Z`. */
const DATE_FILLER = new Set([
  'st', 'nd', 'rd', 'th', 'of', 't', 'z', 'utc', 'gmt',
  'mon', 'monday', 'tue', 'tues', 'tuesday', 'wed', 'wednesday', 'thu', 'thur', 'thurs', 'thursday',
  'fri', 'friday', 'sat', 'saturday', 'sun', 'sunday',
]);

function normalizeDate(s: string): string | null {
  const text = s.trim().toLowerCase();
  const groups = text.match(/\d+/g) ?? [];
  let month = 0;
  for (const w of text.match(/\p{L}+/gu) ?? []) {
    const m = monthOfWord(w);
    if (m !== 0 && month === 0) month = m;
    else if (!DATE_FILLER.has(w)) return null; // "tomorrow", a second month name…
  }
  if (month !== 0) {
    // "February 16, 1997", "16 Feb 1997", "1997 February 16": a day and a four-digit year.
    const [a, b] = groups;
    if (a === undefined || b === undefined) return null;
    if (a.length === 4 && b.length <= 2) return ymd(Number(a), month, Number(b));
    if (b.length === 4 && a.length <= 2) return ymd(Number(b), month, Number(a));
    return null;
  }
  if (groups.length >= 3) return fromThree(groups[0]!, groups[1]!, groups[2]!);
  if (groups.length === 1 && groups[0]!.length === 8) {
    const d = groups[0]!;
    return fromThree(d.slice(0, 4), d.slice(4, 6), d.slice(6)) ?? fromThree(d.slice(0, 2), d.slice(2, 4), d.slice(4));
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// st

/** US states, DC and the inhabited territories: the two-letter ANSI (FIPS 5-2 / USPS) codes. */
const US_STATES: Readonly<Record<string, string>> = {
  alabama: 'al', alaska: 'ak', arizona: 'az', arkansas: 'ar', california: 'ca', colorado: 'co',
  connecticut: 'ct', delaware: 'de', districtofcolumbia: 'dc', florida: 'fl', georgia: 'ga',
  hawaii: 'hi', idaho: 'id', illinois: 'il', indiana: 'in', iowa: 'ia', kansas: 'ks', kentucky: 'ky',
  louisiana: 'la', maine: 'me', maryland: 'md', massachusetts: 'ma', michigan: 'mi', minnesota: 'mn',
  mississippi: 'ms', missouri: 'mo', montana: 'mt', nebraska: 'ne', nevada: 'nv', newhampshire: 'nh',
  newjersey: 'nj', newmexico: 'nm', newyork: 'ny', northcarolina: 'nc', northdakota: 'nd', ohio: 'oh',
  oklahoma: 'ok', oregon: 'or', pennsylvania: 'pa', rhodeisland: 'ri', southcarolina: 'sc',
  southdakota: 'sd', tennessee: 'tn', texas: 'tx', utah: 'ut', vermont: 'vt', virginia: 'va',
  washington: 'wa', westvirginia: 'wv', wisconsin: 'wi', wyoming: 'wy',
  americansamoa: 'as', guam: 'gu', northernmarianaislands: 'mp', puertorico: 'pr', usvirginislands: 'vi',
  washingtondc: 'dc',
};

function normalizeState(s: string): string | null {
  const code = US_STATES[squash(s)];
  if (code !== undefined) return code;
  const st = lettersAndDigits(s);
  return st === '' ? null : st;
}

// ---------------------------------------------------------------------------------------------
// zp

/** A US ZIP or ZIP+4 ("94035", "94035-1234", "940351234"): Meta wants its first five digits. */
const US_ZIP = /^(\d{5})(?:[\s-]?\d{4})?$/;

function normalizeZip(s: string): string | null {
  const us = US_ZIP.exec(s.trim());
  if (us) return us[1]!;
  const zp = lettersAndDigits(s);
  return zp === '' ? null : zp;
}

// ---------------------------------------------------------------------------------------------
// country

/** ISO 3166-1 alpha-2, the 249 officially assigned codes. */
const COUNTRY_CODES: ReadonlySet<string> = new Set(
  (
    'ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br bs bt bv bw by bz ' +
    'ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg eh er es et fi fj fk fm fo fr ' +
    'ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ' +
    'ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt ' +
    'mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw ' +
    'sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug ' +
    'um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw'
  ).split(' '),
);

/** Names and spellings the display names below miss or word differently. */
const COUNTRY_ALIASES: Readonly<Record<string, string>> = {
  uk: 'gb', greatbritain: 'gb', britain: 'gb', england: 'gb', scotland: 'gb', wales: 'gb', northernireland: 'gb',
  usa: 'us', america: 'us', unitedstatesofamerica: 'us', uae: 'ae', holland: 'nl', thenetherlands: 'nl',
  korea: 'kr', republicofkorea: 'kr', northkorea: 'kp', russianfederation: 'ru', czechrepublic: 'cz',
  ivorycoast: 'ci', turkey: 'tr', macedonia: 'mk', swaziland: 'sz', burma: 'mm', hongkong: 'hk', macau: 'mo',
  macao: 'mo', palestine: 'ps', congo: 'cg', drc: 'cd', democraticrepublicofthecongo: 'cd', vatican: 'va',
  holysee: 'va', eastimor: 'tl', caboverde: 'cv', bosnia: 'ba', saintbarthelemy: 'bl',
};

/** Display-name languages: English first (it wins a clash), then the languages shops commonly sell in. */
const NAME_LOCALES = ['en', 'de', 'fr', 'es', 'it', 'nl', 'pt', 'pl', 'sv', 'da', 'nb', 'fi'];

function regionNames(locale: string): Intl.DisplayNames | null {
  try {
    return new Intl.DisplayNames([locale], { type: 'region', fallback: 'none' });
  } catch {
    return null;
  }
}

function buildCountryNames(): ReadonlyMap<string, string> {
  const names = new Map<string, string>(Object.entries(COUNTRY_ALIASES));
  const add = (name: string, code: string): void => {
    const variants = [
      name,
      name.replace(/\s*\(.*?\)\s*/g, ' '), // "Myanmar (Burma)" → "Myanmar"
      ...Array.from(name.matchAll(/\((.*?)\)/g), (m) => m[1] ?? ''), // → "Burma"
      name.replace(/\s+SAR\s+China$/i, ''), // "Hong Kong SAR China" → "Hong Kong"
      name.replace(/&/g, ' and '),
      name.replace(/\bSt\.?\s/g, 'Saint '),
    ];
    for (const v of variants) {
      const key = squash(v);
      if (key.length > 2 && !names.has(key)) names.set(key, code);
    }
  };
  for (const locale of NAME_LOCALES) {
    const display = regionNames(locale);
    if (display === null) continue; // a runtime without Intl data: the aliases and the other locales still work
    for (const code of COUNTRY_CODES) {
      const name = display.of(code.toUpperCase());
      if (name !== undefined) add(name, code);
    }
  }
  return names;
}

let countryNames: ReadonlyMap<string, string> | null = null;

/**
 * A two-letter ISO code ("US", "us", "U.S.") or a country's name in English or a common shop
 * language ("United States", "Deutschland", "Côte d'Ivoire") → the lower-case alpha-2 code.
 */
function normalizeCountry(s: string): string | null {
  const key = squash(s);
  if (key.length === 2) return COUNTRY_CODES.has(key) ? key : (COUNTRY_ALIASES[key] ?? null);
  countryNames ??= buildCountryNames();
  return countryNames.get(key) ?? null;
}

// ---------------------------------------------------------------------------------------------

/**
 * External ids: lower case, every whitespace character removed, as Meta's parameter builder (and the
 * Meta Pixel, whose external_id must be the same value) and Segment's destination normalise them.
 */
function normalizeExternalId(s: string): string | null {
  const id = s.toLowerCase().replace(/\s+/gu, '');
  return id === '' ? null : id;
}

/** Names: lower case, no punctuation, whitespace or symbols; letters of any script kept, in UTF-8 NFC. */
function normalizeName(s: string): string | null {
  const n = lettersAndDigits(s);
  return n === '' ? null : n;
}

const NORMALIZERS: Readonly<Record<HashedField, (s: string) => string | null>> = {
  em: normalizeEmail,
  ph: normalizePhone,
  fn: normalizeName,
  ln: normalizeName,
  ge: normalizeGender,
  db: normalizeDate,
  ct: normalizeName,
  st: normalizeState,
  zp: normalizeZip,
  country: normalizeCountry,
  external_id: normalizeExternalId,
};

/** The value's SHA-256 digest in lower case when it already is one (64 hex digits, any case, trimmed). */
function existingDigest(text: string): string | null {
  const t = text.trim();
  return SHA256_HEX_ANY_CASE.test(t) ? t.toLowerCase() : null;
}

/**
 * Meta's normal form of one customer-information value, or null when the value is empty or unusable
 * (not a string or finite number, not an e-mail, not a date, an unknown country…). A value that is
 * already a SHA-256 digest comes back as that digest, in lower case.
 */
export function normalizeField(field: HashedField, value: unknown): string | null {
  const text = asText(value);
  if (text === null) return null;
  return existingDigest(text) ?? NORMALIZERS[field](text);
}

function sha256Hex(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/**
 * The value to send as `field`: SHA-256 (lower-case hex) of its normal form; a value that already is
 * a SHA-256 digest, passed through in lower case; null when there is nothing usable.
 */
export function hashField(field: HashedField, value: unknown): string | null {
  const text = asText(value);
  if (text === null) return null;
  const digest = existingDigest(text);
  if (digest !== null) return digest;
  const normal = NORMALIZERS[field](text);
  return normal === null ? null : sha256Hex(normal);
}

// ---------------------------------------------------------------------------------------------
// Traits

type TraitField = Exclude<HashedField, 'external_id'>;

/**
 * Where each parameter is read in Segment traits, in order of preference: Segment's reserved
 * `address` object first (as Segment's Facebook Conversions API destination maps it), then the
 * snake_case and flat spellings storefronts also send.
 */
const TRAIT_PATHS: Readonly<Record<TraitField, readonly (readonly string[])[]>> = {
  em: [['email']],
  ph: [['phone']],
  fn: [['firstName'], ['first_name']],
  ln: [['lastName'], ['last_name']],
  db: [['birthday']],
  ge: [['gender']],
  ct: [['address', 'city'], ['city']],
  st: [['address', 'state'], ['state']],
  zp: [['address', 'postalCode'], ['address', 'postal_code'], ['address', 'zip'], ['zip'], ['postalCode'], ['postal_code']],
  country: [['address', 'country'], ['country']],
};

/** The order parameters are written in (Meta's documentation order). */
const SINGLE_FIELDS: readonly TraitField[] = ['fn', 'ln', 'db', 'ge', 'ct', 'st', 'zp', 'country'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function at(traits: Record<string, unknown>, path: readonly string[]): unknown {
  let v: unknown = traits;
  for (const key of path) {
    if (!isRecord(v) || !Object.hasOwn(v, key)) return undefined;
    v = v[key];
  }
  return v;
}

/** Given: not null, undefined, a blank string or an empty list (a trait sent empty says nothing). */
function isGiven(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'string') return v.trim() !== '';
  if (Array.isArray(v)) return v.length > 0;
  return true;
}

/** Every distinct digest of a parameter that may carry several values (em, ph). */
function hashAll(field: TraitField, traits: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const path of TRAIT_PATHS[field]) {
    const v = at(traits, path);
    for (const item of Array.isArray(v) ? v : [v]) {
      const h = hashField(field, item);
      if (h !== null && !out.includes(h)) out.push(h);
    }
  }
  return out;
}

/** The first usable value of a single-valued parameter, hashed. */
function hashFirst(field: TraitField, traits: Record<string, unknown>): string | null {
  for (const path of TRAIT_PATHS[field]) {
    const v = at(traits, path);
    for (const item of Array.isArray(v) ? v : [v]) {
      const h = hashField(field, item);
      if (h !== null) return h;
    }
  }
  return null;
}

function passThrough(v: string | null | undefined): string | null {
  return typeof v === 'string' && v.trim() !== '' ? v : null;
}

/**
 * Meta's `user_data` from Segment traits (`email`, `phone`, `firstName`/`first_name`,
 * `lastName`/`last_name`, `gender`, `birthday`, `address.{city,state,postalCode,country}` or the flat
 * `city`, `state`, `zip`/`postalCode`, `country`), the user id (→ `external_id`, hashed) and the four
 * parameters Meta wants as they are (IP, user agent, fbc, fbp). Only parameters with a usable value
 * are present.
 */
export function userDataFrom(traits: Record<string, unknown> | null, extra: UserDataExtra): UserData {
  const t = isRecord(traits) ? traits : {};
  const out: UserData = {};
  const em = hashAll('em', t);
  if (em.length > 0) out.em = em.length === 1 ? em[0]! : em;
  const ph = hashAll('ph', t);
  if (ph.length > 0) out.ph = ph.length === 1 ? ph[0]! : ph;
  for (const field of SINGLE_FIELDS) {
    const h = hashFirst(field, t);
    if (h !== null) out[field] = h;
  }
  const externalId = hashField('external_id', extra.userId);
  if (externalId !== null) out.external_id = externalId;
  const ip = passThrough(extra.ip);
  if (ip !== null) out.client_ip_address = ip;
  const ua = passThrough(extra.userAgent);
  if (ua !== null) out.client_user_agent = ua;
  const fbc = passThrough(extra.fbc);
  if (fbc !== null) out.fbc = fbc;
  const fbp = passThrough(extra.fbp);
  if (fbp !== null) out.fbp = fbp;
  return out;
}

function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

function removePath(o: Record<string, unknown>, path: readonly string[]): void {
  if (path.length === 1) {
    delete o[path[0]!];
    return;
  }
  const inner = o[path[0]!];
  if (isRecord(inner)) delete inner[path[1]!];
}

/**
 * The traits of an event (`newer`: its own `context.traits`) completed by those of the visitor's
 * identity (`older`: the latest identify). A parameter the newer traits give, under any of its
 * spellings (`firstName` or `first_name`; `address.city` or `city`…), wins, and the older traits'
 * spellings of it are dropped so they cannot shadow it; a parameter they do not give comes from the
 * older traits. `address` is merged field by field. Null, blank strings and empty lists count as not
 * given. Null when both are null. The inputs are not modified.
 */
export function mergeTraits(
  older: Record<string, unknown> | null,
  newer: Record<string, unknown> | null,
): Record<string, unknown> | null {
  if (!isRecord(older) && !isRecord(newer)) return null;
  const out: Record<string, unknown> = {};
  if (isRecord(older)) {
    for (const [k, v] of Object.entries(older)) setOwn(out, k, isRecord(v) && k === 'address' ? { ...v } : v);
  }
  if (!isRecord(newer)) return out;
  for (const paths of Object.values(TRAIT_PATHS)) {
    if (paths.some((p) => isGiven(at(newer, p)))) for (const p of paths) removePath(out, p);
  }
  for (const [k, v] of Object.entries(newer)) {
    if (!isGiven(v)) continue;
    if (k === 'address' && isRecord(v) && isRecord(out.address)) {
      const address: Record<string, unknown> = { ...out.address };
      for (const [ak, av] of Object.entries(v)) if (isGiven(av)) setOwn(address, ak, av);
      out.address = address;
    } else {
      setOwn(out, k, isRecord(v) && k === 'address' ? { ...v } : v);
    }
  }
  return out;
}
