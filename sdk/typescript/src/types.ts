/**
 * Resource and request types, aliases of the generated OpenAPI types
 * (`generated/openapi.ts`, produced from `GET /api/v1/openapi.json`).
 */
import type { components, paths } from "./generated/openapi.js";

export type { components, paths };
type S = components["schemas"];

export type User = S["User"];
export type CreateUserParams = S["CreateUser"];
export type UpdateUserParams = S["PatchUser"];
export type Balance = S["Balance"];
export type HistoryEntry = S["HistoryEntry"];
export type Adjustment = S["Adjustment"];
export type AdjustBalanceParams = S["AdjustBody"];
export type SyncOutcome = S["SyncOutcome"];
export type Wallet = S["WalletView"];
export type DepositInstructions = S["DepositInstructions"];
export type WalletTransaction = S["WalletTransaction"];
export type Order = S["Order"];
export type CreateOrderParams = S["CreateOrder"];
export type CancelOrderParams = S["CancelBody"];
export type CreateEscrowParams = S["CreateEscrow"];
export type ReleaseParams = S["ReleaseBody"];
export type RefundParams = S["RefundBody"];
export type OpenDisputeParams = S["DisputeBody"];
export type Milestone = S["Milestone"];
export type Saga = S["Saga"];
/** A 202 answer: the order and the saga still settling on chain. */
export type SagaAccepted = S["SagaAccepted"];
export type Dispute = S["Dispute"];
export type DisputeWithOrder = S["DisputeWithOrder"];
export type AssignDisputeParams = S["AssignBody"];
export type CommentParams = S["CommentBody"];
export type Comment = S["Comment"];
export type ResolveDisputeParams = S["ResolveBody"];
export type TopUp = S["TopUp"];
export type CreateTopUpParams = S["CreateTopUp"];
export type Withdrawal = S["Withdrawal"];
export type CreateWithdrawalParams = S["CreateWithdrawal"];
export type ApiKey = S["ApiKey"];
export type CreatedApiKey = S["CreatedApiKey"];
export type CreateApiKeyParams = S["CreateKey"];
export type Me = S["Me"];
export type WebhookEndpoint = S["Endpoint"];
export type CreatedWebhookEndpoint = S["CreatedEndpoint"];
export type CreateWebhookEndpointParams = S["CreateEndpoint"];
export type WebhookDelivery = S["Delivery"];
export type AuditLog = S["AuditLog"];
export type Health = S["Health"];
export type HealthDetailed = S["HealthDetailed"];
export type AirtmLinkParams = S["LinkBody"];
/** An event as SSE, `/events/history` and webhooks carry it. */
export type OfferHubEvent = S["Event"];
/** The body of a webhook delivery: an {@link OfferHubEvent}. */
export type WebhookEvent = S["Event"];

/** Paging parameters of every list (`limit` 1–100, default 20). */
export interface PageParams {
  limit?: number;
  cursor?: string;
}

/** One page of a list. */
export interface Page<T> {
  data: T[];
  hasMore: boolean;
  /** Pass as `cursor` for the next page; `null` on the last one. */
  nextCursor: string | null;
}
