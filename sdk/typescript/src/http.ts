import { randomUUID } from "node:crypto";
import { OfferHubError } from "./errors.js";

/** Options of {@link OfferHubSDK}. */
export interface ClientOptions {
  /** Base URL of the API, e.g. `http://localhost:4000/api/v1` (a URL without `/api/v1` gets it appended). */
  apiUrl: string;
  /** An API key `ohk_live_…` (`offerhub keys create`). */
  apiKey: string;
  /** Per-request timeout in milliseconds (default 30 000). */
  timeoutMs?: number;
  /** Retries after the first attempt for network errors, 429 and 5xx (default 3). */
  maxRetries?: number;
  /** How long a 202 answer (a chain operation still settling) is waited for, in ms (default 120 000). */
  settleTimeoutMs?: number;
  /** A `fetch` implementation (default the global one). */
  fetch?: typeof fetch;
}

/** Options every call accepts. */
export interface RequestOptions {
  /** The `Idempotency-Key` of a mutation (generated when omitted; reused by every retry). */
  idempotencyKey?: string;
  /** Abort the call. */
  signal?: AbortSignal;
  /**
   * On a 202 (a chain operation still settling), wait for its saga and resolve with the
   * settled resource (default `true`). With `false` the 202's `{...order, saga}` is returned.
   */
  waitForSettlement?: boolean;
}

/** A decoded success answer. */
export interface ApiResponse<T> {
  status: number;
  data: T;
  meta: { requestId: string; timestamp: string; pagination?: { hasMore: boolean; nextCursor: string | null } };
  headers: Headers;
}

type Query = object;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/** Backoff before retry `n` (0-based): 250 ms × 2ⁿ with jitter, at most 8 s. */
export function backoffMs(n: number): number {
  const base = Math.min(8000, 250 * 2 ** n);
  return base / 2 + Math.random() * (base / 2);
}

/** `Retry-After` in seconds (delta or HTTP date), or undefined. */
function retryAfterSeconds(h: string | null): number | undefined {
  if (!h) return undefined;
  const n = Number(h);
  if (Number.isFinite(n)) return Math.max(0, n);
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

/** The HTTP layer: auth, JSON, idempotency keys, retries, error decoding. */
export class Transport {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly settleTimeoutMs: number;
  readonly fetch: typeof fetch;

  constructor(o: ClientOptions) {
    if (!o?.apiUrl) throw new TypeError("OfferHubSDK: apiUrl is required");
    if (!o.apiKey) throw new TypeError("OfferHubSDK: apiKey is required");
    let base = o.apiUrl.replace(/\/+$/, "");
    if (!/\/api\/v1$/.test(base)) base += "/api/v1";
    this.baseUrl = base;
    this.apiKey = o.apiKey;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.maxRetries = o.maxRetries ?? 3;
    this.settleTimeoutMs = o.settleTimeoutMs ?? 120_000;
    this.fetch = o.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** `path` plus the query string (arrays as comma-separated values; empty values left out). */
  url(path: string, query?: Query): string {
    const u = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {}) as [string, unknown][]) {
      if (v === undefined || v === null || v === "") continue;
      const s = Array.isArray(v) ? v.join(",") : String(v);
      if (s !== "") u.searchParams.set(k, s);
    }
    return u.toString();
  }

  /**
   * One API call. Mutations (every method but GET) carry an `Idempotency-Key`, generated
   * unless given, and every retry reuses it, so a retried mutation is executed once.
   * Retried: network errors, 429 (after `Retry-After`) and 5xx, up to `maxRetries` times.
   */
  async request<T>(
    method: string,
    path: string,
    init: { query?: Query; body?: unknown; options?: RequestOptions } = {},
  ): Promise<ApiResponse<T>> {
    const options = init.options ?? {};
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.apiKey}`,
      accept: "application/json",
    };
    if (method !== "GET") headers["idempotency-key"] = options.idempotencyKey ?? randomUUID();
    let body: string | undefined;
    if (init.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(init.body);
    }
    const url = this.url(path, init.query);
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.maxRetries;
      const signals = [AbortSignal.timeout(this.timeoutMs)];
      if (options.signal) signals.push(options.signal);
      let res: Response;
      try {
        res = await this.fetch(url, { method, headers, body, signal: AbortSignal.any(signals) });
      } catch (e) {
        if (options.signal?.aborted) throw e;
        const timeout = (e as Error)?.name === "TimeoutError";
        if (last) {
          throw new OfferHubError({
            code: timeout ? "TIMEOUT" : "NETWORK_ERROR",
            message: `${method} ${path}: ${timeout ? `no answer within ${this.timeoutMs} ms` : "could not reach OfferHub"}`,
            statusCode: 0,
            cause: e,
          });
        }
        await sleep(backoffMs(attempt), options.signal);
        continue;
      }
      const text = await res.text();
      let json: any = undefined;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (res.ok) {
        return { status: res.status, data: json?.data as T, meta: json?.meta, headers: res.headers };
      }
      const retryAfter = retryAfterSeconds(res.headers.get("retry-after"));
      const retryable = res.status === 429 || res.status >= 500;
      if (retryable && !last) {
        const wait = retryAfter !== undefined ? retryAfter * 1000 : backoffMs(attempt);
        await sleep(wait, options.signal);
        continue;
      }
      const err = json?.error;
      throw new OfferHubError({
        code: typeof err?.code === "string" ? err.code : `HTTP_${res.status}`,
        message: typeof err?.message === "string" ? err.message : `${method} ${path} answered ${res.status}`,
        statusCode: res.status,
        details: err?.details,
        requestId: res.headers.get("x-request-id") ?? undefined,
        retryAfter,
      });
    }
  }
}
