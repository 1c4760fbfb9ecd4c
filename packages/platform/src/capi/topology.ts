/**
 * The capi topology: `events.filtered` → Meta server events on `capi.outbox`, ready to send.
 *
 *   route (merchants with Meta on; the six forwarded events, and identify calls)
 *   → repartition by identity (`u:<merchant>:<userId>`, else `v:<merchant>:<visitor>`)
 *   → prepare: keep the latest identify traits per identity (a state store), join them into each
 *     event's user_data, map and hash (mapping.ts), refuse events older than Meta's 7 days
 *   → capi.outbox (the server event as JSON; merchant, event id and event time in headers)
 *   | capi.dlq (too old, with the reason).
 *
 * An identify call is written under both of its identities (user and visitor), so a shopper who was
 * identified once is matched on later events that carry only the visitor id (same browser), and on
 * events that carry the user id (any device). Sending is the forwarder's job (forwarder.ts): this
 * topology is pure stream processing, exactly-once like every topology of the engine.
 */
import { Serdes, Stores, StreamsBuilder, type KeyValueStore, type Processor, type ProcessorContext, type Record as StreamRecord, type Topology } from '@shopstream/streams';
import type { CanonicalEvent } from '../contract/index.ts';
import type { PipelineEvent } from '../pipeline/topology.ts';
import type { TopicNames } from '../topics.ts';
import { identityTraitsOf, META_EVENT_NAMES, toServerEvent } from './mapping.ts';
import { mergeTraits } from './user-data.ts';
import { capiDlqValue, CAPI_HEADERS, CapiDlqCodes, META_MAX_EVENT_AGE_MS } from './outbox.ts';

export interface CapiTopologyOptions {
  /** Whether the merchant forwards to Meta (its `meta` settings are set). Read on every event. */
  metaEnabled: (merchantId: string) => boolean;
  /** Wall clock, for the 7-day rule. Default Date.now. */
  now?: () => number;
  /** How long identify traits are kept after the last identify of an identity. Default 90 days. */
  identityTtlMs?: number;
  /** Events older than this are not sent (Meta refuses them). Default 7 days. */
  maxEventAgeMs?: number;
  /** Called for each event routed: forwarded to the outbox, dead-lettered, or skipped (merchant without Meta, event not forwarded). */
  onEvent?: ((merchantId: string, outcome: 'outbox' | 'too_old' | 'skipped') => void) | null;
}

const DAY = 86_400_000;
export const CAPI_IDENTITY_STORE = 'capi-identities';

type Routed = { kind: 'identify'; traits: Record<string, unknown> } | { kind: 'event'; pe: PipelineEvent };
interface Out {
  topic: string;
  json: string;
}

function identityKey(e: CanonicalEvent): string {
  return e.userId !== null ? `u:${e.merchantId}:${e.userId}` : `v:${e.merchantId}:${e.visitorId}`;
}

/** Route: which events go on, under which identity key. Stateless. */
function route(o: Required<CapiTopologyOptions>, value: Buffer): Array<{ key: string; value: Routed }> {
  const pe = JSON.parse(value.toString('utf8')) as PipelineEvent;
  const e = pe.event;
  if (!o.metaEnabled(e.merchantId)) {
    if (e.type !== 'identify' && META_EVENT_NAMES[e.event as keyof typeof META_EVENT_NAMES] !== undefined) o.onEvent?.(e.merchantId, 'skipped');
    return [];
  }
  if (e.type === 'identify') {
    const traits = identityTraitsOf(e);
    if (traits === null) return [];
    const keys = [`v:${e.merchantId}:${e.visitorId}`];
    if (e.userId !== null) keys.push(`u:${e.merchantId}:${e.userId}`);
    return keys.map((key) => ({ key, value: { kind: 'identify', traits } }));
  }
  if (META_EVENT_NAMES[e.event as keyof typeof META_EVENT_NAMES] === undefined) return [];
  return [{ key: identityKey(e), value: { kind: 'event', pe } }];
}

