/**
 * The canonical commerce event, version 1: the value of every record of the `events.raw` topic.
 * This TypeBox schema is the one source of truth: the TypeScript types are inferred from it, the
 * pipeline validates records against it (`parseCanonicalEvent`), and `docs/schema/canonical-event.v1.json`
 * is generated from it. The meaning of every field is in docs/events.md.
 *
 * Conventions: absent scalars are `null` (never missing), so every record of one event name has the
 * same keys; times are integer epoch milliseconds; money is an integer in the minor unit of the
 * event's `currency`; `extra` (optional) holds the properties a client sent that the contract does
 * not name, as given.
 */
import Type from 'typebox';
import type { TObject } from 'typebox';

export const CANONICAL_EVENT_VERSION = 1;

export const NullableString = Type.Union([Type.String(), Type.Null()]);
export const Id = Type.String({ minLength: 1, maxLength: 256 });
export const NullableId = Type.Union([Id, Type.Null()]);
export const EpochMs = Type.Integer({ minimum: -8.64e15, maximum: 8.64e15, description: 'Epoch milliseconds (UTC), within the range of a JavaScript Date.' });
export const NullableEpochMs = Type.Union([EpochMs, Type.Null()]);
export const Money = Type.Integer({
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: "Integer amount in the minor unit of the event's currency (cents for USD, yen for JPY, fils for KWD).",
});
export const NullableMoney = Type.Union([Money, Type.Null()]);
export const Currency = Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 code, upper case.' });
/** An object kept as the client sent it (traits, extra). */
export const OpenObject = Type.Unsafe<Record<string, unknown>>({ type: 'object' });
const Extra = Type.Optional(
  Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'Properties the contract does not name, as sent.' }),
);

export const PageSchema = Type.Object(
  { url: NullableString, path: NullableString, referrer: NullableString, title: NullableString, search: NullableString },
  { additionalProperties: false },
);
export const CampaignSchema = Type.Object(
  { source: NullableString, medium: NullableString, name: NullableString, term: NullableString, content: NullableString },
  { additionalProperties: false },
);
export const LibrarySchema = Type.Object({ name: NullableString, version: NullableString }, { additionalProperties: false });

export const EventContextSchema = Type.Object(
  {
    ip: NullableString,
    userAgent: NullableString,
    page: Type.Union([PageSchema, Type.Null()]),
    campaign: Type.Union([CampaignSchema, Type.Null()]),
    locale: NullableString,
    timezone: NullableString,
    country: NullableString,
    library: Type.Union([LibrarySchema, Type.Null()]),
    traits: Type.Union([OpenObject, Type.Null()]),
    fbp: NullableString,
    fbc: NullableString,
  },
  { additionalProperties: false },
);

const productFields = {
  product_id: NullableString,
  sku: NullableString,
  name: NullableString,
  brand: NullableString,
  category: NullableString,
  variant: NullableString,
  price: NullableMoney,
  quantity: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  position: Type.Union([Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }), Type.Null()]),
  url: NullableString,
  image_url: NullableString,
  coupon: NullableString,
};

export const ProductSchema = Type.Object({ ...productFields, extra: Extra }, { additionalProperties: false });
const Products = Type.Array(ProductSchema);

export const ProductsSearchedProperties = Type.Object(
  { query: NullableString, extra: Extra },
  { additionalProperties: false },
);
export const ProductListViewedProperties = Type.Object(
  { list_id: NullableString, category: NullableString, currency: Currency, products: Products, extra: Extra },
  { additionalProperties: false },
);
/** Product Clicked, Viewed, Added, Removed: one product's fields at the top level. */
export const ProductEventProperties = Type.Object(
  { ...productFields, cart_id: NullableString, value: NullableMoney, currency: Currency, extra: Extra },
  { additionalProperties: false },
);
export const CartViewedProperties = Type.Object(
  { cart_id: NullableString, currency: Currency, products: Products, extra: Extra },
  { additionalProperties: false },
);
export const CheckoutStartedProperties = Type.Object(
  {
    checkout_id: NullableString,
    order_id: NullableString,
    affiliation: NullableString,
    value: NullableMoney,
    revenue: NullableMoney,
    shipping: NullableMoney,
    tax: NullableMoney,
    discount: NullableMoney,
    coupon: NullableString,
    currency: Currency,
    products: Products,
    extra: Extra,
  },
  { additionalProperties: false },
);
export const OrderCompletedProperties = Type.Object(
  {
    order_id: Type.String({ minLength: 1 }),
    checkout_id: NullableString,
    affiliation: NullableString,
    total: NullableMoney,
    subtotal: NullableMoney,
    revenue: NullableMoney,
    shipping: NullableMoney,
    tax: NullableMoney,
    discount: NullableMoney,
    coupon: NullableString,
    currency: Currency,
    products: Products,
    extra: Extra,
  },
  { additionalProperties: false },
);
export const PageViewedProperties = Type.Object(
  {
    name: NullableString,
    category: NullableString,
    path: NullableString,
    url: NullableString,
    referrer: NullableString,
    title: NullableString,
    search: NullableString,
    extra: Extra,
  },
  { additionalProperties: false },
);

