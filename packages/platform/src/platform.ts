/**
 * The platform process: opens the log (embedded unless `kafka.brokers` is configured), creates the
 * topics, loads the merchants table, and runs the roles. `shopstream start` and `npm start` call it.
 * Roles only talk through topics; this file only wires them.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { StreamThreads, StreamsApp, type Log } from '@shopstream/streams';
import { openEmbeddedLog } from '@shopstream/streams/embedded';
import type { ConnectKafkaLogOptions } from '@shopstream/streams/kafka';
import { buildCollector } from './collector/server.ts';
import type { ShopstreamConfig, MerchantConfig } from './config.ts';
import { PlatformError, PlatformErrors } from './errors.ts';
import type { Merchant } from './merchants/model.ts';
import { MerchantTable, putMerchant, withConfiguredServerKeys } from './merchants/table.ts';
import { ensurePlatformTopics, topicNames, type TopicNames } from './topics.ts';
import { pipelineTopology } from './pipeline/topology.ts';
import { pipelineMetrics } from './pipeline/metrics.ts';
import { analyticsRoutes } from './api/analytics.ts';
import { dashboardRoutes, type DashboardOptions } from './api/dashboard.ts';
import { STATUS_METRICS, statusRoutes } from './api/status.ts';
import { DuckDb, PostgresDb } from './cubes/db.ts';
import { CubeStore } from './cubes/store.ts';
import { CubesWriter, DEFAULT_RETENTION } from './cubes/writer.ts';
import { LakeSink, rawDecoderWith } from './lake/sink.ts';
import { openLakeStorage } from './lake/open.ts';
import { capiTopology } from './capi/topology.ts';
import { CapiForwarder } from './capi/forwarder.ts';
import { recsDefaults, recsTopology } from './recs/topology.ts';
import { RecsTable } from './recs/table.ts';
import { recommendationsRoutes, type ServedExperiment } from './api/recommendations.ts';
import { attributionConfig, validateExperiment } from './experiments/index.ts';
import { watchLag } from './lag.ts';

export interface PlatformOptions {
  config?: ShopstreamConfig;
  /** Overrides config.dataDir. Default `.data`. */
  dataDir?: string;
  /** Overrides config.collector.port. Default 8080; 0 picks a free port. */
  port?: number;
  host?: string;
  logger?: Logger;
  /** Use this log instead of opening one (tests). It is not closed by `close()`. */
  log?: Log;
  /** More routes on the platform's HTTP server (registered before it listens). */
  routes?: (app: FastifyInstance) => Promise<void> | void;
  /** The merchant dashboard at `/` (packages/dashboard, docs/dashboard.md); `false` leaves `/` to `routes`. Default: served, no demo sign-in. */
  dashboard?: DashboardOptions | false;
  /**
   * The roles this process runs. Default: all. On Kafka each role can run in processes of its own
   * (`shopstream collector|pipeline|cubes`); the embedded log belongs to one process, which runs them all.
   * The HTTP server (health, metrics, and the collector and analytics routes of the roles that have them) always runs.
   */
  roles?: ReadonlyArray<Role>;
}

/**
 * `api` serves the read APIs without running a topology: recommendations and experiment reports
 * from the recs topics (tailed into memory), analytics from the cube store. On Kafka it scales out
 * apart from the roles that do the stream processing, so requests never wait behind their commits.
 */
export const ROLES = ['collector', 'pipeline', 'cubes', 'lake', 'capi', 'recs', 'api'] as const;
export type Role = (typeof ROLES)[number];

/** Opens the configured cube store: a DuckDB file in the data folder, or PostgreSQL. */
export async function openCubeStore(config: ShopstreamConfig, dataDir: string): Promise<CubeStore> {
  const c = config.cubes ?? {};
  if (c.store === 'postgres') {
    const url = c.postgresUrl ?? process.env['SHOPSTREAM_POSTGRES_URL'];
    if (url === undefined) throw new PlatformError(PlatformErrors.CONFIG, 'cubes.store is postgres: set cubes.postgresUrl (or SHOPSTREAM_POSTGRES_URL).');
    return new CubeStore(await PostgresDb.open(url, c.postgresSchema));
  }
  mkdirSync(dataDir, { recursive: true });
  return new CubeStore(await DuckDb.open(join(dataDir, 'cubes.duckdb')));
}

