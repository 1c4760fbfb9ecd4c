import { planSimulation } from './plan.ts';
let S = 0, O = 0;
for (const seed of [1, 2, 3, 4, 5, 6]) {
const { truth } = planSimulation({ seed, visitorsPerMerchant: 3000, endTime: Date.UTC(2026, 0, 10, 12), merchants: [
  { id: 'shop-a', writeKey: 'wk_a', currency: 'EUR' }, { id: 'shop-b', writeKey: 'wk_b', currency: 'USD' }] });
S += truth.totals.sessions; O += truth.totals.orders;
console.log(seed, truth.totals.sessions, truth.totals.orders, truth.totals.conversion.toFixed(4));
}
console.log(O / S);
