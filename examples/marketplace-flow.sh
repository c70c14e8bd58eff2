#!/usr/bin/env bash
# A marketplace backend's side of the whole payment lifecycle, against a running
# `offerhub serve` on the sandbox network (the embedded default). Needs curl and jq.
#
#   OFFERHUB_API_KEY=ohk_live_… examples/marketplace-flow.sh [release|refund|split|cancel|all]
#
#   release  (default) buyer and seller, a sandbox-faucet deposit, order, reserve, escrow,
#            fund, release to the seller, and the seller's withdrawal to an outside wallet
#   refund   … fund, then refund to the buyer
#   split    … fund, the buyer opens a dispute, support resolves it 60/40, the seller
#            withdraws their part
#   cancel   … reserve, then cancel before any escrow: the hold returns to the buyer
#   all      every flow above, one after the other
#
# Environment: OFFERHUB_API_URL (or OFFERHUB_URL; default http://localhost:4000; with or
# without /api/v1), OFFERHUB_API_KEY (scopes read,write,support: resolving a dispute is a
# support action — checked with GET /auth/me before any money moves),
# OFFERHUB_FLOW_WAIT_SECONDS (how long to wait for an operation settling on chain;
# default 180). Every mutation
# carries an Idempotency-Key, so a retried call is executed once. Every run creates new
# users, so the script can be run again and again. Exits non-zero at the first failure,
# printing OfferHub's error. The same flows with @offerhub/sdk: marketplace-flow.ts.
set -euo pipefail

BASE="${OFFERHUB_API_URL:-${OFFERHUB_URL:-http://localhost:4000}}"
BASE="${BASE%/}"
API="${BASE%/api/v1}/api/v1"
KEY="${OFFERHUB_API_KEY:?set OFFERHUB_API_KEY to an API key with scopes read,write,support (offerhub keys create)}"
FLOW="${1:-release}"
WAIT_SECONDS="${OFFERHUB_FLOW_WAIT_SECONDS:-180}"
RUN="$(date +%s)-$$"
ORDER_AMOUNT="100.00"
DEPOSIT="150"

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "this example needs $tool" >&2; exit 2; }
done

# idempotency_key — a fresh key for one mutation (sent again unchanged on a retry).
idempotency_key() {
  if [[ -r /proc/sys/kernel/random/uuid ]]; then cat /proc/sys/kernel/random/uuid
  else printf 'flow-%s-%s-%s' "$RUN" "$RANDOM" "$RANDOM"; fi
}

# api METHOD PATH [JSON] — prints the response's `data`; stops on any non-2xx answer.
# Every mutation (any method but GET) carries an Idempotency-Key.
api() {
  local method=$1 path=$2 body=${3:-} out status
  local -a args=(-H "Authorization: Bearer $KEY")
  [[ "$method" != GET ]] && args+=(-H "Idempotency-Key: $(idempotency_key)")
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' -d "$body")
  out=$(mktemp)
  status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$API$path" "${args[@]}")
  if [[ "$status" != 2* ]]; then
    echo "!! $method $path answered $status:" >&2
    jq . "$out" >&2 2>/dev/null || cat "$out" >&2
    rm -f "$out"
    exit 1
  fi
  jq '.data' "$out"
  rm -f "$out"
}

step() { printf '\n== %s\n' "$*"; }

# balances — both users' available / reserved, as OfferHub's ledger has them.
balances() {
  local b s
  b=$(api GET "/users/$BUYER/balance")
  s=$(api GET "/users/$SELLER/balance")
  printf '   buyer  available %-10s reserved %s\n' "$(jq -r .available <<<"$b")" "$(jq -r .reserved <<<"$b")"
  printf '   seller available %-10s reserved %s\n' "$(jq -r .available <<<"$s")" "$(jq -r .reserved <<<"$s")"
}

# until_equal DESCRIPTION JQ_FILTER EXPECTED METHOD PATH — polls, up to $WAIT_SECONDS
# (chain operations queue behind Trustless Work's 50 requests a minute, so a busy
# deployment may take a while).
until_equal() {
  local what=$1 filter=$2 want=$3 got=""
  for _ in $(seq 1 $((WAIT_SECONDS * 5))); do
    got=$(api "$4" "$5" | jq -r "$filter")
    [[ "$got" == "$want" ]] && return 0
    sleep 0.2
  done
  echo "!! $what: still $got after $WAIT_SECONDS s (wanted $want)" >&2
  exit 1
}

