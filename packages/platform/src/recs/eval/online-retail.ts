/**
 * The Online Retail data set (docs/online-retail.md) as baskets for the offline evaluation of the
 * recommenders: one basket per invoice, its distinct products. Read with DuckDB (about 1.5 s for
 * the whole file; csv-parse takes ~15 s). I/O: kept out of the models.
 *
 * Cleaning (what a shopper's basket is; the same for the model and the baselines):
 * - cancellations (`C…`) and bad-debt adjustments (`A…`) are not orders;
 * - a line is a product when its quantity is ≥ 1, its price > 0 (zero-priced lines are stock
 *   adjustments: "check", "found", "amazon", no description…) and its StockCode is not a
 *   non-product code (`RETAIL_NON_PRODUCT_CODES`: postage, manual, discount, fees, samples, gift
 *   vouchers `gift_0001_*`);
 * - StockCodes are upper-cased (`85123a` and `85123A` are the same product in the file);
 * - the basket is the invoice's distinct products, in the order of their first line.
 * An invoice left with no product is dropped. Its time is its earliest line's (Europe/London).
 */
import { DuckDBInstance } from '@duckdb/node-api';

export const RETAIL_DATA = '/work/shared/data/online-retail/online-retail.csv.gz';

/** StockCodes of the file that are no product (fees, postage, adjustments), upper-cased. */
export const RETAIL_NON_PRODUCT_CODES: readonly string[] = Object.freeze(['POST', 'DOT', 'M', 'C2', 'D', 'S', 'B', 'BANK CHARGES', 'AMAZONFEE', 'CRUK', 'PADS']);

export interface Basket {
  invoiceNo: string;
  /** Local time (Europe/London) `YYYY-MM-DD HH:MM:SS`, the earliest of its lines. */
  date: string;
  /** Epoch ms (UTC). */
  at: number;
  /** Distinct products, in order of first line. */
  products: string[];
}

export function retailBasketsSql(path: string): string {
  const codes = RETAIL_NON_PRODUCT_CODES.map((c) => `'${c}'`).join(', ');
  return `
WITH src AS (
  SELECT row_number() OVER () AS line_no, *
  FROM read_csv('${path.replaceAll("'", "''")}', header = true, all_varchar = true)
),
lines AS (
  SELECT line_no, InvoiceNo AS invoice_no, upper(StockCode) AS product, InvoiceDate AS invoice_date
  FROM src
  WHERE NOT (InvoiceNo LIKE 'C%' OR InvoiceNo LIKE 'A%')
    AND CAST(Quantity AS BIGINT) >= 1
    AND CAST(UnitPrice AS DECIMAL(18, 3)) > 0
    AND upper(StockCode) NOT IN (${codes})
    AND NOT starts_with(upper(StockCode), 'GIFT_')
),
firsts AS (
  SELECT invoice_no, product, min(line_no) AS first_line FROM lines GROUP BY ALL
),
dates AS (
  SELECT InvoiceNo AS invoice_no, min(InvoiceDate) AS invoice_date FROM src GROUP BY ALL
)
SELECT f.invoice_no, d.invoice_date,
       epoch_ms(timezone('Europe/London', CAST(d.invoice_date AS TIMESTAMP))) AS at,
       list(f.product ORDER BY f.first_line) AS products
FROM firsts f JOIN dates d USING (invoice_no)
GROUP BY ALL
ORDER BY d.invoice_date, f.invoice_no`;
}

/** Every basket of the file, by time then invoice number. */
export async function readRetailBaskets(path = RETAIL_DATA): Promise<Basket[]> {
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    try {
      const reader = await connection.runAndReadAll(retailBasketsSql(path));
      // One string per product id (the rows repeat them), as a stream of events would not, but it saves memory.
      const ids = new Map<string, string>();
      const intern = (id: string): string => {
        const known = ids.get(id);
        if (known !== undefined) return known;
        ids.set(id, id);
        return id;
      };
      return reader.getRowsJS().map((r) => ({
        invoiceNo: r[0] as string,
        date: r[1] as string,
        at: Number(r[2] as bigint),
        products: (r[3] as string[]).map(intern),
      }));
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}
