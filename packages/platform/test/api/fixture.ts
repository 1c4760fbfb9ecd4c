/** What the read-API tests share: merchants with one read token, and a Fastify app that answers errors as the platform does. */
import Fastify, { type FastifyInstance } from 'fastify';
import { PlatformError } from '../../src/errors.ts';
import type { Merchant } from '../../src/merchants/model.ts';

export function readMerchant(id: string, readToken: string): Merchant {
  return { id, writeKeys: [`wk_${id}`], revokedWriteKeys: [], readTokens: [readToken], timezone: 'Europe/Paris', currency: 'EUR', createdAt: 0, updatedAt: 0 };
}

export interface MerchantLookups {
  merchantById: (id: string) => Merchant | undefined;
  merchantByReadToken: (token: string) => Merchant | undefined;
}

/** A ready app with the routes `register` adds, authenticating against `merchants`. */
export async function apiServer(merchants: readonly Merchant[], register: (app: FastifyInstance, lookups: MerchantLookups) => void): Promise<FastifyInstance> {
  const app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    const e = err instanceof PlatformError ? err : undefined;
    return reply.code(e?.status ?? 500).send({ error: { code: e?.code ?? 'SHOP_ERR_INTERNAL', message: (err as Error).message } });
  });
  register(app, {
    merchantById: (id) => merchants.find((m) => m.id === id),
    merchantByReadToken: (t) => merchants.find((m) => m.readTokens.includes(t)),
  });
  await app.ready();
  return app;
}
