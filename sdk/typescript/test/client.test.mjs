// @offerhub/sdk against the real `offerhub serve` (embedded sandbox).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { Webhook } from "standardwebhooks";
import { OfferHubError, OfferHubSDK } from "@offerhub/sdk";
import { skipReason, startOfferHub } from "./helpers.mjs";

const skip = skipReason();
let d;
let sdk;
before(async () => {
  if (skip) return;
  d = await startOfferHub({ OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true", OFFERHUB_WEBHOOK_BACKOFF_BASE_MS: "50" });
  sdk = new OfferHubSDK({ apiUrl: d.origin, apiKey: d.key });
});
after(async () => d?.stop());

/** A `fetch` that records every request's method, URL and headers. */
function recordingFetch(log) {
  return async (url, init = {}) => {
    log.push({ url: String(url), method: init.method ?? "GET", headers: { ...(init.headers ?? {}) } });
    return fetch(url, init);
  };
}

test("the CommonJS build loads and exports the same surface", () => {
  const cjs = createRequire(import.meta.url)("@offerhub/sdk");
  assert.equal(typeof cjs.OfferHubSDK, "function");
  assert.equal(typeof cjs.verifyWebhook, "function");
  assert.equal(new cjs.OfferHubError({ code: "X", message: "m", statusCode: 1 }).name, "OfferHubError");
});

test("errors are OfferHubError with code, statusCode, details and requestId", { skip }, async () => {
  await assert.rejects(sdk.users.get("usr_doesnotexist"), (e) => {
    assert.ok(e instanceof OfferHubError);
    assert.equal(e.code, "USER_NOT_FOUND");
    assert.equal(e.statusCode, 404);
    assert.match(e.requestId, /.+/);
    return true;
  });
  await assert.rejects(sdk.orders.create({ buyerId: "x", sellerId: "y", amount: "abc", title: "t" }), (e) => {
    assert.equal(e.code, "INVALID_AMOUNT_FORMAT");
    assert.equal(e.statusCode, 400);
    return true;
  });
  await assert.rejects(sdk.users.create({ externalUserId: "" }), (e) => {
    assert.equal(e.code, "VALIDATION_ERROR");
    assert.equal(e.details?.field, "externalUserId", JSON.stringify(e.details));
    return true;
  });
  const bad = new OfferHubSDK({ apiUrl: d.apiUrl, apiKey: "ohk_live_wrong" });
  await assert.rejects(Promise.resolve(bad.users.list()), (e) => e.code === "UNAUTHORIZED" && e.statusCode === 401);
});

test("every mutation sends an Idempotency-Key; a given key replays the same answer", { skip }, async () => {
  const log = [];
  const rec = new OfferHubSDK({ apiUrl: d.apiUrl, apiKey: d.key, fetch: recordingFetch(log) });
  const a = await rec.users.create({ externalUserId: `idem-${Date.now()}` });
  await rec.users.get(a.id);
  const post = log.find((r) => r.method === "POST");
  assert.match(post.headers["idempotency-key"], /^[0-9a-f-]{36}$/);
  assert.equal(log.find((r) => r.method === "GET").headers["idempotency-key"], undefined);
  const key = `k-${Date.now()}`;
  const o1 = await rec.users.create({ externalUserId: `idem2-${Date.now()}` }, { idempotencyKey: key });
  const o2 = await rec.users.create({ externalUserId: `idem2-${Date.now()}-other` }, { idempotencyKey: key }).catch((e) => e);
  assert.ok(o2 instanceof OfferHubError && o2.code === "IDEMPOTENCY_CONFLICT", String(o2?.code));
  assert.ok(o1.id.startsWith("usr_"));
});

test("429 with Retry-After, 5xx and network errors are retried with the same Idempotency-Key", { skip }, async () => {
  // A proxy in front of the real server: the first POST answers 429 (Retry-After: 1),
  // the second 503, the third drops the connection, the fourth goes through.
  let n = 0;
  const seen = [];
  const proxy = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    seen.push({ at: Date.now(), key: req.headers["idempotency-key"] });
    n++;
    if (req.method === "POST" && n === 1) {
      res.writeHead(429, { "retry-after": "1", "content-type": "application/json" });
      return res.end(JSON.stringify({ error: { code: "RATE_LIMITED", message: "slow down", statusCode: 429 } }));
    }
    if (req.method === "POST" && n === 2) {
      res.writeHead(503, { "content-type": "application/json" });
      return res.end(JSON.stringify({ error: { code: "PROVIDER_UNAVAILABLE", message: "x", statusCode: 503 } }));
    }
    if (req.method === "POST" && n === 3) return req.socket.destroy();
    const headers = { ...req.headers };
    delete headers.host;
    delete headers["content-length"];
    const r = await fetch(d.origin + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
    res.writeHead(r.status, { "content-type": "application/json" });
    res.end(await r.text());
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  try {
    const via = new OfferHubSDK({ apiUrl: `http://127.0.0.1:${proxy.address().port}`, apiKey: d.key, maxRetries: 3 });
    const u = await via.users.create({ externalUserId: `retry-${Date.now()}` });
    assert.ok(u.id.startsWith("usr_"));
    assert.equal(seen.length, 4);
    assert.equal(new Set(seen.map((s) => s.key)).size, 1, "one Idempotency-Key for every attempt");
    assert.ok(seen[1].at - seen[0].at >= 950, "Retry-After honoured");
    const none = new OfferHubSDK({ apiUrl: `http://127.0.0.1:${proxy.address().port}`, apiKey: d.key, maxRetries: 0 });
    n = 0;
    await assert.rejects(none.users.create({ externalUserId: "never" }), (e) => e.statusCode === 429 && e.retryAfter === 1);
  } finally {
    proxy.close();
  }
});

test("lists page with await and iterate every page with for await", { skip }, async () => {
  const prefix = `page-${Date.now()}`;
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await sdk.users.create({ externalUserId: `${prefix}-${i}` })).id);
  const first = await sdk.users.list({ limit: 1 });
  assert.equal(first.data.length, 1);
  assert.equal(first.hasMore, true);
  assert.ok(first.nextCursor);
  const all = [];
  for await (const u of sdk.users.list({ limit: 2 })) all.push(u.id);
  for (const id of ids) assert.ok(all.includes(id));
  assert.equal(new Set(all).size, all.length, "no item twice");
});

test("events: an async iterator that reconnects with Last-Event-ID", { skip }, async () => {
  // The first connection breaks after its first event; the iterator must reconnect,
  // sending Last-Event-ID, and continue with the next event — nothing lost or repeated.
  const connections = [];
  let first = true;
  const flaky = async (url, init = {}) => {
    connections.push({ ...(init.headers ?? {}) });
    const res = await fetch(url, init);
    if (!String(url).includes("/events") || !first) return res;
    first = false;
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    const body = new ReadableStream({
      async pull(c) {
        const { done, value } = await reader.read();
        if (done) return c.close();
        buf += dec.decode(value, { stream: true });
        // Pass on exactly the first complete event, then break the connection.
        const m = /(^|\n)data:[^\n]*\n\n/.exec(buf);
        if (m) {
          c.enqueue(new TextEncoder().encode(buf.slice(0, m.index + m[0].length)));
          reader.cancel();
          c.error(new TypeError("connection reset"));
        }
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  const s = new OfferHubSDK({ apiUrl: d.apiUrl, apiKey: d.key, fetch: flaky });
  const prefix = `sse-${Date.now()}`;
  const history = await sdk.events.history({ limit: 1 });
  const start = history.data[0]?.id;
  const created = [];
  for (let i = 0; i < 3; i++) created.push((await sdk.users.create({ externalUserId: `${prefix}-${i}` })).id);
  const seen = [];
  const ac = new AbortController();
  for await (const ev of s.events.stream({ types: ["user.created"], lastEventId: start, signal: ac.signal })) {
    if (created.includes(ev.resourceId)) seen.push(ev.resourceId);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, created);
  assert.ok(connections.length >= 2, "reconnected");
  assert.match(connections[1]["last-event-id"], /^evt_/);
});

test("a real delivery verifies with the official standardwebhooks library and webhooks.verify", { skip }, async () => {
  const got = [];
  const receiver = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    got.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
    res.writeHead(204).end();
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  try {
    const ep = await sdk.webhooks.endpoints.create({
      url: `http://127.0.0.1:${receiver.address().port}/hook`,
      events: ["user.created"],
    });
    assert.match(ep.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const user = await sdk.users.create({ externalUserId: `hook-${Date.now()}` });
    for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 1, "one delivery");
    const { headers, body } = got[0];
    const viaLibrary = new Webhook(ep.secret).verify(body, headers);
    assert.equal(viaLibrary.type, "user.created");
    assert.equal(viaLibrary.resourceId, user.id);
    assert.equal(headers["webhook-id"], viaLibrary.id);
    const viaSdk = sdk.webhooks.verify(body, headers, ep.secret);
    assert.deepEqual(viaSdk, viaLibrary);
    // Tampering, a wrong secret or an old timestamp are refused by both.
    const forged = body.replace(user.id, "usr_someoneelse");
    assert.throws(() => new Webhook(ep.secret).verify(forged, headers));
    assert.throws(() => sdk.webhooks.verify(forged, headers, ep.secret), (e) => e.code === "WEBHOOK_VERIFICATION_FAILED");
    const other = "whsec_" + Buffer.alloc(32, 7).toString("base64");
    assert.throws(() => sdk.webhooks.verify(body, headers, other));
    assert.throws(() => sdk.webhooks.verify(body, headers, ep.secret, { now: Number(headers["webhook-timestamp"]) + 600 }));
    // The delivery is listed, and replay sends the same event (same webhook-id) again.
    const deliveries = await sdk.webhooks.deliveries.list({ endpointId: ep.id });
    assert.equal(deliveries.data.length, 1);
    await sdk.webhooks.deliveries.replay(deliveries.data[0].id);
    for (let i = 0; i < 200 && got.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(got[1].headers["webhook-id"], headers["webhook-id"]);
    assert.equal(new Webhook(ep.secret).verify(got[1].body, got[1].headers).id, viaLibrary.id);
    await sdk.webhooks.endpoints.delete(ep.id);
  } finally {
    receiver.close();
  }
});
