/** Shared plans for the simulator tests (a fixed endTime keeps them deterministic), and a fake API to send them to. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimAction, SimulationOptions } from '../../src/simulate/plan.ts';

export const END = Date.UTC(2026, 0, 15, 12, 0, 0);

export const MERCHANTS: SimulationOptions['merchants'] = [
  { id: 'shop-a', writeKey: 'wk_shop_a_0001', currency: 'EUR' },
  { id: 'shop-b', writeKey: 'wk_shop_b_0002', currency: 'USD' },
  { id: 'shop-c', writeKey: 'wk_shop_c_0003', currency: 'JPY' },
];

export function merchantOfKey(merchants: SimulationOptions['merchants'] = MERCHANTS): Map<string, { id: string; currency: string }> {
  return new Map(merchants.map((m) => [m.writeKey, { id: m.id, currency: m.currency }]));
}

/** The messages of the plan in send order, with the merchant they are sent for. */
export function sentMessages(actions: readonly SimAction[], merchants = MERCHANTS): Array<{ merchantId: string; message: Record<string, unknown> }> {
  const byKey = merchantOfKey(merchants);
  const out: Array<{ merchantId: string; message: Record<string, unknown> }> = [];
  for (const a of actions) if (a.kind === 'batch') for (const message of a.body.batch) out.push({ merchantId: byKey.get(a.writeKey)!.id, message });
  return out;
}

/** A request as a fake API received it. */
export interface Received {
  at: number;
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface FakeApi {
  /** `http://127.0.0.1:<port>` */
  base: string;
  close(): Promise<void>;
}

/** A local HTTP server standing in for the platform's API: `handle` answers each request once its body is read. */
export async function startFakeApi(handle: (r: Received, res: ServerResponse, req: IncomingMessage) => void): Promise<FakeApi> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      handle({ at: Date.now(), method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }, res, req);
    });
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
