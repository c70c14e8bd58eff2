// Drives a running OfferHub sandbox with the official JavaScript Stellar SDK
// (@stellar/stellar-sdk on npm) as an independent client: reads fee stats, builds and
// signs envelopes with the SDK, submits them through its Horizon client (a payment and
// same-asset path payments strict-send and strict-receive with an empty path), and
// streams the payments. Usage: node stellar_sdk.mjs URL   (prints "ok")
import assert from "node:assert/strict";
import { Asset, Horizon, Keypair, Operation, TransactionBuilder } from "@stellar/stellar-sdk";

const url = process.argv[2];
const server = new Horizon.Server(url, { allowHttp: true });
const get = async (path, init) => {
  const r = await fetch(url + path, init);
  assert.ok(r.ok, `${path}: ${r.status}`);
  return r.json();
};
const post = (path, body) =>
  get(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

const root = await get("/");
const passphrase = root.network_passphrase;
const issuer = (await get("/_sandbox/info")).usdc.issuer;
const usdc = new Asset("USDC", issuer);

// Fee stats (GET /fee_stats) through the SDK.
const baseFee = await server.fetchBaseFee();
assert.ok(Number.isInteger(baseFee) && baseFee >= 100, `base fee ${baseFee}`);
const stats = await server.feeStats();
assert.ok(stats.last_ledger && stats.fee_charged && stats.max_fee.p50, JSON.stringify(stats));

// A payer with USDC (created and trusting USDC through SDK-built transactions) and a
// receiver with a USDC trustline.
const platform = Keypair.random();
await get(`/friendbot?addr=${platform.publicKey()}`);
const payer = Keypair.random();
let tx = new TransactionBuilder(await server.loadAccount(platform.publicKey()), { fee: String(baseFee), networkPassphrase: passphrase })
  .addOperation(Operation.createAccount({ destination: payer.publicKey(), startingBalance: "5" }))
  .addOperation(Operation.changeTrust({ asset: usdc, source: payer.publicKey() }))
  .setTimeout(120)
  .build();
tx.sign(platform, payer);
let res = await server.submitTransaction(tx);
assert.equal(res.successful, true);
assert.equal(res.hash, tx.hash().toString("hex"));
await post("/_sandbox/fund", { address: payer.publicKey(), amount: "10", asset: "USDC" });
const receiver = (await post("/_sandbox/accounts", {})).address;

// Stream the receiver's payments (SSE) while paying it.
const seen = [];
const streamed = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`stream saw ${JSON.stringify(seen)}`)), 10000);
  const close = server
    .payments()
    .forAccount(receiver)
    .cursor("now")
    .stream({
      onmessage: (p) => {
        seen.push([p.type, p.amount]);
        if (seen.length === 3) {
          clearTimeout(timer);
          close();
          resolve(seen);
        }
      },
      onerror: () => {},
    });
});
await new Promise((r) => setTimeout(r, 200));

const pay = async (op) => {
  const t = new TransactionBuilder(await server.loadAccount(payer.publicKey()), { fee: String(baseFee), networkPassphrase: passphrase })
    .addOperation(op)
    .setTimeout(120)
    .build();
  t.sign(payer);
  const r = await server.submitTransaction(t);
  assert.equal(r.successful, true);
  return r;
};
await pay(Operation.payment({ destination: receiver, asset: usdc, amount: "1.5" }));
await pay(Operation.pathPaymentStrictSend({ sendAsset: usdc, sendAmount: "2", destination: receiver, destAsset: usdc, destMin: "2", path: [] }));
await pay(Operation.pathPaymentStrictReceive({ sendAsset: usdc, sendMax: "3", destination: receiver, destAsset: usdc, destAmount: "2.5", path: [] }));

assert.deepEqual(await streamed, [
  ["payment", "1.5000000"],
  ["path_payment_strict_send", "2.0000000"],
  ["path_payment_strict_receive", "2.5000000"],
]);
const bal = (acct) => acct.balances.find((b) => b.asset_code === "USDC").balance;
assert.equal(bal(await server.loadAccount(receiver)), "6.0000000");
assert.equal(bal(await server.loadAccount(payer.publicKey())), "4.0000000");

// The SDK's paging over the receiver's payments (newest first).
const page = await server.payments().forAccount(receiver).order("desc").limit(2).call();
assert.deepEqual(page.records.map((r) => r.type), ["path_payment_strict_receive", "path_payment_strict_send"]);
const next = await page.next();
assert.equal(next.records[0].type, "payment");
console.log("ok");
process.exit(0);
