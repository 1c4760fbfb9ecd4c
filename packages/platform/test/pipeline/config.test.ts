/**
 * The pipeline's settings in the config file that go to the streams application rather than to the
 * topology: `pipeline.commitIntervalMs` (Kafka Streams' commit.interval.ms; docs/pipeline.md).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pino } from 'pino';
import { StreamsApp } from '@shopstream/streams';
import { parseConfig } from '../../src/config.ts';
import { isPlatformError } from '../../src/errors.ts';
import { startPlatform } from '../../src/platform.ts';
import { tempDir } from '../helpers.ts';

async function pipelineCommitInterval(pipeline: { commitIntervalMs?: number }): Promise<number> {
  const t = tempDir();
  const platform = await startPlatform({ dataDir: join(t.dir, 'data'), port: 0, logger: pino({ level: 'silent' }), roles: ['pipeline'], dashboard: false, config: { pipeline } });
  try {
    assert.ok(platform.pipeline instanceof StreamsApp);
    return platform.pipeline.config.commitIntervalMs;
  } finally {
    await platform.close();
    t.cleanup();
  }
}

describe('pipeline.commitIntervalMs', () => {
  it("reaches the pipeline's application, and the engine's 100 ms stays the default", async () => {
    assert.equal(await pipelineCommitInterval({ commitIntervalMs: 250 }), 250);
    assert.equal(await pipelineCommitInterval({}), 100);
  });

  it('is refused below 10 ms, with the config error code and the setting named', () => {
    assert.equal(parseConfig({ pipeline: { commitIntervalMs: 400, threads: 2 } }).pipeline?.commitIntervalMs, 400);
    assert.throws(
      () => parseConfig({ pipeline: { commitIntervalMs: 5 } }),
      (err) => isPlatformError(err) && err.code === 'SHOP_ERR_CONFIG' && /pipeline\/commitIntervalMs/.test(err.message),
    );
  });
});
