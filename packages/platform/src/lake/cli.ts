/**
 * The lake's commands (docs/lake.md):
 *
 *   shopstream replay --from DATE --to DATE [--merchant M] --to-topic T [--topic events.raw]
 *   shopstream lake compact [--older-than-hours N]
 *
 * Both take --config and --data-dir, and find the lake (local or S3) and the log as `start` does.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigFile, parseConfig, type ShopstreamConfig } from '../config.ts';
import { PlatformError, PlatformErrors } from '../errors.ts';
import { openLog } from '../platform.ts';
import { topicNames } from '../topics.ts';
import { compactLake } from './compact.ts';
import { closeLakeStorage, openLakeStorage } from './open.ts';
import { ProgressBar, replayLake } from './replay.ts';

export interface LakeCliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Where the progress bar is drawn (raw text with \r). Default: stderr. */
  progress?: (text: string) => void;
}

export const LAKE_USAGE = `  shopstream replay --from YYYY-MM-DD --to YYYY-MM-DD [--merchant ID] --to-topic TOPIC   re-publish archived events.raw records (lake) in event-time order
  shopstream lake compact [--older-than-hours N]   merge the small files of hour partitions closed N hours ago (default 2)`;

/** True for the argument lists this module runs. */
export function isLakeCommand(argv: readonly string[]): boolean {
  return argv[0] === 'replay' || (argv[0] === 'lake' && argv[1] === 'compact');
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

export async function lakeCommand(argv: string[], io: LakeCliIo): Promise<number> {
  const { values } = parseArgs({
    args: argv.slice(argv[0] === 'replay' ? 1 : 2),
    allowPositionals: false,
    strict: true,
    options: {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      merchant: { type: 'string' },
      'to-topic': { type: 'string' },
      topic: { type: 'string' },
      'older-than-hours': { type: 'string' },
    },
  });
  const config: ShopstreamConfig = values.config ? loadConfigFile(values.config) : parseConfig({});
  const dataDir = resolve(values['data-dir'] ?? config.dataDir ?? '.data');
  const storage = openLakeStorage(config.lake, dataDir);
  try {
    if (argv[0] === 'lake') {
      const hours = values['older-than-hours'] === undefined ? 2 : Number(values['older-than-hours']);
      if (!(Number.isFinite(hours) && hours >= 0)) throw new PlatformError(PlatformErrors.CONFIG, `--older-than-hours ${values['older-than-hours']}: a number of hours, 0 or more.`);
      const r = await compactLake({ storage, olderThanHours: hours });
      io.out(`Compacted ${r.merged} files into ${r.written.length} (${r.rows.toLocaleString('en-US')} rows) in ${r.groups} closed partition groups; deleted ${r.deleted} files.`);
      return 0;
    }
    const from = values.from;
    const to = values.to ?? from;
    const toTopic = values['to-topic'];
    if (from === undefined || !DATE.test(from) || to === undefined || !DATE.test(to)) throw new PlatformError(PlatformErrors.CONFIG, 'replay needs --from YYYY-MM-DD (and --to YYYY-MM-DD, inclusive; default: the same day).');
    if (to < from) throw new PlatformError(PlatformErrors.CONFIG, `--to ${to} is before --from ${from}.`);
    if (toTopic === undefined || toTopic === '') throw new PlatformError(PlatformErrors.CONFIG, 'replay needs --to-topic TOPIC (a topic to publish to; created when missing).');
    const topic = values.topic ?? topicNames(config.topics?.prefix).raw;
    if (toTopic === topic) throw new PlatformError(PlatformErrors.CONFIG, `--to-topic ${toTopic} is the archived topic itself; replay into another topic.`);
    const log = await openLog(config, dataDir);
    try {
      const bar = new ProgressBar(`replay ${from}..${to}${values.merchant === undefined ? '' : ` ${values.merchant}`} → ${toTopic}`, io.progress ?? ((t) => process.stderr.write(t)));
      const r = await replayLake({
        storage,
        log,
        topic,
        toTopic,
        from,
        to,
        ...(values.merchant !== undefined && { merchant: values.merchant }),
        onProgress: (done, total) => bar.update(done, total),
      });
      bar.update(r.events, r.events, true);
      bar.finish();
      io.out(`Replayed ${r.events.toLocaleString('en-US')} events from ${r.files} lake files into ${toTopic}.`);
      return 0;
    } finally {
      await log.close();
    }
  } finally {
    closeLakeStorage(storage);
  }
}
