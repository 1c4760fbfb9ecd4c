/**
 * The JSON Schema document of the canonical event, as published in
 * docs/schema/canonical-event.v1.json (regenerate with `node docs/schema/generate.ts`; a test fails
 * while the file is out of date).
 *
 * The document says the same as `CanonicalEventSchema`, written for people: the sub-schemas that
 * several events share (context, product, …) are in `definitions` and referred to with `$ref`.
 */
import * as S from './schema.ts';

export const CANONICAL_EVENT_SCHEMA_FILE = `docs/schema/canonical-event.v${S.CANONICAL_EVENT_VERSION}.json`;

/** Sub-schemas written once, under these names. Identity of the TypeBox object decides. */
const DEFINITIONS: ReadonlyArray<readonly [string, object]> = [
  ['ProductsSearched', S.ProductsSearchedEvent],
  ['ProductListViewed', S.ProductListViewedEvent],
  ['ProductClicked', S.ProductClickedEvent],
  ['ProductViewed', S.ProductViewedEvent],
  ['ProductAdded', S.ProductAddedEvent],
  ['ProductRemoved', S.ProductRemovedEvent],
  ['CartViewed', S.CartViewedEvent],
  ['CheckoutStarted', S.CheckoutStartedEvent],
  ['OrderCompleted', S.OrderCompletedEvent],
  ['PageViewed', S.PageViewedEvent],
  ['Identify', S.IdentifyEvent],
  ['Context', S.EventContextSchema],
  ['Page', S.PageSchema],
  ['Campaign', S.CampaignSchema],
  ['Library', S.LibrarySchema],
  ['Product', S.ProductSchema],
  ['ProductsSearchedProperties', S.ProductsSearchedProperties],
  ['ProductListViewedProperties', S.ProductListViewedProperties],
  ['ProductEventProperties', S.ProductEventProperties],
  ['CartViewedProperties', S.CartViewedProperties],
  ['CheckoutStartedProperties', S.CheckoutStartedProperties],
  ['OrderCompletedProperties', S.OrderCompletedProperties],
  ['PageViewedProperties', S.PageViewedProperties],
  ['NullableString', S.NullableString],
  ['Id', S.Id],
  ['NullableId', S.NullableId],
  ['EpochMs', S.EpochMs],
  ['NullableEpochMs', S.NullableEpochMs],
  ['Money', S.Money],
  ['NullableMoney', S.NullableMoney],
  ['Currency', S.Currency],
  ['Object', S.OpenObject],
];

/** A plain JSON copy of `node`, with every known sub-schema (other than `self`) replaced by a $ref. */
function write(node: unknown, names: ReadonlyMap<object, string>, self: object | undefined): unknown {
  if (typeof node !== 'object' || node === null) return node;
  const name = names.get(node);
  if (name !== undefined && node !== self) return { $ref: `#/definitions/${name}` };
  if (Array.isArray(node)) return node.map((n) => write(n, names, undefined));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = write(v, names, undefined);
  return out;
}

/** The schema with its draft, id, title, description and definitions: a plain JSON object. */
export function canonicalEventJsonSchema(): Record<string, unknown> {
  const names = new Map<object, string>(DEFINITIONS.map(([n, s]) => [s, n]));
  const definitions: Record<string, unknown> = {};
  for (const [name, schema] of DEFINITIONS) definitions[name] = write(schema, names, schema);
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://shopstream.dev/schema/canonical-event.v${S.CANONICAL_EVENT_VERSION}.json`,
    title: `Shopstream canonical commerce event, version ${S.CANONICAL_EVENT_VERSION}`,
    description:
      'The value of every record of the events.raw topic: one Segment track, page or identify call, normalized. ' +
      'Generated from packages/platform/src/contract/schema.ts; the meaning of every field is in docs/events.md.',
    ...(write(S.CanonicalEventSchema, names, undefined) as Record<string, unknown>),
    definitions,
  };
}

/** The file's exact text: two-space indented JSON and a final newline. */
export function canonicalEventJsonSchemaText(): string {
  return `${JSON.stringify(canonicalEventJsonSchema(), null, 2)}\n`;
}
