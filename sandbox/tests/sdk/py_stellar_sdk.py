"""Drives a running OfferHub sandbox with the official Python Stellar SDK (stellar-sdk on
PyPI), as an independent client: builds and signs envelopes with the SDK, submits them
through the SDK's Horizon client, and checks the results. Usage: py_stellar_sdk.py URL"""
import sys

import requests
from stellar_sdk import Asset, Keypair, Server, TransactionBuilder
from stellar_sdk.exceptions import BadRequestError

url = sys.argv[1]
server = Server(url)
root = requests.get(url).json()
passphrase = root["network_passphrase"]
issuer = requests.get(url + "/_sandbox/info").json()["usdc"]["issuer"]
usdc = Asset("USDC", issuer)

platform = Keypair.random()
requests.get(url + "/friendbot", params={"addr": platform.public_key}).raise_for_status()

# Sponsored activation of a new wallet with a USDC trustline (4 operations, 2 signers).
wallet = Keypair.random()
source = server.load_account(platform.public_key)
tx = (
    TransactionBuilder(source, network_passphrase=passphrase, base_fee=100)
    .append_begin_sponsoring_future_reserves_op(wallet.public_key)
    .append_create_account_op(wallet.public_key, "0")
    .append_change_trust_op(usdc, source=wallet.public_key)
    .append_end_sponsoring_future_reserves_op(source=wallet.public_key)
    .set_timeout(120)
    .build()
)
tx.sign(platform)
tx.sign(wallet)
resp = server.submit_transaction(tx)
assert resp["successful"], resp
assert resp["hash"] == tx.hash_hex(), (resp["hash"], tx.hash_hex())

# Fund the wallet with test USDC, then pay part of it to the platform... which has no
# trustline: the SDK surfaces op_no_trust.
requests.post(url + "/_sandbox/fund", json={"address": wallet.public_key, "amount": "10", "asset": "USDC"}).raise_for_status()
requests.post(url + "/_sandbox/fund", json={"address": wallet.public_key, "amount": "2", "asset": "XLM"}).raise_for_status()
acct = server.accounts().account_id(wallet.public_key).call()
bal = [b for b in acct["balances"] if b.get("asset_code") == "USDC"][0]
assert bal["balance"] == "10.0000000", bal
w = server.load_account(wallet.public_key)
tx = (
    TransactionBuilder(w, network_passphrase=passphrase, base_fee=100)
    .append_payment_op(platform.public_key, usdc, "1.5")
    .set_timeout(120)
    .build()
)
tx.sign(wallet)
try:
    server.submit_transaction(tx)
    raise SystemExit("expected op_no_trust")
except BadRequestError as e:
    codes = e.extras["result_codes"]
    assert codes == {"transaction": "tx_failed", "operations": ["op_no_trust"]}, codes

# The payment stream shows the deposits (SDK pagination).
records = server.payments().for_account(wallet.public_key).order(desc=False).call()["_embedded"]["records"]
kinds = [r["type"] for r in records]
assert kinds == ["create_account", "payment", "payment"], kinds
print("ok")
