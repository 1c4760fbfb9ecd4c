/**
 * Stream threads: one instance running N copies of an application in worker threads, to use more
 * than one core (Kafka Streams' num.stream.threads). Each thread is its own member of the
 * application's consumer group, with its own Kafka connections, transactional producer
 * (`${instanceId}-t${i}`) and state directory, so the group spreads tasks over threads exactly as
 * over instances, with the same exactly-once commit. Topologies hold functions, which cannot cross
 * threads: each thread builds its own from a module that exports a function returning it.
 *
 * On Kafka each thread connects on its own (`kafka`). The embedded log belongs to the thread that
 * opened it: that thread serves it to the others (`log`, src/log/remote/), and keeps the log's
 * work (reads, appends, fsyncs) while the threads run the tasks.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { defaultStateDir } from './app.ts';
import type { Logger, StreamsConfig } from './app.ts';
import type { ConnectKafkaLogOptions } from '../log/kafka/index.ts';
import type { Log } from '../log/types.ts';
import { serveLog, type LogServer } from '../log/remote/server.ts';
import { StreamsError, ErrorCodes } from '../errors.ts';

export type ThreadConfig = Omit<StreamsConfig, 'log' | 'registry' | 'logger' | 'onError'>;

/** How long `metrics()`, `metricsJSON()` and `threadTasks()` wait for a thread's answer. */
const ASK_TIMEOUT_MS = 5_000;

/**
 * What a thread passes to the topology function, after `args`: the thread's Prometheus registry,
 * where the application's metrics go and where the topology may register its own (they come back
 * with the threads' metrics, summed), and the thread's index.
 */
export interface ThreadContext {
  registry: Registry;
  thread: number;
}

export interface StreamThreadsOptions {
  /** URL or absolute path of a module exporting `exportName`: `(...args, context: ThreadContext) => Topology`. */
  module: string | URL;
  exportName?: string;
  /** Arguments for the topology function (structured-cloneable: topic names, settings). */
  args?: unknown[];
  threads: number;
  /** Each thread connects to Kafka with these options. Give this or `log`. */
  kafka?: ConnectKafkaLogOptions;
  /** A log this thread owns (the embedded log), served to the threads; it stays open after `close()`. */
  log?: Log;
  config: ThreadConfig;
  /** Called once when a thread stops on an error (the other threads go on; their group takes its tasks). */
  onError?: (err: Error, thread: number) => void;
  /** Where the threads' applications log (pino-compatible), each entry with `thread: i`. Default: nowhere. */
  logger?: Logger;
}

/** What a thread sends back. */
export type ThreadMessage =
  | { type: 'ready' }
  | { type: 'started' }
  | { type: 'closed' }
  | { type: 'error'; message: string; code?: string }
  | { type: 'metrics'; id: number; metrics: unknown[]; tasks: string[] }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; obj: object; msg: string | undefined };

export class StreamThreads {
  private readonly options: StreamThreadsOptions;
  private readonly workers: Worker[] = [];
  /** Threads that have ended (closed, or died: a crash leaves its tasks to the others). */
  private readonly exited = new Set<Worker>();
  private readonly servers: LogServer[] = [];
  private nextId = 0;
  private readonly pending = new Map<number, { worker: Worker; resolve: (m: { metrics: unknown[]; tasks: string[] }) => void }>();
  private closing = false;
  /** Threads whose failure was reported (onError is called once per thread). */
  private readonly reported = new Set<number>();

