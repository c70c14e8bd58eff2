import { createHmac, timingSafeEqual } from "node:crypto";
import { OfferHubError } from "./errors.js";
import type { WebhookEvent } from "./types.js";

/** Headers as Node, fetch or a framework gives them. */
export type HeaderSource =
  | Headers
  | Record<string, string | string[] | undefined>;

function header(h: HeaderSource, name: string): string | undefined {
  if (typeof (h as Headers).get === "function") return (h as Headers).get(name) ?? undefined;
  const rec = h as Record<string, string | string[] | undefined>;
  for (const [k, v] of Object.entries(rec)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

function fail(message: string): never {
  throw new OfferHubError({ code: "WEBHOOK_VERIFICATION_FAILED", message, statusCode: 0 });
}

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /** Largest accepted distance between `webhook-timestamp` and now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** "Now" in unix seconds (tests). */
  now?: number;
}

/**
 * Verifies an OfferHub webhook delivery (Standard Webhooks) and returns its event.
 *
 * `payload` must be the raw request body (a string or the bytes exactly as received);
 * `headers` must contain `webhook-id`, `webhook-timestamp` and `webhook-signature`;
 * `secret` is the endpoint's `whsec_…` secret. The key is the base64 after `whsec_`; the
 * signature is `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>` (several may be
 * given, space-separated). Throws {@link OfferHubError} `WEBHOOK_VERIFICATION_FAILED` for a
 * missing header, a timestamp outside the tolerance, or no matching signature.
 */
export function verifyWebhook(
  payload: string | Uint8Array,
  headers: HeaderSource,
  secret: string,
  options: VerifyOptions = {},
): WebhookEvent {
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const sig = header(headers, "webhook-signature");
  if (!id || !ts || !sig) fail("missing webhook-id, webhook-timestamp or webhook-signature");
  const t = Number(ts);
  if (!/^\d+$/.test(ts) || !Number.isSafeInteger(t)) fail("webhook-timestamp is not unix seconds");
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) fail("webhook-timestamp is too far from now");
  const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
  if (key.length === 0) fail("the secret is not whsec_<base64>");
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
  const expected = createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest();
  const ok = sig.split(" ").some((entry) => {
    const [version, value] = entry.split(",", 2);
    if (version !== "v1" || !value) return false;
    const given = Buffer.from(value, "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!ok) fail("no webhook-signature matches");
  try {
    return JSON.parse(body.toString("utf8")) as WebhookEvent;
  } catch {
    return fail("the payload is not JSON");
  }
}
