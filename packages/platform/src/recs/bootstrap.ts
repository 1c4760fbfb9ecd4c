/**
 * `shopstream recs bootstrap --days N`: builds the recommendation models from the lake's history
 * (the archived events.filtered, `lake.topics`), then the recs role goes on with the live stream,
 * without counting anything twice.
 *
 * The hand-over is by offsets, not by time: the lake holds every record of events.filtered once, with
 * its partition and offset. The records events.filtered still holds (from its log start offset on)
 * are read by the recs topology itself when it first starts; the bootstrap re-publishes, from the
 * lake, only the records below each partition's log start offset (and within the last N days), to
 * `recs.bootstrap`, co-partitioned with events.filtered, which the topology reads too. So each record
 * is counted once: from the lake or from the topic, never both, and none is missed (the lake has them
 * all). This holds only for a recs role that has not started yet: bootstrap refuses otherwise.
 */
import type { Log } from '@shopstream/streams';
import { PlatformError, PlatformErrors } from '../errors.ts';
import { replayLake } from '../lake/replay.ts';
import type { LakeStorage } from '../lake/storage.ts';
import type { TopicNames } from '../topics.ts';

export interface BootstrapOptions {
  log: Log;
  storage: LakeStorage;
  topics: TopicNames;
  /** The recs role's application id (its consumer group), e.g. `${prefix}shopstream-recs`. */
  applicationId: string;
  days: number;
  now?: number;
  root?: string;
  onProgress?: (done: number, total: number) => void;
}

export async function bootstrapRecs(o: BootstrapOptions): Promise<{ events: number; files: number; cut: Record<number, number> }> {
  if (!(Number.isInteger(o.days) && o.days > 0)) throw new PlatformError(PlatformErrors.INVALID_PARAMETER, `--days: a whole number of days, got ${o.days}`);
  const described = await o.log.admin.describeTopics([o.topics.filtered]);
  const partitions = described.get(o.topics.filtered)?.partitions;
  if (partitions === undefined) throw new PlatformError(PlatformErrors.CONFIG, `${o.topics.filtered} does not exist: start the platform once, or check topics.prefix.`);
  const tps = Array.from({ length: partitions }, (_, partition) => ({ topic: o.topics.filtered, partition }));
  const committed = await o.log.admin.committedOffsets(o.applicationId, tps);
  if (committed.length > 0) {
    throw new PlatformError(
      PlatformErrors.CONFIG,
      `the recs role (${o.applicationId}) has already read events.filtered: a bootstrap now would count its events twice. Bootstrap before the role's first start; to rebuild, stop it, delete its state and internal topics, and bootstrap again.`,
    );
  }
  const earliest = await o.log.admin.listOffsets(tps, 'earliest');
  const cut = new Map(earliest.map((e) => [e.partition, e.offset]));
  const now = o.now ?? Date.now();
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const r = await replayLake({
    storage: o.storage,
    log: o.log,
    topic: o.topics.filtered,
    toTopic: o.topics.recsBootstrap,
    from: day(now - o.days * 86_400_000),
    to: day(now),
    before: cut,
    keepPartition: true,
    ...(o.root !== undefined && { root: o.root }),
    ...(o.onProgress !== undefined && { onProgress: o.onProgress }),
  });
  return { ...r, cut: Object.fromEntries(cut) };
}
