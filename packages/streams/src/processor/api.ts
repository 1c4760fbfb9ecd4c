/**
 * The low-level Processor API, as Kafka Streams' `org.apache.kafka.streams.processor.api`.
 * Processors are synchronous: a record goes depth-first through the graph before the next one.
 */
import type { Header } from '../log/types.ts';

export interface Record<K, V> {
  key: K;
  value: V;
  /** Event time, ms since the epoch. */
  timestamp: number;
  headers: readonly Header[];
}

/** Where the record being processed came from (absent for records created by a punctuator). */
export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: number;
}

export type PunctuationType = 'stream-time' | 'wall-clock';

export interface Cancellable {
  cancel(): void;
}

export interface ProcessorContext<KOut = unknown, VOut = unknown> {
  readonly applicationId: string;
  readonly taskId: string;
  /** Forwards a record to all children, or to the named child. */
  forward<K extends KOut, V extends VOut>(record: Record<K, V>, childName?: string): void;
  /** Gets a state store connected to this processor. */
  getStateStore<S>(name: string): S;
  /**
   * Calls `punctuator(time)` every `intervalMs` of stream time (advanced by records) or of
   * wall-clock time (checked by the poll loop; controlled by the test driver).
   */
  schedule(intervalMs: number, type: PunctuationType, punctuator: (timestamp: number) => void): Cancellable;
  /** Asks the runtime to commit as soon as possible. */
  commit(): void;
  recordMetadata(): RecordMetadata | undefined;
  /** The highest record timestamp this task has seen. -Infinity before the first record. */
  currentStreamTimeMs(): number;
  currentSystemTimeMs(): number;
  /** Counts a record dropped by this processor for being later than its grace period. */
  recordLateDrop(): void;
}

export interface Processor<KIn, VIn, KOut = unknown, VOut = unknown> {
  init?(context: ProcessorContext<KOut, VOut>): void;
  process(record: Record<KIn, VIn>): void;
  close?(): void;
}

export type ProcessorSupplier<KIn, VIn, KOut = unknown, VOut = unknown> = () => Processor<KIn, VIn, KOut, VOut>;
