export * from './types.ts';
export { murmur2, partitionForKey, NullKeyPartitioner } from './partitioner.ts';
export { coPartitionAssignor } from './assignor.ts';
