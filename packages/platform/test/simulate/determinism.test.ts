/** A plan is a pure function of its options: the same seed gives the same bytes, another seed others. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { planSimulation, type SimulationOptions } from '../../src/simulate/plan.ts';
import { END, MERCHANTS } from './fixture.ts';

const options = (seed: number): SimulationOptions => ({ seed, merchants: MERCHANTS, visitorsPerMerchant: 150, endTime: END });
const digest = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex');

describe('simulation plan determinism', () => {
  it('gives an identical plan and truth for the same seed, without Math.random', () => {
    const random = Math.random;
    Math.random = () => {
      throw new Error('the simulator must not use Math.random');
    };
    try {
      const a = planSimulation(options(42));
      const b = planSimulation(options(42));
      assert.deepEqual(a.actions, b.actions);
      assert.deepEqual(a.truth, b.truth);
      assert.equal(digest(a), digest(b));
    } finally {
      Math.random = random;
    }
  });

  it('gives a different plan for a different seed', () => {
    const a = planSimulation(options(42));
    const b = planSimulation(options(43));
    assert.notEqual(digest(a.actions), digest(b.actions));
    assert.notEqual(digest(a.truth.filtered), digest(b.truth.filtered));
    assert.notDeepEqual(a.truth.bundles, b.truth.bundles);
  });

  it('keeps a merchant traffic independent of the other merchants', () => {
    const alone = planSimulation({ ...options(42), merchants: [MERCHANTS[0]!] });
    const together = planSimulation(options(42));
    assert.deepEqual(alone.truth.merchants['shop-a'], together.truth.merchants['shop-a']);
    assert.deepEqual(alone.truth.visitors['shop-a'], together.truth.visitors['shop-a']);
  });

  it('gives a JSON-serialisable truth', () => {
    const { truth } = planSimulation(options(1));
    assert.deepEqual(JSON.parse(JSON.stringify(truth)), truth);
  });

  it('refuses options it cannot honour', () => {
    assert.throws(() => planSimulation({ merchants: [] }), /at least one merchant/);
    assert.throws(() => planSimulation({ merchants: [{ id: 'x', writeKey: 'wk_x_000000', currency: 'EURO' }] }), /ISO 4217/);
    assert.throws(() => planSimulation({ merchants: [MERCHANTS[0]!, MERCHANTS[0]!] }), /twice/);
    assert.throws(() => planSimulation({ merchants: MERCHANTS, botShare: 1 }), /botShare/);
  });
});
