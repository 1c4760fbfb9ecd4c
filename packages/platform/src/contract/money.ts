/**
 * Exact money: amounts become integers in the minor unit of their currency (USD 19.99 → 1999 cents,
 * JPY 1500 → 1500, KWD 1.2345 → 1235 fils).
 *
 * No floating-point multiplication is involved for fractional amounts: a number is turned into its
 * shortest round-trip decimal string (`String(19.990000000000002)` is "19.990000000000002", and
 * `String(0.1 + 0.2)` "0.30000000000000004"), a numeric string is taken as written, and the decimal
 * point is moved by the currency's exponent on the digits themselves. Rounding to the exponent is half
 * away from zero on that decimal string (1.005 USD → 101, -1.005 → -101, 1.2345 KWD → 1235), so the
 * result is what a person reading the number would expect, not what its binary approximation says.
 * Whole numbers take a shortcut (`n * 10 ** exponent`), which is exact while the result is a safe
 * integer, and is checked to be one.
 */
import { PlatformError, PlatformErrors } from '../errors.ts';
import { currencyExponent, normalizeCurrency } from './currencies.ts';
import type { EventOf } from './schema.ts';

const POW10 = [1, 10, 100, 1000, 10000] as const;
/** More digits than this cannot be a safe integer (2^53 has 16 digits). */
const MAX_SAFE_DIGITS = 16;

/**
 * The amount in minor units; anything that is not a safe integer (NaN, Infinity) means invalid:
 * NaN when `amount` is not a finite number or numeric string, Infinity when the result is out of the
 * safe-integer range. `exponent` is the currency's minor-unit exponent (0–4).
 */
