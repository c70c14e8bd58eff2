/**
 * `@offerhub/sdk`: the typed client of the OfferHub API (Node ≥ 20, no runtime
 * dependency). See README.md for the integration walkthrough.
 */
export { OfferHubSDK, PageRequest, waitForSaga } from "./client.js";
export type {
  Users,
  BalanceResource,
  WalletResource,
  Orders,
  Disputes,
  TopUps,
  Withdrawals,
  Events,
  Webhooks,
  ApiKeys,
  Sagas,
} from "./client.js";
export { OfferHubError } from "./errors.js";
export { Transport, type ClientOptions, type RequestOptions, type ApiResponse } from "./http.js";
export { verifyWebhook, type HeaderSource, type VerifyOptions } from "./verify.js";
export type { StreamOptions } from "./events.js";
export type * from "./types.js";
