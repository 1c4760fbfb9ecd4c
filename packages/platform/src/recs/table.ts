/**
 * The recommendations' serving side: `recs.model` and `recs.visitors` (compacted topics written by
 * the recs topology) read into memory and kept up to date by tailing them, in every process that
 * serves the API. A query reads the entries of the seed products and their neighbours from memory:
 * no network call, and the same on the embedded log and on Kafka with any number of instances.
 */
import type { Log, LogReader, TopicPartition } from '@shopstream/streams';
import type { Logger } from 'pino';
import type { CoItemState, CoReader } from './cooccurrence.ts';
import type { PopularityState } from './popularity.ts';
import { modelKey, popularKey, visitorKey, type VisitorRecent } from './topology.ts';
import type { SummaryRow } from '../experiments/index.ts';

/** Longest stretch of applying updates before the table yields to the event loop (requests waiting). */
const SLICE_MS = 1;

interface TableOptions {
  log: Log;
  modelTopic: string;
  visitorsTopic: string;
  /** recs.experiments: each visitor's figures per experiment. */
  experimentsTopic?: string;
  logger?: Logger;
}

export class RecsTable {
  private readonly entries = new Map<string, CoItemState | PopularityState>();
  private readonly visitors = new Map<string, VisitorRecent>();
  /** `merchant|experiment` → visitor → figures. */
  private readonly experiments = new Map<string, Map<string, SummaryRow>>();
  private reader: LogReader | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private tps: TopicPartition[] = [];
  private readonly o: TableOptions;

  constructor(o: TableOptions) {
    this.o = o;
  }

  /** Reads both topics to their end, then keeps tailing them. */
  async start(): Promise<void> {
    const described = await this.o.log.admin.describeTopics([this.o.modelTopic, this.o.visitorsTopic, ...(this.o.experimentsTopic === undefined ? [] : [this.o.experimentsTopic])]);
    this.tps = [...described.values()].flatMap((d) => Array.from({ length: d.partitions }, (_, partition) => ({ topic: d.name, partition })));
    const ends = await this.o.log.admin.listOffsets(this.tps, 'latest');
    this.reader = this.o.log.createReader({ clientId: 'recs-table' });
    this.reader.assign(this.tps.map((tp) => ({ ...tp, offset: 0 })));
    const behind = () => ends.some((e) => this.reader!.position(e) < e.offset);
    while (behind()) await this.apply(await this.reader.poll(200));
    this.running = true;
    this.loop = this.tail();
  }

  private async tail(): Promise<void> {
    while (this.running) {
      try {
        await this.apply(await this.reader!.poll(100));
      } catch (err) {
        this.o.logger?.warn({ err }, 'recs: cannot read the model topics; serving what was read');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /**
   * Applies a poll's records. The API answers from the same event loop, so a large batch (a commit
   * of the topology that touched many entries, each up to `capacity` neighbours of JSON) is applied
   * in slices of about `SLICE_MS`, yielding to pending requests between them; and of several
   * versions of a key in one batch only the last is parsed (the topics are compacted: it wins).
   */
  private async apply(records: ReadonlyArray<{ topic: string; key: Buffer | null; value: Buffer | null }>): Promise<void> {
    const last = new Map<string, number>();
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.key !== null) last.set(`${r.topic}\u0000${r.key.toString('latin1')}`, i);
    }
    let slice = performance.now();
    for (const i of last.values()) {
      this.applyOne(records[i]!);
      if (performance.now() - slice > SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        slice = performance.now();
      }
    }
  }

  private applyOne(r: { topic: string; key: Buffer | null; value: Buffer | null }): void {
    const key = r.key!.toString('utf8');
    if (r.topic === this.o.experimentsTopic) {
      const cut = key.lastIndexOf('|');
      const group = key.slice(0, cut);
      let rows = this.experiments.get(group);
      if (rows === undefined) this.experiments.set(group, (rows = new Map()));
      if (r.value === null) rows.delete(key.slice(cut + 1));
      else rows.set(key.slice(cut + 1), JSON.parse(r.value.toString('utf8')) as SummaryRow);
      return;
    }
    const map = r.topic === this.o.modelTopic ? this.entries : this.visitors;
    if (r.value === null) map.delete(key);
    else map.set(key, JSON.parse(r.value.toString('utf8')) as never);
  }

  /** A model of a merchant, as the scorers read it (keys are product ids; '' is the total). */
  model(model: 'f' | 'o', merchant: string): CoReader {
    return { get: (product) => this.entries.get(modelKey(model, merchant, product)) as CoItemState | undefined };
  }

  popularity(merchant: string): PopularityState | undefined {
    return this.entries.get(popularKey(merchant)) as PopularityState | undefined;
  }

  visitor(merchant: string, visitor: string): VisitorRecent | undefined {
    return this.visitors.get(visitorKey(merchant, visitor));
  }

  /** Each visitor's figures in an experiment of a merchant. */
  experimentRows(merchant: string, experiment: string): Iterable<SummaryRow> {
    return this.experiments.get(`${merchant}|${experiment}`)?.values() ?? [];
  }

  /** Entries held (model entries and visitors). */
  get size(): { entries: number; visitors: number } {
    return { entries: this.entries.size, visitors: this.visitors.size };
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.reader?.close();
  }
}
