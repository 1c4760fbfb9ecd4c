/**
 * Segment's own Node.js library, pointed at the collector over HTTP, delivers track, page and
 * identify calls that arrive intact in events.raw: on the embedded log and on Kafka.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { Analytics } from '@segment/analytics-node';
import { canonical, readTopic, type LogKind } from '../helpers.ts';
import { collectorFixture } from './fixture.ts';

for (const kind of ['embedded', 'kafka'] as LogKind[]) {
  describe(`@segment/analytics-node → collector → events.raw (${kind})`, () => {
    it('delivers track, page and identify intact', async () => {
      const f = await collectorFixture(kind);
      const errors: unknown[] = [];
      try {
        await f.app.listen({ host: '127.0.0.1', port: 0 });
        const { port } = f.app.server.address() as AddressInfo;
        const analytics = new Analytics({ writeKey: f.shopA.writeKeys[0]!, host: `http://127.0.0.1:${port}`, flushAt: 10, flushInterval: 50, maxRetries: 0 });
        analytics.on('error', (err) => errors.push(err));
        const when = new Date(Date.now() - 60_000);
        analytics.track({
          anonymousId: 'anon-sdk-1',
          userId: 'user-42',
          event: 'Order Completed',
          timestamp: when,
          properties: {
            order_id: 'order-1001',
            total: 127.5,
            revenue: 120.0,
            shipping: 7.5,
            currency: 'EUR',
            products: [
              { product_id: 'sku-1', name: 'Runner 2', price: 60, quantity: 2 },
              { product_id: 'sku-9', name: 'Socks', price: 0.1 + 0.2, quantity: 1 },
            ],
          },
          context: { page: { url: 'https://shop.example/checkout/done?utm_source=google&utm_medium=cpc' }, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36', ip: '203.0.113.5' },
        });
        analytics.page({ anonymousId: 'anon-sdk-1', name: 'Runner 2', category: 'Shoes', properties: { url: 'https://shop.example/p/runner-2', path: '/p/runner-2', title: 'Runner 2' } });
        analytics.identify({ anonymousId: 'anon-sdk-1', userId: 'user-42', traits: { email: 'jane@example.com', firstName: 'Jane' } });
        await analytics.closeAndFlush({ timeout: 10_000 });
        assert.deepEqual(errors, []);

        const records = await readTopic(f.log, f.topics.raw, (rs) => rs.length >= 3);
        assert.equal(records.length, 3);
        for (const r of records) assert.equal(r.key!.toString(), 'anon-sdk-1');
        const byEvent = new Map(records.map((r) => [canonical(r)['event'] as string, canonical(r)]));

        const order = byEvent.get('Order Completed')!;
        assert.equal(order['merchantId'], f.shopA.id);
        assert.equal(order['userId'], 'user-42');
        assert.equal(typeof order['messageId'], 'string');
        // The SDK sets sentAt on the batch; the event time is corrected for skew (none here: within a second of the original).
        assert.ok(Math.abs((order['timestamp'] as number) - when.getTime()) < 2_000, 'event time is the call time');
        assert.equal(typeof order['receivedAt'], 'number');
        const props = order['properties'] as Record<string, unknown>;
        assert.equal(props['order_id'], 'order-1001');
        assert.equal(props['currency'], 'EUR');
        assert.equal(props['total'], 12750);
        assert.equal(props['revenue'], 12000);
        assert.equal(props['shipping'], 750);
        const products = props['products'] as Array<Record<string, unknown>>;
        assert.deepEqual(
          products.map((p) => [p['product_id'], p['price'], p['quantity']]),
          [
            ['sku-1', 6000, 2],
            ['sku-9', 30, 1],
          ],
        );
        const ctx = order['context'] as Record<string, unknown>;
        assert.equal(ctx['ip'], '203.0.113.5');
        assert.equal((ctx['campaign'] as Record<string, unknown>)['source'], 'google');
        assert.equal((ctx['library'] as Record<string, unknown>)['name'], '@segment/analytics-node');

        const page = byEvent.get('Page Viewed')!;
        assert.equal(page['type'], 'page');
        assert.equal((page['properties'] as Record<string, unknown>)['name'], 'Runner 2');
        assert.equal((page['properties'] as Record<string, unknown>)['category'], 'Shoes');

        const ident = byEvent.get('Identify')!;
        assert.equal(ident['type'], 'identify');
        assert.deepEqual(ident['traits'], { email: 'jane@example.com', firstName: 'Jane' });
      } finally {
        await f.close();
      }
    });
  });
}
