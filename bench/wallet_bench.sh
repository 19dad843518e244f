#!/usr/bin/env bash
# bench/wallet_bench.sh -- wallet-svc benchmark (see bench/README.md "Wallet"): builds the
# release tree, starts a private PostgreSQL (fsync on) and Redis under build/bench-wallet,
# measures the PostgreSQL anchor (pgbench's built-in tpcb-like bank transaction: 3 UPDATEs
# and 1 INSERT, 16 clients) and then wallet-svc's Health/Check, GetBalance, Hold+Capture and
# one hot wallet with build/bench/wallet_bench, all in the same run. Stops what it started.
# Usage, from the repository root: bench/wallet_bench.sh [seconds] [threads]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
cd "$LOYALTY_ROOT"
seconds=${1:-8}
threads=${2:-16}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOYALTY_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

stack=build/bench-wallet
svc_pid=
cleanup() {
  [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null
  stack_stop "$LOYALTY_ROOT/$stack"
}
trap cleanup EXIT
stack_start "$stack" ${BENCH_FSYNC_OFF:+fast}
. "$stack/env"
bin=$(pg_bindir)

"$bin/psql" -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -d postgres -qAt \
  -c "SELECT 1 FROM pg_database WHERE datname = 'pgbench_anchor'" | grep -q 1 \
  || "$bin/createdb" -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty pgbench_anchor
pgbench -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -i -q -s 16 pgbench_anchor >/dev/null 2>&1
echo "== PostgreSQL anchor: pgbench tpcb-like, $threads clients, $seconds s"
pgbench -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -c "$threads" -j 2 -T "$seconds" \
  -b tpcb-like pgbench_anchor 2>/dev/null | grep -E "^(tps|latency average)"

port=$(free_port)
LISTEN_ADDR=127.0.0.1:$port LOG_LEVEL=warn build/wallet-svc/wallet-svc >"$stack/wallet-svc.log" 2>&1 &
svc_pid=$!
for _ in $(seq 300); do
  build/tools/loyalty-health "127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.1
done
rss() { awk '/VmRSS|VmHWM/ {printf "%s %.1f MiB  ", $1, $2 / 1024}' "/proc/$svc_pid/status"; echo; }
echo "== wallet-svc idle: $(rss)"
echo "== wallet-svc: $threads client threads, $seconds s per phase"
build/bench/wallet_bench "127.0.0.1:$port" "$seconds" "$threads"
echo "== wallet-svc after load: $(rss)"
