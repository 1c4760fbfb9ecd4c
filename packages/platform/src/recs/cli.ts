/**
 * `shopstream recs bootstrap --days N [--config FILE] [--data-dir DIR]`: builds the recommendation
 * models from the lake's history before the recs role's first start (bootstrap.ts), with a progress bar.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigFile, parseConfig, type ShopstreamConfig } from '../config.ts';
import { PlatformError, PlatformErrors } from '../errors.ts';
import { openLog } from '../platform.ts';
import { topicNames, ensurePlatformTopics } from '../topics.ts';
import { closeLakeStorage, openLakeStorage } from '../lake/open.ts';
import { ProgressBar } from '../lake/replay.ts';
import type { LakeCliIo } from '../lake/cli.ts';
import { bootstrapRecs } from './bootstrap.ts';

export const RECS_USAGE = `  shopstream recs bootstrap --days N   build the recommendation models from the lake's events.filtered (lake.topics) before the recs role's first start`;

export function isRecsCommand(argv: readonly string[]): boolean {
  return argv[0] === 'recs' && argv[1] === 'bootstrap';
}

export async function recsCommand(argv: string[], io: LakeCliIo): Promise<number> {
  const { values } = parseArgs({ args: argv.slice(2), strict: true, options: { config: { type: 'string' }, 'data-dir': { type: 'string' }, days: { type: 'string' } } });
  const config: ShopstreamConfig = values.config ? loadConfigFile(values.config) : parseConfig({});
  const dataDir = resolve(values['data-dir'] ?? config.dataDir ?? '.data');
  const days = Number(values.days ?? 90);
  if (!(Number.isInteger(days) && days > 0)) throw new PlatformError(PlatformErrors.CONFIG, `--days ${values.days}: a whole number of days.`);
  if (!(config.lake?.topics ?? ['events.raw']).includes('events.filtered')) {
    io.err('warning: lake.topics does not include events.filtered: the lake may hold no history to bootstrap from (set lake.topics: [events.raw, events.filtered]).');
  }
  const storage = openLakeStorage(config.lake, dataDir);
  const log = await openLog(config, dataDir);
  try {
    await ensurePlatformTopics(log, config.topics);
    const bar = new ProgressBar(`recs bootstrap, last ${days} days`, io.progress ?? ((t) => process.stderr.write(t)));
    const r = await bootstrapRecs({
      log,
      storage,
      topics: topicNames(config.topics?.prefix),
      applicationId: `${config.topics?.prefix ?? ''}shopstream-recs`,
      days,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.update(r.events, r.events, true);
    bar.finish();
    io.out(
      `Re-published ${r.events.toLocaleString('en-US')} archived events (${r.files} lake files, below offsets ${JSON.stringify(r.cut)} of events.filtered) to recs.bootstrap; ` +
        'the recs role counts them at its first start, then goes on with events.filtered.',
    );
    return 0;
  } finally {
    await log.close();
    closeLakeStorage(storage);
  }
}
