/**
 * A pool of worker threads that run one pure function on requests from the main thread: the
 * collector's body parsing (collector/prepare-worker.ts) and the lake sink's decoding
 * (lake/decode-worker.ts). Requests go round-robin to the threads; each request's promise settles
 * with the thread's answer. A thread that dies is replaced, and its requests fail. Threads do not
 * keep the process alive unless a request is out.
 *
 * Worker side: `serveThread(handler)`, where the handler returns its answer, the buffers to
 * transfer back with it, and, optionally, `aside`: data handed to the pool's `onAside` whether the
 * request succeeded or not (the lake returns its reusable buffers so).
 */
import { parentPort, Worker, type TransferListItem } from 'node:worker_threads';

interface Pending<Res> {
  resolve: (r: Res) => void;
  reject: (err: Error) => void;
}

interface Slot<Res> {
  worker: Worker;
  pending: Map<number, Pending<Res>>;
}

interface Reply<Res> {
  id: number;
  value?: Res;
  error?: string;
  aside?: unknown;
}

export interface ThreadPoolOptions {
  /** Names the pool in errors. */
  name: string;
  workerData?: unknown;
  /** Called with each reply's `aside`, before its request settles. */
  onAside?: (aside: unknown) => void;
}

export class ThreadPool<Req, Res> {
  private readonly url: URL;
  private readonly options: ThreadPoolOptions;
  private readonly slots: Slot<Res>[] = [];
  private next = 0;
  private id = 0;
  private closed = false;

  constructor(url: URL, threads: number, options: ThreadPoolOptions) {
    this.url = url;
    this.options = options;
    for (let i = 0; i < threads; i++) this.slots.push(this.spawn());
  }

  get size(): number {
    return this.slots.length;
  }

  private spawn(): Slot<Res> {
    const worker = new Worker(this.url, { workerData: this.options.workerData });
    const slot: Slot<Res> = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (m: Reply<Res>) => {
      if (m.aside !== undefined) this.options.onAside?.(m.aside);
      const p = slot.pending.get(m.id);
      if (p === undefined) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.error === undefined) p.resolve(m.value as Res);
      else p.reject(new Error(`${this.options.name}: ${m.error}`));
    });
    const fail = (err: Error) => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
    };
    worker.on('error', (err) => fail(err));
    worker.on('exit', (code) => fail(new Error(`${this.options.name} thread exited (${code})`)));
    return slot;
  }

  /** Runs `req` on the next thread; `transfer` lists the buffers that move with it. */
  run(req: Req, transfer: readonly TransferListItem[] = []): Promise<Res> {
    if (this.closed) return Promise.reject(new Error(`${this.options.name} is closed`));
    const slot = this.slots[this.next++ % this.slots.length]!;
    const id = this.id++;
    return new Promise<Res>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      // Keep the process alive while a request is out (its caller awaits it).
      slot.worker.ref();
      slot.worker.postMessage({ id, req }, transfer);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

export interface Served<Res> {
  value?: Res;
  error?: string;
  transfer?: TransferListItem[];
  aside?: unknown;
}

/** The worker side: answers each request of the pool with `handler`'s result (an exception becomes the request's error). */
export function serveThread<Req, Res>(handler: (req: Req) => Served<Res>, onThrow?: (req: Req) => Pick<Served<Res>, 'transfer' | 'aside'>): void {
  parentPort!.on('message', (m: { id: number; req: Req }) => {
    let s: Served<Res>;
    try {
      s = handler(m.req);
    } catch (err) {
      s = { error: err instanceof Error ? (err.stack ?? err.message) : String(err), ...onThrow?.(m.req) };
    }
    parentPort!.postMessage({ id: m.id, value: s.value, error: s.error, aside: s.aside }, s.transfer ?? []);
  });
}
