/** `shopstream merchants add|list|rotate-key` and the config file, on the embedded log. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { loadConfigFile } from '../../src/config.ts';
import { startPlatform } from '../../src/platform.ts';
import { isPlatformError } from '../../src/errors.ts';
import { readTopic, tempDir } from '../helpers.ts';
import { pino } from 'pino';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('shopstream merchants', () => {
  it('adds, lists and rotates keys; a rotated key is refused by the collector', async () => {
    const t = tempDir();
    try {
      const dd = ['--data-dir', t.dir];
      const added = await cli(['merchants', 'add', '--id', 'shop-1', '--timezone', 'Europe/Berlin', '--currency', 'eur', '--pixel-id', '123', '--access-token', 'EAAB-secret-token', ...dd]);
      assert.equal(added.code, 0, added.err);
      const oldKey = /write key: +(\S+)/.exec(added.out)![1]!;
      const again = await cli(['merchants', 'add', '--id', 'shop-1', ...dd]);
      assert.equal(again.code, 1);
      assert.match(again.err, /SHOP_ERR_MERCHANT_EXISTS/);

      const listed = await cli(['merchants', 'list', ...dd]);
      const row = JSON.parse(listed.out) as Record<string, unknown>;
      assert.equal(row['id'], 'shop-1');
      assert.equal(row['currency'], 'EUR');
      assert.deepEqual(row['writeKeys'], [oldKey]);
      assert.ok(!listed.out.includes('EAAB-secret-token'), 'secrets are masked');

      const rotated = await cli(['merchants', 'rotate-key', '--id', 'shop-1', ...dd]);
      assert.equal(rotated.code, 0, rotated.err);
      const newKey = /write key: +(\S+)/.exec(rotated.out)![1]!;
      assert.notEqual(newKey, oldKey);
      assert.equal((await cli(['merchants', 'rotate-key', '--id', 'nope', ...dd])).code, 1);

      const platform = await startPlatform({ dataDir: t.dir, port: 0, logger: pino({ level: 'silent' }) });
      try {
        const post = (key: string) =>
          fetch(`${platform.url}/v1/track`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(key + ':').toString('base64')}` },
            body: JSON.stringify({ messageId: `m-${Math.random()}`, anonymousId: 'a1', event: 'Product Viewed', properties: { product_id: 'p1' } }),
          });
        const refused = await post(oldKey);
        assert.equal(refused.status, 401);
        assert.match(((await refused.json()) as { error: { message: string } }).error.message, /rotated/);
        assert.equal((await post(newKey)).status, 200);
        // While the platform runs, the embedded log is locked: the CLI says what to do.
        const locked = await cli(['merchants', 'list', ...dd]);
        assert.equal(locked.code, 1);
        assert.match(locked.err, /SHOP_ERR_LOG_LOCKED[\s\S]*Stop it first/);
      } finally {
        await platform.close();
      }
    } finally {
      t.cleanup();
    }
  });

  it('creates and rotates a server key; the collector takes it, the beacon refuses it, and its events pass as trusted_source', async () => {
    const t = tempDir();
    try {
      const dd = ['--data-dir', t.dir];
      const added = await cli(['merchants', 'add', '--id', 'shop-srv', '--server-key', ...dd]);
      assert.equal(added.code, 0, added.err);
      const writeKey = /write key: +(\S+)/.exec(added.out)![1]!;
      const serverKey = /server key: +(\S+)/.exec(added.out)![1]!;
      assert.match(serverKey, /^sk_/);
      assert.notEqual(serverKey, writeKey);
      // Without the flag, no server key.
      const plain = await cli(['merchants', 'add', '--id', 'shop-plain', ...dd]);
      assert.ok(!/server key/.test(plain.out));

      const rows = (await cli(['merchants', 'list', ...dd])).out.split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const row = rows.find((r) => r['id'] === 'shop-srv')!;
      assert.equal((row['serverWriteKeys'] as string[]).length, 1);
      assert.ok(!JSON.stringify(rows).includes(serverKey), 'server keys are secret: masked');
      assert.deepEqual(rows.find((r) => r['id'] === 'shop-plain')!['serverWriteKeys'], []);
      const shown = await cli(['merchants', 'list', '--show-secrets', ...dd]);
      assert.ok(shown.out.includes(serverKey));

      // Rotating the server key leaves the write key alone; rotating the write key leaves the server key alone.
      const rotated = await cli(['merchants', 'rotate-key', '--id', 'shop-srv', '--server-key', ...dd]);
      assert.equal(rotated.code, 0, rotated.err);
      const newServerKey = /server key: +(\S+)/.exec(rotated.out)![1]!;
      assert.notEqual(newServerKey, serverKey);
      assert.ok(!/write key:/.test(rotated.out));
      // On a merchant without one, it creates the first.
      const first = await cli(['merchants', 'rotate-key', '--id', 'shop-plain', '--server-key', ...dd]);
      assert.equal(first.code, 0, first.err);
      assert.match(first.out, /had none before[\s\S]*server key: +sk_/);

      const platform = await startPlatform({ dataDir: t.dir, port: 0, logger: pino({ level: 'silent' }) });
      try {
        const post = (key: string, anonymousId: string) =>
          fetch(`${platform.url}/v1/batch`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(key + ':').toString('base64')}`, 'user-agent': 'curl/8.5.0' },
            body: JSON.stringify({ batch: [{ type: 'track', messageId: `m-${Math.random()}`, anonymousId, event: 'Order Completed', properties: { order_id: `o-${Math.random()}`, total: 12, currency: 'EUR' } }] }),
          });
        const old = await post(serverKey, 'imp-0');
        assert.equal(old.status, 401);
        assert.match(((await old.json()) as { error: { message: string } }).error.message, /rotated/);
        assert.equal((await post(writeKey, 'imp-0')).status, 200, 'the write key still works');
        assert.equal((await post(newServerKey, 'imp-1')).status, 200);
        const challenge = await fetch(`${platform.url}/v1/beacon/challenge?writeKey=${encodeURIComponent(newServerKey)}&anonymousId=imp-1`, { headers: { 'user-agent': 'Mozilla/5.0' } });
        assert.equal(challenge.status, 403);
        assert.equal(((await challenge.json()) as { error: { code: string } }).error.code, 'SHOP_ERR_FORBIDDEN');
        // A never-validated visitor's server event reaches events.filtered well within the 30 s grace period.
        const filtered = await readTopic(platform.log, platform.topics.filtered, (rs) => rs.length >= 1, 10_000);
        assert.equal(filtered.length, 1);
        const e = JSON.parse(filtered[0]!.value!.toString()) as { human: string; event: { visitorId: string } };
        assert.equal(e.event.visitorId, 'imp-1');
        assert.equal(e.human, 'trusted_source');
      } finally {
        await platform.close();
      }
    } finally {
      t.cleanup();
    }
  });

  it('loads merchants from a YAML config file, and refuses a config whose key was rotated', async () => {
    const t = tempDir();
    try {
      const file = join(t.dir, 'shopstream.yaml');
      writeFileSync(file, ['merchants:', '  - id: yaml-shop', '    writeKey: wk_yaml_shop_key', '    readToken: rt_yaml_shop_token', '    timezone: America/New_York', '    currency: USD', ''].join('\n'));
      const config = loadConfigFile(file);
      const p = await startPlatform({ config, dataDir: t.dir, port: 0, logger: pino({ level: 'silent' }) });
      try {
        assert.equal(p.merchants.byWriteKey('wk_yaml_shop_key')?.merchant.timezone, 'America/New_York');
      } finally {
        await p.close();
      }
      assert.equal((await cli(['merchants', 'rotate-key', '--id', 'yaml-shop', '--config', file, '--data-dir', t.dir])).code, 0);
      await assert.rejects(startPlatform({ config, dataDir: t.dir, port: 0, logger: pino({ level: 'silent' }) }), (err) => isPlatformError(err) && /rotated out/.test(err.message));
    } finally {
      t.cleanup();
    }
  });

  it('explains every problem of an invalid config file', () => {
    const t = tempDir();
    try {
      const file = join(t.dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ merchants: [{ id: 'x', writeKey: 'short' }], kafka: { brokers: [] }, colector: {} }));
      assert.throws(
        () => loadConfigFile(file),
        (err) => isPlatformError(err) && err.code === 'SHOP_ERR_CONFIG' && /readToken/.test(err.message) && /writeKey/.test(err.message) && /colector/.test(err.message) && /brokers/.test(err.message),
      );
      writeFileSync(file, '{ not json');
      assert.throws(() => loadConfigFile(file), /does not parse/);
      assert.throws(() => loadConfigFile(join(t.dir, 'missing.yaml')), /Cannot read/);
    } finally {
      t.cleanup();
    }
  });
});
