/**
 * The configuration file of `shopstream start --config FILE` (JSON or YAML). Every field is
 * optional; see docs/configuration.md. Flags (`--data-dir`, `--port`) and environment variables
 * override the file.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { Type, type Static } from 'typebox';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { PlatformError, PlatformErrors } from './errors.ts';

const RateLimitSchema = Type.Object(
  { eventsPerSecond: Type.Number({ exclusiveMinimum: 0 }), burst: Type.Number({ exclusiveMinimum: 0 }) },
  { additionalProperties: false },
);

const MerchantConfigSchema = Type.Object(
  {
    id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' }),
    writeKey: Type.String({ minLength: 8 }),
    /** Secret keys for the merchant's backends (server-side sources); see docs/api.md. */
    serverWriteKeys: Type.Optional(Type.Array(Type.String({ minLength: 8 }))),
    readToken: Type.String({ minLength: 8 }),
    timezone: Type.Optional(Type.String()),
    currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$' })),
    meta: Type.Optional(
      Type.Object(
        { pixelId: Type.String({ minLength: 1 }), accessToken: Type.String({ minLength: 1 }), testEventCode: Type.Optional(Type.String()) },
        { additionalProperties: false },
      ),
    ),
    rateLimit: Type.Optional(RateLimitSchema),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    merchants: Type.Optional(Type.Array(MerchantConfigSchema)),
    kafka: Type.Optional(
      Type.Object(
        {
          brokers: Type.Array(Type.String({ minLength: 3 }), { minItems: 1 }),
          clientId: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    dataDir: Type.Optional(Type.String()),
    /**
     * A stable id of this instance (Kafka static membership): a restarted instance takes its
     * partitions back at once instead of after the session timeout. Unique per instance.
     */
    instanceId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,100}$' })),
    topics: Type.Optional(
      Type.Object(
        {
          prefix: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]*$', maxLength: 100 })),
          partitions: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
          retentionMs: Type.Optional(Type.Integer({ minimum: 60_000 })),
          rejectedRetentionMs: Type.Optional(Type.Integer({ minimum: 60_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    collector: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String()),
          port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
          defaultRateLimit: Type.Optional(RateLimitSchema),
          cdnCountryHeader: Type.Optional(Type.String()),
          trustProxy: Type.Optional(Type.Union([Type.Boolean(), Type.String(), Type.Array(Type.String())])),
          writeTimeoutMs: Type.Optional(Type.Integer({ minimum: 100 })),
          maxFutureMs: Type.Optional(Type.Integer({ minimum: 0 })),
          maxPastMs: Type.Optional(Type.Integer({ minimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    pipeline: Type.Optional(
      Type.Object(
        {
          dedupeWindowMs: Type.Optional(Type.Integer({ minimum: 1000 })),
          orderDedupeWindowMs: Type.Optional(Type.Integer({ minimum: 1000 })),
          sessionTimeoutMs: Type.Optional(Type.Integer({ minimum: 1000 })),
          graceMs: Type.Optional(Type.Integer({ minimum: 0 })),
          /** Stream threads running the pipeline in this process (Kafka Streams' num.stream.threads). Default 1. */
          threads: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
          /** How often the pipeline commits its transaction (Kafka Streams' commit.interval.ms). Default 100. */
          commitIntervalMs: Type.Optional(Type.Integer({ minimum: 10 })),
        },
        { additionalProperties: false },
      ),
    ),
    cubes: Type.Optional(
      Type.Object(
        {
          /** Where the cubes live: a DuckDB file in the data folder (default), or PostgreSQL for several instances. */
          store: Type.Optional(Type.Union([Type.Literal('duckdb'), Type.Literal('postgres')])),
          /** PostgreSQL connection string, e.g. postgres://user:password@host:5432/db (store: postgres). */
          postgresUrl: Type.Optional(Type.String({ minLength: 1 })),
          /** PostgreSQL schema for the cube tables. Default: public. */
          postgresSchema: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_]*$' })),
          commitIntervalMs: Type.Optional(Type.Integer({ minimum: 10 })),
          /** Days of minute buckets kept. Default 14. */
          minuteRetentionDays: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
          /** Days of quarter-hour buckets kept (hour and day queries, products, funnel). Default 400. */
          quarterRetentionDays: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
        },
        { additionalProperties: false },
      ),
    ),
    lake: Type.Optional(
      Type.Object(
        {
          /** Run the lake sink in `start` (default true). */
          enabled: Type.Optional(Type.Boolean()),
          /** The folder that holds the lake (`<dir>/lake/<topic>/merchant=…/…`), on the local file system. Default: dataDir. */
          dir: Type.Optional(Type.String({ minLength: 1 })),
          /** Records per file and input partition before a cut (flush.size). Default 10,000. */
          flushSize: Type.Optional(Type.Integer({ minimum: 1 })),
          /** Event-time span of a file (rotate.interval.ms). Default 1 hour. */
          rotateIntervalMs: Type.Optional(Type.Integer({ minimum: 1000 })),
          /** Wall-clock age after which open files are cut, so quiet data becomes visible. Default 10 minutes. */
          rotateScheduleIntervalMs: Type.Optional(Type.Integer({ minimum: 0 })),
          /** The topics archived (without the prefix). Default [events.raw]; add events.filtered for `shopstream recs bootstrap`. */
          topics: Type.Optional(
            Type.Array(Type.Union([Type.Literal('events.raw'), Type.Literal('events.filtered'), Type.Literal('events.rejected')]), { minItems: 1, uniqueItems: true }),
          ),
          /** Where the files go: the local folder `dir` (default), or S3 (credentials from the AWS SDK's default chain). docs/lake.md */
          storage: Type.Optional(
            Type.Union([
              Type.Object({ kind: Type.Literal('local') }, { additionalProperties: false }),
              Type.Object(
                {
                  kind: Type.Literal('s3'),
                  bucket: Type.String({ minLength: 1 }),
                  /** Key prefix of the storage root: the lake is under `<prefix>lake/<topic>/…`. */
                  prefix: Type.Optional(Type.String({ pattern: '^[^/]' })),
                  /** An S3-compatible endpoint (MinIO, Ceph, R2, …), e.g. http://127.0.0.1:9000. Default: AWS's. */
                  endpoint: Type.Optional(Type.String({ pattern: '^https?://' })),
                  region: Type.Optional(Type.String({ minLength: 1 })),
                  /** Path-style URLs, which most S3-compatible servers need. */
                  forcePathStyle: Type.Optional(Type.Boolean()),
                },
                { additionalProperties: false },
              ),
            ]),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    /** Meta's Graph API: where the capi role sends (tests and the demo point it at a local stand-in). */
    meta: Type.Optional(
      Type.Object(
        {
          /** Default https://graph.facebook.com. */
          baseUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
          /** Graph API version, e.g. v21.0. */
          apiVersion: Type.Optional(Type.String({ pattern: '^v[0-9]+\\.[0-9]+$' })),
        },
        { additionalProperties: false },
      ),
    ),
    /** The Meta Conversions API forwarder (docs/meta-capi.md). */
    capi: Type.Optional(
      Type.Object(
        {
          /** Run the capi role in `start` (default true; it only sends for merchants with meta settings). */
          enabled: Type.Optional(Type.Boolean()),
          /** Events per request, at most Meta's 1,000. */
          maxBatchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          /** Longest an event waits for its batch to fill. Default 1,000 ms. */
          flushIntervalMs: Type.Optional(Type.Integer({ minimum: 0 })),
          /** Requests in flight, in all. Default 32. */
          maxInFlight: Type.Optional(Type.Integer({ minimum: 1 })),
          /** Requests in flight per pixel. Default 8. */
          maxInFlightPerPixel: Type.Optional(Type.Integer({ minimum: 1 })),
          /** Default 10,000 ms. */
          requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 100 })),
          /** How long an event is retried before it goes to capi.dlq (retries_exhausted). Default 1 hour. */
          maxRetryMs: Type.Optional(Type.Integer({ minimum: 0 })),
          /** Events waiting per pixel; beyond, new ones go to capi.dlq (backlog_full). Default 20,000. */
          maxPendingPerPixel: Type.Optional(Type.Integer({ minimum: 1 })),
          commitIntervalMs: Type.Optional(Type.Integer({ minimum: 10 })),
          /** Backoff after a failed request: a random delay below retryBaseMs·2^failures, capped at retryMaxMs. Defaults 250 and 30,000. */
          retryBaseMs: Type.Optional(Type.Integer({ minimum: 1 })),
          retryMaxMs: Type.Optional(Type.Integer({ minimum: 1 })),
          /** A pixel's circuit breaker opens after this many failed requests in a row (default 5), for breakerOpenMs (5,000), doubling to breakerMaxOpenMs (60,000). */
          breakerFailureThreshold: Type.Optional(Type.Integer({ minimum: 1 })),
          breakerOpenMs: Type.Optional(Type.Integer({ minimum: 1 })),
          breakerMaxOpenMs: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Recommendations (docs/recommendations.md). */
    recs: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          /** A/B experiments on the recommendation widgets (docs/experiments.md). */
          experiments: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' }),
                  merchant: Type.String({ minLength: 1 }),
                  variants: Type.Array(
                    Type.Object(
                      {
                        name: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }),
                        share: Type.Number({ exclusiveMinimum: 0, maximum: 1 }),
                        /** What the variant shows: the model asked for (default), or popular products only. */
                        recommendations: Type.Optional(Type.Union([Type.Literal('model'), Type.Literal('popular')])),
                      },
                      { additionalProperties: false },
                    ),
                    { minItems: 2 },
                  ),
                  control: Type.Optional(Type.String()),
                  /** When the experiment starts (ISO-8601): events with an earlier event time do not count. Default: always. */
                  startsAt: Type.Optional(Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2})$' })),
                  /** An ordered item counts for the recommendations when it was shown this long before. Default 1 hour. */
                  windowMs: Type.Optional(Type.Integer({ minimum: 1000 })),
                },
                { additionalProperties: false },
              ),
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    beacon: Type.Optional(
      Type.Object(
        {
          /** HMAC secrets, current first (at least 32 characters each). */
          secrets: Type.Array(Type.String({ minLength: 32 }), { minItems: 1 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type ShopstreamConfig = Static<typeof ConfigSchema>;
export type MerchantConfig = Static<typeof MerchantConfigSchema>;

const validate = new Ajv({ allErrors: true, strict: false }).compile<ShopstreamConfig>(ConfigSchema);

/** Validates a parsed config object; throws SHOP_ERR_CONFIG listing every problem with its path. */
export function parseConfig(value: unknown, source = 'config'): ShopstreamConfig {
  if (!validate(value)) {
    const problems = (validate.errors ?? []).map((e) => {
      const where = e.instancePath === '' ? '(top level)' : e.instancePath;
      const extra = e.keyword === 'additionalProperties' ? ` "${String((e.params as { additionalProperty?: string }).additionalProperty)}"` : '';
      return `${where}: ${e.message ?? 'invalid'}${extra}`;
    });
    throw new PlatformError(PlatformErrors.CONFIG, `${source} is not a valid Shopstream configuration:\n  ${problems.join('\n  ')}`);
  }
  const ids = new Set<string>();
  for (const m of value.merchants ?? []) {
    if (ids.has(m.id)) throw new PlatformError(PlatformErrors.CONFIG, `${source}: merchant id ${m.id} appears twice.`);
    ids.add(m.id);
    if (m.serverWriteKeys?.includes(m.writeKey)) {
      throw new PlatformError(PlatformErrors.CONFIG, `${source}: merchant ${m.id}: the writeKey is public (it is in pages); a server write key must be another, secret key.`);
    }
    if (m.timezone !== undefined) {
      try {
        new Intl.DateTimeFormat('en', { timeZone: m.timezone });
      } catch {
        throw new PlatformError(PlatformErrors.CONFIG, `${source}: merchant ${m.id}: timezone ${JSON.stringify(m.timezone)} is not an IANA time zone (for example Europe/Paris).`);
      }
    }
  }
  return value;
}

/** Reads a JSON or YAML config file (by extension; `.json` is JSON, anything else YAML, which is a superset). */
export function loadConfigFile(path: string): ShopstreamConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PlatformError(PlatformErrors.CONFIG, `Cannot read the config file ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new PlatformError(PlatformErrors.CONFIG, `The config file ${path} does not parse: ${(err as Error).message}`);
  }
  return parseConfig(value ?? {}, path);
}
