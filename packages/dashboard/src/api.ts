/** Calls the platform's API with the merchant's read token (`Authorization: Bearer …`). */
import type { FunnelResponse, Metric, MetricsResponse, ProductMetric, ProductsResponse, StatusResponse, Granularity, Dimension } from './types.ts';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
  /** The token was refused: unknown (401) or another merchant's (403). */
  get refused(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

type Params = Record<string, string | number | undefined>;

export interface MetricsQuery {
  /** `all`: one bucket over the whole range. */
  granularity: Granularity | 'all';
  metrics: readonly Metric[];
  from?: string;
  to?: string;
  groupBy?: readonly Dimension[];
  filter?: string;
}

export class Api {
  readonly merchant: string;
  private readonly token: string;

  constructor(merchant: string, token: string) {
    this.merchant = merchant;
    this.token = token;
  }

  async get<T>(path: string, params: Params = {}): Promise<T> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
    const url = `/v1/merchants/${encodeURIComponent(this.merchant)}${path}${q.toString() === '' ? '' : `?${q}`}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 15_000);
    let res: Response;
    try {
      res = await fetch(url, { headers: { authorization: `Bearer ${this.token}`, accept: 'application/json' }, signal: abort.signal, cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, 'NETWORK', `The platform did not answer (${err instanceof Error ? err.message : String(err)}).`);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      let code = `HTTP_${res.status}`;
      let message = res.statusText || `HTTP ${res.status}`;
      try {
        const body = (await res.json()) as { error?: { code?: string; message?: string } };
        code = body.error?.code ?? code;
        message = body.error?.message ?? message;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiError(res.status, code, message);
    }
    return (await res.json()) as T;
  }

  metrics(q: MetricsQuery): Promise<MetricsResponse> {
    return this.get('/metrics', {
      granularity: q.granularity,
      metrics: q.metrics.join(','),
      from: q.from,
      to: q.to,
      group_by: q.groupBy?.join(','),
      filter: q.filter,
    });
  }

  funnel(from: string, to: string, groupBy?: Dimension): Promise<FunnelResponse> {
    return this.get('/funnel', { from, to, group_by: groupBy });
  }

  topProducts(metric: ProductMetric, from: string, to: string, limit = 10): Promise<ProductsResponse> {
    return this.get('/products/top', { metric, from, to, limit });
  }

  status(): Promise<StatusResponse> {
    return this.get('/status');
  }
}
