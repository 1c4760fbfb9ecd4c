/** `shopstream simulate` without a collector: --dry-run, the truth file, and usage errors. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulateCommand } from '../../src/simulate/cli.ts';
import type { GroundTruth } from '../../src/simulate/plan.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

describe('shopstream simulate', () => {
  it('plans several merchants from repeated flags and writes the truth (--dry-run)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-cli-'));
    try {
      const c = capture();
      const file = join(dir, 'truth.json');
      const args = ['--write-key', 'wk_a_00000001', '--merchant-id', 'shop-a', '--currency', 'eur', '--write-key', 'wk_b_00000002', '--merchant-id', 'shop-b', '--currency', 'JPY'];
      const code = await simulateCommand([...args, '--seed', '9', '--visitors', '30', '--hours', '2', '--end-time', '2026-01-15T12:00:00Z', '--truth', file, '--dry-run'], c.io);
      assert.equal(code, 0, c.err.join('\n'));
      const truth = JSON.parse(readFileSync(file, 'utf8')) as GroundTruth;
      assert.deepEqual(truth.params.merchants, [{ id: 'shop-a', currency: 'EUR' }, { id: 'shop-b', currency: 'JPY' }]);
      assert.equal(truth.params.seed, 9);
      assert.equal(truth.params.visitorsPerMerchant, 30);
      assert.equal(truth.window.endIso, '2026-01-15T12:00:00.000Z');
      assert.equal(truth.window.start, Date.UTC(2026, 0, 15, 10));
      assert.ok(!JSON.stringify(truth).includes('wk_a_00000001'), 'no write key in the truth file');
      assert.match(c.out.join('\n'), /shop-b: \d+ orders, revenue \d+ minor units of JPY/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the merchants of a config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sim-cli-'));
    try {
      const config = join(dir, 'shopstream.yaml');
      writeFileSync(config, 'merchants:\n  - { id: shop-x, writeKey: wk_x_00000001, readToken: rt_x_00000001, currency: GBP }\n  - { id: shop-y, writeKey: wk_y_00000002, readToken: rt_y_00000002 }\n');
      const c = capture();
      const file = join(dir, 't.json');
      assert.equal(await simulateCommand(['--config', config, '--visitors', '5', '--truth', file, '--dry-run'], c.io), 0, c.err.join('\n'));
      const truth = JSON.parse(readFileSync(file, 'utf8')) as GroundTruth;
      assert.deepEqual(truth.params.merchants, [{ id: 'shop-x', currency: 'GBP' }, { id: 'shop-y', currency: 'USD' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers usage errors with exit code 2', async () => {
    for (const args of [[], ['--bogus'], ['--write-key', 'a', '--write-key', 'b'], ['--write-key', 'a', '--visitors', 'many'], ['--write-key', 'a', '--currency', 'EURO'], ['--config', '/nonexistent/shopstream.yaml']]) {
      const c = capture();
      assert.equal(await simulateCommand(args, c.io), 2, args.join(' '));
      assert.ok(c.err.length > 0);
    }
  });
});
