/**
 * The pipeline benches' inputs (bench/pipeline.bench.ts, bench/pipeline-task.bench.ts), as the
 * collector writes them: `events.validations` for the validated visitors, then `events.raw` with
 * ~700 B Segment messages of 5,000 visitors (90% validated, 5% crawlers, 5% never validated and so
 * held, then bots; 1% duplicate retries), record time = arrival, 20 ms apart.
 */
import type { Header } from '../packages/streams/src/index.ts';
import { hashUserAgent, rawRecordHeaders } from '../packages/platform/src/contract/index.ts';
import { BENCH_UA, segmentMessage } from './common.ts';

export const VISITORS = 5000;
const CRAWLER = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';

export interface InputRecord {
  key: Buffer;
  value: Buffer;
  timestamp: number;
  headers: Header[];
}

/** The validations of the validated visitors, at `t0` - 1 s. */
export function pipelineValidations(t0: number): InputRecord[] {
  const validations: InputRecord[] = [];
  for (let v = 0; v < VISITORS; v++) {
    if (v % 20 === 0 || v % 20 === 1) continue; // crawlers (0) and never-validated visitors (1)
    const value = { v: 1, merchantId: 'bench', anonymousId: `visitor-${v}`, validatedAt: t0 - 1000, validUntil: t0 + 86_400_000, tokenId: `t${v}`, uaHash: hashUserAgent(BENCH_UA) };
    validations.push({ key: Buffer.from(`visitor-${v}`), value: Buffer.from(JSON.stringify(value)), timestamp: t0 - 1000, headers: [] });
  }
  return validations;
}

/** Event `i` (0-based), arriving at `t0` + 20 ms × i; every 100th is a retry of the one before. */
export function pipelineEvent(i: number, t0: number): InputRecord {
  const j = i % 100 === 99 ? i - 1 : i;
  const v = j % VISITORS;
  const visitor = `visitor-${v}`;
  const receivedAt = t0 + i * 20;
  const headers = rawRecordHeaders({ merchantId: 'bench', defaultCurrency: 'USD', receivedAt }, undefined, false, false);
  const m = segmentMessage(j, visitor, t0 + j * 20, v % 20 === 0 ? CRAWLER : BENCH_UA);
  return { key: Buffer.from(visitor), value: Buffer.from(JSON.stringify(m)), timestamp: receivedAt, headers };
}
