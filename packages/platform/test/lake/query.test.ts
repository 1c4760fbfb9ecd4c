/**
 * `shopstream query`: SQL over a lake laid out as the sink writes it (hive folders by merchant, date
 * and hour), in the three formats; statements that could write are refused; errors have a code and
 * a non-zero exit.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { main } from '../../src/cli/main.ts';
import { formatResult, queryLake } from '../../src/lake/query.ts';
import { tempDir } from '../helpers.ts';

describe('shopstream query', () => {
  const t = tempDir();
  before(async () => {
    // Three hive partitions of events.raw, as the sink names them.
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    const files: Array<[string, string, number, number]> = [
      ['m1', '2026-11-25', 23, 3],
      ['m1', '2026-11-26', 0, 2],
      ['m2', '2026-11-26', 0, 4],
    ];
    let offset = 0;
    for (const [merchant, dt, hour, n] of files) {
      const dir = join(t.dir, 'lake', 'events.raw', `merchant=${merchant}`, `dt=${dt}`, `hour=${String(hour).padStart(2, '0')}`);
      mkdirSync(dir, { recursive: true });
      await c.run(
        `COPY (SELECT ${offset} + i AS "offset", 0 AS "partition", '${merchant}' AS merchant, 'id-' || (${offset} + i) AS message_id, 'Page Viewed' AS event FROM range(${n}) t(i)) ` +
          `TO '${join(dir, `events.raw+0+${String(offset).padStart(19, '0')}.parquet`)}' (FORMAT PARQUET)`,
      );
      offset += n;
    }
    c.closeSync();
    db.closeSync();
  });
  after(() => t.cleanup());

  it('counts per merchant per day, with hive columns', async () => {
    const r = await queryLake({ dir: t.dir, sql: 'SELECT merchant, dt::VARCHAR AS day, count(*) AS events FROM events GROUP BY ALL ORDER BY ALL' });
    assert.deepEqual(r.views, ['events']);
    assert.deepEqual(r.columns, ['merchant', 'day', 'events']);
    assert.deepEqual(r.rows, [
      ['m1', '2026-11-25', 3],
      ['m1', '2026-11-26', 2],
      ['m2', '2026-11-26', 4],
    ]);
    assert.equal(formatResult(r, 'csv'), 'merchant,day,events\nm1,2026-11-25,3\nm1,2026-11-26,2\nm2,2026-11-26,4');
    assert.deepEqual(JSON.parse(formatResult(r, 'json'))[2], { merchant: 'm2', day: '2026-11-26', events: 4 });
    assert.match(formatResult(r, 'table'), /^merchant │ day {8}│ events\n/);
  });

  it('prunes partitions on merchant and dt (only the matching files are read)', async () => {
    const r = await queryLake({ dir: t.dir, sql: "EXPLAIN ANALYZE SELECT count(*) FROM events WHERE merchant = 'm2' AND dt = DATE '2026-11-26'" });
    const plan = r.rows.map((row) => row.join(' ')).join('\n');
    assert.match(plan, /Total Files Read: 1/);
  });

  it('refuses statements that could write, and reports SQL errors with a code', async () => {
    for (const sql of [`COPY (SELECT 1) TO '${join(t.dir, 'x.csv')}'`, 'CREATE TABLE x AS SELECT 1', `ATTACH '${join(t.dir, 'x.db')}'`, 'INSERT INTO events VALUES (1)']) {
      await assert.rejects(queryLake({ dir: t.dir, sql }), { code: 'SHOP_ERR_INVALID_REQUEST' }, sql);
    }
    assert.deepEqual(readdirSync(t.dir).sort(), ['lake']);
    await assert.rejects(queryLake({ dir: t.dir, sql: 'SELECT * FROM nowhere' }), /nowhere/);
  });

  it('the command prints a table, and exits 1 with the error on bad SQL', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) };
    assert.equal(await main(['query', '--data-dir', t.dir, '--format', 'csv', 'SELECT count(*) AS n FROM events'], io), 0);
    assert.deepEqual(out, ['n\n9']);
    assert.equal(await main(['query', '--data-dir', t.dir, 'SELEC 1'], io), 1);
    assert.match(err.join('\n'), /^error SHOP_ERR_INVALID_REQUEST: Parser Error/);
  });
});
