import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEmbeddedLog } from '../../src/log/embedded/index.ts';
import type { Log } from '../../src/index.ts';
import { topologySuite } from './topology-suite.ts';

const dir = mkdtempSync(join(tmpdir(), 'shopstream-embedded-suite-'));
let log: Log | undefined;

topologySuite('embedded', async () => (log ??= await openEmbeddedLog({ dir, fsync: false })));

after(async () => {
  await log?.close();
  rmSync(dir, { recursive: true, force: true });
});
