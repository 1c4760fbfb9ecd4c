/** Server write keys in the merchant model, the merchants table and the config file. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkWriteKey, type Merchant, type MerchantLookup } from '../../src/merchants/model.ts';
import { MerchantTable, newServerWriteKey, newWriteKey, putMerchant, validateMerchant, withConfiguredServerKeys } from '../../src/merchants/table.ts';
import { parseConfig } from '../../src/config.ts';
import { isPlatformError } from '../../src/errors.ts';
import { ensurePlatformTopics, topicNames } from '../../src/topics.ts';
import { openTestLog } from '../helpers.ts';

function merchant(extra: Partial<Merchant> = {}): Merchant {
  return {
    id: 'shop-1',
    writeKeys: ['wk_browser_0123456789'],
    serverWriteKeys: ['sk_server_0123456789'],
    revokedWriteKeys: ['wk_browser_old_0123', 'sk_server_old_01234'],
    readTokens: ['rt_read_0123456789'],
    timezone: 'UTC',
    currency: 'EUR',
    createdAt: 1,
    updatedAt: 1,
    ...extra,
  };
}

describe('server write keys', () => {
  it('checkWriteKey tells which kind of key authenticated; revoked keys are refused as before', async () => {
    const opened = await openTestLog('embedded');
    try {
      const topics = topicNames('t.');
      await ensurePlatformTopics(opened.log, { prefix: 't.' });
      const table = new MerchantTable(opened.log, topics.merchants);
      await table.start();
      try {
        const m = merchant();
        await putMerchant(opened.log, topics.merchants, m, table);
        const browser = checkWriteKey(table, 'wk_browser_0123456789');
        assert.ok(browser.ok);
        assert.equal(browser.kind, 'browser');
        assert.equal(browser.merchant.id, 'shop-1');
        const server = checkWriteKey(table, 'sk_server_0123456789');
        assert.ok(server.ok);
        assert.equal(server.kind, 'server');
        assert.equal(server.merchant.id, 'shop-1');
        for (const revoked of ['wk_browser_old_0123', 'sk_server_old_01234']) {
          const r = checkWriteKey(table, revoked);
          assert.ok(!r.ok);
          assert.equal(r.reason, 'revoked');
        }
        assert.equal((checkWriteKey(table, 'sk_nope_0123456789') as { reason: string }).reason, 'unknown');
        // A rotation of the server key drops the old one from the lookup.
        await putMerchant(opened.log, topics.merchants, { ...m, serverWriteKeys: ['sk_server_new_0123'], revokedWriteKeys: [...m.revokedWriteKeys, 'sk_server_0123456789'] }, table);
        assert.equal((checkWriteKey(table, 'sk_server_0123456789') as { reason: string }).reason, 'revoked');
        assert.equal((checkWriteKey(table, 'sk_server_new_0123') as { kind: string }).kind, 'server');
      } finally {
        await table.close();
      }
    } finally {
      await opened.close();
    }
  });

  it('loads a merchant record written before server keys existed (no field): no server keys, its write key still works', async () => {
    const opened = await openTestLog('embedded');
    try {
      const topics = topicNames('t.');
      await ensurePlatformTopics(opened.log, { prefix: 't.' });
      const { serverWriteKeys: _, ...old } = merchant();
      assert.ok(!('serverWriteKeys' in old));
      const producer = opened.log.createProducer({ clientId: 'old-writer' });
      await producer.send([{ topic: topics.merchants, key: Buffer.from(old.id), value: Buffer.from(JSON.stringify(old)) }]);
      await producer.close();
      const table = new MerchantTable(opened.log, topics.merchants);
      await table.start();
      try {
        assert.deepEqual(table.byId('shop-1')?.serverWriteKeys, []);
        const check = checkWriteKey(table, 'wk_browser_0123456789');
        assert.ok(check.ok);
        assert.equal(check.kind, 'browser');
        assert.ok(!checkWriteKey(table, 'sk_server_0123456789').ok);
      } finally {
        await table.close();
      }
      // validateMerchant takes it too (putMerchant of an old record, e.g. by an older CLI).
      validateMerchant(old);
    } finally {
      await opened.close();
    }
  });

  it('reads a lookup without the server flag (older implementations) as browser keys', () => {
    const m = merchant();
    const lookup: MerchantLookup = { byWriteKey: (k) => (k === 'wk_browser_0123456789' ? { merchant: m, revoked: false } : undefined), byId: () => m };
    const check = checkWriteKey(lookup, 'wk_browser_0123456789');
    assert.ok(check.ok);
    assert.equal(check.kind, 'browser');
  });

  it('validates server keys: strings of 8 characters or more, never also a write key', () => {
    validateMerchant(merchant());
    assert.throws(() => validateMerchant(merchant({ serverWriteKeys: ['short'] })), (err) => isPlatformError(err) && /serverWriteKeys/.test(err.message));
    assert.throws(() => validateMerchant(merchant({ serverWriteKeys: ['wk_browser_0123456789'] })), /both a write key and a server write key/);
    assert.match(newServerWriteKey(), /^sk_[A-Za-z0-9_-]{32}$/);
    assert.notEqual(newServerWriteKey(), newServerWriteKey());
    assert.match(newWriteKey(), /^wk_/);
  });

  it('the config file accepts serverWriteKeys; they are added to a merchant, never removed, and a rotated one is refused', () => {
    const config = parseConfig({ merchants: [{ id: 'shop-1', writeKey: 'wk_browser_0123456789', readToken: 'rt_read_0123456789', serverWriteKeys: ['sk_from_file_0123'] }] });
    assert.deepEqual(config.merchants![0]!.serverWriteKeys, ['sk_from_file_0123']);
    assert.throws(
      () => parseConfig({ merchants: [{ id: 'x', writeKey: 'wk_browser_0123456789', readToken: 'rt_read_0123456789', serverWriteKeys: ['short'] }] }),
      (err) => isPlatformError(err) && err.code === 'SHOP_ERR_CONFIG' && /serverWriteKeys/.test(err.message),
    );
    assert.throws(
      () => parseConfig({ merchants: [{ id: 'x', writeKey: 'wk_browser_0123456789', readToken: 'rt_read_0123456789', serverWriteKeys: ['wk_browser_0123456789'] }] }),
      /server write key must be another/,
    );

    const m = merchant();
    assert.equal(withConfiguredServerKeys(m, undefined), m);
    assert.equal(withConfiguredServerKeys(m, ['sk_server_0123456789']), m, 'already there: unchanged');
    assert.deepEqual(withConfiguredServerKeys(m, ['sk_from_file_0123', 'sk_from_file_0123']).serverWriteKeys, ['sk_server_0123456789', 'sk_from_file_0123']);
    const { serverWriteKeys: _, ...old } = m;
    assert.deepEqual(withConfiguredServerKeys(old, ['sk_from_file_0123']).serverWriteKeys, ['sk_from_file_0123']);
    assert.throws(() => withConfiguredServerKeys(m, ['sk_server_old_01234']), (err) => isPlatformError(err) && /rotated out/.test(err.message));
    assert.throws(() => withConfiguredServerKeys(m, ['wk_browser_0123456789']), /both a writeKey and a serverWriteKeys/);
  });
});
