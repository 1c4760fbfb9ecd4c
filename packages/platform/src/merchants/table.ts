/**
 * The merchants table: the compacted `merchants` topic read into memory, kept up to date by tailing
 * the topic. Every collector instance holds the whole table (merchants are few and small), so a
 * write key is checked without a network call.
 *
 * Writes go through `putMerchant`, which produces to the topic; the table sees them when it reads
 * them back, like any other instance would.
 */
import { randomBytes } from 'node:crypto';
import type { Log, LogReader } from '@shopstream/streams';
import { PlatformError, PlatformErrors } from '../errors.ts';
import type { Merchant, MerchantLookup } from './model.ts';

export class MerchantTable implements MerchantLookup {
  private readonly merchants = new Map<string, Merchant>();
  private readonly keys = new Map<string, { id: string; revoked: boolean; server: boolean }>();
  private readonly tokens = new Map<string, string>();
  private reader: LogReader | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly waiters: Array<{ offset: number; resolve: () => void }> = [];
  private position = 0;
  private readonly log: Log;
  private readonly topic: string;

  /** `topic`: the merchants topic (see topicNames()). */
  constructor(log: Log, topic: string) {
    this.log = log;
    this.topic = topic;
  }

  /** Reads the topic to its end, then keeps tailing it in the background. */
  async start(): Promise<void> {
    this.reader = this.log.createReader({ clientId: 'merchants-table' });
    this.reader.assign([{ topic: this.topic, partition: 0, offset: 0 }]);
    const [end] = await this.log.admin.listOffsets([{ topic: this.topic, partition: 0 }], 'latest');
    this.running = true;
    const caughtUp = this.waitFor(end?.offset ?? 0);
    this.loop = this.tail();
    await caughtUp;
  }

