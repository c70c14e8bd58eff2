#!/usr/bin/env bash
# Scale-out benchmark (issue #15; docs/PERFORMANCE.md reads its output). One run, one
# throwaway PostgreSQL cluster (fsync on), loopback only:
#   - pgbench TPC-B (16 clients) on the same cluster, before and after;
#   - OfferHub's HTTP write rate, p50/p99: balance adjustments across 200 users, and
#     order create+reserve pairs; sequencer lag (occurredAt -> seen on SSE) p50/p99
#     under the adjustments load;
#   - on PostgreSQL with one daemon and with two daemons on one database, and on the
#     embedded SQLite default (one daemon);
#   - ledger verify / audit verify after each.
# Needs wrk, jq, curl, python3, the PostgreSQL binaries and a release build
# (cargo build --release). Run from the project root:
#   benches/scale-out.sh [SECONDS] [CONNECTIONS]
set -u
S=${1:-15}; C=${2:-32}
ROOT=$(pwd); OB=$ROOT/target/release/offerhub
[ -x "$OB" ] || { echo "build first: cargo build --release" >&2; exit 2; }
for t in wrk jq curl python3; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 2; }; done
T=$(mktemp -d -t obscale.XXXXXX); chmod 755 "$T"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PGPORT=$(port)
MASTER=ohk_master_perf_0123456789abcdef0123456789abcdef
WALLET_KEY=7d3f0a1c2b4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef
PIDS=()
asuser() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null; done; sleep 1; asuser "$PGBIN/pg_ctl" -D "$T/pg" stop -m fast >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
mkdir -p "$T/pg"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$T/pg"
asuser "$PGBIN/initdb" -D "$T/pg" -U postgres -A trust >/dev/null
asuser "$PGBIN/pg_ctl" -D "$T/pg" -o "-p $PGPORT -k $T/pg -c max_connections=300" -l "$T/pg/pg.log" start -w >/dev/null
PGURL="postgres://postgres@127.0.0.1:$PGPORT"
"$PGBIN/psql" -q "$PGURL/postgres" -c "create database bench" -c "create database ob1" -c "create database ob2" >/dev/null
"$PGBIN/pgbench" -q -i -s 10 "$PGURL/bench" >/dev/null 2>&1
pgb() { "$PGBIN/pgbench" -c 16 -j 2 -T "$S" "$PGURL/bench" 2>/dev/null | awk '/^tps/ {print int($3)}'; }

serve() { # DIR DBURL -> appends to URLS, sets URL
  local dir=$1 db=$2 p; p=$(port); mkdir -p "$dir"
  ( cd "$dir" && exec env PORT=$p OFFERHUB_MASTER_KEY=$MASTER OFFERHUB_RATE_LIMIT_PER_MINUTE=1000000 \
      WALLET_ENCRYPTION_KEY=$WALLET_KEY STELLAR_HORIZON_URL=$HORIZON \
      RUST_LOG=warn DATABASE_URL="$db" "$OB" serve >"$dir/serve.log" 2>&1 ) &
  PIDS+=("$!"); URL=http://127.0.0.1:$p/api/v1; URLS+=("$URL")
  for _ in $(seq 300); do curl -fs "$URL/health" >/dev/null && return 0; sleep 0.1; done
  echo "serve failed"; tail "$dir/serve.log"; exit 1
}
stop_all() { # the daemons (the sandbox stays)
  for p in "${PIDS[@]:-}"; do [ "$p" = "$SANDBOX_PID" ] || kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]:-}"; do [ "$p" = "$SANDBOX_PID" ] || wait "$p" 2>/dev/null; done
  PIDS=("$SANDBOX_PID"); URLS=()
}
mkusers() { # N
  : > "$T/users"
  for i in $(seq 1 "$1"); do
    id=$(curl -s -X POST -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
      --data "{\"externalUserId\":\"perf-$RANDOM-$i\"}" "$URL/users" | jq -r .data.id)
    curl -s -o /dev/null -X POST -H "Authorization: Bearer $MASTER" -H 'Content-Type: application/json' \
      --data '{"amount":"1000000.00","reason":"perf"}' "$URL/users/$id/balance/adjustments"
    echo "$id" >> "$T/users"
  done
}
cat > "$T/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("rps=%d p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\n", summary.requests/(summary.duration/1e6),
    latency:percentile(50)/1000, latency:percentile(99)/1000,
    summary.errors.connect+summary.errors.read+summary.errors.write+summary.errors.timeout, summary.errors.status))
