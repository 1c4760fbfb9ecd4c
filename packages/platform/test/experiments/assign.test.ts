import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assignVariant, assignmentPoint, controlOf, validateExperiment, variantAt, type Experiment } from '../../src/experiments/assign.ts';
import { chiSquareGoodnessOfFit, chiSquareSf } from '../../src/experiments/stats.ts';
import { isPlatformError, PlatformErrors } from '../../src/errors.ts';

const AB: Experiment = { id: 'recs-ab-1', variants: [{ name: 'control', share: 0.5 }, { name: 'treatment', share: 0.5 }] };
const N = 100_000;
const ids = Array.from({ length: N }, (_, i) => `visitor-${i}`);

function invalidParameter(field: string) {
  return (err: unknown) => {
    assert.ok(isPlatformError(err, PlatformErrors.INVALID_PARAMETER), `expected SHOP_ERR_INVALID_PARAMETER, got ${String(err)}`);
    assert.equal(err.code, 'SHOP_ERR_INVALID_PARAMETER');
    assert.equal(err.details['field'], field);
    assert.ok(err.message.length > 20);
    return true;
  };
}

test('validateExperiment accepts a good definition, fills in the control, freezes it', () => {
  const e = validateExperiment({ id: 'recs-ab-1', variants: [{ name: 'control', share: 0.1 }, { name: 'a', share: 0.2 }, { name: 'b', share: 0.7 }] });
  assert.equal(e.control, 'control');
  assert.ok(Object.isFrozen(e) && Object.isFrozen(e.variants) && Object.isFrozen(e.variants[0]));
  // 0.1 + 0.2 + 0.7 = 1.0000000000000002 in floating point: within the tolerance.
  assert.equal(validateExperiment({ ...e, control: 'b' }).control, 'b');
  assert.equal(controlOf({ id: 'x', variants: [{ name: 'c', share: 0.5 }, { name: 't', share: 0.5 }] }), 'c');
  assert.equal(controlOf({ id: 'x', control: 't', variants: [{ name: 'c', share: 0.5 }, { name: 't', share: 0.5 }] }), 't');
});

test('validateExperiment refuses bad definitions with SHOP_ERR_INVALID_PARAMETER naming the field', () => {
  const v = [{ name: 'control', share: 0.5 }, { name: 'treatment', share: 0.5 }];
  assert.throws(() => validateExperiment(null), invalidParameter('experiment'));
  assert.throws(() => validateExperiment([]), invalidParameter('experiment'));
  assert.throws(() => validateExperiment({ variants: v }), invalidParameter('id'));
  assert.throws(() => validateExperiment({ id: '', variants: v }), invalidParameter('id'));
  assert.throws(() => validateExperiment({ id: 'a\u0000b', variants: v }), invalidParameter('id'));
  assert.throws(() => validateExperiment({ id: 'x'.repeat(129), variants: v }), invalidParameter('id'));
  assert.throws(() => validateExperiment({ id: 'e', variants: [{ name: 'only', share: 1 }] }), invalidParameter('variants'));
  assert.throws(() => validateExperiment({ id: 'e', variants: 'ab' }), invalidParameter('variants'));
  assert.throws(() => validateExperiment({ id: 'e', variants: [{ name: 'a', share: 0.5 }, 7] }), invalidParameter('variants[1]'));
  assert.throws(() => validateExperiment({ id: 'e', variants: [{ name: 'a', share: 0.5 }, { name: 'a', share: 0.5 }] }), invalidParameter('variants[1].name'));
  assert.throws(() => validateExperiment({ id: 'e', variants: [{ name: 'a b', share: 0.5 }, { name: 'c', share: 0.5 }] }), invalidParameter('variants[0].name'));
  assert.throws(() => validateExperiment({ id: 'e', variants: [{ name: 'a', share: 0 }, { name: 'b', share: 1 }] }), invalidParameter('variants[0].share'));
  assert.throws(() => validateExperiment({ id: 'e', variants: [{ name: 'a', share: NaN }, { name: 'b', share: 1 }] }), invalidParameter('variants[0].share'));
  assert.throws(() => validateExperiment({ id: 'e', variants: [{ name: 'a', share: '0.5' }, { name: 'b', share: 0.5 }] }), invalidParameter('variants[0].share'));
  assert.throws(
    () => validateExperiment({ id: 'e', variants: [{ name: 'a', share: 0.5 }, { name: 'b', share: 0.4 }] }),
    (err: unknown) => invalidParameter('variants')(err) && /add up to 1; they add up to 0\.9/.test((err as Error).message),
  );
  assert.throws(() => validateExperiment({ id: 'e', variants: v, control: 'nope' }), invalidParameter('control'));
  const many = Array.from({ length: 21 }, (_, i) => ({ name: `v${i}`, share: 1 / 21 }));
  assert.throws(() => validateExperiment({ id: 'e', variants: many }), invalidParameter('variants'));
  // assignVariant validates too, and checks the visitor id.
  assert.throws(() => assignVariant({ id: 'e', variants: [{ name: 'a', share: 0.7 }, { name: 'b', share: 0.7 }] }, 'v1'), invalidParameter('variants'));
  assert.throws(() => assignVariant(AB, ''), invalidParameter('visitorId'));
});

