import { OfferHubError } from "./errors.js";
import { Transport, type ClientOptions, type RequestOptions } from "./http.js";
import { streamEvents, type StreamOptions } from "./events.js";
import { verifyWebhook, type HeaderSource, type VerifyOptions } from "./verify.js";
import type * as T from "./types.js";

const enc = encodeURIComponent;
type Query = object;

/**
 * A list call: `await` it for one page, or iterate it with `for await` to walk every item
 * of every page (following `nextCursor`).
 */
export class PageRequest<Item> implements PromiseLike<T.Page<Item>>, AsyncIterable<Item> {
  #fetchPage: (cursor?: string) => Promise<T.Page<Item>>;
  #cursor: string | undefined;

  constructor(fetchPage: (cursor?: string) => Promise<T.Page<Item>>, cursor?: string) {
    this.#fetchPage = fetchPage;
    this.#cursor = cursor;
  }

  then<A = T.Page<Item>, B = never>(
    onfulfilled?: ((value: T.Page<Item>) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.#fetchPage(this.#cursor).then(onfulfilled, onrejected);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Item> {
    let cursor = this.#cursor;
    for (;;) {
      const page = await this.#fetchPage(cursor);
      yield* page.data;
      if (!page.hasMore || !page.nextCursor) return;
      cursor = page.nextCursor;
    }
  }
}

/** Shared plumbing of the resources. */
class Base {
  constructor(protected readonly t: Transport) {}

  protected async _get<R>(path: string, query?: Query, options?: RequestOptions): Promise<R> {
    return (await this.t.request<R>("GET", path, { query, options })).data;
  }

  protected async _send<R>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<R> {
    return (await this.t.request<R>(method, path, { body, options })).data;
  }

  protected _list<Item>(path: string, params: Query = {}): PageRequest<Item> {
    const { cursor, ...rest } = params as T.PageParams;
    return new PageRequest<Item>(async (c) => {
      const r = await this.t.request<Item[]>("GET", path, { query: { ...rest, cursor: c } });
      return {
        data: r.data,
        hasMore: r.meta?.pagination?.hasMore ?? false,
        nextCursor: r.meta?.pagination?.nextCursor ?? null,
      };
    }, cursor);
  }

