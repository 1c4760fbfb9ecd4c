/** A collector on a real log (embedded or Kafka) with two merchants, for route tests. */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Log } from '@shopstream/streams';
import { buildCollector, type CollectorOptions } from '../../src/collector/server.ts';
import type { Merchant } from '../../src/merchants/model.ts';
import { MerchantTable, putMerchant } from '../../src/merchants/table.ts';
import { ensurePlatformTopics, topicNames, type TopicNames } from '../../src/topics.ts';
import { openTestLog, unique, type LogKind } from '../helpers.ts';

export interface CollectorFixture {
  app: FastifyInstance;
  log: Log;
  topics: TopicNames;
  table: MerchantTable;
  shopA: Merchant;
  shopB: Merchant;
  registry: Registry;
  close(): Promise<void>;
}

export function merchant(id: string, extra: Partial<Merchant> = {}): Merchant {
  return {
    id,
    writeKeys: [`wk_${id}_0123456789`],
    revokedWriteKeys: [`wk_${id}_rotated_old`],
    readTokens: [`rt_${id}_0123456789`],
    timezone: 'Europe/Paris',
    currency: 'EUR',
    createdAt: 1,
    updatedAt: 1,
    ...extra,
  };
}

export async function collectorFixture(
  kind: LogKind,
  options: Partial<Omit<CollectorOptions, 'log' | 'merchants' | 'topics'>> & { logger?: Logger; shopA?: Partial<Merchant>; log?: Log } = {},
): Promise<CollectorFixture> {
  const opened = options.log ? undefined : await openTestLog(kind);
  const log = options.log ?? opened!.log;
  const prefix = `${unique('t')}.`;
  const topics = topicNames(prefix);
  await ensurePlatformTopics(log, { prefix, partitions: 2 });
  const table = new MerchantTable(log, topics.merchants);
  await table.start();
  const shopA = merchant(unique('shopA'), options.shopA);
  const shopB = merchant(unique('shopB'));
  await putMerchant(log, topics.merchants, shopA, table);
  await putMerchant(log, topics.merchants, shopB, table);
  const registry = new Registry();
  const app = await buildCollector({
    beaconSecrets: [Buffer.from('a-test-secret-of-at-least-32-characters!')],
    ...options,
    log,
    topics,
    merchants: table,
    registry,
  });
  await app.ready();
  return {
    app,
    log,
    topics,
    table,
    shopA,
    shopB,
    registry,
    async close() {
      await app.close();
      await table.close();
      if (kind === 'kafka') await log.admin.deleteTopics(Object.values(topics)).catch(() => {});
      await opened?.close();
    },
  };
}

export function basic(writeKey: string): string {
  return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}

let seq = 0;
/** A valid Segment track message, as analytics.js would send it. */
export function trackMessage(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  seq++;
  const now = new Date().toISOString();
  return {
    type: 'track',
    messageId: `msg-${process.pid}-${seq}-${Math.random().toString(36).slice(2)}`,
    anonymousId: `anon-${seq % 7}`,
    event: 'Product Viewed',
    properties: { product_id: 'sku-1', name: 'Runner 2', price: 89.9, currency: 'EUR', quantity: 1 },
    context: {
      userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15',
      page: { url: 'https://shop.example/p/runner-2?utm_source=news&utm_medium=email', path: '/p/runner-2', referrer: '' },
    },
    timestamp: now,
    sentAt: now,
    ...overrides,
  };
}