  constructor(options: StreamThreadsOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `threads must be a positive integer, got ${options.threads}`);
    }
    if ((options.kafka === undefined) === (options.log === undefined)) {
      throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'stream threads need either `kafka` (each thread connects) or `log` (served to the threads), not both');
    }
    this.options = options;
  }

  /** Starts every thread; resolves when all have joined the group. */
  async start(): Promise<void> {
    const { config, threads } = this.options;
    const base = config.instanceId ?? `instance-${process.pid}`;
    const started: Promise<void>[] = [];
    // The threads join the group together, once each has loaded its topology and connected (or
    // failed): one rebalance for all, instead of one per thread as each comes.
    const waiting = new Set<Worker>();
    let settled = 0;
    const arrived = () => {
      if (++settled < threads) return;
      for (const w of waiting) w.postMessage({ type: 'join' });
      waiting.clear();
    };
    for (let i = 0; i < threads; i++) {
      const threadConfig: ThreadConfig = {
        ...config,
        instanceId: `${base}-t${i}`,
        stateDir: join(config.stateDir ?? defaultStateDir(), `t${i}`),
      };
      const data = { module: String(this.options.module), exportName: this.options.exportName ?? 'topology', args: this.options.args ?? [], config: threadConfig, thread: i, log: this.options.logger !== undefined };
      let worker: Worker;
      if (this.options.log !== undefined) {
        const { port1, port2 } = new MessageChannel();
        this.servers.push(serveLog(this.options.log, port1));
        worker = new Worker(new URL('./thread-worker.ts', import.meta.url), { workerData: { ...data, port: port2 }, transferList: [port2] });
      } else {
        worker = new Worker(new URL('./thread-worker.ts', import.meta.url), { workerData: { ...data, kafka: this.options.kafka } });
      }
      this.workers.push(worker);
      started.push(
        new Promise<void>((resolve, reject) => {
          let arrivedHere = false;
          const arrive = () => {
            if (arrivedHere) return;
            arrivedHere = true;
            arrived();
          };
          worker.on('message', (m: ThreadMessage) => {
            if (m.type === 'ready') {
              waiting.add(worker);
              arrive();
            } else if (m.type === 'started') resolve();
            else if (m.type === 'error') {
              arrive();
              const err = new StreamsError(ErrorCodes.PROCESSING, `stream thread ${i}: ${m.message}`, { details: { code: m.code } });
              reject(err);
              this.report(err, i);
            } else if (m.type === 'log') {
              this.options.logger?.[m.level]({ ...m.obj, thread: i }, m.msg);
            } else if (m.type === 'metrics') {
              this.pending.get(m.id)?.resolve(m);
              this.pending.delete(m.id);
            }
          });
          worker.on('error', (err) => {
            arrive();
            reject(err);
            this.report(err, i);
          });
          worker.once('exit', (code) => {
            this.exited.add(worker);
            waiting.delete(worker);
            arrive();
            for (const [id, p] of this.pending) {
              if (p.worker !== worker) continue;
              p.resolve({ metrics: [], tasks: [] });
              this.pending.delete(id);
            }
            if (!this.closing) {
              const err = new StreamsError(ErrorCodes.PROCESSING, `stream thread ${i} ended (exit code ${code}); the other threads take over its tasks`);
              reject(err);
              this.report(err, i);
            } else resolve(); // closed before it started: start() has nothing more to wait for
          });
        }),
      );
    }
    await Promise.all(started);
  }

  private report(err: Error, thread: number): void {
    if (this.reported.has(thread)) return;
    this.reported.add(thread);
    this.options.onError?.(err, thread);
  }

  /** Asks every thread for its metrics and tasks; a thread that has ended, or does not answer within ASK_TIMEOUT_MS, answers nothing. */
  private ask(): Promise<Array<{ metrics: unknown[]; tasks: string[] }>> {
    return Promise.all(
      this.workers.map(
        (w) =>
          new Promise<{ metrics: unknown[]; tasks: string[] }>((resolve) => {
            if (this.exited.has(w)) {
              resolve({ metrics: [], tasks: [] });
              return;
            }
            const id = this.nextId++;
            // A thread busy for longer than the timeout (stuck in user code) answers nothing rather
            // than holding every scrape of the process's metrics.
            const timer = setTimeout(() => {
              this.pending.delete(id);
              resolve({ metrics: [], tasks: [] });
            }, ASK_TIMEOUT_MS);
            timer.unref();
            this.pending.set(id, {
              worker: w,
              resolve: (m) => {
                clearTimeout(timer);
                resolve(m);
              },
            });
            w.postMessage({ type: 'metrics', id });
          }),
      ),
    );
  }

  /** Prometheus text of all threads' metrics, added up (prom-client's aggregator, as for a cluster). */
  async metrics(): Promise<string> {
    return AggregatorRegistry.aggregate((await this.metricsJSON()) as never).metrics();
  }

  /**
   * Each running thread's metrics (prom-client's `getMetricsAsJSON()`), to add up with others, e.g.
   * with the process's own registry: `AggregatorRegistry.aggregate([await own.getMetricsAsJSON(), ...these])`.
   */
  async metricsJSON(): Promise<unknown[][]> {
    return (await this.ask()).filter((a) => a.metrics.length > 0).map((a) => a.metrics);
  }

  /** The tasks each thread runs now ([] for a thread that has ended). */
  async threadTasks(): Promise<string[][]> {
    return (await this.ask()).map((a) => a.tasks);
  }

  /** Commits and closes every thread. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (this.exited.has(w)) {
              resolve();
              return;
            }
            w.once('exit', () => resolve());
            w.postMessage({ type: 'close' });
          }),
      ),
    );
    await Promise.all(this.servers.map((s) => s.close()));
  }
}