export function minorUnits(amount: unknown, exponent: number): number {
  if (typeof amount === 'number') {
    if (Number.isInteger(amount)) {
      const r = amount * (POW10[exponent] ?? 10 ** exponent);
      return Number.isSafeInteger(r) ? r + 0 : Infinity; // + 0 turns -0 into 0
    }
    if (!Number.isFinite(amount)) return NaN;
    return decimalToMinor(String(amount), exponent);
  }
  if (typeof amount === 'string') return decimalToMinor(amount.trim(), exponent);
  return NaN;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Parses `[+-]digits[.digits][(e|E)[+-]digits]` (at least one mantissa digit) and moves the decimal
 * point right by `exponent`, rounding half away from zero. NaN when the text is not such a number,
 * Infinity when the result is not a safe integer. One pass over the characters: no regular expression.
 */
function decimalToMinor(s: string, exponent: number): number {
  const len = s.length;
  if (len === 0 || len > 400) return NaN;
  let i = 0;
  let negative = false;
  let c = s.charCodeAt(0);
  if (c === 45 /* - */ || c === 43 /* + */) {
    negative = c === 45;
    i = 1;
  }
  const intStart = i;
  while (i < len && isDigit(s.charCodeAt(i))) i++;
  const intEnd = i;
  let fracStart = i;
  let fracEnd = i;
  if (i < len && s.charCodeAt(i) === 46 /* . */) {
    fracStart = ++i;
    while (i < len && isDigit(s.charCodeAt(i))) i++;
    fracEnd = i;
  }
  if (intEnd === intStart && fracEnd === fracStart) return NaN; // no digit at all
  let e10 = 0;
  if (i < len) {
    c = s.charCodeAt(i);
    if (c !== 101 /* e */ && c !== 69 /* E */) return NaN;
    i++;
    let expNegative = false;
    c = s.charCodeAt(i);
    if (c === 45 || c === 43) {
      expNegative = c === 45;
      i++;
    }
    const expStart = i;
    while (i < len && isDigit(s.charCodeAt(i))) {
      // Cap the exponent: beyond ±1000 the result is 0 or far past the safe range either way.
      if (e10 < 1000) e10 = e10 * 10 + (s.charCodeAt(i) - 48);
      i++;
    }
    if (i === expStart || i !== len) return NaN;
    if (expNegative) e10 = -e10;
  }

  // All mantissa digits, without leading zeros; `point` is how many of them are left of the
  // decimal point once it has moved by e10 + exponent.
  let digits = s.slice(intStart, intEnd) + s.slice(fracStart, fracEnd);
  let point = intEnd - intStart + e10 + exponent;
  let lead = 0;
  while (lead < digits.length - 1 && digits.charCodeAt(lead) === 48) lead++;
  if (lead > 0) {
    digits = digits.slice(lead);
    point -= lead;
  }

  let whole: number;
  let roundUp: boolean;
  if (point <= 0) {
    whole = 0;
    roundUp = point === 0 && digits.charCodeAt(0) >= 53; /* '5' */
  } else if (point >= digits.length) {
    if (digits === '0') return 0;
    if (point > MAX_SAFE_DIGITS) return Infinity;
    whole = Number(digits + '0'.repeat(point - digits.length));
    roundUp = false;
  } else {
    if (point > MAX_SAFE_DIGITS) return Infinity;
    whole = Number(digits.slice(0, point));
    roundUp = digits.charCodeAt(point) >= 53;
  }
  if (roundUp) whole += 1;
  if (!Number.isSafeInteger(whole)) return Infinity;
  return negative && whole !== 0 ? -whole : whole;
}

/**
 * Converts an amount (a number such as 19.99, or a numeric string such as "19.99" or "1.5e3") in
 * `currency` (ISO 4217, any case) to an integer in the currency's minor unit, rounding half away
 * from zero. Negative amounts are converted too (the event contract decides where they are allowed).
 *
 * @throws PlatformError SHOP_ERR_INVALID_CURRENCY for an unknown currency, SHOP_ERR_INVALID_MONEY
 *   for an amount that is not numeric, not finite, or whose result is not a safe integer.
 */
export function toMinorUnits(amount: unknown, currency: string): number {
  const code = typeof currency === 'string' ? normalizeCurrency(currency) : undefined;
  const exponent = code === undefined ? undefined : currencyExponent(code);
  if (code === undefined || exponent === undefined) {
    throw new PlatformError(
      PlatformErrors.INVALID_CURRENCY,
      `The currency ${JSON.stringify(currency)} is not an active ISO 4217 code; expected three letters such as "USD", "EUR" or "JPY".`,
    );
  }
  const r = minorUnits(amount, exponent);
  if (!Number.isSafeInteger(r)) {
    throw new PlatformError(PlatformErrors.INVALID_MONEY, moneyProblem(amount, exponent, 'The amount'));
  }
  return r;
}

/** A sentence that says why `amount` is not a valid amount of money in a currency of `exponent`. */
export function moneyProblem(amount: unknown, exponent: number, what: string): string {
  const shown = describe(amount);
  if (typeof amount === 'number' && !Number.isFinite(amount)) {
    return `${what} is ${shown}; expected a finite number such as 19.99.`;
  }
  if (typeof amount === 'number' || (typeof amount === 'string' && decimalToMinor(amount.trim(), exponent) === Infinity)) {
    return `${what} ${shown} is too large: in minor units it is beyond ${Number.MAX_SAFE_INTEGER}, the largest exact integer.`;
  }
  return `${what} is ${shown}; expected a number or a numeric string such as 19.99 or "19.99".`;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'number') return String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

/**
 * The money of an order, in minor units: total, else revenue, else Σ price × quantity of its lines.
 * The one definition that the cubes' revenue and the experiments' attributed revenue share.
 */
export function orderAmount(e: EventOf<'Order Completed'>): number {
  const p = e.properties;
  if (p.total !== null) return p.total;
  if (p.revenue !== null) return p.revenue;
  let sum = 0;
  for (const line of p.products) sum += (line.price ?? 0) * line.quantity;
  return sum;
}
