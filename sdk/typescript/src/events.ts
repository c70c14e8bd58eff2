import { OfferHubError } from "./errors.js";
import { backoffMs, type Transport } from "./http.js";
import type { OfferHubEvent } from "./types.js";

/** Options of {@link streamEvents}. */
export interface StreamOptions {
  /** Event types, `order.*` wildcards. */
  types?: string[];
  /** Resource types (`order`, `user`, …). */
  resources?: string[];
  /** Start after this event id (`evt_…`); default: only new events. */
  lastEventId?: string;
  /** Stops the stream. */
  signal?: AbortSignal;
  /** Reconnection attempts in a row before giving up (default Infinity). */
  maxReconnects?: number;
}

/**
 * `GET /events` as an async iterator. On a dropped connection it reconnects (with
 * backoff) sending `Last-Event-ID` of the last event it yielded, so nothing is lost or
 * repeated. `break` out of the loop or abort `signal` to stop. Errors the server answers
 * (401, 403, 400) end the iteration with an {@link OfferHubError}.
 */
export async function* streamEvents(t: Transport, o: StreamOptions = {}): AsyncGenerator<OfferHubEvent> {
  let lastId = o.lastEventId;
  let failures = 0;
  const query = { types: o.types, resources: o.resources };
  while (!o.signal?.aborted) {
    const controller = new AbortController();
    const stop = () => controller.abort(o.signal?.reason);
    o.signal?.addEventListener("abort", stop, { once: true });
    const headers: Record<string, string> = {
      authorization: `Bearer ${t.apiKey}`,
      accept: "text/event-stream",
    };
    if (lastId) headers["last-event-id"] = lastId;
    try {
      let res: Response;
      try {
        res = await t.fetch(t.url("/events", query), { headers, signal: controller.signal });
      } catch (e) {
        if (o.signal?.aborted) return;
        throw Object.assign(new Error("connect"), { retry: true, cause: e });
      }
      if (!res.ok) {
        const body: any = await res.json().catch(() => undefined);
        const err = new OfferHubError({
          code: body?.error?.code ?? `HTTP_${res.status}`,
          message: body?.error?.message ?? `GET /events answered ${res.status}`,
          statusCode: res.status,
          details: body?.error?.details,
          requestId: res.headers.get("x-request-id") ?? undefined,
        });
        if (res.status === 429 || res.status >= 500) throw Object.assign(err, { retry: true });
        throw err;
      }
      failures = 0;
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      let data: string[] = [];
      let id: string | undefined;
      try {
        for (;;) {
          let chunk: ReadableStreamReadResult<string>;
          try {
            chunk = await reader.read();
          } catch (e) {
            if (o.signal?.aborted) return;
            throw Object.assign(new Error("stream"), { retry: true, cause: e });
          }
          if (chunk.done) break;
          buf += chunk.value;
          let nl: number;
          while ((nl = buf.search(/\r?\n/)) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(buf[nl] === "\r" ? nl + 2 : nl + 1);
            if (line === "") {
              if (data.length) {
                const event = JSON.parse(data.join("\n")) as OfferHubEvent;
                lastId = id ?? event.id;
                data = [];
                id = undefined;
                yield event;
              }
              continue;
            }
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "data") data.push(value);
            else if (field === "id") id = value;
          }
        }
      } finally {
        controller.abort();
        reader.releaseLock?.();
      }
      // The server closed the stream: reconnect.
      throw Object.assign(new Error("closed"), { retry: true });
    } catch (e) {
      if (!(e as { retry?: boolean }).retry || o.signal?.aborted) {
        if (o.signal?.aborted) return;
        throw e;
      }
      failures++;
      if (failures > (o.maxReconnects ?? Infinity)) {
        throw e instanceof OfferHubError
          ? e
          : new OfferHubError({ code: "NETWORK_ERROR", message: "GET /events: the stream kept failing", statusCode: 0, cause: e });
      }
      await new Promise((r) => setTimeout(r, backoffMs(Math.min(failures - 1, 5))));
    } finally {
      o.signal?.removeEventListener("abort", stop);
    }
  }
}
