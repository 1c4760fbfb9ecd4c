/**
 * docs/schema/canonical-event.v1.json is generated from the TypeBox schema and up to date, and it
 * says the same as the schema the code validates with.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { CANONICAL_EVENT_NAMES, CANONICAL_EVENT_SCHEMA_FILE, CanonicalEventSchema, canonicalEventJsonSchemaText, encodeCanonicalEvent, parseCanonicalEvent } from '../../src/contract/index.ts';
import { accept, track } from './fixtures.ts';

const root = join(import.meta.dirname, '..', '..', '..', '..');

describe('published JSON Schema', () => {
  it(`${CANONICAL_EVENT_SCHEMA_FILE} is up to date (regenerate with: node docs/schema/generate.ts)`, () => {
    const onDisk = readFileSync(join(root, CANONICAL_EVENT_SCHEMA_FILE), 'utf8');
    assert.ok(onDisk === canonicalEventJsonSchemaText(), `${CANONICAL_EVENT_SCHEMA_FILE} is out of date: run node docs/schema/generate.ts`);
  });

  it('has one branch per canonical event name', () => {
    assert.deepEqual(CanonicalEventSchema.anyOf.map((b) => b.properties.event.const).sort(), [...CANONICAL_EVENT_NAMES].sort());
  });

  it('is a valid draft-07 schema that accepts and refuses what the code does', () => {
    const doc = JSON.parse(readFileSync(join(root, CANONICAL_EVENT_SCHEMA_FILE), 'utf8')) as Record<string, unknown>;
    const validate = new Ajv({ strict: true, allowUnionTypes: true }).compile(doc);
    const good = [
      accept(track('Order Completed', { order_id: 'o', total: 10, products: [{ price: 1, color: 'red' }], custom: 1 })),
      accept(track('Product Viewed', { price: 1 })),
      accept({ type: 'page', messageId: 'p', anonymousId: 'a', name: 'Home' }),
      accept({ type: 'identify', messageId: 'i', userId: 'u', traits: { email: 'a@b.c' } }),
    ];
    const bad: unknown[] = [
      { ...good[0], v: 2 },
      { ...good[1], event: 'Nope' },
      { ...good[1], properties: { ...(good[1] as { properties: object }).properties, price: 1.5 } },
      { ...good[2], type: 'track' },
      { ...good[3], traits: 'x' },
      { ...good[3], extra: {} },
    ];
    for (const e of [...good, ...bad]) {
      const byCode = parseCanonicalEvent(encodeCanonicalEvent(e as never)).ok;
      assert.equal(validate(JSON.parse(JSON.stringify(e))), byCode, JSON.stringify(e).slice(0, 120));
    }
  });
});