# order_state ID ORDER_JSON — one line: the order's status and its escrow's.
order_state() {
  local e
  printf '   order %s: %s' "$1" "$(jq -r .status <<<"$2")"
  e=$(jq -r '.escrow.status // empty' <<<"$2")
  [[ -n "$e" ]] && printf ', escrow %s (contract %s, balance %s)' "$e" \
    "$(jq -r .escrow.contractId <<<"$2")" "$(jq -r .escrow.balance <<<"$2")"
  printf '\n'
}

# settle ANSWER — a chain operation still settling answers 202 with its saga: wait until
# the saga ends. One that did not complete (compensated: nothing happened; or parked
# NEEDS_ATTENTION for an operator) stops the script, saying why. True when it waited.
settle() {
  local saga status
  saga=$(jq -r '.saga.id // empty' <<<"$1")
  [[ -z "$saga" ]] && return 1
  echo "   (still settling on chain: waiting for $saga)"
  until_equal "saga $saga" '.status != "RUNNING"' true GET "/sagas/$saga"
  status=$(api GET "/sagas/$saga" | jq -r .status)
  if [[ "$status" != COMPLETED ]]; then
    echo "!! saga $saga ended $status:" >&2
    api GET "/sagas/$saga" | jq '{kind, status, step, lastError}' >&2
    exit 1
  fi
  return 0
}

# act METHOD PATH [JSON] — calls an order action and prints the order's state (after
# waiting for a 202's saga).
act() {
  local o
  o=$(api "$@")
  if settle "$o"; then
    o=$(api GET "/orders/$ORDER")
  fi
  order_state "$ORDER" "$o"
}

sandbox_url() {
  local h
  h=$(api GET /health/detailed)
  if [[ "$(jq -r .dependencies.stellarHorizon.network <<<"$h")" != sandbox ]]; then
    echo "!! this example uses the sandbox faucet: run it against 'offerhub serve' on the sandbox network" >&2
    exit 2
  fi
  jq -r .dependencies.stellarHorizon.url <<<"$h" | sed 's#/$##'
}

setup() {
  SANDBOX=$(sandbox_url)
  step "Create the buyer and the seller (each gets an invisible Stellar wallet)"
  BUYER=$(api POST /users "{\"externalUserId\":\"buyer-$1-$RUN\",\"type\":\"BUYER\"}" | jq -r .id)
  SELLER=$(api POST /users "{\"externalUserId\":\"seller-$1-$RUN\",\"type\":\"SELLER\"}" | jq -r .id)
  until_equal "buyer's wallet" .status ACTIVE GET "/users/$BUYER/wallet"
  until_equal "seller's wallet" .status ACTIVE GET "/users/$SELLER/wallet"
  BUYER_ADDRESS=$(api GET "/users/$BUYER/wallet" | jq -r .publicKey)
  echo "   buyer  $BUYER  wallet $BUYER_ADDRESS"
  echo "   seller $SELLER  wallet $(api GET "/users/$SELLER/wallet" | jq -r .publicKey)"

  step "Deposit $DEPOSIT USDC to the buyer's wallet through the sandbox faucet"
  curl -sS -f -X POST "$SANDBOX/_sandbox/fund" -H 'Content-Type: application/json' \
    -d "{\"address\":\"$BUYER_ADDRESS\",\"amount\":\"$DEPOSIT\",\"asset\":\"USDC\"}" >/dev/null
  until_equal "the deposit" .available "$DEPOSIT.00" GET "/users/$BUYER/balance"
  balances
}

# new_order — creates and reserves an order of ORDER_AMOUNT; sets ORDER.
new_order() {
  step "Create an order of $ORDER_AMOUNT"
  local o
  o=$(api POST /orders "{\"buyerId\":\"$BUYER\",\"sellerId\":\"$SELLER\",\"amount\":\"$ORDER_AMOUNT\",\"title\":\"Logo design\",\"clientOrderRef\":\"order-$RUN-$1\"}")
  ORDER=$(jq -r .id <<<"$o")
  order_state "$ORDER" "$o"

  step "Reserve the buyer's funds (a hold on the ledger)"
  act POST "/orders/$ORDER/reserve"
  balances
}

escrow_and_fund() {
  step "Deploy the escrow contract (Trustless Work, single release)"
  act POST "/orders/$ORDER/escrow"
  step "Fund the escrow from the buyer's wallet"
  act POST "/orders/$ORDER/escrow/fund"
  balances
}

