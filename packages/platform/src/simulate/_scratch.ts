import { planSimulation } from './plan.ts';
const t0 = Date.now();
const { actions, truth } = planSimulation({ seed: 42, endTime: Date.UTC(2026, 0, 10, 12), merchants: [
  { id: 'shop-a', writeKey: 'wk_a', currency: 'EUR' }, { id: 'shop-b', writeKey: 'wk_b', currency: 'USD' }, { id: 'shop-c', writeKey: 'wk_c', currency: 'JPY' }] });
console.log(Date.now() - t0, 'ms', actions.length);
console.log(JSON.stringify(truth.totals, null, 1));
console.log(JSON.stringify(truth.merchants, null, 1));
console.log(truth.rejected, truth.duplicates, truth.orderResends, JSON.stringify(truth.generated));
console.log(JSON.stringify(truth).length);
