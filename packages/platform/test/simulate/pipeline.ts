/**
 * Plans through the real pipeline, with no broker and no network: each batch goes through the
 * collector's envelope check and the pipeline topology (TopologyTestDriver), as the collector would
 * write it (record timestamp = receivedAt, validations when the beacon runs). Shared by
 * pipeline-truth.test.ts and recs.test.ts.
 */
import { Serdes } from '@shopstream/streams';
import { TopologyTestDriver } from '@shopstream/streams/testing';
import { checkEnvelope, hashUserAgent, rawRecordHeaders, type IngestContext } from '../../src/contract/index.ts';
import { pipelineTopology, type PipelineEvent, type PipelineRejection } from '../../src/pipeline/topology.ts';
import { topicNames } from '../../src/topics.ts';
import type { SimAction, SimulationOptions } from '../../src/simulate/plan.ts';
import { hourOf, type HourCounts } from '../../src/simulate/truth.ts';
import { merchantOfKey } from './fixture.ts';

const T = topicNames();

export interface PipelineOutput {
  filtered: PipelineEvent[];
  bots: PipelineEvent[];
  rejected: PipelineRejection[];
  /** Refused by the collector's envelope check, by code. */
  collectorRejected: Record<string, number>;
}

/**
 * Sends the actions through the pipeline; the run starts just after `end` on the collector's clock.
 * `batchOf` gives the messages a batch action sends (default: its body; with widgets, the caller
 * expands them).
 */
export function throughPipeline(
  actions: readonly SimAction[],
  merchants: SimulationOptions['merchants'],
  end: number,
  batchOf: (a: Extract<SimAction, { kind: 'batch' }>) => ReadonlyArray<Record<string, unknown>> = (a) => a.body.batch,
): PipelineOutput {
  const byKey = merchantOfKey(merchants);
  let clock = end + 5_000;
  const driver = new TopologyTestDriver(pipelineTopology(T), { wallClockMs: clock });
  const raw = driver.createInputTopic(T.raw, Serdes.string(), Serdes.bytes());
  const validations = driver.createInputTopic(T.validations, Serdes.string(), Serdes.json<Record<string, unknown>>());
  const filtered = driver.createOutputTopic(T.filtered, Serdes.string(), Serdes.json<PipelineEvent>());
  const bots = driver.createOutputTopic(T.bots, Serdes.string(), Serdes.json<PipelineEvent>());
  const rejected = driver.createOutputTopic(T.rejected, Serdes.string(), Serdes.json<PipelineRejection>());
  const collectorRejected: Record<string, number> = {};
  let token = 0;
  for (const a of actions) {
    const merchant = byKey.get(a.writeKey)!;
    if (a.kind === 'beacon') {
      validations.pipeInput(a.anonymousId, { v: 1, merchantId: merchant.id, anonymousId: a.anonymousId, validatedAt: clock, validUntil: clock + 30 * 86_400_000, tokenId: `t${token++}`, uaHash: hashUserAgent(a.userAgent) }, clock);
      clock += 3;
      continue;
    }
    const ctx: IngestContext = { merchantId: merchant.id, defaultCurrency: merchant.currency, receivedAt: clock, requestIp: '203.0.113.7', requestUserAgent: 'node' };
    const headers = rawRecordHeaders(ctx, undefined);
    for (const m of batchOf(a)) {
      const env = checkEnvelope(m, ctx);
      if (!env.ok) {
        collectorRejected[env.reason.code] = (collectorRejected[env.reason.code] ?? 0) + 1;
        continue;
      }
      raw.pipeInput(env.envelope.visitorId, Buffer.from(JSON.stringify(m)), clock, headers);
    }
    clock += 7;
  }
  // Input stops: the wall clock passes the grace period, and held events are decided.
  driver.advanceWallClockTime(60_000);
  driver.advanceWallClockTime(60_000);
  const out = { filtered: filtered.readRecordsToList().map((r) => r.value!), bots: bots.readRecordsToList().map((r) => r.value!), rejected: rejected.readRecordsToList().map((r) => r.value!), collectorRejected };
  driver.close();
  return out;
}

/** merchant → event name → UTC hour of the event time → events, as the truth counts them. */
export function hourCounts(events: readonly PipelineEvent[], merchants: SimulationOptions['merchants']): HourCounts {
  const c: HourCounts = {};
  for (const m of merchants) c[m.id] = {};
  for (const { event } of events) {
    const byEvent = (c[event.merchantId] ??= {});
    const byHour = (byEvent[event.event] ??= {});
    const h = hourOf(event.timestamp);
    byHour[h] = (byHour[h] ?? 0) + 1;
  }
  return c;
}