/** Fields every canonical event has after `v`, `type` and `event`, in the order they are written. */
const envelope = {
  messageId: Id,
  merchantId: Type.String({ minLength: 1 }),
  visitorId: Type.String({ minLength: 1, maxLength: 261, description: 'The Kafka key: anonymousId, else "user:" + userId.' }),
  anonymousId: NullableId,
  userId: NullableId,
  sessionId: NullableId,
  timestamp: EpochMs,
  originalTimestamp: NullableEpochMs,
  sentAt: NullableEpochMs,
  receivedAt: EpochMs,
  context: EventContextSchema,
};
const V = Type.Literal(CANONICAL_EVENT_VERSION);

function trackEvent<N extends string, P extends TObject>(name: N, properties: P) {
  return Type.Object(
    { v: V, type: Type.Literal('track'), event: Type.Literal(name), ...envelope, properties },
    { additionalProperties: false, title: name },
  );
}

export const ProductsSearchedEvent = trackEvent('Products Searched', ProductsSearchedProperties);
export const ProductListViewedEvent = trackEvent('Product List Viewed', ProductListViewedProperties);
export const ProductClickedEvent = trackEvent('Product Clicked', ProductEventProperties);
export const ProductViewedEvent = trackEvent('Product Viewed', ProductEventProperties);
export const ProductAddedEvent = trackEvent('Product Added', ProductEventProperties);
export const ProductRemovedEvent = trackEvent('Product Removed', ProductEventProperties);
export const CartViewedEvent = trackEvent('Cart Viewed', CartViewedProperties);
export const CheckoutStartedEvent = trackEvent('Checkout Started', CheckoutStartedProperties);
export const OrderCompletedEvent = trackEvent('Order Completed', OrderCompletedProperties);
export const PageViewedEvent = Type.Object(
  { v: V, type: Type.Literal('page'), event: Type.Literal('Page Viewed'), ...envelope, properties: PageViewedProperties },
  { additionalProperties: false, title: 'Page Viewed' },
);
export const IdentifyEvent = Type.Object(
  { v: V, type: Type.Literal('identify'), event: Type.Literal('Identify'), ...envelope, traits: OpenObject },
  { additionalProperties: false, title: 'Identify' },
);

/** One branch per canonical event name; `event` tells which. */
export const CanonicalEventSchema = Type.Union([
  ProductsSearchedEvent,
  ProductListViewedEvent,
  ProductClickedEvent,
  ProductViewedEvent,
  ProductAddedEvent,
  ProductRemovedEvent,
  CartViewedEvent,
  CheckoutStartedEvent,
  OrderCompletedEvent,
  PageViewedEvent,
  IdentifyEvent,
]);

export type CanonicalEvent = Type.Static<typeof CanonicalEventSchema>;
export type EventContext = Type.Static<typeof EventContextSchema>;
export type Product = Type.Static<typeof ProductSchema>;
export type ProductEventProps = Type.Static<typeof ProductEventProperties>;
export type OrderCompletedProps = Type.Static<typeof OrderCompletedProperties>;
export type CheckoutStartedProps = Type.Static<typeof CheckoutStartedProperties>;
export type PageViewedProps = Type.Static<typeof PageViewedProperties>;
/** A canonical event of one name: `EventOf<'Order Completed'>['properties']['order_id']`. */
export type EventOf<N extends CanonicalEvent['event']> = Extract<CanonicalEvent, { event: N }>;