class PrepareProcessor implements Processor<string, Routed, string, Out> {
  private ctx!: ProcessorContext<string, Out>;
  private identities!: KeyValueStore<string, Record<string, unknown>>;
  private readonly o: Required<CapiTopologyOptions>;
  private readonly topics: TopicNames;

  constructor(topics: TopicNames, o: Required<CapiTopologyOptions>) {
    this.topics = topics;
    this.o = o;
  }

  init(ctx: ProcessorContext<string, Out>): void {
    this.ctx = ctx;
    this.identities = ctx.getStateStore(CAPI_IDENTITY_STORE);
  }

  process(r: StreamRecord<string, Routed>): void {
    const v = r.value;
    if (v.kind === 'identify') {
      this.identities.put(r.key, mergeTraits(this.identities.get(r.key) ?? null, v.traits) ?? {});
      return;
    }
    const mapped = toServerEvent(v.pe, this.identities.get(r.key) ?? null);
    if (!mapped.ok) return;
    const e = v.pe.event;
    const headers = [
      [CAPI_HEADERS.merchant, Buffer.from(e.merchantId)],
      [CAPI_HEADERS.eventId, Buffer.from(e.messageId)],
      [CAPI_HEADERS.eventTime, Buffer.from(String(e.timestamp))],
    ] as const;
    const age = this.o.now() - e.timestamp;
    if (age > this.o.maxEventAgeMs) {
      this.o.onEvent?.(e.merchantId, 'too_old');
      const json = JSON.stringify(
        capiDlqValue({
          code: CapiDlqCodes.TOO_OLD,
          message: `the event time is ${Math.round(age / 3_600_000)} hours old; Meta refuses events older than ${Math.round(this.o.maxEventAgeMs / 3_600_000)} hours`,
          merchantId: e.merchantId,
          eventTimeMs: e.timestamp,
          attempts: 0,
          eventJson: JSON.stringify(mapped.event),
          at: this.o.now(),
        }),
      );
      this.ctx.forward({ key: r.key, value: { topic: this.topics.capiDlq, json }, timestamp: r.timestamp, headers });
      return;
    }
    this.o.onEvent?.(e.merchantId, 'outbox');
    this.ctx.forward({ key: r.key, value: { topic: this.topics.capiOutbox, json: JSON.stringify(mapped.event) }, timestamp: r.timestamp, headers });
  }
}

export function capiTopology(topics: TopicNames, options: CapiTopologyOptions): Topology {
  const o: Required<CapiTopologyOptions> = {
    metaEnabled: options.metaEnabled,
    now: options.now ?? Date.now,
    identityTtlMs: options.identityTtlMs ?? 90 * DAY,
    maxEventAgeMs: options.maxEventAgeMs ?? META_MAX_EVENT_AGE_MS,
    onEvent: options.onEvent ?? null,
  };
  const b = new StreamsBuilder();
  b.addStateStore(Stores.keyValueStore({ name: CAPI_IDENTITY_STORE, keySerde: Serdes.string(), valueSerde: Serdes.json<Record<string, unknown>>(), ttlMs: o.identityTtlMs }));
  b.stream<string, Buffer>(topics.filtered, { name: 'capi-filtered', keySerde: Serdes.string(), valueSerde: Serdes.bytes() })
    .flatMap<string, Routed>((_visitor, value) => route(o, value), { name: 'capi-route', keySerde: Serdes.string(), valueSerde: Serdes.json<Routed>() })
    .repartition({ name: 'capi-identity', keySerde: Serdes.string(), valueSerde: Serdes.json<Routed>() })
    .process<string, Out>(() => new PrepareProcessor(topics, o), { name: 'capi-prepare', stores: [CAPI_IDENTITY_STORE], keySerde: Serdes.string(), keyChanged: false })
    .to((_key, out) => out.topic, { keySerde: Serdes.string(), valueSerde: Serdes.from<Out>((out) => Buffer.from(out.json), (b) => ({ topic: '', json: b.toString('utf8') })) });
  return b.build();
}
