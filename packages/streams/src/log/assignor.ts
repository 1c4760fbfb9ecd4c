import type { Assignor, MemberSubscription, TopicPartition } from './types.ts';

/**
 * Co-partitioning assignor: partition p of every subscribed topic goes to the same member, so that
 * a task that reads partition p of several topics (a join, a repartitioned aggregate) finds all its
 * inputs on one instance. Partition numbers are spread round-robin over the members sorted by
 * instance id (or member id), which keeps the assignment stable when the same instances rejoin.
 */
export const coPartitionAssignor: Assignor = (members, partitionsPerTopic) => {
  const sorted = [...members].sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
  const result = new Map<string, TopicPartition[]>();
  for (const m of sorted) result.set(m.memberId, []);
  if (sorted.length === 0) return result;
  for (const [topic, count] of partitionsPerTopic) {
    for (let p = 0; p < count; p++) {
      // Only members subscribed to the topic may get it; in a streams app all members subscribe alike.
      const candidates = sorted.filter((m) => m.topics.includes(topic));
      if (candidates.length === 0) continue;
      const owner = candidates[p % candidates.length]!;
      result.get(owner.memberId)!.push({ topic, partition: p });
    }
  }
  return result;
};

function sortKey(m: MemberSubscription): string {
  return m.instanceId ?? m.memberId;
}