test('assignment points are pinned: SHA-256 of "shopstream-ab-v1" NUL experiment NUL visitor (checked with Python hashlib)', () => {
  // python3: int.from_bytes(hashlib.sha256(("shopstream-ab-v1\0" + e + "\0" + v).encode()).digest()[:7], 'big') >> 3) / 2**53
  const pinned: [string, string, number][] = [
    ['recs-ab-1', 'visitor-1', 0.5021717133902647],
    ['recs-ab-1', 'visitor-2', 0.5017764182584475],
    ['recs-ab-2', 'visitor-1', 0.5315640461516635],
    ['home.recs:2025-06', '7f1c9a4e-2b1d-4c3a-9f0e-5d6c7b8a9e0f', 0.13805989237631833],
    ['recs-ab-1', 'user:42', 0.38570687816115223],
    ['recs-ab-1', 'ünïcødé-訪問者', 0.7887942190440518],
  ];
  for (const [e, v, p] of pinned) assert.equal(assignmentPoint(e, v), p, `${e} / ${v}`);
  assert.equal(assignVariant(AB, 'visitor-1'), 'treatment'); // 0.5022 ≥ 0.5
  assert.equal(assignVariant(AB, 'user:42'), 'control'); // 0.3857 < 0.5
});

test('assignment is deterministic: same answer on every call and for an equal definition in another object', () => {
  const copy: Experiment = JSON.parse(JSON.stringify(AB)) as Experiment;
  for (const id of ids.slice(0, 2000)) {
    const a = assignVariant(AB, id);
    assert.equal(assignVariant(AB, id), a);
    assert.equal(assignVariant(copy, id), a);
  }
});

test('variants follow the cumulative shares in declared order; the last variant takes the rounding', () => {
  const e: Experiment = { id: 'e', variants: [{ name: 'a', share: 0.1 }, { name: 'b', share: 0.2 }, { name: 'c', share: 0.7 }] };
  assert.equal(variantAt(e, 0), 'a');
  assert.equal(variantAt(e, 0.0999), 'a');
  assert.equal(variantAt(e, 0.1), 'b');
  assert.equal(variantAt(e, 0.3), 'b'); // b ends at 0.1 + 0.2 = 0.30000000000000004 in floating point
  assert.equal(variantAt(e, 0.3000001), 'c');
  assert.equal(variantAt(e, 0.9999999999999999), 'c');
});

test('assignment points are uniform: chi-square over 100 bins of 100,000 visitors', () => {
  const bins = new Array<number>(100).fill(0);
  let sum = 0;
  for (const id of ids) {
    const u = assignmentPoint(AB.id, id);
    assert.ok(u >= 0 && u < 1);
    sum += u;
    bins[Math.floor(u * 100)]!++;
  }
  const g = chiSquareGoodnessOfFit(bins, new Array<number>(100).fill(1));
  assert.equal(g.df, 99);
  assert.ok(g.pValue > 0.001, `chi-square ${g.statistic.toFixed(1)} on 99 df, p = ${g.pValue}`);
  assert.ok(Math.abs(sum / N - 0.5) < 4 * Math.sqrt(1 / 12 / N), `mean ${sum / N}`);
});

test('variant counts match unequal shares (chi-square), for 100,000 visitors', () => {
  const e: Experiment = { id: 'recs-3way', variants: [{ name: 'control', share: 0.5 }, { name: 'fbt', share: 0.3 }, { name: 'oyml', share: 0.2 }] };
  const counts = new Map<string, number>();
  for (const id of ids) {
    const v = assignVariant(e, id);
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const observed = e.variants.map((v) => counts.get(v.name) ?? 0);
  const g = chiSquareGoodnessOfFit(observed, [0.5, 0.3, 0.2]);
  assert.ok(g.pValue > 0.001, `counts ${observed.join('/')}, p = ${g.pValue}`);
});

test('assignments are independent across experiments: 2×2 contingency and correlation of the points', () => {
  const other: Experiment = { id: 'recs-ab-2', variants: AB.variants };
  const table = [
    [0, 0],
    [0, 0],
  ];
  let sx = 0;
  let sy = 0;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  let changed = 0;
  for (const id of ids) {
    const a = assignVariant(AB, id) === 'control' ? 0 : 1;
    const b = assignVariant(other, id) === 'control' ? 0 : 1;
    table[a]![b]!++;
    if (a !== b) changed++;
    const x = assignmentPoint(AB.id, id);
    const y = assignmentPoint(other.id, id);
    sx += x;
    sy += y;
    sxy += x * y;
    sxx += x * x;
    syy += y * y;
  }
  // Pearson chi-square of independence on the 2×2 table (1 df).
  const rows = table.map((r) => r[0]! + r[1]!);
  const cols = [table[0]![0]! + table[1]![0]!, table[0]![1]! + table[1]![1]!];
  let chi = 0;
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      const expected = (rows[i]! * cols[j]!) / N;
      chi += (table[i]![j]! - expected) ** 2 / expected;
    }
  }
  const p = chiSquareSf(chi, 1);
  assert.ok(p > 0.001, `table ${JSON.stringify(table)}, chi-square ${chi}, p = ${p}`);
  const r = (sxy / N - (sx / N) * (sy / N)) / Math.sqrt((sxx / N - (sx / N) ** 2) * (syy / N - (sy / N) ** 2));
  assert.ok(Math.abs(r) < 4 / Math.sqrt(N), `correlation ${r}`);
  // About half the visitors land in the other arm of the other experiment.
  assert.ok(Math.abs(changed / N - 0.5) < 0.01, `changed ${changed}`);
});
