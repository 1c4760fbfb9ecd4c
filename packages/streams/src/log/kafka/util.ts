/** Small helpers shared by the Kafka log's parts. */
import { kGetApi, kGetConnection, type API, type Base, type Connection } from '@platformatic/kafka';
import { ErrorCodes, StreamsError } from '../../errors.ts';

export interface KafkaLogOptions {
  /** `host:port` list (or comma-separated string) of bootstrap brokers. */
  bootstrapServers: string[] | string;
  clientId?: string;
  /** Transaction timeout of transactional producers. Default 10000 ms (Kafka Streams' EOS default). */
  transactionTimeoutMs?: number;
  /** Request timeout. Default 30000 ms. */
  requestTimeoutMs?: number;
  /** Connection timeout. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Retries of retriable client operations. Default 3. */
  retries?: number;
  /** Delay between retries. Default 250 ms. */
  retryDelayMs?: number;
  /** Max wait of one fetch on the broker. Default 500 ms (Kafka's fetch.max.wait.ms). */
  fetchMaxWaitMs?: number;
  /** Max bytes of one fetch response. Default 50 MiB (Kafka's fetch.max.bytes). */
  fetchMaxBytes?: number;
  /** Max bytes per partition in one fetch response. Default 8 MiB. */
  fetchMaxPartitionBytes?: number;
  /**
   * Called when the broker says a position is out of range and the reader moves it (retention
   * deleted the records, or the topic was truncated). Default: a process warning
   * (SHOP_WARN_OFFSET_RESET), so that skipped data is never silent.
   */
  onOffsetReset?: (event: OffsetResetEvent) => void;
}

export interface OffsetResetEvent {
  topic: string;
  partition: number;
  /** The position the broker refused. */
  from: number;
  to: number;
  logStart: number;
  logEnd: number;
}

function warnOffsetReset(e: OffsetResetEvent): void {
  process.emitWarning(
    `${e.topic}-${e.partition}: offset ${e.from} is out of range [${e.logStart}, ${e.logEnd}); moved to ${e.to}` +
      (e.from < e.logStart ? ` (${e.logStart - e.from} records were deleted by retention before they were read)` : ''),
    { code: 'SHOP_WARN_OFFSET_RESET' },
  );
}

export interface ResolvedOptions {
  bootstrapBrokers: string[];
  clientId: string;
  transactionTimeoutMs: number;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  retries: number;
  retryDelayMs: number;
  fetchMaxWaitMs: number;
  fetchMaxBytes: number;
  fetchMaxPartitionBytes: number;
  onOffsetReset: (event: OffsetResetEvent) => void;
}

export function resolveOptions(options: KafkaLogOptions): ResolvedOptions {
  const servers = typeof options.bootstrapServers === 'string' ? options.bootstrapServers.split(',') : options.bootstrapServers;
  const bootstrapBrokers = servers.map((s) => s.trim()).filter((s) => s.length > 0);
  return {
    bootstrapBrokers,
    clientId: options.clientId ?? 'shopstream',
    transactionTimeoutMs: options.transactionTimeoutMs ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    retries: options.retries ?? 3,
    retryDelayMs: options.retryDelayMs ?? 250,
    fetchMaxWaitMs: options.fetchMaxWaitMs ?? 500,
    fetchMaxBytes: options.fetchMaxBytes ?? 50 * 1024 * 1024,
    fetchMaxPartitionBytes: options.fetchMaxPartitionBytes ?? 8 * 1024 * 1024,
    onOffsetReset: options.onOffsetReset ?? warnOffsetReset,
  };
}

/** Options every platformatic client gets. */
export function baseClientOptions(o: ResolvedOptions, clientId: string) {
  return {
    clientId,
    bootstrapBrokers: o.bootstrapBrokers,
    timeout: o.requestTimeoutMs,
    connectTimeout: o.connectTimeoutMs,
    retries: o.retries,
    retryDelay: o.retryDelayMs,
    metadataMaxAge: 5_000,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A level-triggered wake-up: `wait(ms)` resolves on the next `notify()` or after `ms`.
 * Used by poll loops to sleep until a fetch completes or the group changes.
 */
export class Signal {
  private waiters: Array<() => void> = [];

  notify(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const f of w) f();
  }

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(finish, Math.max(0, ms));
      this.waiters.push(finish);
    });
  }
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function groupByTopic<T extends { topic: string }>(items: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    let list = out.get(item.topic);
    if (!list) out.set(item.topic, (list = []));
    list.push(item);
  }
  return out;
}

export function promisify<T>(fn: (cb: (err: unknown, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

/** The clients' parts used to send a request of our own: their metadata, connections and negotiated APIs. */
export type RequestClient = Pick<Base, 'metadata' | typeof kGetConnection | typeof kGetApi>;

/** A request API at the version the client negotiated, with its promise form. */
export type AsyncApi = API<never[], unknown> & { async: (...args: unknown[]) => Promise<unknown> };

/** A connection of `client` to broker `nodeId`. */
export async function connectionTo(client: RequestClient, nodeId: number): Promise<Connection> {
  const broker = (await client.metadata({ topics: [] })).brokers.get(nodeId);
  if (!broker) throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `broker ${nodeId} is unknown`);
  return promisify<Connection>((cb) => client[kGetConnection](broker, cb));
}

/** The API `name` (e.g. 'TxnOffsetCommit') at the highest version the client and the broker share. */
export function clientApi(client: RequestClient, name: string): Promise<AsyncApi> {
  return promisify<AsyncApi>((cb) => client[kGetApi](name, cb as never));
}
