/**
 * The `shopstream` command.
 *
 *   shopstream start [--config FILE] [--data-dir DIR] [--port N]       every role in one process
 *   shopstream collector|pipeline|cubes|lake|capi|recs|api [--config FILE] [--port N]    one role per process (on Kafka)
 *   shopstream merchants add --id ID [--server-key] [--timezone TZ] [--currency CUR] [--pixel-id P --access-token T [--test-event-code C]]
 *   shopstream merchants list [--show-secrets]
 *   shopstream merchants rotate-key --id ID [--server-key]
 *
 * Every command takes --config and --data-dir, so it finds the same log as `start`.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { isStreamsError, ErrorCodes, type Log } from '@shopstream/streams';
import { loadConfigFile, parseConfig, type ShopstreamConfig } from '../config.ts';
import { isPlatformError, PlatformError, PlatformErrors } from '../errors.ts';
import type { Merchant } from '../merchants/model.ts';
import { MerchantTable, newReadToken, newServerWriteKey, newWriteKey, putMerchant } from '../merchants/table.ts';
import { ROLES, openLog, startPlatform, type Role } from '../platform.ts';
import { ensurePlatformTopics, topicNames } from '../topics.ts';
import { simulateCommand } from '../simulate/cli.ts';
import { RECS_USAGE, isRecsCommand, recsCommand } from '../recs/cli.ts';
import { formatResult, queryLake, type QueryFormat } from '../lake/query.ts';
import { closeLakeStorage, openLakeStorage } from '../lake/open.ts';
import { LAKE_USAGE, isLakeCommand, lakeCommand } from '../lake/cli.ts';

const USAGE = `Usage:
  shopstream start [--config FILE] [--data-dir DIR] [--port N]       every role in one process
  shopstream collector|pipeline|cubes|lake|capi|recs|api [--config FILE] [--port N]    one role per process (on Kafka; each serves /healthz, /metrics)
                   api: the read APIs only (recommendations, experiments; analytics with cubes.store: postgres), no topology
  shopstream merchants add --id ID [--server-key] [--timezone TZ] [--currency CUR] [--pixel-id ID --access-token TOKEN [--test-event-code CODE]]
  shopstream query "SELECT …" [--format table|csv|json]   SQL over the lake: views events, filtered, rejected (docs/lake.md)
${LAKE_USAGE}
${RECS_USAGE}
  shopstream merchants list [--show-secrets]
  shopstream merchants rotate-key --id ID [--server-key]
  shopstream simulate --url URL --write-key KEY [--seed N --visitors N --hours N --rate N --truth FILE]  (see shopstream simulate --help)

Common options:
  --config FILE    JSON or YAML configuration (merchants, kafka.brokers, ...); without kafka.brokers the embedded log is used
  --data-dir DIR   where the embedded log and local state live (default .data)
  --server-key     merchants add: also create a server write key (secret, for backends; no beacon needed)
                   merchants rotate-key: replace the server write keys instead of the write keys
                   (on a merchant without one, creates its first)
`;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const defaultIo: CliIo = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') };

/** Runs one command; resolves with the exit code. `start` resolves only when the platform stops. */
export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  // `simulate` has its own options (it talks to a running platform over HTTP).
  if (argv[0] === 'simulate') return simulateCommand(argv.slice(1), io);
  try {
    return await run(argv, io);
  } catch (err) {
    if (isPlatformError(err)) {
      io.err(`error ${err.code}: ${err.message}`);
      return 1;
    }
    if (isStreamsError(err, ErrorCodes.LOG_LOCKED)) {
      io.err(
        `error ${err.code}: ${err.message}\nAnother process (the pid above, usually a running \`shopstream start\`) uses this data folder. Stop it first, or give each instance its own --data-dir; on the embedded log, merchants can only be managed while the platform is stopped (on Kafka, at any time).`,
      );
      return 1;
    }
    if (isStreamsError(err)) {
      io.err(`error ${err.code}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

async function run(argv: string[], io: CliIo): Promise<number> {
  if (isLakeCommand(argv)) return lakeCommand(argv, io);
  if (isRecsCommand(argv)) return recsCommand(argv, io);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      id: { type: 'string' },
      timezone: { type: 'string' },
      currency: { type: 'string' },
      'pixel-id': { type: 'string' },
      'access-token': { type: 'string' },
      'test-event-code': { type: 'string' },
      'show-secrets': { type: 'boolean' },
      'server-key': { type: 'boolean' },
      format: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    io.out(USAGE);
    return values.help ? 0 : 2;
  }
  const config: ShopstreamConfig = values.config ? loadConfigFile(values.config) : parseConfig({});
  const dataDir = resolve(values['data-dir'] ?? config.dataDir ?? '.data');
  const [command, sub] = positionals;

  if (command === 'start' || (ROLES as readonly string[]).includes(command!)) {
    const roles: Role[] = command === 'start' ? [...ROLES] : [command as Role];
    const port = values.port === undefined ? undefined : Number(values.port);
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) {
      throw new PlatformError(PlatformErrors.CONFIG, `--port ${values.port} is not a port number.`);
    }
    const platform = await startPlatform({ config, dataDir, port, host: values.host, roles });
    io.out(
      `Shopstream is running (${platform.log.kind} log; ${roles.join(', ')}).` +
        (roles.includes('collector') ? ` Collector: ${platform.url}/v1/batch ·` : '') +
        (roles.includes('cubes') || (roles.includes('api') && platform.cubeStore !== undefined) ? ` analytics: ${platform.url}/v1/merchants/{id}/metrics ·` : '') +
        (platform.recs !== undefined ? ` recommendations: ${platform.url}/v1/merchants/{id}/recommendations ·` : '') +
        ` metrics: ${platform.url}/metrics`,
    );
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        platform.close().then(done, done);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  }

  if (command === 'query') {
    const sql = positionals.slice(1).join(' ');
    if (sql.trim() === '') throw new PlatformError(PlatformErrors.CONFIG, 'Give the SQL: shopstream query "SELECT merchant, dt, count(*) FROM events GROUP BY ALL"');
    const format = (values.format ?? 'table') as QueryFormat;
    if (!['table', 'csv', 'json'].includes(format)) throw new PlatformError(PlatformErrors.CONFIG, `--format ${values.format}: one of table, csv, json.`);
    const storage = openLakeStorage(config.lake, dataDir);
    const result = await queryLake({ storage, prefix: config.topics?.prefix, sql }).finally(() => closeLakeStorage(storage));
    io.out(formatResult(result, format));
    return 0;
  }

  if (command === 'merchants') {
    const log = await openLog(config, dataDir);
    try {
      await ensurePlatformTopics(log, config.topics);
      const topic = topicNames(config.topics?.prefix).merchants;
      const table = new MerchantTable(log, topic);
      await table.start();
      try {
        return await merchantsCommand(sub, values, log, topic, table, io);
      } finally {
        await table.close();
      }
    } finally {
      await log.close();
    }
  }
  io.err(`Unknown command ${JSON.stringify(command)}.\n${USAGE}`);
  return 2;
}

type Values = Record<string, string | boolean | undefined>;

async function merchantsCommand(sub: string | undefined, values: Values, log: Log, topic: string, table: MerchantTable, io: CliIo): Promise<number> {
  const id = typeof values['id'] === 'string' ? values['id'] : undefined;
  if (sub === 'list') {
    const show = values['show-secrets'] === true;
    if (table.size === 0) io.out('No merchants yet. Add one with: shopstream merchants add --id ID');
    for (const m of table.list()) {
      io.out(
        JSON.stringify({
          id: m.id,
          timezone: m.timezone,
          currency: m.currency,
          writeKeys: m.writeKeys,
          serverWriteKeys: show ? (m.serverWriteKeys ?? []) : (m.serverWriteKeys ?? []).map(mask),
          revokedWriteKeys: m.revokedWriteKeys.length,
          readTokens: show ? m.readTokens : m.readTokens.map(mask),
          ...(m.meta && { meta: { pixelId: m.meta.pixelId, accessToken: show ? m.meta.accessToken : mask(m.meta.accessToken), testEventCode: m.meta.testEventCode } }),
          ...(m.rateLimit && { rateLimit: m.rateLimit }),
        }),
      );
    }
    return 0;
  }
  if (id === undefined) throw new PlatformError(PlatformErrors.CONFIG, `merchants ${sub ?? ''} needs --id ID.`);
  const serverKey = values['server-key'] === true;
  if (sub === 'add') {
    if (table.byId(id)) throw new PlatformError(PlatformErrors.MERCHANT_EXISTS, `Merchant ${id} exists already; see \`shopstream merchants list\`.`);
    const now = Date.now();
    const pixelId = values['pixel-id'];
    const accessToken = values['access-token'];
    if ((pixelId === undefined) !== (accessToken === undefined)) {
      throw new PlatformError(PlatformErrors.CONFIG, 'Meta settings need both --pixel-id and --access-token.');
    }
    const m: Merchant = {
      id,
      writeKeys: [newWriteKey()],
      serverWriteKeys: serverKey ? [newServerWriteKey()] : [],
      revokedWriteKeys: [],
      readTokens: [newReadToken()],
      timezone: typeof values['timezone'] === 'string' ? values['timezone'] : 'UTC',
      currency: typeof values['currency'] === 'string' ? values['currency'].toUpperCase() : 'USD',
      ...(typeof pixelId === 'string' &&
        typeof accessToken === 'string' && {
          meta: { pixelId, accessToken, ...(typeof values['test-event-code'] === 'string' && { testEventCode: values['test-event-code'] }) },
        }),
      createdAt: now,
      updatedAt: now,
    };
    await putMerchant(log, topic, m, table);
    io.out(`Added merchant ${id}.\n  write key:  ${m.writeKeys[0]}\n  read token: ${m.readTokens[0]}`);
    if (serverKey) io.out(`  server key: ${m.serverWriteKeys![0]}  (secret: for backends only, never in a page)`);
    return 0;
  }
  if (sub === 'rotate-key') {
    const m = table.byId(id);
    if (!m) throw new PlatformError(PlatformErrors.MERCHANT_UNKNOWN, `No merchant ${id}; see \`shopstream merchants list\`.`);
    if (serverKey) {
      const old = m.serverWriteKeys ?? [];
      const key = newServerWriteKey();
      await putMerchant(log, topic, { ...m, serverWriteKeys: [key], revokedWriteKeys: [...m.revokedWriteKeys, ...old], updatedAt: Date.now() }, table);
      const refused = old.length === 0 ? 'It had none before.' : `The old server key${old.length > 1 ? 's are' : ' is'} refused from now on.`;
      io.out(`Rotated the server key of ${id}. ${refused}\n  server key: ${key}  (secret: for backends only, never in a page)`);
      return 0;
    }
    const key = newWriteKey();
    await putMerchant(log, topic, { ...m, writeKeys: [key], revokedWriteKeys: [...m.revokedWriteKeys, ...m.writeKeys], updatedAt: Date.now() }, table);
    io.out(`Rotated the write key of ${id}. The old key${m.writeKeys.length > 1 ? 's are' : ' is'} refused from now on.\n  write key: ${key}`);
    return 0;
  }
  throw new PlatformError(PlatformErrors.CONFIG, `Unknown merchants command ${JSON.stringify(sub)}; use add, list or rotate-key.`);
}

function mask(secret: string): string {
  return secret.length <= 8 ? '****' : `${secret.slice(0, 4)}…${secret.slice(-2)}`;
}