export interface Platform {
  readonly log: Log;
  readonly merchants: MerchantTable;
  readonly topics: TopicNames;
  /** The process's registry (where the roles register their metrics). */
  readonly registry: Registry;
  /** What /metrics serves and the status API reads: the registry, plus the pipeline threads' metrics. */
  readonly metrics: MetricsView;
  readonly collector: FastifyInstance;
  /** The pipeline role (events.raw + events.validations → events.filtered, events.bots, events.rejected): one application, or `pipeline.threads` stream threads. */
  readonly pipeline: StreamsApp | StreamThreads | undefined;
  /** The lake role (events.raw → Parquet files, docs/lake.md). */
  readonly lake: LakeSink | undefined;
  /** The cubes role (events.filtered + events.bots → the cube store), and its store. */
  readonly cubes: CubesWriter | undefined;
  readonly cubeStore: CubeStore | undefined;
  /** The capi role: the topology that prepares Meta server events (events.filtered → capi.outbox), and the forwarder that sends them. */
  readonly capi: { app: StreamsApp; forwarder: CapiForwarder } | undefined;
  /**
   * The recs role: the topology that keeps the models (events.filtered → recs.model, recs.visitors),
   * and the table the API answers from. The api role alone has the table and no topology.
   */
  readonly recs: { app: StreamsApp | undefined; table: RecsTable } | undefined;
  /** Base URL of the HTTP server, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  close(): Promise<void>;
}

function kafkaOptions(kafka: NonNullable<ShopstreamConfig['kafka']>): ConnectKafkaLogOptions {
  return { bootstrapServers: kafka.brokers, clientId: kafka.clientId ?? 'shopstream' };
}

/** What /metrics and the status API read: the platform's registry, with the pipeline threads' metrics added when it runs in threads. */
export type MetricsView = Pick<Registry, 'contentType' | 'metrics' | 'getMetricsAsJSON'>;

function withThreads(registry: Registry, threads: StreamThreads): MetricsView {
  // prom-client's cluster aggregator: counters and histograms are summed over the sources, and so
  // are the streams gauges (each task and partition is reported by the one thread that owns it).
  // The process's own metrics come from one source, so they pass through as they are, including
  // those prom-client leaves out of cluster sums (`aggregator: 'omit'`, e.g. process_start_time_seconds).
  const own = async () => (await registry.getMetricsAsJSON()).map((m) => (m.aggregator === 'omit' ? { ...m, aggregator: 'first' as const } : m));
  const merged = async () => AggregatorRegistry.aggregate([await own(), ...(await threads.metricsJSON())] as never);
  return {
    contentType: registry.contentType,
    metrics: async () => (await merged()).metrics(),
    getMetricsAsJSON: async () => (await merged()).getMetricsAsJSON(),
  };
}

export async function openLog(config: ShopstreamConfig, dataDir: string): Promise<Log> {
  if (config.kafka) {
    // Loaded only here: the Kafka client and its protocol schemas take ~0.4 s to load, which an
    // embedded platform (and every CLI command on it) would otherwise pay at start.
    const { connectKafkaLog } = await import('@shopstream/streams/kafka');
    return connectKafkaLog(kafkaOptions(config.kafka));
  }
  mkdirSync(dataDir, { recursive: true });
  return openEmbeddedLog({ dir: join(dataDir, 'log'), fsync: true, defaultPartitions: 1 });
}

export async function startPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const config = options.config ?? {};
  const logger = options.logger ?? pino({ level: process.env['LOG_LEVEL'] ?? 'info' });
  const dataDir = resolve(options.dataDir ?? config.dataDir ?? '.data');
  const ownLog = options.log === undefined;
  const log = options.log ?? (await openLog(config, dataDir));
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // A role whose topology stopped on an error it cannot recover from (a retriable log error is
  // retried, not this): /healthz fails, so that an orchestrator restarts the process, and the
  // status API says so.
  const roleFailed = new Gauge({ name: STATUS_METRICS.roleFailed, help: '1 when a role of this process stopped on an error it cannot recover from (see the logs); restart the process', labelNames: ['role'], registers: [registry] });
  const failedRoles = new Set<Role>();
  const fail = (role: Role, err: Error, what: string) => {
    logger.error({ err, role }, `${what}; /healthz now fails so that the process is restarted`);
    failedRoles.add(role);
    roleFailed.set({ role }, 1);
  };
  const failedPipelineThreads = new Set<number>();
  const topics = topicNames(config.topics?.prefix);
  const merchants = new MerchantTable(log, topics.merchants);
  let collector: FastifyInstance | undefined;
  const { threads: pipelineThreads = 1, commitIntervalMs: pipelineCommitIntervalMs, ...pipelineSettings } = config.pipeline ?? {};
  const pipelineOptions = { ...pipelineSettings, maxFutureMs: config.collector?.maxFutureMs, maxPastMs: config.collector?.maxPastMs };
  const roles = new Set<Role>(options.roles ?? ROLES);
  const instanceId = config.instanceId ?? process.env['SHOPSTREAM_INSTANCE_ID'];
  const pipelineConfig = {
    applicationId: `${config.topics?.prefix ?? ''}shopstream-pipeline`,
    stateDir: join(dataDir, 'state'),
    deadLetterTopic: topics.rejected,
    ...(instanceId !== undefined && { instanceId }),
    ...(pipelineCommitIntervalMs !== undefined && { commitIntervalMs: pipelineCommitIntervalMs }),
  };
  // One application in this thread, or `pipeline.threads` stream threads: each a member of the
  // pipeline's group (on the embedded log, this thread serves the log to them). A thread builds its
  // own topology, whose metrics it keeps; `metrics` below adds them up with the registry's.
  const pipeline = !roles.has('pipeline')
    ? undefined
    : pipelineThreads > 1
      ? new StreamThreads({
          module: new URL('./pipeline/threads.ts', import.meta.url),
          exportName: 'pipelineThreadTopology',
          args: [topics, pipelineOptions],
          threads: pipelineThreads,
          ...(config.kafka ? { kafka: kafkaOptions(config.kafka) } : { log }),
          config: pipelineConfig,
          onError: (err, thread) => {
            failedPipelineThreads.add(thread);
            if (failedPipelineThreads.size < pipelineThreads) logger.error({ err, thread }, 'a pipeline thread stopped; the other threads take over its tasks');
            else fail('pipeline', err, 'the last pipeline thread stopped');
          },
          logger,
        })
      : new StreamsApp(pipelineTopology(topics, { ...pipelineOptions, ...pipelineMetrics(registry) }), {
          ...pipelineConfig,
          log,
          logger,
          registry,
          onError: (err) => fail('pipeline', err, 'the pipeline stopped'),
        });
  const metrics: MetricsView = pipeline instanceof StreamThreads ? withThreads(registry, pipeline) : registry;
  let cubeStore: CubeStore | undefined;
  let cubes: CubesWriter | undefined;
  let lake: LakeSink | undefined;
  let capi: { app: StreamsApp; forwarder: CapiForwarder } | undefined;
  let recs: { app: StreamsApp | undefined; table: RecsTable } | undefined;
  let servedExperiments: Array<ServedExperiment & { windowMs: number | undefined }> = [];
  const lagWatches: Array<() => void> = [];
  try {
    await ensurePlatformTopics(log, config.topics);
    await merchants.start();
    if (pipeline instanceof StreamThreads) {
      // A task per input partition: threads beyond the partitions of events.raw get none.
      const partitions = (await log.admin.describeTopics([topics.raw])).get(topics.raw)?.partitions ?? 0;
      if (pipelineThreads > partitions) logger.warn({ threads: pipelineThreads, partitions }, `pipeline.threads is ${pipelineThreads} but ${topics.raw} has ${partitions} partitions (a task each): ${pipelineThreads - partitions} threads will stay idle`);
    }
    await pipeline?.start();
    await syncConfigMerchants(log, merchants, topics.merchants, config.merchants ?? []);
    if (roles.has('api') && !roles.has('cubes')) {
      if (config.cubes?.store === 'postgres') {
        cubeStore = await openCubeStore(config, dataDir);
        // Started before any cubes process: the tables exist (empty), so analytics answer "no data" rather than fail.
        await cubeStore.init();
      } else logger.warn('the api role serves analytics only from a shared cube store (cubes.store: postgres); the DuckDB file belongs to the cubes process, so this process serves no analytics');
    }
    if (roles.has('cubes')) {
      if (config.kafka && config.cubes?.store !== 'postgres') {
        logger.warn(
          'cubes on Kafka with the DuckDB store: run exactly one cubes instance (each DuckDB file holds only the partitions its instance owns); for several, set cubes.store: postgres',
        );
      }
      cubeStore = await openCubeStore(config, dataDir);
      const c = config.cubes ?? {};
      cubes = new CubesWriter({
        log,
        topics,
        store: cubeStore,
        consumer: `${config.topics?.prefix ?? ''}shopstream-cubes`,
        ...(instanceId !== undefined && { instanceId }),
        ...(c.commitIntervalMs !== undefined && { commitIntervalMs: c.commitIntervalMs }),
        retention: {
          ...DEFAULT_RETENTION,
          ...(c.minuteRetentionDays !== undefined && { minuteMs: c.minuteRetentionDays * 86_400_000 }),
          ...(c.quarterRetentionDays !== undefined && { quarterMs: c.quarterRetentionDays * 86_400_000 }),
        },
        logger,
        registry,
      });
      await cubes.start();
      const writer = cubes;
      lagWatches.push(watchLag({ log, registry, application: `${config.topics?.prefix ?? ''}shopstream-cubes`, positions: () => writer.lagPositions().filter((p) => p.topic === topics.filtered) }));
    }
    if (roles.has('lake') && config.lake?.enabled !== false) {
      const l = config.lake ?? {};
      lake = new LakeSink({
        log,
        storage: openLakeStorage(l, dataDir),
        groupId: `${config.topics?.prefix ?? ''}shopstream-lake`,
        topics: (l.topics ?? ['events.raw']).map((t) =>
          t === 'events.raw'
            ? { name: topics.raw, decode: rawDecoderWith({ maxFutureMs: config.collector?.maxFutureMs, maxPastMs: config.collector?.maxPastMs }) }
            : { name: t === 'events.filtered' ? topics.filtered : topics.rejected, decode: 'json' as const },
        ),
        root: 'lake',
        ...(instanceId !== undefined && { instanceId }),
        ...(l.flushSize !== undefined && { flushSize: l.flushSize }),
        ...(l.rotateIntervalMs !== undefined && { rotateIntervalMs: l.rotateIntervalMs }),
        ...(l.rotateScheduleIntervalMs !== undefined && { rotateScheduleIntervalMs: l.rotateScheduleIntervalMs }),
        logger,
        registry,
      });
      await lake.start();
      const sink = lake;
      lagWatches.push(watchLag({ log, registry, application: `${config.topics?.prefix ?? ''}shopstream-lake`, positions: () => sink.lagPositions() }));
    }
    if (roles.has('capi') && config.capi?.enabled !== false) {
      const c = config.capi ?? {};
      const capiEvents = new Counter({
        name: 'shopstream_capi_prepared_total',
        help: 'Events of merchants with Meta settings prepared by the capi topology, per merchant and outcome: outbox (to send), too_old (to capi.dlq), skipped (merchant without Meta)',
        labelNames: ['merchant', 'outcome'],
        registers: [registry],
      });
      const app = new StreamsApp(
        capiTopology(topics, { metaEnabled: (id) => merchants.byId(id)?.meta !== undefined, onEvent: (merchant, outcome) => capiEvents.inc({ merchant, outcome }) }),
        {
          applicationId: `${config.topics?.prefix ?? ''}shopstream-capi`,
          log,
          stateDir: join(dataDir, 'state'),
          logger,
          registry,
          ...(instanceId !== undefined && { instanceId }),
          onError: (err) => fail('capi', err, 'the capi topology stopped'),
        },
      );
      const forwarder = new CapiForwarder({
        log,
        topics,
        groupId: `${config.topics?.prefix ?? ''}shopstream-capi-forwarder`,
        merchants,
        ...(config.meta?.baseUrl !== undefined && { baseUrl: config.meta.baseUrl }),
        ...(config.meta?.apiVersion !== undefined && { apiVersion: config.meta.apiVersion }),
        ...(c.maxBatchSize !== undefined && { maxBatchSize: c.maxBatchSize }),
        ...(c.flushIntervalMs !== undefined && { flushIntervalMs: c.flushIntervalMs }),
        ...(c.maxInFlight !== undefined && { maxInFlight: c.maxInFlight }),
        ...(c.maxInFlightPerPixel !== undefined && { maxInFlightPerPixel: c.maxInFlightPerPixel }),
        ...(c.requestTimeoutMs !== undefined && { requestTimeoutMs: c.requestTimeoutMs }),
        ...(c.maxRetryMs !== undefined && { maxRetryMs: c.maxRetryMs }),
        ...(c.maxPendingPerPixel !== undefined && { maxPendingPerPixel: c.maxPendingPerPixel }),
        ...(c.commitIntervalMs !== undefined && { commitIntervalMs: c.commitIntervalMs }),
        ...(c.retryBaseMs !== undefined && { retryBaseMs: c.retryBaseMs }),
        ...(c.retryMaxMs !== undefined && { retryMaxMs: c.retryMaxMs }),
        breaker: {
          ...(c.breakerFailureThreshold !== undefined && { failureThreshold: c.breakerFailureThreshold }),
          ...(c.breakerOpenMs !== undefined && { openMs: c.breakerOpenMs }),
          ...(c.breakerMaxOpenMs !== undefined && { maxOpenMs: c.breakerMaxOpenMs }),
        },
        ...(instanceId !== undefined && { instanceId: `${instanceId}-capi` }),
        logger,
        registry,
      });
      capi = { app, forwarder };
      await app.start();
      await forwarder.start();
      lagWatches.push(watchLag({ log, registry, application: `${config.topics?.prefix ?? ''}shopstream-capi-forwarder`, positions: () => forwarder.lagPositions() }));
    }
    if ((roles.has('recs') || roles.has('api')) && config.recs?.enabled !== false) {
      servedExperiments = (config.recs?.experiments ?? []).map((c) => {
        const experiment = validateExperiment({ id: c.id, variants: c.variants.map((v) => ({ name: v.name, share: v.share })), ...(c.control !== undefined && { control: c.control }) });
        const currency = merchants.byId(c.merchant)?.currency ?? config.merchants?.find((m) => m.id === c.merchant)?.currency ?? 'USD';
        return { experiment, merchant: c.merchant, currency, windowMs: c.windowMs, shows: new Map(c.variants.map((v) => [v.name, v.recommendations ?? 'model'])) };
      });
      const running = servedExperiments.map((x, i) => {
        const startsAt = config.recs!.experiments![i]!.startsAt;
        return {
          experiment: x.experiment,
          merchant: x.merchant,
          attribution: attributionConfig({ currency: x.currency, ...(x.windowMs !== undefined && { windowMs: x.windowMs }) }),
          ...(startsAt !== undefined && { startsAt: Date.parse(startsAt) }),
        };
      });
      const app = !roles.has('recs') ? undefined : new StreamsApp(recsTopology(topics, { experiments: running }), {
        applicationId: `${config.topics?.prefix ?? ''}shopstream-recs`,
        log,
        stateDir: join(dataDir, 'state'),
        logger,
        registry,
        ...(instanceId !== undefined && { instanceId }),
        onError: (err) => fail('recs', err, 'the recs topology stopped'),
      });
      const table = new RecsTable({ log, modelTopic: topics.recsModel, visitorsTopic: topics.recsVisitors, experimentsTopic: topics.recsExperiments, logger });
      recs = { app, table };
      await app?.start();
      await table.start();
    }
    collector = await buildCollector({
      log,
      topics,
      merchants,
      beaconSecrets: beaconSecrets(config, dataDir, logger),
      logger,
      registry,
      metrics,
      defaultRateLimit: config.collector?.defaultRateLimit,
      cdnCountryHeader: config.collector?.cdnCountryHeader,
      trustProxy: config.collector?.trustProxy,
      writeTimeoutMs: config.collector?.writeTimeoutMs,
      maxFutureMs: config.collector?.maxFutureMs,
      maxPastMs: config.collector?.maxPastMs,
      ingest: roles.has('collector'),
      failedRoles: () => [...failedRoles],
    });
    const store = cubeStore;
    if (store !== undefined) {
      await collector.register(async (app) =>
        analyticsRoutes(app, { store, merchantById: (id) => merchants.byId(id), merchantByReadToken: (t) => merchants.byReadToken(t) }),
      );
    }
    await collector.register(async (app) => statusRoutes(app, { registry: metrics, merchantById: (id) => merchants.byId(id), merchantByReadToken: (t) => merchants.byReadToken(t) }));
    if (options.dashboard !== false) await collector.register(async (app) => dashboardRoutes(app, options.dashboard || {}));
    if (recs !== undefined) {
      const defaults = recsDefaults();
      const table = recs.table;
      const experiments = servedExperiments;
      await collector.register(async (app) => recommendationsRoutes(app, { table, merchants, co: { f: defaults.fbt.co, o: defaults.oyml.co }, experiments }));
    }
    if (options.routes) await collector.register(async (app) => options.routes!(app));
    await collector.listen({ host: options.host ?? config.collector?.host ?? '127.0.0.1', port: options.port ?? config.collector?.port ?? 8080 });
  } catch (err) {
    for (const stop of lagWatches) stop();
    await collector?.close().catch(() => {});
    await cubes?.close().catch(() => {});
    await cubeStore?.close().catch(() => {});
    await lake?.close().catch(() => {});
    await capi?.forwarder.close().catch(() => {});
    await capi?.app.close().catch(() => {});
    await recs?.table.close().catch(() => {});
    await recs?.app?.close().catch(() => {});
    await pipeline?.close().catch(() => {});
    await merchants.close().catch(() => {});
    if (ownLog) await log.close().catch(() => {});
    throw err;
  }
  const address = collector.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const app = collector;
  return {
    log,
    merchants,
    topics,
    registry,
    metrics,
    collector: app,
    pipeline,
    cubes,
    cubeStore,
    lake,
    capi,
    recs,
    url: `http://${host}:${address.port}`,
    async close() {
      for (const stop of lagWatches) stop();
      await app.close();
      await pipeline?.close();
      await cubes?.close();
      await cubeStore?.close();
      await lake?.close();
      await capi?.forwarder.close();
      await capi?.app.close();
      await recs?.table.close();
      await recs?.app?.close();
      await merchants.close();
      if (ownLog) await log.close();
    },
  };
}

