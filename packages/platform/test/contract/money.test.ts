/**
 * Money: integers in minor units of an ISO 4217 currency, converted through the decimal string and
 * rounded half away from zero; the event-level rules (currency, default currency, sign).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CURRENCY_CODES, currencyExponent, normalizeCurrency, toMinorUnits } from '../../src/contract/index.ts';
import { isPlatformError } from '../../src/errors.ts';
import { acceptAs, ingest, refuse, track } from './fixtures.ts';

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isPlatformError(err), String(err));
    assert.equal(err.code, code);
    assert.match(err.message, /\.$/);
    return true;
  });
}

describe('ISO 4217 table', () => {
  it('has the minor-unit exponent of every active currency', () => {
    const cases: Array<[string, number]> = [
      ['USD', 2], ['EUR', 2], ['GBP', 2], ['CHF', 2], ['CAD', 2], ['BRL', 2], ['INR', 2], ['CNY', 2], ['MXN', 2],
      ['JPY', 0], ['KRW', 0], ['ISK', 0], ['CLP', 0], ['VND', 0], ['UGX', 0], ['XOF', 0], ['XAF', 0], ['XPF', 0], ['PYG', 0],
      ['KWD', 3], ['BHD', 3], ['JOD', 3], ['OMR', 3], ['TND', 3], ['IQD', 3], ['LYD', 3],
      ['CLF', 4], ['UYW', 4],
      ['ZWG', 2], ['SLE', 2], ['VES', 2], ['VED', 2], ['XCG', 2], ['MRU', 2], ['STN', 2],
    ];
    for (const [code, exp] of cases) assert.equal(currencyExponent(code), exp, code);
  });

  it('refuses withdrawn codes, codes without a minor unit, and anything not upper-case ISO', () => {
    for (const code of ['HRK', 'CUC', 'ZWL', 'MRO', 'STD', 'VEF', 'BYR', 'LTL', 'XAU', 'XAG', 'XDR', 'XTS', 'XXX', 'usd', 'US', 'USDX', '', 'ZZZ']) {
      assert.equal(currencyExponent(code), undefined, code);
    }
  });

  it('lists about 155 unique, sorted, three-letter codes', () => {
    assert.ok(CURRENCY_CODES.length > 150 && CURRENCY_CODES.length < 170, String(CURRENCY_CODES.length));
    assert.deepEqual([...new Set(CURRENCY_CODES)].sort(), CURRENCY_CODES);
    for (const c of CURRENCY_CODES) assert.match(c, /^[A-Z]{3}$/);
  });

  it('normalizes what clients send: case and spaces', () => {
    assert.equal(normalizeCurrency('usd'), 'USD');
    assert.equal(normalizeCurrency(' Eur '), 'EUR');
    assert.equal(normalizeCurrency('dollars'), undefined);
  });
});

describe('toMinorUnits', () => {
  it('converts the usual cases exactly', () => {
    const cases: Array<[unknown, string, number]> = [
      [19.99, 'USD', 1999],
      [19.990000000000002, 'USD', 1999], // what 19.99-ish float arithmetic produces
      [0.1 + 0.2, 'USD', 30], // 0.30000000000000004
      [1.1 * 3, 'EUR', 330], // 3.3000000000000003
      ['19.99', 'USD', 1999],
      [' 19.99 ', 'USD', 1999],
      ['+19.99', 'USD', 1999],
      ['19.9', 'USD', 1990],
      ['19.', 'USD', 1900],
      ['.5', 'USD', 50],
      ['0019.99', 'USD', 1999],
      [1500, 'JPY', 1500],
      ['1500', 'JPY', 1500],
      [0, 'USD', 0],
      [127.5, 'EUR', 12750],
      [18.99, 'usd', 1899],
      [1.2345, 'KWD', 1235], // half away from zero at the third decimal
      [1.2344, 'KWD', 1234],
      [1.23456789, 'CLF', 12346],
      [9.99, 'KWD', 9990],
      [4.35, 'USD', 435], // 4.35 * 100 is 434.99999999999994 in floating point
      [1.005, 'USD', 101], // 1.005 is 1.00499999999999989… in binary; its decimal form rounds up
      [-1.005, 'USD', -101], // half away from zero, on the negative side too
      [2.5, 'JPY', 3],
      [-2.5, 'JPY', -3],
      [0.5, 'JPY', 1],
      [0.49, 'JPY', 0],
      [0.004, 'USD', 0],
      [0.005, 'USD', 1],
      [-0.004, 'USD', 0],
      ['1e3', 'USD', 100000],
      ['1.5E2', 'USD', 15000],
      ['2.5e-1', 'USD', 25],
      ['5e-3', 'USD', 1],
      [1e-7, 'USD', 0], // String(1e-7) is "1e-7"
      [1.5e-7, 'JPY', 0],
      [1e15, 'JPY', 1e15],
      [90071992547409.91, 'USD', 9007199254740990], // the double nearest to it prints as 90071992547409.9
      ['90071992547409.91', 'USD', 9007199254740991],
      [9007199254740991, 'JPY', 9007199254740991],
    ];
    for (const [amount, currency, expected] of cases) {
      assert.equal(toMinorUnits(amount, currency), expected, `${String(amount)} ${currency}`);
    }
  });

  it('never answers -0', () => {
    assert.ok(Object.is(toMinorUnits(-0, 'USD'), 0));
    assert.ok(Object.is(toMinorUnits('-0.001', 'USD'), 0));
    assert.ok(Object.is(toMinorUnits('-0', 'JPY'), 0));
  });

  it('round-trips every cent amount a float can carry: c / 100 → c', () => {
    let x = 0x2f6b;
    const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 20_000; i++) {
      const cents = (next() * 2 ** 31 + next()) % 1e14;
      assert.equal(toMinorUnits(cents / 100, 'USD'), cents, String(cents / 100));
      assert.equal(toMinorUnits(String(cents / 100), 'EUR'), cents);
      const fils = next() % 1e9;
      assert.equal(toMinorUnits(fils / 1000, 'KWD'), fils, String(fils / 1000));
    }
  });

  it('refuses what is not an amount, or not a safe integer once converted, with INVALID_MONEY', () => {
    for (const bad of [1e21, '1e21', 9007199254740992, '90071992547409.92', Infinity, -Infinity, NaN, 'abc', '', ' ', '19,99', '1.2.3', '0x10', '1e', '1e+', '--1', '+', '.', 'Infinity', '$19.99', '19.99 EUR', {}, [], [19.99], true, null, undefined]) {
      throwsCode(() => toMinorUnits(bad, 'USD'), 'SHOP_ERR_INVALID_MONEY');
    }
    throwsCode(() => toMinorUnits(1e14, 'KWD'), 'SHOP_ERR_INVALID_MONEY');
    throwsCode(() => toMinorUnits('9'.repeat(500), 'USD'), 'SHOP_ERR_INVALID_MONEY');
  });

  it('says why an amount is refused', () => {
    assert.throws(() => toMinorUnits(1e21, 'USD'), /too large/);
    assert.throws(() => toMinorUnits('abc', 'USD'), /"abc".*expected a number or a numeric string/);
    assert.throws(() => toMinorUnits(Infinity, 'USD'), /finite/);
  });

  it('refuses an unknown currency with INVALID_CURRENCY', () => {
    throwsCode(() => toMinorUnits(1, 'XYZ'), 'SHOP_ERR_INVALID_CURRENCY');
    throwsCode(() => toMinorUnits(1, 'XAU'), 'SHOP_ERR_INVALID_CURRENCY');
    throwsCode(() => toMinorUnits(1, ''), 'SHOP_ERR_INVALID_CURRENCY');
  });

  it('is linear in the length of its input (no backtracking)', () => {
    const long = '1'.repeat(390) + 'x';
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) assert.throws(() => toMinorUnits(long, 'USD'));
    assert.ok(performance.now() - t0 < 2_000);
  });
});

describe('money in events', () => {
  it('stores every money field in minor units of the event currency', () => {
    const o = acceptAs(
      'Order Completed',
      track('Order Completed', {
        order_id: 'o-1',
        total: 27.5,
        subtotal: '22.50',
        revenue: 25,
        shipping: 3,
        tax: 2,
        discount: 2.5,
        currency: 'USD',
        products: [{ product_id: 'p1', price: 19 }, { product_id: 'p2', price: 3.3 }],
      }),
    );
    const p = o.properties;
    assert.deepEqual(
      [p.total, p.subtotal, p.revenue, p.shipping, p.tax, p.discount, p.currency, p.products.map((x) => x.price)],
      [2750, 2250, 2500, 300, 200, 250, 'USD', [1900, 330]],
    );
  });

  it('uses the currency exponent: JPY has none, KWD three', () => {
    assert.equal(acceptAs('Product Viewed', track('Product Viewed', { price: 1500, currency: 'JPY' })).properties.price, 1500);
    assert.equal(acceptAs('Product Viewed', track('Product Viewed', { price: 1.2345, currency: 'kwd' })).properties.price, 1235);
    const c = acceptAs('Checkout Started', track('Checkout Started', { value: 30, revenue: 25, currency: 'BHD', products: [{ price: 0.125 }] }));
    assert.deepEqual([c.properties.value, c.properties.revenue, c.properties.products[0]!.price, c.properties.currency], [30000, 25000, 125, 'BHD']);
  });

  it("uses the merchant's currency when the event names none", () => {
    const e = acceptAs('Product Added', track('Product Added', { price: 10 }), ingest({ defaultCurrency: 'JPY' }));
    assert.deepEqual([e.properties.price, e.properties.currency], [10, 'JPY']);
    const empty = acceptAs('Cart Viewed', track('Cart Viewed', { currency: '', products: [{ price: 1 }] }), ingest({ defaultCurrency: 'GBP' }));
    assert.equal(empty.properties.currency, 'GBP');
    assert.equal(empty.properties.products[0]!.price, 100);
    // Events without money keep the currency too, so that every reader knows it.
    assert.equal(acceptAs('Product Viewed', track('Product Viewed', {})).properties.currency, 'EUR');
  });

  it('refuses an unknown event currency, and a bad merchant currency when it is needed', () => {
    refuse(track('Order Completed', { order_id: 'o', revenue: 10, currency: 'ZZZ' }), 'SHOP_ERR_INVALID_CURRENCY', 'properties.currency');
    refuse(track('Order Completed', { order_id: 'o', revenue: 10, currency: 978 }), 'SHOP_ERR_INVALID_CURRENCY', 'properties.currency');
    const r = refuse(track('Product Viewed', { price: 1 }), 'SHOP_ERR_INVALID_CURRENCY', 'properties.currency', ingest({ defaultCurrency: 'euro' }));
    assert.match(r.message, /merchant/);
    // Events that carry no money never need a currency.
    acceptAs('Products Searched', track('Products Searched', { query: 'x' }), ingest({ defaultCurrency: 'euro' }));
  });

  it('refuses bad amounts with the path of the field', () => {
    refuse(track('Order Completed', { order_id: 'o', revenue: 'lots' }), 'SHOP_ERR_INVALID_MONEY', 'properties.revenue');
    refuse(track('Product Viewed', { price: 1e21 }), 'SHOP_ERR_INVALID_MONEY', 'properties.price');
    refuse(track('Product Viewed', { price: { amount: 1 } }), 'SHOP_ERR_INVALID_MONEY', 'properties.price');
    refuse(track('Cart Viewed', { products: [{ price: 1 }, { price: '1,5' }] }), 'SHOP_ERR_INVALID_MONEY', 'properties.products[1].price');
  });

  it('refuses negative amounts, except a discount, which is stored as the amount taken off', () => {
    const r = refuse(track('Product Viewed', { price: -5 }), 'SHOP_ERR_INVALID_MONEY', 'properties.price');
    assert.match(r.message, /negative/);
    refuse(track('Order Completed', { order_id: 'o', total: -1 }), 'SHOP_ERR_INVALID_MONEY', 'properties.total');
    const o = acceptAs('Order Completed', track('Order Completed', { order_id: 'o', discount: -2.5 }));
    assert.equal(o.properties.discount, 250);
  });

  it('treats a null or empty amount as absent', () => {
    const e = acceptAs('Product Viewed', track('Product Viewed', { price: null, value: '' }));
    assert.deepEqual([e.properties.price, e.properties.value], [null, null]);
  });
});
