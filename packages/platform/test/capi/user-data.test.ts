/**
 * Meta's customer-information parameters: one test per parameter against the examples of Meta's
 * "Customer Information Parameters" page
 * (https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters).
 *
 * Every expected digest is independent of the code under test: either the literal digest Meta's page
 * prints (META.*), or `sha()` (node:crypto) over the normalised string written out by hand.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { seededRandom } from '../../src/experiments/index.ts';
import {
  HASHED_FIELDS,
  hashField,
  isSha256Hex,
  mergeTraits,
  normalizeField,
  userDataFrom,
  type HashedField,
  type UserData,
} from '../../src/capi/user-data.ts';

/** SHA-256, lower-case hex, of a string written out by hand. */
function sha(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

/** The digests printed on Meta's page, copied as they are. */
const META = {
  /** em: Input John_Smith@gmail.com, normalized john_smith@gmail.com. */
  em: '62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f',
  /** ph: Input US phone number (650)555-1212, normalized 16505551212. */
  ph: 'e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176',
  /** fn: Input Mary, normalized mary. */
  fnMary: '6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec',
  /** fn: Input 정, normalized: the UTF-8 character 정. */
  fnKorean: '8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14',
  /** fn: Input Valéry, normalized valéry. */
  fnValery: '08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c',
  /** db: Input 2/16/1997, normalized 19970216. */
  db: '01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c',
  /** country: Input United States, normalized us. */
  country: '79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621',
} as const;

const HEX64 = /^[0-9a-f]{64}$/;

describe('the test helper itself', () => {
  it("sha() reproduces Meta's printed digests from Meta's normalised strings", () => {
    assert.equal(sha('john_smith@gmail.com'), META.em);
    assert.equal(sha('16505551212'), META.ph);
    assert.equal(sha('mary'), META.fnMary);
    assert.equal(sha('정'), META.fnKorean);
    assert.equal(sha('val\u00e9ry'), META.fnValery); // é precomposed (NFC)
    assert.equal(sha('19970216'), META.db);
    assert.equal(sha('us'), META.country);
  });
});

describe('em (email): trim, lower case', () => {
  it("Meta's example: John_Smith@gmail.com", () => {
    assert.equal(normalizeField('em', 'John_Smith@gmail.com'), 'john_smith@gmail.com');
    assert.equal(hashField('em', 'John_Smith@gmail.com'), META.em);
  });
  it('surrounding whitespace and upper case do not change the digest', () => {
    assert.equal(hashField('em', '  JOHN_SMITH@GMAIL.COM \n'), META.em);
    assert.equal(hashField('em', '\tjohn_smith@gmail.com'), META.em);
  });
  it('what is not an e-mail address is dropped, not hashed', () => {
    for (const v of ['', '   ', 'john_smith', 'john smith@gmail.com', '@gmail.com', 'john@', 'john@gmail', null, undefined, 42, {}, ['a@b.co']]) {
      assert.equal(hashField('em', v), null, JSON.stringify(v));
    }
  });
});

describe('ph (phone): digits only, with the country code, no leading zeros', () => {
  it("Meta's example, written with its country code in the usual ways", () => {
    for (const v of ['+1 (650) 555-1212', '1 (650) 555-1212', '+1-650-555-1212', '16505551212', '001 650 555 1212', 16505551212]) {
      assert.equal(normalizeField('ph', v), '16505551212', String(v));
      assert.equal(hashField('ph', v), META.ph, String(v));
    }
  });
  it('the international 00 prefix and a + give the same number; symbols and letters go', () => {
    assert.equal(normalizeField('ph', '+44 844 412 4653'), '448444124653');
    assert.equal(normalizeField('ph', '+44 (0)844-412-4653'), '448444124653'); // "(0)": the trunk prefix, not dialled from abroad
    assert.equal(hashField('ph', '0044 844 412 4653'), sha('448444124653'));
    assert.equal(hashField('ph', 'tel: +33 1 23 45 67 89'), sha('33123456789'));
  });
  it('a number without its country code is hashed as given: it cannot be guessed (Meta: it must be included)', () => {
    assert.equal(normalizeField('ph', '(650)555-1212'), '6505551212');
    assert.notEqual(hashField('ph', '(650)555-1212'), META.ph);
  });
  it('too few or too many digits for an E.164 number is dropped', () => {
    assert.equal(hashField('ph', '12345'), null);
    assert.equal(hashField('ph', '0000000'), null);
    assert.equal(hashField('ph', '1234567890123456'), null);
    assert.equal(hashField('ph', 'call me'), null);
  });
});

describe('fn, ln (names): lower case, no punctuation, UTF-8', () => {
  for (const field of ['fn', 'ln'] as const) {
    it(`${field}: Meta's three examples (Mary, 정, Valéry)`, () => {
      assert.equal(hashField(field, 'Mary'), META.fnMary);
      assert.equal(hashField(field, '정'), META.fnKorean);
      assert.equal(hashField(field, 'Valéry'), META.fnValery);
      assert.equal(normalizeField(field, 'Valéry'), 'val\u00e9ry');
    });
  }
  it('accents are kept, and a decomposed é (NFD, as macOS types it) hashes like the composed one', () => {
    assert.equal(hashField('fn', 'Vale\u0301ry'), META.fnValery);
    assert.equal(hashField('ln', 'MÜLLER'), sha('m\u00fcller'));
    assert.equal(hashField('ln', 'Nuñez'), sha('nu\u00f1ez'));
  });
  it('punctuation and spaces are removed', () => {
    assert.equal(hashField('fn', 'Mary-Jane'), sha('maryjane'));
    assert.equal(hashField('ln', "O'Neil"), sha('oneil'));
    assert.equal(hashField('ln', 'O’Neil'), sha('oneil'));
    assert.equal(hashField('ln', ' van der Berg. '), sha('vanderberg'));
    assert.equal(hashField('fn', 'Jean-Luc'), sha('jeanluc'));
  });
  it('nothing left is dropped', () => {
    assert.equal(hashField('fn', ' - '), null);
    assert.equal(hashField('fn', ''), null);
    assert.equal(hashField('fn', true), null);
  });
});

describe('db (date of birth): YYYYMMDD from the usual layouts', () => {
  it("Meta's example: 2/16/1997", () => {
    assert.equal(normalizeField('db', '2/16/1997'), '19970216');
    assert.equal(hashField('db', '2/16/1997'), META.db);
  });
  it('the same day in other layouts', () => {
    const layouts = [
      '1997-02-16',
      '1997/2/16',
      '1997-02-16T00:00:00.000Z', // a Date trait, as analytics.js serialises it
      '02/16/1997',
      '16/02/1997', // day first: the first number is over 12
      '16.02.1997',
      '16-2-1997',
      '19970216',
      '02161997',
      19970216,
      'February 16, 1997',
      'Feb 16 1997',
      '16 February 1997',
      '16th of Feb, 1997',
      'Sun, 16 Feb 1997',
      '1997 February 16',
    ];
    for (const v of layouts) assert.equal(hashField('db', v), META.db, String(v));
  });
  it('an ambiguous day and month is read month first, as Meta reads it', () => {
    assert.equal(normalizeField('db', '03/04/1997'), '19970304');
    assert.equal(normalizeField('db', '13/04/1997'), '19970413');
  });
  it('dates that do not exist, two-digit years, years out of range and words are dropped', () => {
    for (const v of ['1997-02-30', '2/29/1997', '2/16/97', '1899-12-31', '3000-01-01', '16/16/1997', 'tomorrow', '1997', '1997-02', 'Feb 1997', '']) {
      assert.equal(hashField('db', v), null, String(v));
    }
    assert.equal(normalizeField('db', '2/29/1996'), '19960229');
  });
});

describe('ge (gender): f or m', () => {
  it('female words → f', () => {
    for (const v of ['Female', 'female', 'F', ' f ', 'Woman', 'FEMALE.']) assert.equal(hashField('ge', v), sha('f'), v);
    assert.equal(normalizeField('ge', 'Female'), 'f');
  });
  it('male words → m', () => {
    for (const v of ['Male', 'm', 'M', 'man']) assert.equal(hashField('ge', v), sha('m'), v);
  });
  it('anything else is dropped: Meta takes only f and m', () => {
    for (const v of ['other', 'non-binary', 'unknown', 'x', '', 1]) assert.equal(hashField('ge', v), null, String(v));
  });
});

describe('ct (city): lower case, no punctuation, no spaces', () => {
  it("Meta's examples: paris, london, newyork", () => {
    assert.equal(hashField('ct', 'Paris'), sha('paris'));
    assert.equal(hashField('ct', 'London'), sha('london'));
    assert.equal(hashField('ct', 'New York'), sha('newyork'));
  });
  it('punctuation and spaces go; letters of any script stay in UTF-8', () => {
    assert.equal(hashField('ct', 'Menlo Park'), sha('menlopark'));
    assert.equal(hashField('ct', "St. John's"), sha('stjohns'));
    assert.equal(hashField('ct', 'Winston-Salem'), sha('winstonsalem'));
    assert.equal(hashField('ct', 'São Paulo'), sha('s\u00e3opaulo'));
    assert.equal(hashField('ct', '東京'), sha('東京'));
  });
});

describe('st (state): the two-letter ANSI code for US states, lower case', () => {
  it("Meta's examples: az, ca", () => {
    assert.equal(hashField('st', 'AZ'), sha('az'));
    assert.equal(hashField('st', 'ca'), sha('ca'));
  });
  it('US state names become their code', () => {
    assert.equal(hashField('st', 'California'), sha('ca'));
    assert.equal(hashField('st', 'Arizona'), sha('az'));
    assert.equal(hashField('st', 'new york'), sha('ny'));
    assert.equal(hashField('st', 'North Carolina'), sha('nc'));
    assert.equal(hashField('st', 'District of Columbia'), sha('dc'));
    assert.equal(hashField('st', 'Puerto Rico'), sha('pr'));
    assert.equal(hashField('st', 'N.Y.'), sha('ny'));
  });
  it('a state outside the US: lower case, no punctuation, no spaces', () => {
    assert.equal(hashField('st', 'Bavaria'), sha('bavaria'));
    assert.equal(hashField('st', 'Île-de-France'), sha('\u00eeledefrance'));
    assert.equal(hashField('st', 'ON'), sha('on'));
  });
});

describe('zp (zip code): lower case, no spaces or dashes; US: the first 5 digits', () => {
  it("Meta's examples: 94035 (US), 1987 (Australia), 75018 (France), m11ae (UK)", () => {
    assert.equal(hashField('zp', '94035'), sha('94035'));
    assert.equal(hashField('zp', '1987'), sha('1987'));
    assert.equal(hashField('zp', '75018'), sha('75018'));
    assert.equal(hashField('zp', 'M1 1AE'), sha('m11ae'));
  });
  it('US ZIP+4 keeps its first five digits', () => {
    assert.equal(normalizeField('zp', '94035-1234'), '94035');
    assert.equal(normalizeField('zp', ' 94035 1234 '), '94035');
    assert.equal(normalizeField('zp', '940351234'), '94035');
    assert.equal(hashField('zp', 94035), sha('94035'));
  });
  it('other countries: spaces and dashes removed, nothing cut', () => {
    assert.equal(hashField('zp', '01310-100'), sha('01310100')); // Brazil
    assert.equal(hashField('zp', 'SW1A 1AA'), sha('sw1a1aa')); // UK
    assert.equal(hashField('zp', 'K1A 0B1'), sha('k1a0b1')); // Canada
    assert.equal(hashField('zp', '100-0001'), sha('1000001')); // Japan
  });
});

describe('country: ISO 3166-1 alpha-2, lower case', () => {
  it("Meta's example: United States → us", () => {
    assert.equal(normalizeField('country', 'United States'), 'us');
    assert.equal(hashField('country', 'United States'), META.country);
  });
  it('codes in any case and common names of the US all give us', () => {
    for (const v of ['US', 'us', ' Us ', 'U.S.', 'USA', 'United States of America', 'united states']) {
      assert.equal(hashField('country', v), META.country, v);
    }
  });
  it('names in English and in shop languages, with accents or without', () => {
    const cases: [string, string][] = [
      ['Germany', 'de'],
      ['Deutschland', 'de'],
      ['DE', 'de'],
      ['France', 'fr'],
      ['United Kingdom', 'gb'],
      ['UK', 'gb'],
      ['Great Britain', 'gb'],
      ['España', 'es'],
      ['Espana', 'es'],
      ["Côte d'Ivoire", 'ci'],
      ['Japan', 'jp'],
      ['Kuwait', 'kw'],
      ['Bosnia and Herzegovina', 'ba'],
      ['Hong Kong', 'hk'],
      ['Netherlands', 'nl'],
    ];
    for (const [v, code] of cases) assert.equal(hashField('country', v), sha(code), v);
  });
  it('what is no country is dropped, not hashed', () => {
    for (const v of ['Narnia', 'XX', 'ZZ', 'EU', '', 'U', 1]) assert.equal(hashField('country', v), null, String(v));
  });
});

describe('external_id: lower case, whitespace removed, hashed', () => {
  it("Meta's parameter-builder examples: '  User123  ' → user123", () => {
    assert.equal(normalizeField('external_id', '  User123  '), 'user123');
    assert.equal(hashField('external_id', '  User123  '), sha('user123'));
    assert.equal(hashField('external_id', 'Customer-ABC-123'), sha('customer-abc-123'));
    assert.equal(hashField('external_id', 12345), sha('12345'));
  });
  it('blank is dropped', () => {
    assert.equal(hashField('external_id', '   '), null);
    assert.equal(hashField('external_id', null), null);
  });
});

describe('values that already are SHA-256 digests', () => {
  const digest = sha('someone@example.com');
  it('pass through unchanged, for every hashed parameter', () => {
    for (const field of HASHED_FIELDS) {
      assert.equal(hashField(field, digest), digest, field);
      assert.equal(hashField(field, ` ${digest}\n`), digest, field);
    }
  });
  it('upper-case hex is lowered (Meta compares lower case; its own SDK lowers it)', () => {
    assert.equal(hashField('em', digest.toUpperCase()), digest);
    assert.equal(normalizeField('external_id', digest.toUpperCase()), digest);
  });
  it('other hex lengths are not digests and are hashed like any value', () => {
    const md5 = 'd41d8cd98f00b204e9800998ecf8427e';
    assert.equal(hashField('external_id', md5), sha(md5));
    assert.equal(hashField('external_id', digest.slice(1)), sha(digest.slice(1)));
  });
  it('isSha256Hex: exactly 64 lower-case hex digits', () => {
    assert.equal(isSha256Hex(digest), true);
    assert.equal(isSha256Hex(digest.toUpperCase()), false);
    assert.equal(isSha256Hex(digest + '0'), false);
    assert.equal(isSha256Hex(digest.slice(1)), false);
    assert.equal(isSha256Hex(digest.slice(1) + 'g'), false);
    assert.equal(isSha256Hex(''), false);
  });
});

describe('userDataFrom: Segment traits → user_data', () => {
  it('reads the camelCase traits and the address object, and sends IP, user agent, fbc and fbp as they are', () => {
    const ua = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.141 Safari/537.36';
    const u = userDataFrom(
      {
        email: 'John_Smith@gmail.com',
        phone: '+1 (650) 555-1212',
        firstName: 'Mary',
        lastName: 'Smith',
        gender: 'Female',
        birthday: '1997-02-16T00:00:00.000Z',
        address: { city: 'Menlo Park', state: 'California', postalCode: '94025-1234', country: 'United States', street: '1 Hacker Way' },
        plan: 'premium',
      },
      { userId: 'User-42', ip: '2001:0db8:85a3:0000:0000:8a2e:0370:7334', userAgent: ua, fbc: 'fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890', fbp: 'fb.1.1596403881668.1116446470' },
    );
    const expected: UserData = {
      em: META.em,
      ph: META.ph,
      fn: META.fnMary,
      ln: sha('smith'),
      db: META.db,
      ge: sha('f'),
      ct: sha('menlopark'),
      st: sha('ca'),
      zp: sha('94025'),
      country: META.country,
      external_id: sha('user-42'),
      client_ip_address: '2001:0db8:85a3:0000:0000:8a2e:0370:7334',
      client_user_agent: ua,
      fbc: 'fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890',
      fbp: 'fb.1.1596403881668.1116446470',
    };
    assert.deepEqual(u, expected);
  });
  it('reads snake_case names and the flat address traits', () => {
    const u = userDataFrom({ first_name: 'Valéry', last_name: '정', city: 'Paris', state: 'Île-de-France', zip: '75018', country: 'FR' }, {});
    assert.deepEqual(u, {
      fn: META.fnValery,
      ln: META.fnKorean,
      ct: sha('paris'),
      st: sha('\u00eeledefrance'),
      zp: sha('75018'),
      country: sha('fr'),
    });
    assert.deepEqual(userDataFrom({ postalCode: 'M1 1AE' }, {}), { zp: sha('m11ae') });
    assert.deepEqual(userDataFrom({ address: { postal_code: 'M1 1AE' } }, {}), { zp: sha('m11ae') });
  });
  it('the address object wins over the flat traits; an unusable value gives way to the next spelling', () => {
    assert.deepEqual(userDataFrom({ address: { city: 'London' }, city: 'Paris' }, {}), { ct: sha('london') });
    assert.deepEqual(userDataFrom({ address: { country: 'Narnia' }, country: 'DE' }, {}), { country: sha('de') });
    assert.deepEqual(userDataFrom({ firstName: '--', first_name: 'Mary' }, {}), { fn: META.fnMary });
  });
  it('several e-mails or phones become a list of distinct digests', () => {
    const u = userDataFrom({ email: ['John_Smith@gmail.com', 'john_smith@gmail.com ', 'mary@example.com', 'not-an-email'], phone: ['+16505551212'] }, {});
    assert.deepEqual(u, { em: [META.em, sha('mary@example.com')], ph: META.ph });
  });
  it('no traits, blank extras: an empty user_data', () => {
    assert.deepEqual(userDataFrom(null, {}), {});
    assert.deepEqual(userDataFrom({}, { userId: null, ip: '', userAgent: '  ', fbc: null, fbp: undefined }), {});
  });
  it('an already hashed trait passes through; pass-through fields are never hashed, even when they look like digests', () => {
    const digest = sha('john_smith@gmail.com');
    assert.deepEqual(userDataFrom({ email: digest.toUpperCase() }, { fbp: 'fb.1.2.3', ip: '168.212.226.204' }), {
      em: digest,
      client_ip_address: '168.212.226.204',
      fbp: 'fb.1.2.3',
    });
  });
});

describe('mergeTraits: the event traits win, the identity fills the gaps', () => {
  it('a trait present in the newer (event) traits wins; missing ones come from the older (identity)', () => {
    assert.deepEqual(mergeTraits({ email: 'old@example.com', phone: '+33123456789' }, { email: 'new@example.com' }), {
      email: 'new@example.com',
      phone: '+33123456789',
    });
  });
  it('address is merged field by field', () => {
    assert.deepEqual(mergeTraits({ address: { city: 'Paris', postalCode: '75018', country: 'FR' } }, { address: { city: 'Lyon', state: null } }), {
      address: { city: 'Lyon', postalCode: '75018', country: 'FR' },
    });
  });
  it('null, blank and empty values do not erase what the identity knows', () => {
    assert.deepEqual(mergeTraits({ email: 'a@example.com', firstName: 'Mary' }, { email: null, firstName: '  ', phone: [] }), {
      email: 'a@example.com',
      firstName: 'Mary',
    });
  });
  it("the event's spelling of a parameter wins over the identity's other spelling of it", () => {
    const merged = mergeTraits({ firstName: 'Old', address: { city: 'Paris', postalCode: '75018' } }, { first_name: 'New', city: 'Lyon', zip: '69001' });
    assert.deepEqual(merged, { first_name: 'New', address: {}, city: 'Lyon', zip: '69001' });
    assert.deepEqual(userDataFrom(merged, {}), { fn: sha('new'), ct: sha('lyon'), zp: sha('69001') });
  });
  it('null when both are null; a copy of the one given otherwise; inputs untouched', () => {
    assert.equal(mergeTraits(null, null), null);
    const older = { email: 'a@example.com', address: { city: 'Paris' } };
    const newer = { address: { city: 'Lyon' } };
    assert.deepEqual(mergeTraits(older, null), older);
    assert.deepEqual(mergeTraits(null, newer), newer);
    mergeTraits(older, newer);
    assert.deepEqual(older, { email: 'a@example.com', address: { city: 'Paris' } });
    assert.deepEqual(newer, { address: { city: 'Lyon' } });
  });
  it('a "__proto__" trait stays a plain key', () => {
    const merged = mergeTraits(JSON.parse('{"__proto__": {"polluted": 1}}') as Record<string, unknown>, JSON.parse('{"email": "a@example.com"}') as Record<string, unknown>);
    assert.ok(merged !== null);
    assert.equal(Object.getPrototypeOf(merged), Object.prototype);
    assert.equal(merged.polluted, undefined);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('property: no hashed user_data parameter is ever anything but 64 lower-case hex digits', () => {
  // Seeded, so a failure replays.
  const random = seededRandom(20261126);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const chars = ['a', 'Z', 'é', 'É', '정', '東', '-', '.', ' ', '\t', '@', '+', '(', ')', '0', '5', '9', '/', ':', "'", '’', 'ß', 'İ', '\u0301', '😀', 'f', 'F'];
  const junk = (): string => Array.from({ length: Math.floor(random() * 24) }, () => pick(chars)).join('');
  const hex = (n: number): string => Array.from({ length: n }, () => pick([...'0123456789abcdefABCDEF'])).join('');
  const value = (): unknown =>
    pick<() => unknown>([
      junk,
      () => `${junk()}@${junk()}.com`,
      () => 'John_Smith@gmail.com',
      () => `+${Math.floor(random() * 1e12)}`,
      () => Math.floor(random() * 1e11),
      () => random() * 1e6,
      () => pick(['Female', 'male', 'F', 'other', ''] as const),
      () => pick(['2/16/1997', '1997-02-30', '16.02.1997', 'Feb 16 1997', '97-2-16'] as const),
      () => pick(['United States', 'DE', 'Deutschland', 'Narnia', 'UK', 'xx'] as const),
      () => pick(['California', 'CA', 'Bavaria', '94035-1234', 'M1 1AE'] as const),
      () => hex(64),
      () => ` ${hex(64)} `,
      () => hex(pick([32, 63, 65])),
      () => null,
      () => undefined,
      () => true,
      () => NaN,
      () => Infinity,
      () => [junk(), 'a@b.co', hex(64)],
      () => ({ nested: junk() }),
      () => 'x'.repeat(2000),
    ])();
  const keys = ['email', 'phone', 'firstName', 'first_name', 'lastName', 'last_name', 'gender', 'birthday', 'city', 'state', 'zip', 'postalCode', 'postal_code', 'country', 'name', 'userId'];
  const traitObject = (): Record<string, unknown> => {
    const t: Record<string, unknown> = {};
    for (const k of keys) if (random() < 0.6) t[k] = value();
    if (random() < 0.7) {
      const address: Record<string, unknown> = {};
      for (const k of ['city', 'state', 'postalCode', 'postal_code', 'zip', 'country']) if (random() < 0.6) address[k] = value();
      t.address = random() < 0.9 ? address : value();
    }
    return t;
  };
  const PASS_THROUGH = new Set(['client_ip_address', 'client_user_agent', 'fbc', 'fbp']);
  const HASHED = new Set<string>(HASHED_FIELDS);

  it('over 500 generated trait objects and identities', () => {
    let hashedSeen = 0;
    for (let i = 0; i < 500; i++) {
      const traits = random() < 0.5 ? traitObject() : mergeTraits(random() < 0.5 ? traitObject() : null, traitObject());
      const extra = {
        userId: pick([null, junk(), hex(64), 'user-1']),
        ip: pick([null, '', '203.0.113.9', junk()]),
        userAgent: pick([null, 'Mozilla/5.0', junk()]),
        fbc: pick([null, 'fb.1.1554763741205.AbCd', junk()]),
        fbp: pick([null, 'fb.1.1596403881668.1116446470', junk()]),
      };
      const given: Record<string, unknown> = { client_ip_address: extra.ip, client_user_agent: extra.userAgent, fbc: extra.fbc, fbp: extra.fbp };
      for (const [key, v] of Object.entries(userDataFrom(traits, extra))) {
        if (PASS_THROUGH.has(key)) {
          assert.equal(v, given[key], `${key} is sent as received`);
          continue;
        }
        assert.ok(HASHED.has(key), `unexpected user_data key ${key}`);
        const list = Array.isArray(v) ? v : [v];
        if (Array.isArray(v)) assert.ok(key === 'em' || key === 'ph', `${key} is never a list`);
        assert.ok(list.length > 0, `${key} is not an empty list`);
        for (const h of list) {
          assert.equal(typeof h, 'string', `${key}: ${String(h)}`);
          assert.match(h as string, HEX64, `${key}: ${String(h)} (traits ${JSON.stringify(traits)})`);
          hashedSeen++;
        }
      }
    }
    assert.ok(hashedSeen > 1000, `the generator exercised the hashing (${hashedSeen} digests)`);
  });

  it('hashField and normalizeField over every parameter and generated value', () => {
    for (let i = 0; i < 400; i++) {
      const v = value();
      const fields: readonly HashedField[] = HASHED_FIELDS;
      for (const field of fields) {
        const h = hashField(field, v);
        if (h !== null) assert.match(h, HEX64, `${field} of ${String(v)}`);
        const n = normalizeField(field, v);
        assert.equal(h === null, n === null, `${field}: hashField and normalizeField agree on usability of ${String(v)}`);
        if (n !== null && h !== null && !HEX64.test(n)) assert.equal(h, sha(n));
      }
    }
  });
});
