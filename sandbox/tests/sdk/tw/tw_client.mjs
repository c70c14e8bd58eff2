// Drives a running OfferHub sandbox with Trustless Work's own published npm client
// (@trustless-work/escrow 3.0.5) as an independent client of the sandbox's TW API, and
// signs the unsigned XDRs it gets back with @stellar/stellar-sdk, sending them through
// TW's send-transaction endpoint, as the real client flow does.
//
// The package exports only React hooks under a `TrustlessWorkConfig` provider (its axios
// client class is not exported), so the hooks are rendered once in Node with
// react-dom/server (no DOM, no browser) and the functions they return are captured;
// every call below goes through them.
//
// Round trips: a single-release escrow deployed, funded, milestone status changed,
// approved, released; a second one disputed and resolved with a 25/15 split; a
// multi-release escrow updated before funding, one milestone released, the other
// disputed and resolved, the rest withdrawn, then update-from-txHash. Asserts
// the TW reads (get-escrow-by-contract-ids, get-escrows-by-signer/-by-role,
// get-multiple-escrow-balance, typed as the client's GetEscrowsFromIndexerResponse) and
// USDC on chain through Horizon. Usage: node tw_client.mjs URL   (prints "ok")
import assert from "node:assert/strict";
import React from "react";
import { renderToString } from "react-dom/server";
import {
  TrustlessWorkConfig,
  useApproveMilestone,
  useChangeMilestoneStatus,
  useFundEscrow,
  useGetEscrowFromIndexerByContractIds,
  useGetEscrowsFromIndexerByRole,
  useGetEscrowsFromIndexerBySigner,
  useGetMultipleEscrowBalances,
  useInitializeEscrow,
  useReleaseFunds,
  useResolveDispute,
  useSendTransaction,
  useStartDispute,
  useUpdateEscrow,
  useUpdateFromTxHash,
  useWithdrawRemainingFunds,
} from "@trustless-work/escrow";
import { Asset, Horizon, Keypair, Operation, TransactionBuilder } from "@stellar/stellar-sdk";

