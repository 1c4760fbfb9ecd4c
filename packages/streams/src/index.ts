export * from './errors.ts';
export * from './log/index.ts';
export * from './serde/index.ts';
export type * from './processor/api.ts';
export { Topology, resolveTopic } from './topology.ts';
export type { StoreSpec, TimestampExtractor, Subtopology } from './topology.ts';
export * from './dsl/windows.ts';
export * from './dsl/kstream.ts';
export type { KeyValueStore, WindowStore, StateStore } from './state/stores.ts';
