import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

test('the runnable example of docs/streams.md prints the expected counts', () => {
  const out = execFileSync(process.execPath, [join(root, 'examples/page-counts.ts')], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, KAFKA_BOOTSTRAP: '' } });
  assert.deepEqual(out.trim().split('\n'), ['/cart@2026-11-26T12:00:00.000Z 1', '/shoes@2026-11-26T12:00:00.000Z 2', '/shoes@2026-11-26T12:01:00.000Z 1']);
});
