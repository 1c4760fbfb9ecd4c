/** One stream thread (see threads.ts): builds the topology, runs a StreamsApp on Kafka or on the served log, answers the parent. */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import { Registry } from 'prom-client';
import { StreamsApp } from './app.ts';
import type { ConnectKafkaLogOptions } from '../log/kafka/index.ts';
import { connectRemoteLog } from '../log/remote/client.ts';
import type { Topology } from '../topology.ts';
import type { ThreadConfig, ThreadContext, ThreadMessage } from './threads.ts';

interface Data {
  module: string;
  exportName: string;
  args: unknown[];
  kafka?: ConnectKafkaLogOptions;
  port?: MessagePort;
  config: ThreadConfig;
  thread: number;
  /** Whether the parent has a logger: the application's log entries are then sent to it. */
  log: boolean;
}

const data = workerData as Data;
const port = parentPort!;
const send = (m: ThreadMessage) => port.postMessage(m);

try {
  const url = data.module.startsWith('file:') ? data.module : isAbsolute(data.module) ? pathToFileURL(data.module).href : data.module;
  const mod = (await import(url)) as Record<string, unknown>;
  const build = mod[data.exportName];
  if (typeof build !== 'function') throw new Error(`${data.module} does not export a function ${data.exportName}`);
  // The Kafka client is loaded only by threads that connect to Kafka: it takes ~0.4 s per thread to
  // load, which threads served the embedded log would pay for nothing.
  const log = data.port !== undefined ? await connectRemoteLog(data.port) : await (await import('../log/kafka/index.ts')).connectKafkaLog(data.kafka!);
  // The thread's registry: the application's metrics, and any the topology function registers in it.
  const registry = new Registry();
  const context: ThreadContext = { registry, thread: data.thread };
  // Log entries cross as data: errors as their fields (a cloned Error loses its code), and an entry
  // that cannot be cloned as text, so that logging never fails the application.
  const plain = (v: unknown) => (v instanceof Error ? { type: v.name, message: v.message, stack: v.stack, code: (v as { code?: unknown }).code } : v);
  const entry = (level: 'info' | 'warn' | 'error') => (obj: object, msg?: string) => {
    const fields = Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, plain(v)]));
    try {
      send({ type: 'log', level, obj: fields, msg });
    } catch {
      send({ type: 'log', level, obj: { fields: Object.keys(fields).join(', '), note: 'fields that cannot cross threads' }, msg });
    }
  };
  const app = new StreamsApp((build as (...a: unknown[]) => Topology)(...data.args, context), {
    ...data.config,
    log,
    registry,
    ...(data.log && { logger: { info: entry('info'), warn: entry('warn'), error: entry('error') } }),
    onError: (err) => send({ type: 'error', message: err.message, code: (err as { code?: string }).code }),
  });
  // Ready: the group is joined only when the parent says every thread is ready, so that the threads
  // join together, in one rebalance. A thread that joined alone would take every task, and the next
  // one's join would wait until the first heard of the rebalance (a heartbeat away), then move tasks.
  let state: 'ready' | 'starting' | 'started' | 'closing' = 'ready';
  let closeAfterStart = false;
  let joined!: () => void;
  const join = new Promise<void>((resolve) => (joined = resolve));
  const close = async () => {
    state = 'closing';
    await app.close();
    await log.close();
    send({ type: 'closed' });
    port.close();
  };
  port.on('message', (m: { type: string; id?: number }) => {
    if (m.type === 'join') joined();
    else if (m.type === 'metrics') {
      if (state === 'started') void registry.getMetricsAsJSON().then((metrics) => send({ type: 'metrics', id: m.id!, metrics, tasks: app.activeTasks() }));
      else send({ type: 'metrics', id: m.id!, metrics: [], tasks: [] });
    } else if (m.type === 'close') {
      if (state === 'starting') closeAfterStart = true;
      else if (state !== 'closing') void close();
    }
  });
  send({ type: 'ready' });
  await join;
  if (state === 'ready') {
    state = 'starting';
    await app.start();
    state = 'started';
    send({ type: 'started' });
    if (closeAfterStart) await close();
  }
} catch (err) {
  send({ type: 'error', message: err instanceof Error ? err.message : String(err), code: (err as { code?: string }).code });
  port.close();
}