/**
 * Makes the merchants topic agree with the config file: a merchant of the file is created, or its
 * settings are updated. Keys the file names are added (never revoked here: `merchants rotate-key`
 * does that); merchants absent from the file are left alone (they may come from the CLI).
 */
export async function syncConfigMerchants(log: Log, table: MerchantTable, topic: string, configured: readonly MerchantConfig[]): Promise<void> {
  const now = Date.now();
  for (const c of configured) {
    const existing = table.byId(c.id);
    const settings: Merchant = existing
      ? {
          ...existing,
          writeKeys: existing.revokedWriteKeys.includes(c.writeKey) || existing.writeKeys.includes(c.writeKey) ? existing.writeKeys : [...existing.writeKeys, c.writeKey],
          readTokens: existing.readTokens.includes(c.readToken) ? existing.readTokens : [...existing.readTokens, c.readToken],
          timezone: c.timezone ?? existing.timezone,
          currency: c.currency ?? existing.currency,
          ...(c.meta !== undefined && { meta: c.meta }),
          ...(c.rateLimit !== undefined && { rateLimit: c.rateLimit }),
        }
      : {
          id: c.id,
          writeKeys: [c.writeKey],
          revokedWriteKeys: [],
          readTokens: [c.readToken],
          timezone: c.timezone ?? 'UTC',
          currency: c.currency ?? 'USD',
          ...(c.meta !== undefined && { meta: c.meta }),
          ...(c.rateLimit !== undefined && { rateLimit: c.rateLimit }),
          createdAt: now,
          updatedAt: now,
        };
    const next = withConfiguredServerKeys(settings, c.serverWriteKeys);
    if (existing?.revokedWriteKeys.includes(c.writeKey)) {
      throw new PlatformError(
        PlatformErrors.CONFIG,
        `merchant ${c.id}: the config file's writeKey was rotated out with \`shopstream merchants rotate-key\`; put the current key in the file (see \`shopstream merchants list\`).`,
      );
    }
    if (existing && sameSettings(existing, next)) continue;
    await putMerchant(log, topic, { ...next, updatedAt: now }, table);
  }
}

function sameSettings(a: Merchant, b: Merchant): boolean {
  const strip = (m: Merchant) => JSON.stringify({ ...m, createdAt: 0, updatedAt: 0 });
  return strip(a) === strip(b);
}

/**
 * Beacon secrets: the config's, else SHOPSTREAM_BEACON_SECRET, else one generated once and kept in
 * the data folder. Several collector instances must share one: configure it for Kafka deployments.
 */
function beaconSecrets(config: ShopstreamConfig, dataDir: string, logger: Logger): Buffer[] {
  if (config.beacon) return config.beacon.secrets.map((s) => Buffer.from(s, 'utf8'));
  const env = process.env['SHOPSTREAM_BEACON_SECRET'];
  if (env && env.length >= 32) return [Buffer.from(env, 'utf8')];
  const file = join(dataDir, 'beacon.secret');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o600 });
    chmodSync(file, 0o600);
    if (config.kafka) {
      logger.warn({ file }, 'generated a beacon secret for this instance; several collector instances must share one: set beacon.secrets in the config file');
    }
  }
  return [Buffer.from(readFileSync(file, 'utf8').trim(), 'utf8')];
}
