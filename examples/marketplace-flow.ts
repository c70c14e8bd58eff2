// The marketplace backend's side of the payment lifecycle, written with @offerhub/sdk
// only: the same flows as examples/marketplace-flow.sh, against a running
// `offerhub serve` on the sandbox network (the embedded default).
//
//   OFFERHUB_API_URL=http://localhost:4000 OFFERHUB_API_KEY=ohk_live_… \
//     node marketplace-flow.js [release|refund|split|cancel|all]
//
// (compile it with `tsc`, or let sdk/typescript/test/example.test.mjs do that: it
// type-checks this file against the SDK's declarations and runs it.) The key needs
// scopes read,write,support (resolving a dispute is a support action): the script checks
// them with GET /auth/me before any money moves. The only calls outside the SDK are the
// sandbox faucet's (`/_sandbox/fund`, `/_sandbox/accounts`), which stand in for a real
// deposit and a real outside wallet.
import { OfferHubError, OfferHubSDK, type Order } from "@offerhub/sdk";

const apiUrl = process.env.OFFERHUB_API_URL ?? process.env.OFFERHUB_URL ?? "http://localhost:4000";
const apiKey = process.env.OFFERHUB_API_KEY;
if (!apiKey) {
  console.error("set OFFERHUB_API_KEY to an API key with scopes read,write,support (offerhub keys create)");
  process.exit(2);
}
const sdk = new OfferHubSDK({ apiUrl, apiKey });
const run = `${Date.now()}-${process.pid}`;
const ORDER_AMOUNT = "100.00";
const DEPOSIT = "150";

const step = (s: string) => console.log(`\n== ${s}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `read` until `done` holds (up to 30 s). */
async function until<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  for (let i = 0; i < 150; i++) {
    const v = await read();
    if (done(v)) return v;
    await sleep(200);
  }
  throw new Error(`${what}: not reached after 30 s`);
}

function orderState(o: Order) {
  const e = o.escrow;
  console.log(`   order ${o.id}: ${o.status}${e ? `, escrow ${e.status} (contract ${e.contractId}, balance ${e.balance})` : ""}`);
}

async function balances(buyer: string, seller: string) {
  const [b, s] = await Promise.all([sdk.balance.get(buyer), sdk.balance.get(seller)]);
  console.log(`   buyer  available ${b.available.padEnd(10)} reserved ${b.reserved}`);
  console.log(`   seller available ${s.available.padEnd(10)} reserved ${s.reserved}`);
}

async function sandboxUrl(): Promise<string> {
  const h = await sdk.healthDetailed();
  const horizon = (h.dependencies as { stellarHorizon?: { network?: string; url?: string } }).stellarHorizon;
  if (horizon?.network !== "sandbox" || !horizon.url) {
    throw new Error("this example uses the sandbox faucet: run it against 'offerhub serve' on the sandbox network");
  }
  return horizon.url.replace(/\/$/, "");
}

async function sandboxPost(path: string, body?: unknown): Promise<any> {
  const r = await fetch(`${await sandboxUrl()}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`sandbox ${path} answered ${r.status}`);
  return r.json();
}

/** Creates the buyer and the seller and deposits DEPOSIT USDC to the buyer. */
async function setup(flow: string) {
  step("Create the buyer and the seller (each gets an invisible Stellar wallet)");
  const buyer = await sdk.users.create({ externalUserId: `buyer-${flow}-${run}`, type: "BUYER" });
  const seller = await sdk.users.create({ externalUserId: `seller-${flow}-${run}`, type: "SELLER" });
  const bw = await until("buyer's wallet", () => sdk.wallet.get(buyer.id), (w) => w.status === "ACTIVE");
  const sw = await until("seller's wallet", () => sdk.wallet.get(seller.id), (w) => w.status === "ACTIVE");
  console.log(`   buyer  ${buyer.id}  wallet ${bw.publicKey}`);
  console.log(`   seller ${seller.id}  wallet ${sw.publicKey}`);

  step(`Deposit ${DEPOSIT} USDC to the buyer's wallet through the sandbox faucet`);
  const deposit = await sdk.wallet.depositAddress(buyer.id);
  await sandboxPost("/_sandbox/fund", { address: deposit.address, amount: DEPOSIT, asset: "USDC" });
  await until("the deposit", () => sdk.balance.get(buyer.id), (b) => b.available === `${DEPOSIT}.00`);
  await balances(buyer.id, seller.id);
  return { buyer: buyer.id, seller: seller.id };
}

async function newOrder(flow: string, buyer: string, seller: string): Promise<Order> {
  step(`Create an order of ${ORDER_AMOUNT}`);
  const order = await sdk.orders.create({
    buyerId: buyer,
    sellerId: seller,
    amount: ORDER_AMOUNT,
    title: "Logo design",
    clientOrderRef: `order-${run}-${flow}`,
  });
  orderState(order);
  step("Reserve the buyer's funds (a hold on the ledger)");
  orderState(await sdk.orders.reserve(order.id));
  await balances(buyer, seller);
  return order;
}