  /**
   * A mutation that may answer 202 (a chain operation still settling). Unless
   * `waitForSettlement: false`, waits for the saga and resolves with `settled(saga)`.
   */
  protected async settling<R>(
    path: string,
    body: unknown,
    options: RequestOptions | undefined,
    settled: (saga: T.Saga) => Promise<R>,
  ): Promise<R> {
    const r = await this.t.request<any>("POST", path, { body, options });
    if (r.status !== 202 || options?.waitForSettlement === false || !r.data?.saga?.id) return r.data as R;
    const saga = await waitForSaga(this.t, r.data.saga.id, options?.signal);
    return settled(saga);
  }
}

/**
 * Polls `GET /sagas/{id}` until it leaves `RUNNING`. `COMPLETED` resolves; `COMPENSATED`
 * (the order was restored) and `NEEDS_ATTENTION` (an operator must act) reject with an
 * {@link OfferHubError} whose `code` is the saga's last error code when it has one
 * (else `SAGA_COMPENSATED` / `SAGA_NEEDS_ATTENTION`) and whose `details.saga` is the saga.
 */
export async function waitForSaga(t: Transport, id: string, signal?: AbortSignal): Promise<T.Saga> {
  const deadline = Date.now() + t.settleTimeoutMs;
  let delay = 200;
  for (;;) {
    const saga = (await t.request<T.Saga>("GET", `/sagas/${enc(id)}`, { options: { signal } })).data;
    if (saga.status === "COMPLETED") return saga;
    if (saga.status !== "RUNNING") {
      const last = saga.lastError as { code?: string; message?: string } | null | undefined;
      throw new OfferHubError({
        code: last?.code ?? `SAGA_${saga.status}`,
        message: `saga ${saga.id} (${saga.kind}) ended ${saga.status}${last?.message ? `: ${last.message}` : ""}`,
        statusCode: 202,
        details: { saga },
      });
    }
    if (Date.now() > deadline) {
      throw new OfferHubError({
        code: "SAGA_WAIT_TIMEOUT",
        message: `saga ${saga.id} still RUNNING after ${t.settleTimeoutMs} ms`,
        statusCode: 202,
        details: { saga },
      });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(1000, delay * 1.5);
  }
}

/** `/users`: marketplace users, each with a ledger balance and an invisible wallet. */
export class Users extends Base {
  /** `POST /users`: creates a user, or returns the existing one with this `externalUserId`. */
  create(params: T.CreateUserParams, options?: RequestOptions): Promise<T.User> {
    return this._send("POST", "/users", params, options);
  }
  /** `GET /users/{id}`. */
  get(id: string): Promise<T.User> {
    return this._get(`/users/${enc(id)}`);
  }
  /** `GET /users` (`externalUserId` filter). */
  list(params: T.PageParams & { externalUserId?: string } = {}): PageRequest<T.User> {
    return this._list("/users", params);
  }
  /** `PATCH /users/{id}`: email, type or status. */
  update(id: string, params: T.UpdateUserParams, options?: RequestOptions): Promise<T.User> {
    return this._send("PATCH", `/users/${enc(id)}`, params, options);
  }
  /** `POST /users/{id}/airtm/link`. */
  linkAirtm(id: string, params: T.AirtmLinkParams, options?: RequestOptions): Promise<T.User> {
    return this._send("POST", `/users/${enc(id)}/airtm/link`, params, options);
  }
}

/** A user's ledger balance. */
export class BalanceResource extends Base {
  /** `GET /users/{id}/balance`. */
  get(userId: string): Promise<T.Balance> {
    return this._get(`/users/${enc(userId)}/balance`);
  }
  /** `GET /users/{id}/balance/history`. */
  history(userId: string, params: T.PageParams = {}): PageRequest<T.HistoryEntry> {
    return this._list(`/users/${enc(userId)}/balance/history`, params);
  }
  /** `POST /users/{id}/balance/adjustments` (scope `support`): a signed correction with a reason. */
  adjust(userId: string, params: T.AdjustBalanceParams, options?: RequestOptions): Promise<T.Adjustment> {
    return this._send("POST", `/users/${enc(userId)}/balance/adjustments`, params, options);
  }
  /** `POST /users/{id}/balance/sync`: credits deposits that reached the wallet and reconciles. */
  sync(userId: string, options?: RequestOptions): Promise<T.SyncOutcome> {
    return this._send("POST", `/users/${enc(userId)}/balance/sync`, undefined, options);
  }
}

/** A user's Stellar wallet (crypto mode). */
export class WalletResource extends Base {
  /** `GET /users/{id}/wallet`. */
  get(userId: string): Promise<T.Wallet> {
    return this._get(`/users/${enc(userId)}/wallet`);
  }
  /** `GET /users/{id}/wallet/deposit`: where the user sends USDC. */
  depositAddress(userId: string): Promise<T.DepositInstructions> {
    return this._get(`/users/${enc(userId)}/wallet/deposit`);
  }
  /** `GET /users/{id}/wallet/transactions`. */
  transactions(userId: string, params: T.PageParams = {}): PageRequest<T.WalletTransaction> {
    return this._list(`/users/${enc(userId)}/wallet/transactions`, params);
  }
  /** `POST /users/{id}/balance/sync`. */
  sync(userId: string, options?: RequestOptions): Promise<T.SyncOutcome> {
    return this._send("POST", `/users/${enc(userId)}/balance/sync`, undefined, options);
  }
}

/** `/orders`: orders, the buyer's hold, escrow, release, refund, dispute, milestones. */
export class Orders extends Base {
  /** `POST /orders`. */
  create(params: T.CreateOrderParams, options?: RequestOptions): Promise<T.Order> {
    return this._send("POST", "/orders", params, options);
  }
  /** `GET /orders/{id}`. */
  get(id: string): Promise<T.Order> {
    return this._get(`/orders/${enc(id)}`);
  }
  /** `GET /orders` (filters `buyerId`, `sellerId`, `status`). */
  list(params: T.PageParams & { buyerId?: string; sellerId?: string; status?: string } = {}): PageRequest<T.Order> {
    return this._list("/orders", params);
  }
  /** `POST /orders/{id}/reserve`: holds the amount on the buyer's balance. */
  reserve(id: string, options?: RequestOptions): Promise<T.Order> {
    return this._send("POST", `/orders/${enc(id)}/reserve`, undefined, options);
  }
  /** `POST /orders/{id}/cancel`: before funding; the hold returns to the buyer. */
  cancel(id: string, params: T.CancelOrderParams = {}, options?: RequestOptions): Promise<T.Order> {
    return this._send("POST", `/orders/${enc(id)}/cancel`, params, options);
  }
  /** Escrow of an order: `create` deploys the contract, `fund` moves the held USDC into it. */
  readonly escrow = {
    /** `POST /orders/{id}/escrow`; resolves with the order once the contract is deployed. */
    create: (id: string, params: T.CreateEscrowParams = {}, options?: RequestOptions): Promise<T.Order> =>
      this.settling(`/orders/${enc(id)}/escrow`, params, options, () => this.get(id)),
    /** `POST /orders/{id}/escrow/fund`; resolves with the order once funded. */
    fund: (id: string, options?: RequestOptions): Promise<T.Order> =>
      this.settling(`/orders/${enc(id)}/escrow/fund`, undefined, options, () => this.get(id)),
  };
  /** `POST /orders/{id}/resolution/release`: pays the seller. */
  release(id: string, params: T.ReleaseParams = {}, options?: RequestOptions): Promise<T.Order> {
    return this.settling(`/orders/${enc(id)}/resolution/release`, params, options, () => this.get(id));
  }
  /** `POST /orders/{id}/resolution/refund`: pays the buyer back. */
  refund(id: string, params: T.RefundParams, options?: RequestOptions): Promise<T.Order> {
    return this.settling(`/orders/${enc(id)}/resolution/refund`, params, options, () => this.get(id));
  }
  /** `POST /orders/{id}/resolution/dispute`: opens a dispute on chain. */
  dispute(id: string, params: T.OpenDisputeParams, options?: RequestOptions): Promise<T.DisputeWithOrder> {
    return this.settling(`/orders/${enc(id)}/resolution/dispute`, params, options, async (saga) => {
      const disputeId = saga.disputeId;
      if (disputeId) return this._get(`/disputes/${enc(disputeId)}`);
      const page = await this.t.request<T.Dispute[]>("GET", "/disputes", { query: { orderId: id, limit: 1 } });
      return this._get(`/disputes/${enc(page.data[0]!.id)}`);
    });
  }
  /** Milestones of a multi-release order. */
  readonly milestones = {
    /** `GET /orders/{id}/milestones`. */
    list: (id: string): Promise<T.Milestone[]> => this._get(`/orders/${enc(id)}/milestones`),
    /** `POST /orders/{id}/milestones/{ref}/{complete|approve|release}`; resolves with the milestone once settled. */
    advance: (
      id: string,
      milestoneRef: string,
      op: "complete" | "approve" | "release",
      options?: RequestOptions,
    ): Promise<T.Milestone> =>
      this.settling(`/orders/${enc(id)}/milestones/${enc(milestoneRef)}/${op}`, undefined, options, async () => {
        const milestones: T.Milestone[] = await this._get(`/orders/${enc(id)}/milestones`);
        const milestone = milestones.find((m) => m.milestoneRef === milestoneRef);
        if (!milestone) throw new Error(`order ${id} has no milestone ${milestoneRef}`);
        return milestone;
      }),
  };
}

/** `/disputes`: review and resolution (scope `support` for assign and resolve). */
export class Disputes extends Base {
  /** `GET /disputes`. */
  list(
    params: T.PageParams & { orderId?: string; status?: string; openedBy?: string; assignedTo?: string } = {},
  ): PageRequest<T.Dispute> {
    return this._list("/disputes", params);
  }
  /** `GET /disputes/{id}` (with its order). */
  get(id: string): Promise<T.DisputeWithOrder> {
    return this._get(`/disputes/${enc(id)}`);
  }
  /** `POST /disputes/{id}/assign`. */
  assign(id: string, params: T.AssignDisputeParams, options?: RequestOptions): Promise<T.Dispute> {
    return this._send("POST", `/disputes/${enc(id)}/assign`, params, options);
  }
  /** `POST /disputes/{id}/comments`. */
  comment(id: string, params: T.CommentParams, options?: RequestOptions): Promise<T.Comment> {
    return this._send("POST", `/disputes/${enc(id)}/comments`, params, options);
  }
  /** `POST /disputes/{id}/resolve`: `FULL_RELEASE`, `FULL_REFUND` or `SPLIT`; resolves once settled. */
  resolve(id: string, params: T.ResolveDisputeParams, options?: RequestOptions): Promise<T.DisputeWithOrder> {
    return this.settling(`/disputes/${enc(id)}/resolve`, params, options, () => this.get(id));
  }
}

/** `/topups`: Airtm payins. */
export class TopUps extends Base {
  /** `POST /topups`. */
  create(params: T.CreateTopUpParams, options?: RequestOptions): Promise<T.TopUp> {
    return this._send("POST", "/topups", params, options);
  }
  /** `GET /topups/{id}`. */
  get(id: string): Promise<T.TopUp> {
    return this._get(`/topups/${enc(id)}`);
  }
  /** `GET /topups`. */
  list(params: T.PageParams & { userId?: string; status?: string } = {}): PageRequest<T.TopUp> {
    return this._list("/topups", params);
  }
  /** `POST /topups/{id}/refresh`. */
  refresh(id: string, options?: RequestOptions): Promise<T.TopUp> {
    return this._send("POST", `/topups/${enc(id)}/refresh`, undefined, options);
  }
  /** `POST /topups/{id}/cancel`. */
  cancel(id: string, options?: RequestOptions): Promise<T.TopUp> {
    return this._send("POST", `/topups/${enc(id)}/cancel`, undefined, options);
  }
}

/** `/withdrawals`: crypto withdrawals and Airtm payouts. */
export class Withdrawals extends Base {
  /** `POST /withdrawals`. */
  create(params: T.CreateWithdrawalParams, options?: RequestOptions): Promise<T.Withdrawal> {
    return this._send("POST", "/withdrawals", params, options);
  }
  /** `GET /withdrawals/{id}`. */
  get(id: string): Promise<T.Withdrawal> {
    return this._get(`/withdrawals/${enc(id)}`);
  }
  /** `GET /withdrawals`. */
  list(params: T.PageParams & { userId?: string } = {}): PageRequest<T.Withdrawal> {
    return this._list("/withdrawals", params);
  }
  /** `POST /withdrawals/{id}/commit` (Airtm). */
  commit(id: string, options?: RequestOptions): Promise<T.Withdrawal> {
    return this._send("POST", `/withdrawals/${enc(id)}/commit`, undefined, options);
  }
  /** `POST /withdrawals/{id}/refresh` (Airtm). */
  refresh(id: string, options?: RequestOptions): Promise<T.Withdrawal> {
    return this._send("POST", `/withdrawals/${enc(id)}/refresh`, undefined, options);
  }
  /** `POST /withdrawals/{id}/cancel` (Airtm). */
  cancel(id: string, options?: RequestOptions): Promise<T.Withdrawal> {
    return this._send("POST", `/withdrawals/${enc(id)}/cancel`, undefined, options);
  }
}

/** `/events`: the SSE stream and the history. */
export class Events extends Base {
  /** `GET /events` as an async iterator that reconnects with `Last-Event-ID`. */
  stream(options: StreamOptions = {}): AsyncGenerator<T.OfferHubEvent> {
    return streamEvents(this.t, options);
  }
  /** `GET /events/history`. */
  history(params: T.PageParams & { types?: string[]; resources?: string[] } = {}): PageRequest<T.OfferHubEvent> {
    return this._list("/events/history", params);
  }
}

/** Outbound webhooks: endpoints, deliveries, replay, and verification of a delivery. */
export class Webhooks extends Base {
  readonly endpoints = {
    /** `POST /webhooks/endpoints`: the answer holds the `whsec_…` secret, shown only once. */
    create: (params: T.CreateWebhookEndpointParams, options?: RequestOptions): Promise<T.CreatedWebhookEndpoint> =>
      this._send("POST", "/webhooks/endpoints", params, options),
    /** `GET /webhooks/endpoints`. */
    list: (params: T.PageParams = {}): PageRequest<T.WebhookEndpoint> => this._list("/webhooks/endpoints", params),
    /** `DELETE /webhooks/endpoints/{id}`. */
    delete: (id: string, options?: RequestOptions): Promise<T.WebhookEndpoint> =>
      this._send("DELETE", `/webhooks/endpoints/${enc(id)}`, undefined, options),
  };
  readonly deliveries = {
    /** `GET /webhooks/deliveries`. */
    list: (
      params: T.PageParams & { endpointId?: string; eventId?: string; status?: string } = {},
    ): PageRequest<T.WebhookDelivery> => this._list("/webhooks/deliveries", params),
    /** `POST /webhooks/deliveries/{id}/replay`: sends the event again (a new delivery). */
    replay: (id: string, options?: RequestOptions): Promise<T.WebhookDelivery> =>
      this._send("POST", `/webhooks/deliveries/${enc(id)}/replay`, undefined, options),
  };
  /** Verifies a delivery (Standard Webhooks) and returns its event; see {@link verifyWebhook}. */
  verify(payload: string | Uint8Array, headers: HeaderSource, secret: string, options?: VerifyOptions): T.WebhookEvent {
    return verifyWebhook(payload, headers, secret, options);
  }
}

/** `/auth`: API keys and the calling key. */
export class ApiKeys extends Base {
  /** `POST /auth/api-keys`: the answer holds `key`, shown only once. */
  create(params: T.CreateApiKeyParams, options?: RequestOptions): Promise<T.CreatedApiKey> {
    return this._send("POST", "/auth/api-keys", params, options);
  }
  /** `GET /auth/api-keys`. */
  list(params: T.PageParams = {}): PageRequest<T.ApiKey> {
    return this._list("/auth/api-keys", params);
  }
  /** `DELETE /auth/api-keys/{id}`. */
  revoke(id: string, options?: RequestOptions): Promise<T.ApiKey> {
    return this._send("DELETE", `/auth/api-keys/${enc(id)}`, undefined, options);
  }
  /** `GET /auth/me`: the calling key's id, name and scopes. */
  me(): Promise<T.Me> {
    return this._get("/auth/me");
  }
}

/** `/sagas`: multi-step chain operations. */
export class Sagas extends Base {
  /** `GET /sagas`. */
  list(params: T.PageParams & { status?: string; orderId?: string } = {}): PageRequest<T.Saga> {
    return this._list("/sagas", params);
  }
  /** `GET /sagas/{id}`. */
  get(id: string): Promise<T.Saga> {
    return this._get(`/sagas/${enc(id)}`);
  }
  /** `POST /sagas/{id}/retry` (scope `support`). */
  retry(id: string, options?: RequestOptions): Promise<T.Saga> {
    return this._send("POST", `/sagas/${enc(id)}/retry`, undefined, options);
  }
  /** Waits until the saga leaves `RUNNING`; see {@link waitForSaga}. */
  wait(id: string, signal?: AbortSignal): Promise<T.Saga> {
    return waitForSaga(this.t, id, signal);
  }
}

/**
 * The OfferHub client.
 *
 * ```ts
 * const sdk = new OfferHubSDK({ apiUrl: process.env.OFFERHUB_API_URL!, apiKey: process.env.OFFERHUB_API_KEY! });
 * const user = await sdk.users.create({ externalUserId: "your-user-123", email: "buyer@example.com" });
 * ```
 */
export class OfferHubSDK {
  readonly users: Users;
  readonly balance: BalanceResource;
  readonly wallet: WalletResource;
  readonly orders: Orders;
  readonly disputes: Disputes;
  readonly topups: TopUps;
  readonly withdrawals: Withdrawals;
  readonly events: Events;
  readonly webhooks: Webhooks;
  readonly apiKeys: ApiKeys;
  readonly sagas: Sagas;
  /** The HTTP layer (base URL, retries); `request` reaches any endpoint. */
  readonly transport: Transport;

  constructor(options: ClientOptions) {
    const t = new Transport(options);
    this.transport = t;
    this.users = new Users(t);
    this.balance = new BalanceResource(t);
    this.wallet = new WalletResource(t);
    this.orders = new Orders(t);
    this.disputes = new Disputes(t);
    this.topups = new TopUps(t);
    this.withdrawals = new Withdrawals(t);
    this.events = new Events(t);
    this.webhooks = new Webhooks(t);
    this.apiKeys = new ApiKeys(t);
    this.sagas = new Sagas(t);
  }

  /** `GET /health` (public). */
  async health(): Promise<T.Health> {
    return (await this.transport.request<T.Health>("GET", "/health")).data;
  }

  /** `GET /health/detailed` (public). */
  async healthDetailed(): Promise<T.HealthDetailed> {
    return (await this.transport.request<T.HealthDetailed>("GET", "/health/detailed")).data;
  }
}
