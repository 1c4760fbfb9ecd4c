/**
 * The remote log (src/log/remote/): the embedded log served over a MessagePort must pass the same
 * Log conformance suite and topology suite as the log itself. Both ends live in this thread here
 * (a MessageChannel); runtime/threads.test.ts runs it across worker threads.
 */
import { after } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import { connectRemoteLog, serveLog } from '../../src/log/remote/index.ts';
import type { Log } from '../../src/log/types.ts';
import { describeLogConformance } from './conformance.ts';
import { topologySuite } from '../runtime/topology-suite.ts';

async function remoteEmbedded(prefix: string): Promise<{ log: Log; cleanup(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `shopstream-${prefix}-`));
  const owner = await openEmbeddedLog({ dir, fsync: false, retentionCheckIntervalMs: 0 });
  const { port1, port2 } = new MessageChannel();
  const server = serveLog(owner, port1);
  const log = await connectRemoteLog(port2);
  return {
    log,
    async cleanup() {
      await log.close();
      await server.close();
      await owner.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describeLogConformance('remote (embedded, over a MessagePort)', () => remoteEmbedded('remote-conf'));

let suite: { log: Log; cleanup(): Promise<void> } | undefined;
topologySuite('remote embedded', async () => (suite ??= await remoteEmbedded('remote-suite')).log);
after(async () => {
  await suite?.cleanup();
});