  /** Resolves once the table has applied every record before `offset`. */
  waitFor(offset: number): Promise<void> {
    if (this.position >= offset) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ offset, resolve }));
  }

  private async tail(): Promise<void> {
    const reader = this.reader!;
    while (this.running) {
      let records;
      try {
        records = await reader.poll(500);
      } catch {
        // The log is briefly unavailable (a broker restart): keep serving the table we have.
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const r of records) this.apply(r.key?.toString('utf8') ?? '', r.value);
      this.position = reader.position({ topic: this.topic, partition: 0 });
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        if (this.waiters[i]!.offset <= this.position) {
          this.waiters[i]!.resolve();
          this.waiters.splice(i, 1);
        }
      }
    }
  }

  private apply(id: string, value: Buffer | null): void {
    const previous = this.merchants.get(id);
    if (previous) {
      for (const k of [...previous.writeKeys, ...previous.revokedWriteKeys, ...(previous.serverWriteKeys ?? [])]) this.keys.delete(k);
      for (const t of previous.readTokens) this.tokens.delete(t);
      this.merchants.delete(id);
    }
    if (value === null) return;
    let m: Merchant;
    try {
      m = JSON.parse(value.toString('utf8')) as Merchant;
    } catch {
      return; // Not ours to crash on; `merchants list` shows what is readable.
    }
    // Records written before server write keys existed have none.
    if (!Array.isArray(m.serverWriteKeys)) m = { ...m, serverWriteKeys: [] };
    this.merchants.set(id, m);
    for (const k of m.revokedWriteKeys ?? []) this.keys.set(k, { id, revoked: true, server: false });
    for (const k of m.writeKeys ?? []) this.keys.set(k, { id, revoked: false, server: false });
    for (const k of m.serverWriteKeys!) this.keys.set(k, { id, revoked: false, server: true });
    for (const t of m.readTokens ?? []) this.tokens.set(t, id);
  }

  byWriteKey(writeKey: string): { merchant: Merchant; revoked: boolean; server: boolean } | undefined {
    const hit = this.keys.get(writeKey);
    if (!hit) return undefined;
    const merchant = this.merchants.get(hit.id);
    return merchant ? { merchant, revoked: hit.revoked, server: hit.server } : undefined;
  }

  byReadToken(token: string): Merchant | undefined {
    const id = this.tokens.get(token);
    return id === undefined ? undefined : this.merchants.get(id);
  }

  byId(id: string): Merchant | undefined {
    return this.merchants.get(id);
  }

  list(): Merchant[] {
    return [...this.merchants.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  get size(): number {
    return this.merchants.size;
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.reader?.close();
  }
}

/** Writes a merchant to the topic and waits until `table` (when given) has read it back. */
export async function putMerchant(log: Log, topic: string, merchant: Merchant, table?: MerchantTable): Promise<void> {
  validateMerchant(merchant);
  const producer = log.createProducer({ clientId: 'merchants-writer' });
  try {
    const [meta] = await producer.send([{ topic, key: Buffer.from(merchant.id), value: Buffer.from(JSON.stringify(merchant)) }]);
    if (table && meta) await table.waitFor(meta.offset + 1);
  } finally {
    await producer.close();
  }
}

export function newWriteKey(): string {
  return `wk_${randomBytes(18).toString('base64url')}`;
}

/** A server write key: `sk_` (secret, for backends; write keys `wk_` are public). */
export function newServerWriteKey(): string {
  return `sk_${randomBytes(24).toString('base64url')}`;
}

/**
 * Adds the server write keys a config file names to a merchant (never removes any: `merchants
 * rotate-key --server-key` revokes). Refuses a key that was rotated out, or that is the merchant's
 * browser write key, so that a stale file cannot bring a revoked key back.
 */
export function withConfiguredServerKeys(m: Merchant, configured: readonly string[] | undefined): Merchant {
  const current = m.serverWriteKeys ?? [];
  if (configured === undefined || configured.length === 0) return m;
  for (const k of configured) {
    if (m.revokedWriteKeys.includes(k)) {
      throw new PlatformError(
        PlatformErrors.CONFIG,
        `merchant ${m.id}: a serverWriteKeys entry of the config file was rotated out with \`shopstream merchants rotate-key --server-key\`; put the current key in the file (see \`shopstream merchants list --show-secrets\`).`,
      );
    }
    if (m.writeKeys.includes(k)) throw new PlatformError(PlatformErrors.CONFIG, `merchant ${m.id}: a key cannot be both a writeKey and a serverWriteKeys entry.`);
  }
  const added = configured.filter((k, i) => !current.includes(k) && configured.indexOf(k) === i);
  return added.length === 0 ? m : { ...m, serverWriteKeys: [...current, ...added] };
}

export function newReadToken(): string {
  return `rt_${randomBytes(24).toString('base64url')}`;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Checks the fields a merchant must have; throws SHOP_ERR_CONFIG naming the field. */
export function validateMerchant(m: Merchant): void {
  const fail = (msg: string): never => {
    throw new PlatformError(PlatformErrors.CONFIG, `merchant ${JSON.stringify(m.id)}: ${msg}`);
  };
  if (typeof m.id !== 'string' || !ID.test(m.id)) fail('id must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit');
  if (!Array.isArray(m.writeKeys) || m.writeKeys.some((k) => typeof k !== 'string' || k.length < 8)) fail('writeKeys must be strings of at least 8 characters');
  if (m.serverWriteKeys !== undefined && (!Array.isArray(m.serverWriteKeys) || m.serverWriteKeys.some((k) => typeof k !== 'string' || k.length < 8))) {
    fail('serverWriteKeys must be strings of at least 8 characters');
  }
  if (m.serverWriteKeys?.some((k) => m.writeKeys.includes(k))) fail('a key cannot be both a write key and a server write key');
  if (!Array.isArray(m.readTokens) || m.readTokens.some((k) => typeof k !== 'string' || k.length < 8)) fail("readTokens must be strings of at least 8 characters");
  try {
    new Intl.DateTimeFormat('en', { timeZone: m.timezone });
  } catch {
    fail(`timezone ${JSON.stringify(m.timezone)} is not an IANA time zone (for example Europe/Paris)`);
  }
  if (typeof m.currency !== 'string' || !/^[A-Z]{3}$/.test(m.currency)) fail('currency must be an ISO 4217 code such as EUR');
  if (m.meta && (typeof m.meta.pixelId !== 'string' || typeof m.meta.accessToken !== 'string')) fail('meta needs pixelId and accessToken');
  if (m.rateLimit && !(m.rateLimit.eventsPerSecond > 0 && m.rateLimit.burst > 0)) fail('rateLimit needs positive eventsPerSecond and burst');
}