async function escrowAndFund(order: Order, buyer: string, seller: string) {
  step("Deploy the escrow contract (Trustless Work, single release)");
  orderState(await sdk.orders.escrow.create(order.id));
  step("Fund the escrow from the buyer's wallet");
  orderState(await sdk.orders.escrow.fund(order.id));
  await balances(buyer, seller);
}

async function withdrawSeller(buyer: string, seller: string) {
  const dest: string = (await sandboxPost("/_sandbox/accounts")).address;
  const { available } = await sdk.balance.get(seller);
  step(`The seller withdraws ${available} USDC to their own wallet ${dest}`);
  const w = await sdk.withdrawals.create({ userId: seller, amount: available, destinationType: "crypto", destinationRef: dest });
  console.log(`   withdrawal ${w.id}: ${w.status}`);
  const done = await until("the withdrawal", () => sdk.withdrawals.get(w.id), (x) => x.status === "WITHDRAWAL_COMPLETED");
  console.log(`   withdrawal ${w.id}: ${done.status}, transaction ${done.txHash}`);
  const account = await (await fetch(`${await sandboxUrl()}/accounts/${dest}`)).json();
  const usdc = account.balances.find((b: { asset_code?: string }) => b.asset_code === "USDC");
  console.log(`   on the sandbox chain, ${dest} holds ${usdc?.balance} USDC`);
  await balances(buyer, seller);
}

async function flowRelease() {
  const { buyer, seller } = await setup("release");
  const order = await newOrder("release", buyer, seller);
  await escrowAndFund(order, buyer, seller);
  step("The buyer approves: release to the seller (fees are taken by the contract)");
  orderState(await sdk.orders.release(order.id, { requestedBy: buyer }));
  await balances(buyer, seller);
  await withdrawSeller(buyer, seller);
}

async function flowRefund() {
  const { buyer, seller } = await setup("refund");
  const order = await newOrder("refund", buyer, seller);
  await escrowAndFund(order, buyer, seller);
  step("Refund the buyer");
  orderState(await sdk.orders.refund(order.id, { reason: "Seller could not deliver" }));
  await balances(buyer, seller);
}

async function flowSplit() {
  const { buyer, seller } = await setup("split");
  const order = await newOrder("split", buyer, seller);
  await escrowAndFund(order, buyer, seller);
  step("The buyer opens a dispute");
  const opened = await sdk.orders.dispute(order.id, {
    openedBy: "BUYER",
    reason: "QUALITY_ISSUE",
    evidence: [{ url: "https://example.com/draft.png" }],
  });
  console.log(`   dispute ${opened.id}: ${opened.status}; order ${opened.order.status}`);
  step("Support resolves it: 60.00 to the seller, 40.00 back to the buyer");
  const resolved = await sdk.disputes.resolve(opened.id, {
    decision: "SPLIT",
    releaseAmount: "60.00",
    refundAmount: "40.00",
    note: "Partly delivered",
  });
  console.log(`   dispute ${resolved.id}: ${resolved.status} (${resolved.decision})`);
  orderState(resolved.order);
  await balances(buyer, seller);
  await withdrawSeller(buyer, seller);
}

async function flowCancel() {
  const { buyer, seller } = await setup("cancel");
  const order = await newOrder("cancel", buyer, seller);
  step("Cancel the order before any escrow: the hold is voided");
  orderState(await sdk.orders.cancel(order.id, { reason: "Buyer changed their mind" }));
  await balances(buyer, seller);
}

const flows: Record<string, () => Promise<void>> = {
  release: flowRelease,
  refund: flowRefund,
  split: flowSplit,
  dispute: flowSplit,
  cancel: flowCancel,
};

async function main() {
  const flow = process.argv[2] ?? "release";
  if (flow !== "all" && !flows[flow]) {
    console.error("usage: marketplace-flow [release|refund|split|cancel|all]");
    process.exit(2);
  }
  // Before any money moves: does this key have every scope the flows need?
  const me = await sdk.apiKeys.me();
  const missing = ["read", "write", "support"].filter((s) => !(me.scopes as string[]).includes(s));
  if (missing.length) {
    console.error(`!! the API key ${me.apiKeyId} lacks the scope(s) ${missing.join(", ")}: create one with read,write,support`);
    process.exit(2);
  }
  if (flow === "all") for (const f of [flowRelease, flowRefund, flowSplit, flowCancel]) await f();
  else await flows[flow]!();
  step(`Done (${flow})`);
}

main().catch((e) => {
  if (e instanceof OfferHubError) {
    console.error(`!! ${e.statusCode} ${e.code}: ${e.message}`, e.details ?? "", e.requestId ? `(request ${e.requestId})` : "");
  } else {
    console.error("!!", e);
  }
  process.exit(1);
});
