/** Shared plans for the simulator tests (a fixed endTime keeps them deterministic). */
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
