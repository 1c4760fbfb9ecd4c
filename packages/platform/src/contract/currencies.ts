/**
 * ISO 4217 currencies (List One, active codes) with their minor-unit exponent: the number of
 * decimal places between the major unit and the minor unit a price is stored in (USD 2: cents;
 * JPY 0; KWD 3: fils; CLF 4).
 *
 * Left out on purpose: codes whose minor unit ISO gives as "N.A." (gold XAU, silver XAG, palladium
 * XPD, platinum XPT, the bond-market units XBA–XBD, the SDR XDR, XSU, XUA, the testing code XTS and
 * XXX "no currency"): no storefront prices in them, and they have no minor unit to count in. Withdrawn
 * codes (HRK, CUC, ZWL, MRO, STD, VEF, BYR, LTL, LVL, ZMK, USS, …) are refused too. ANG and SLL are
 * still accepted while their replacements (XCG since 2025-03-31, SLE since 2022) take over.
 *
 * Source: ISO 4217 List One as published by SIX (the maintenance agency), amendments up to 2025.
 */
const TABLE =
  'AED2 AFN2 ALL2 AMD2 ANG2 AOA2 ARS2 AUD2 AWG2 AZN2 ' +
  'BAM2 BBD2 BDT2 BGN2 BHD3 BIF0 BMD2 BND2 BOB2 BOV2 BRL2 BSD2 BTN2 BWP2 BYN2 BZD2 ' +
  'CAD2 CDF2 CHE2 CHF2 CHW2 CLF4 CLP0 CNY2 COP2 COU2 CRC2 CUP2 CVE2 CZK2 ' +
  'DJF0 DKK2 DOP2 DZD2 EGP2 ERN2 ETB2 EUR2 FJD2 FKP2 ' +
  'GBP2 GEL2 GHS2 GIP2 GMD2 GNF0 GTQ2 GYD2 HKD2 HNL2 HTG2 HUF2 ' +
  'IDR2 ILS2 INR2 IQD3 IRR2 ISK0 JMD2 JOD3 JPY0 ' +
  'KES2 KGS2 KHR2 KMF0 KPW2 KRW0 KWD3 KYD2 KZT2 LAK2 LBP2 LKR2 LRD2 LSL2 LYD3 ' +
  'MAD2 MDL2 MGA2 MKD2 MMK2 MNT2 MOP2 MRU2 MUR2 MVR2 MWK2 MXN2 MXV2 MYR2 MZN2 ' +
  'NAD2 NGN2 NIO2 NOK2 NPR2 NZD2 OMR3 PAB2 PEN2 PGK2 PHP2 PKR2 PLN2 PYG0 QAR2 ' +
  'RON2 RSD2 RUB2 RWF0 SAR2 SBD2 SCR2 SDG2 SEK2 SGD2 SHP2 SLE2 SLL2 SOS2 SRD2 SSP2 STN2 SVC2 SYP2 SZL2 ' +
  'THB2 TJS2 TMT2 TND3 TOP2 TRY2 TTD2 TWD2 TZS2 UAH2 UGX0 USD2 USN2 UYI0 UYU2 UYW4 UZS2 ' +
  'VED2 VES2 VND0 VUV0 WST2 XAF0 XCD2 XCG2 XOF0 XPF0 YER2 ZAR2 ZMW2 ZWG2';

const EXPONENTS: ReadonlyMap<string, number> = new Map(
  TABLE.split(' ').map((entry) => [entry.slice(0, 3), Number(entry.slice(3))] as const),
);

/** Every accepted ISO 4217 code, sorted. */
export const CURRENCY_CODES: readonly string[] = [...EXPONENTS.keys()].sort();

/**
 * The minor-unit exponent of an ISO 4217 code (exact, upper-case three letters), or undefined when
 * the code is not an active currency with a minor unit.
 */
export function currencyExponent(code: string): number | undefined {
  return EXPONENTS.get(code);
}

/**
 * Normalizes what a client sent as a currency (`'usd'`, `' EUR '`) to the upper-case ISO code, or
 * returns undefined when it is not an accepted code.
 */
export function normalizeCurrency(raw: string): string | undefined {
  if (EXPONENTS.has(raw)) return raw;
  const code = raw.trim().toUpperCase();
  return EXPONENTS.has(code) ? code : undefined;
}
