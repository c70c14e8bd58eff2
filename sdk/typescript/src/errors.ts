/**
 * Every failure the SDK reports is an {@link OfferHubError}: an error answer of the API
 * (`{"error": {code, message, statusCode, details}}`), a network failure after the retries
 * ran out (`code` `NETWORK_ERROR`, `statusCode` 0), a timeout (`TIMEOUT`), a chain
 * operation that did not settle (`SAGA_COMPENSATED`, `SAGA_NEEDS_ATTENTION`,
 * `SAGA_WAIT_TIMEOUT`), or a webhook that failed verification
 * (`WEBHOOK_VERIFICATION_FAILED`).
 */
export class OfferHubError extends Error {
  /** OfferHub's stable error code (docs/ERRORS.md), e.g. `INSUFFICIENT_FUNDS`. */
  readonly code: string;
  /** The HTTP status; 0 when no answer arrived. */
  readonly statusCode: number;
  /** Extra facts, e.g. `{field: "amount"}` for `VALIDATION_ERROR`. */
  readonly details: unknown;
  /** The `X-Request-ID` of the answer (quote it when reporting a problem). */
  readonly requestId: string | undefined;
  /** Seconds to wait before trying again (`Retry-After` of a 429 or 503). */
  readonly retryAfter: number | undefined;

  constructor(init: {
    code: string;
    message: string;
    statusCode: number;
    details?: unknown;
    requestId?: string;
    retryAfter?: number;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "OfferHubError";
    this.code = init.code;
    this.statusCode = init.statusCode;
    this.details = init.details;
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }
}