end
LUA
cat > "$T/adj.lua" <<'LUA'
dofile(os.getenv("REPORT"))
local ids = {}
for l in io.lines(os.getenv("USERS")) do ids[#ids+1] = l end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("MASTER")
wrk.body = '{"amount":"-0.01","reason":"perf"}'
request = function() return wrk.format(nil, "/api/v1/users/" .. ids[math.random(#ids)] .. "/balance/adjustments") end
LUA
# Order create, then reserve of a created order: every response to a create queues its
# id; the next request reserves a queued order, or creates one when none is queued.
cat > "$T/order.lua" <<'LUA'
dofile(os.getenv("REPORT"))
local ids, queue = {}, {}
for l in io.lines(os.getenv("USERS")) do ids[#ids+1] = l end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("MASTER")
request = function()
  local o = table.remove(queue)
  if o then return wrk.format("POST", "/api/v1/orders/" .. o .. "/reserve") end
  local b = math.random(#ids); local s = b % #ids + 1
  return wrk.format("POST", "/api/v1/orders", nil, string.format(
    '{"buyerId":"%s","sellerId":"%s","amount":"1.00","title":"perf"}', ids[b], ids[s]))
end
response = function(status, headers, body)
  if status == 201 then local id = body:match('"id":"(ord_[%w]+)"'); if id then queue[#queue+1] = id end end
end
LUA
# SSE lag: for every event seen on GET /events, now - occurredAt (occurredAt is written
# at insert, just before the writer's commit). Prints p50/p99 in ms after $1 seconds.
cat > "$T/sse_lag.py" <<'PY'
import json, sys, time, urllib.request, datetime, threading
url, key, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
lags = []
def run():
    req = urllib.request.Request(url + "/events", headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=secs + 30) as r:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("data:"):
                now = datetime.datetime.now(datetime.timezone.utc)
                try:
                    at = json.loads(line[5:])["occurredAt"].replace("Z", "+00:00")
                except Exception:
                    continue
                lags.append((now - datetime.datetime.fromisoformat(at)).total_seconds() * 1000)
threading.Thread(target=run, daemon=True).start()
time.sleep(secs)
lags.sort()
if not lags:
    print("events=0"); sys.exit()
pct = lambda p: lags[min(len(lags) - 1, int(len(lags) * p))]
print("events=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f" % (len(lags), pct(0.5), pct(0.99), lags[-1]))
PY
load() { # SCRIPT -> one wrk per daemon, connections split; prints each
  local n=${#URLS[@]} out=() i=0 w=()
  for u in "${URLS[@]}"; do
    ( REPORT=$T/report.lua USERS=$T/users MASTER=$MASTER wrk -t$((2 / n)) -c$((C / n)) -d"${S}s" -s "$T/$1.lua" "${u%/api/v1}" 2>&1 \
        | grep rps= > "$T/wrk.$i" ) &
    w+=("$!"); i=$((i + 1))
  done
  wait "${w[@]}"
  for j in $(seq 0 $((n - 1))); do out+=("daemon$((j + 1)): $(cat "$T/wrk.$j" 2>/dev/null)"); done
  local total=0
  for j in $(seq 0 $((n - 1))); do total=$((total + $(sed -n 's/^rps=\([0-9]*\).*/\1/p' "$T/wrk.$j" 2>/dev/null || echo 0))); done
  echo "total ${total} req/s | ${out[*]}"
}
load_with_lag() { # SCRIPT
  python3 "$T/sse_lag.py" "${URLS[0]}" "$MASTER" "$((S + 2))" > "$T/lag" 2>&1 &
  local lp=$!
  sleep 1
  load "$1"
  wait "$lp"
  echo "  sequencer lag (occurredAt -> SSE on daemon1): $(cat "$T/lag")"
}
verify() { # DBURL
  local env=(DATABASE_URL="$1" WALLET_ENCRYPTION_KEY=$WALLET_KEY STELLAR_HORIZON_URL=$HORIZON OFFERHUB_MASTER_KEY=$MASTER)
  ( cd "$T" && env "${env[@]}" "$OB" ledger verify >/dev/null 2>&1 && echo -n "ledger verify ok; " || echo -n "ledger verify FAILED; " )
  ( cd "$T" && env "${env[@]}" "$OB" audit verify 2>&1 | head -1 )
}

# One standalone sandbox (Horizon + Trustless Work) for every daemon, as in production
# several daemons share one network.
SBPORT=$(port)
( cd "$T" && exec "$OB" sandbox --port "$SBPORT" >"$T/sandbox.log" 2>&1 ) &
PIDS+=("$!"); HORIZON=http://127.0.0.1:$SBPORT
for _ in $(seq 100); do curl -fs "$HORIZON/" >/dev/null && break; sleep 0.1; done
SANDBOX_PID=${PIDS[0]}

URLS=()
echo "pgbench TPC-B (16 clients, ${S}s, fsync on): $(pgb) tps"
serve "$T/pg1" "$PGURL/ob1"
mkusers 200
echo "PG 1 daemon, adjustments (${C} conns): $(load_with_lag adj)"
echo "PG 1 daemon, order create+reserve (${C} conns): $(load order)"
stop_all; verify "$PGURL/ob1"
serve "$T/pg2a" "$PGURL/ob2"; serve "$T/pg2b" "$PGURL/ob2"
URL=${URLS[0]}; mkusers 200
echo "PG 2 daemons, adjustments (${C} conns): $(load_with_lag adj)"
echo "PG 2 daemons, order create+reserve (${C} conns): $(load order)"
stop_all; verify "$PGURL/ob2"
echo "pgbench TPC-B again: $(pgb) tps"
serve "$T/sq" "sqlite://$T/sq/ob.db?mode=rwc"
mkusers 200
echo "SQLite adjustments (${C} conns): $(load_with_lag adj)"
echo "SQLite order create+reserve (${C} conns): $(load order)"
stop_all; verify "sqlite://$T/sq/ob.db?mode=rwc"