const url = process.argv[2];
assert.ok(url, "usage: node tw_client.mjs URL");
const server = new Horizon.Server(url, { allowHttp: true });
const get = async (path, init) => {
  const r = await fetch(url + path, init);
  const text = await r.text();
  assert.ok(r.ok, `${path}: ${r.status} ${text}`);
  return JSON.parse(text);
};
const post = (path, body) =>
  get(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

// --- TW's client, through its hooks ---------------------------------------------------
// One render per API key (the sandbox, like TW, allows 50 requests per minute per key).
function client(apiKey) {
  let hooks;
  function Capture() {
    hooks = {
      ...useInitializeEscrow(),
      ...useSendTransaction(),
      ...useUpdateEscrow(),
      ...useFundEscrow(),
      ...useChangeMilestoneStatus(),
      ...useApproveMilestone(),
      ...useReleaseFunds(),
      ...useStartDispute(),
      ...useResolveDispute(),
      ...useWithdrawRemainingFunds(),
      ...useUpdateFromTxHash(),
      ...useGetEscrowFromIndexerByContractIds(),
      ...useGetEscrowsFromIndexerBySigner(),
      ...useGetEscrowsFromIndexerByRole(),
      ...useGetMultipleEscrowBalances(),
    };
    return null;
  }
  // `baseURL` is typed as TW's two hosts; at run time it is axios's baseURL.
  renderToString(React.createElement(TrustlessWorkConfig, { baseURL: url, apiKey }, React.createElement(Capture)));
  assert.ok(hooks && typeof hooks.deployEscrow === "function", "hooks rendered");
  return hooks;
}
let tw = client("tw-client-check-single");

// --- Stellar side ---------------------------------------------------------------------
const passphrase = (await get("/")).network_passphrase;
const issuer = (await get("/_sandbox/info")).usdc.issuer;
const usdc = new Asset("USDC", issuer);

// An account with a key: friendbot, then a USDC trustline built and signed with the SDK.
async function keyed() {
  const kp = Keypair.random();
  await get(`/friendbot?addr=${kp.publicKey()}`);
  const tx = new TransactionBuilder(await server.loadAccount(kp.publicKey()), { fee: "100", networkPassphrase: passphrase })
    .addOperation(Operation.changeTrust({ asset: usdc }))
    .setTimeout(120)
    .build();
  tx.sign(kp);
  assert.equal((await server.submitTransaction(tx)).successful, true);
  return kp;
}
const usdcOf = async (address) => {
  const a = await server.loadAccount(address);
  const b = a.balances.find((x) => x.asset_code === "USDC" && x.asset_issuer === issuer);
  return b ? Number(b.balance) : 0;
};
const close = (a, b, what) => assert.ok(Math.abs(a - b) < 1e-7, `${what}: ${a} != ${b}`);

// Sign TW's unsigned XDR and send it back through TW's send-transaction (the client flow).
async function signAndSend(answer, kp) {
  assert.equal(answer.status, "SUCCESS", JSON.stringify(answer));
  assert.equal(typeof answer.unsignedTransaction, "string");
  const tx = TransactionBuilder.fromXDR(answer.unsignedTransaction, passphrase);
  assert.equal(tx.source, kp.publicKey(), "the builder sources the signer's account");
  tx.sign(kp);
  const sent = await tw.sendTransaction(tx.toXDR());
  assert.equal(sent.status, "SUCCESS", JSON.stringify(sent));
  assert.equal(typeof sent.message, "string");
  const hash = tx.hash().toString("hex");
  if (sent.hash !== undefined) assert.equal(sent.hash, hash);
  return { ...sent, txHash: hash };
}

const isDate = (d) => d && Number.isInteger(d._seconds) && Number.isInteger(d._nanoseconds);
// GetEscrowsFromIndexerResponse as declared by @trustless-work/escrow 3.0.5.
function checkIndexerShape(e) {
  for (const k of ["engagementId", "title", "description", "user"]) assert.equal(typeof e[k], "string", k);
  for (const k of ["amount", "platformFee", "balance"]) assert.equal(typeof e[k], "number", k);
  assert.ok(Array.isArray(e.milestones), "milestones");
  assert.equal(typeof e.trustline.address, "string");
  assert.equal(typeof e.trustline.symbol, "string");
  assert.ok(isDate(e.createdAt), `createdAt ${JSON.stringify(e.createdAt)}`);
  assert.ok(isDate(e.updatedAt), `updatedAt ${JSON.stringify(e.updatedAt)}`);
  assert.ok(e.type === "single-release" || e.type === "multi-release", e.type);
  for (const k of ["approver", "serviceProvider", "platformAddress", "releaseSigner", "disputeResolver"])
    assert.equal(typeof e.roles[k], "string", `roles.${k}`);
}
const escrowOf = async (contractId) => {
  const list = await tw.getEscrowByContractIds({ contractIds: [contractId] });
  assert.equal(list.length, 1, JSON.stringify(list));
  checkIndexerShape(list[0]);
  assert.equal(list[0].contractId, contractId);
  return list[0];
};

const platform = await keyed(); // deploys (signer) and takes the platform fee
const approver = await keyed(); // funds and approves
const provider = await keyed(); // changes the milestone status
const releaser = await keyed();
const resolver = await keyed();
const receiver = (await post("/_sandbox/accounts", {})).address; // no key needed
await post("/_sandbox/fund", { address: approver.publicKey(), amount: "100", asset: "USDC" });

async function deploy(title, amount) {
  const payload = {
    signer: platform.publicKey(),
    engagementId: `tw-client-${title}`,
    title,
    description: "TW npm client round trip against the OfferHub sandbox",
    roles: {
      approver: approver.publicKey(),
      serviceProvider: provider.publicKey(),
      platformAddress: platform.publicKey(),
      releaseSigner: releaser.publicKey(),
      disputeResolver: resolver.publicKey(),
      receiver,
    },
    amount,
    platformFee: 2,
    milestones: [{ description: "deliver the work" }],
    trustline: { address: issuer, symbol: "USDC" },
  };
  const sent = await signAndSend(await tw.deployEscrow(payload, "single-release"), platform);
  // InitializeSingleReleaseEscrowResponse: contractId and the escrow.
  assert.match(sent.contractId, /^C[A-Z2-7]{55}$/);
  assert.equal(sent.escrow.title, title);
  assert.equal(sent.escrow.amount, amount);
  assert.equal(sent.escrow.roles.receiver, receiver);
  const e = await escrowOf(sent.contractId);
  assert.equal(e.user, platform.publicKey());
  assert.equal(e.type, "single-release");
  assert.equal(e.balance, 0);
  return sent.contractId;
}

async function fund(contractId, amount, type = "single-release") {
  await signAndSend(await tw.fundEscrow({ contractId, signer: approver.publicKey(), amount }, type), approver);
  const [b] = await tw.getMultipleBalances({ addresses: [contractId] });
  assert.equal(b.address, contractId);
  close(b.balance, amount, "escrow balance after funding");
  close((await escrowOf(contractId)).balance, amount, "indexer balance after funding");
}

// --- 1. deploy, fund, change milestone status, approve, release -----------------------
const start = { approver: await usdcOf(approver.publicKey()), platform: await usdcOf(platform.publicKey()), receiver: await usdcOf(receiver) };
const one = await deploy("release", 50);
await fund(one, 50);
close(await usdcOf(approver.publicKey()), start.approver - 50, "approver after funding");

await signAndSend(
  await tw.changeMilestoneStatus(
    { contractId: one, milestoneIndex: "0", newStatus: "completed", newEvidence: "https://example.com/proof", serviceProvider: provider.publicKey() },
    "single-release",
  ),
  provider,
);
let e = await escrowOf(one);
assert.equal(e.milestones[0].status, "completed");
assert.equal(e.milestones[0].evidence, "https://example.com/proof");

await signAndSend(await tw.approveMilestone({ contractId: one, milestoneIndex: "0", approver: approver.publicKey() }, "single-release"), approver);
e = await escrowOf(one);
assert.equal(e.milestones[0].approved, true);

const byRole = await tw.getEscrowsByRole({ role: "approver", roleAddress: approver.publicKey() });
assert.ok(byRole.some((x) => x.contractId === one), "get-escrows-by-role finds it");
byRole.forEach(checkIndexerShape);
const bySigner = await tw.getEscrowsBySigner({ signer: platform.publicKey() });
assert.ok(bySigner.some((x) => x.contractId === one), "get-escrows-by-signer finds it");

await signAndSend(await tw.releaseFunds({ contractId: one, releaseSigner: releaser.publicKey() }, "single-release"), releaser);
e = await escrowOf(one);
assert.equal(e.flags.released, true);
assert.equal(e.balance, 0);
// 50 − 0.3 % TW fee (0.15) − 2 % platform fee (1) = 48.85 to the receiver.
close(await usdcOf(receiver), start.receiver + 48.85, "receiver after release");
close(await usdcOf(platform.publicKey()), start.platform + 1, "platform fee after release");

// --- 2. deploy, fund, dispute, resolve 25/15 ------------------------------------------
const two = await deploy("dispute", 40);
await fund(two, 40);
await signAndSend(await tw.startDispute({ contractId: two, signer: approver.publicKey() }, "single-release"), approver);
e = await escrowOf(two);
assert.equal(e.flags.disputed, true);
const before = { approver: await usdcOf(approver.publicKey()), receiver: await usdcOf(receiver), platform: await usdcOf(platform.publicKey()) };
await signAndSend(
  await tw.resolveDispute(
    {
      contractId: two,
      disputeResolver: resolver.publicKey(),
      distributions: [
        { address: approver.publicKey(), amount: 25 },
        { address: receiver, amount: 15 },
      ],
    },
    "single-release",
  ),
  resolver,
);
e = await escrowOf(two);
assert.equal(e.flags.resolved, true);
assert.equal(e.balance, 0);
// Fees 0.12 (TW) + 0.8 (platform) = 0.92 of 40, taken pro rata from each share.
close(await usdcOf(approver.publicKey()), before.approver + 25 - (25 * 0.92) / 40, "approver's share");
close(await usdcOf(receiver), before.receiver + 15 - (15 * 0.92) / 40, "receiver's share");
close(await usdcOf(platform.publicKey()), before.platform + 0.8, "platform fee after resolution");

// A refused call surfaces as an axios error carrying TW's NestJS error body.
const refused = await tw
  .releaseFunds({ contractId: two, releaseSigner: releaser.publicKey() }, "single-release")
  .then((r) => ({ ok: r }), (err) => err);
assert.ok(refused.isAxiosError, `release after resolution refused: ${JSON.stringify(refused.ok ?? refused.message)}`);
assert.equal(typeof refused.response.data.message, "string", JSON.stringify(refused.response.data));
assert.equal(refused.response.data.statusCode, refused.response.status);

// --- 3. multi-release: update before funding, release one milestone, dispute and
// resolve the other, withdraw the remaining funds ----------------------------------------
tw = client("tw-client-check-multi");
await post("/_sandbox/fund", { address: approver.publicKey(), amount: "100", asset: "USDC" });
const multiRoles = {
  approver: approver.publicKey(),
  serviceProvider: provider.publicKey(),
  platformAddress: platform.publicKey(),
  releaseSigner: releaser.publicKey(),
  disputeResolver: resolver.publicKey(),
};
const multiBase = {
  engagementId: "tw-client-multi",
  title: "multi",
  description: "TW npm client multi-release round trip",
  roles: multiRoles,
  platformFee: 2,
  milestones: [
    { description: "first", amount: 10, receiver },
    { description: "second", amount: 20, receiver: provider.publicKey() },
  ],
  trustline: { address: issuer, symbol: "USDC" },
};
let sent = await signAndSend(await tw.deployEscrow({ signer: platform.publicKey(), ...multiBase }, "multi-release"), platform);
const three = sent.contractId;
assert.match(three, /^C[A-Z2-7]{55}$/);
assert.equal(sent.escrow.milestones.length, 2);
assert.equal(sent.escrow.milestones[1].receiver, provider.publicKey());
e = await escrowOf(three);
assert.equal(e.type, "multi-release");
assert.equal(e.roles.receiver, undefined, "multi-release roles have no receiver");

// update-escrow (platform address, nothing funded yet): a new title and first milestone.
const updated = { ...multiBase, title: "multi, updated", milestones: [{ ...multiBase.milestones[0], description: "first, rewritten" }, multiBase.milestones[1]], isActive: true };
sent = await signAndSend(await tw.updateEscrow({ contractId: three, signer: platform.publicKey(), escrow: updated }, "multi-release"), platform);
assert.equal(sent.contractId, three);
assert.equal(sent.escrow.title, "multi, updated");
e = await escrowOf(three);
assert.equal(e.title, "multi, updated");
assert.equal(e.milestones[0].description, "first, rewritten");

await fund(three, 35, "multi-release"); // 5 more than the milestones: withdrawn at the end
const m0 = { receiver: await usdcOf(receiver), platform: await usdcOf(platform.publicKey()) };
await signAndSend(
  await tw.changeMilestoneStatus({ contractId: three, milestoneIndex: "0", newStatus: "completed", newEvidence: "proof", serviceProvider: provider.publicKey() }, "multi-release"),
  provider,
);
await signAndSend(await tw.approveMilestone({ contractId: three, milestoneIndex: "0", approver: approver.publicKey() }, "multi-release"), approver);
await signAndSend(await tw.releaseFunds({ contractId: three, milestoneIndex: "0", releaseSigner: releaser.publicKey() }, "multi-release"), releaser);
e = await escrowOf(three);
assert.equal(e.milestones[0].flags.released, true);
assert.equal(e.milestones[0].flags.approved, true);
close(e.balance, 25, "multi balance after the first release");
// 10 − 0.03 − 0.2 = 9.77 to the first milestone's receiver.
close(await usdcOf(receiver), m0.receiver + 9.77, "first milestone's receiver");
close(await usdcOf(platform.publicKey()), m0.platform + 0.2, "platform fee, first milestone");

await signAndSend(await tw.startDispute({ contractId: three, milestoneIndex: "1", signer: approver.publicKey() }, "multi-release"), approver);
e = await escrowOf(three);
assert.equal(e.milestones[1].flags.disputed, true);
const m1 = { approver: await usdcOf(approver.publicKey()), provider: await usdcOf(provider.publicKey()) };
await signAndSend(
  await tw.resolveDispute(
    {
      contractId: three,
      milestoneIndex: "1",
      disputeResolver: resolver.publicKey(),
      distributions: [
        { address: approver.publicKey(), amount: 5 },
        { address: provider.publicKey(), amount: 15 },
      ],
    },
    "multi-release",
  ),
  resolver,
);
e = await escrowOf(three);
assert.equal(e.milestones[1].flags.resolved, true);
close(e.balance, 5, "multi balance after the resolution");
// Fees on 20: 0.06 + 0.4 = 0.46, pro rata.
close(await usdcOf(approver.publicKey()), m1.approver + 5 - 0.115, "approver's milestone share");
close(await usdcOf(provider.publicKey()), m1.provider + 15 - 0.345, "provider's milestone share");

const w = await usdcOf(approver.publicKey());
sent = await signAndSend(
  await tw.withdrawRemainingFunds({ contractId: three, disputeResolver: resolver.publicKey(), distributions: [{ address: approver.publicKey(), amount: 5 }] }),
  resolver,
);
e = await escrowOf(three);
assert.equal(e.balance, 0);
// Fees on 5: 0.015 + 0.1 = 0.115.
close(await usdcOf(approver.publicKey()), w + 4.885, "remaining funds withdrawn to the approver");
const [mb] = await tw.getMultipleBalances({ addresses: [three] });
close(mb.balance, 0, "multi escrow emptied");

const indexed = await tw.updateFromTxHash({ txHash: sent.txHash });
assert.equal(indexed.status, "SUCCESS", JSON.stringify(indexed));
assert.equal(typeof indexed.message, "string");

console.log("ok");