# withdraw_seller — the seller's whole available balance to a new outside wallet.
withdraw_seller() {
  local dest amount w id
  dest=$(curl -sS -f -X POST "$SANDBOX/_sandbox/accounts" | jq -r .address)
  amount=$(api GET "/users/$SELLER/balance" | jq -r .available)
  step "The seller withdraws $amount USDC to their own wallet $dest"
  w=$(api POST /withdrawals "{\"userId\":\"$SELLER\",\"amount\":\"$amount\",\"destinationType\":\"crypto\",\"destinationRef\":\"$dest\"}")
  id=$(jq -r .id <<<"$w")
  echo "   withdrawal $id: $(jq -r .status <<<"$w")"
  until_equal "the withdrawal" .status WITHDRAWAL_COMPLETED GET "/withdrawals/$id"
  w=$(api GET "/withdrawals/$id")
  echo "   withdrawal $id: $(jq -r .status <<<"$w"), transaction $(jq -r .txHash <<<"$w")"
  echo "   on the sandbox chain, $dest holds $(curl -sS -f "$SANDBOX/accounts/$dest" \
    | jq -r '.balances[] | select(.asset_code == "USDC") | .balance') USDC"
  balances
}

flow_release() {
  setup release
  new_order release
  escrow_and_fund
  step "The buyer approves: release to the seller (fees are taken by the contract)"
  act POST "/orders/$ORDER/resolution/release" "{\"requestedBy\":\"$BUYER\"}"
  balances
  withdraw_seller
}

flow_refund() {
  setup refund
  new_order refund
  escrow_and_fund
  step "Refund the buyer"
  act POST "/orders/$ORDER/resolution/refund" '{"reason":"Seller could not deliver"}'
  balances
}

flow_split() {
  setup split
  new_order split
  escrow_and_fund
  step "The buyer opens a dispute"
  local d
  d=$(api POST "/orders/$ORDER/resolution/dispute" '{"openedBy":"BUYER","reason":"QUALITY_ISSUE","evidence":[{"url":"https://example.com/draft.png"}]}')
  DISPUTE=$(jq -r .id <<<"$d")
  if settle "$d"; then
    d=$(api GET "/disputes/$DISPUTE")
  fi
  echo "   dispute $DISPUTE: $(jq -r .status <<<"$d"); order $(api GET "/orders/$ORDER" | jq -r .status)"
  step "Support resolves it: 60.00 to the seller, 40.00 back to the buyer"
  d=$(api POST "/disputes/$DISPUTE/resolve" '{"decision":"SPLIT","releaseAmount":"60.00","refundAmount":"40.00","note":"Partly delivered"}')
  if settle "$d"; then
    d=$(api GET "/disputes/$DISPUTE")
  fi
  echo "   dispute $DISPUTE: $(jq -r .status <<<"$d") ($(jq -r .decision <<<"$d"))"
  order_state "$ORDER" "$(api GET "/orders/$ORDER")"
  balances
  withdraw_seller
}

flow_cancel() {
  setup cancel
  new_order cancel
  step "Cancel the order before any escrow: the hold is voided"
  act POST "/orders/$ORDER/cancel" '{"reason":"Buyer changed their mind"}'
  balances
}

# check_scopes — before any money moves: the key must hold every scope the flows use.
check_scopes() {
  local me missing=()
  me=$(api GET /auth/me)
  for scope in read write support; do
    jq -e --arg s "$scope" '.scopes | index($s)' <<<"$me" >/dev/null || missing+=("$scope")
  done
  if ((${#missing[@]})); then
    echo "!! the API key $(jq -r .apiKeyId <<<"$me") lacks the scope(s) ${missing[*]}: create one with read,write,support (offerhub keys create --scopes read,write,support)" >&2
    exit 2
  fi
}

case "$FLOW" in
  release | refund | split | dispute | cancel | all) check_scopes ;;
esac

case "$FLOW" in
  release) flow_release ;;
  refund) flow_refund ;;
  split | dispute) flow_split ;;
  cancel) flow_cancel ;;
  all) flow_release; flow_refund; flow_split; flow_cancel ;;
  *) echo "usage: $0 [release|refund|split|cancel|all]" >&2; exit 2 ;;
esac
step "Done ($FLOW)"
