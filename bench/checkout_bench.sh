#!/usr/bin/env bash
# bench/checkout_bench.sh -- the gateway checkout benchmark (bench/README.md "gateway
# checkout"): builds the release tree, starts a private PostgreSQL (fsync on) and Redis under
# build/bench-checkout, measures the "monolith limit" (pgbench writing a checkout's rows as one
# transaction per checkout, bench/checkout_monolith.sql, 8 clients), then starts the five
# services and the gateway and runs build/bench/checkout_bench: as fast as it goes with
# `clients` storefront clients, then paced at half that rate for the latency target; all in
# the same run. Stops what it started.
# Usage, from the repository root: bench/checkout_bench.sh [seconds] [clients]
# BENCH_COUNT=1 also prints SQL statements, transactions and rows per checkout of the maximum-rate
# run (pg_stat_statements; a little slower); BENCH_FSYNC_OFF=1 runs PostgreSQL without fsync.
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
cd "$LOYALTY_ROOT"
seconds=${1:-10}
clients=${2:-16}
pg_clients=${PG_CLIENTS:-8}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOYALTY_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

stack=build/bench-checkout
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  stack_stop "$LOYALTY_ROOT/$stack"
}
trap cleanup EXIT
[ -n "${BENCH_COUNT:-}" ] && export LOYALTY_PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements"
stack_start "$stack" ${BENCH_FSYNC_OFF:+fast}
. "$stack/env"
bin=$(pg_bindir)
psql_() { "$bin/psql" -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -qAt "$@"; }
[ -n "${BENCH_COUNT:-}" ] && psql_ -d loyalty -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

echo "== monolith limit: one transaction per checkout (pgbench, $pg_clients clients, $seconds s)"
psql_ -d loyalty -f bench/checkout_monolith_schema.sql >/dev/null
pgbench -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -n -c "$pg_clients" -j 2 -T "$seconds" \
  -f bench/checkout_monolith.sql loyalty 2>/dev/null | grep -E "^(tps|latency average|number of failed)"

declare -A addr
pid_list=
for svc in member-svc points-svc wallet-svc referral-svc promo-svc; do
  port=$(free_port)
  addr[$svc]=127.0.0.1:$port
done
export MEMBER_SVC_ADDR=${addr[member-svc]} POINTS_SVC_ADDR=${addr[points-svc]} \
  WALLET_SVC_ADDR=${addr[wallet-svc]} REFERRAL_SVC_ADDR=${addr[referral-svc]} \
  PROMO_SVC_ADDR=${addr[promo-svc]}
gw_port=$(free_port)
addr[gateway]=127.0.0.1:$gw_port
for svc in member-svc points-svc wallet-svc referral-svc promo-svc gateway; do
  LISTEN_ADDR=${addr[$svc]} LOG_LEVEL=${BENCH_LOG_LEVEL:-warn} "build/$svc/$svc" \
    >"$stack/$svc.log" 2>&1 &
  pids+=($!)
  pid_list="${pid_list:+$pid_list,}$svc=$!"
done
for svc in member-svc points-svc wallet-svc referral-svc promo-svc gateway; do
  for _ in $(seq 300); do
    build/tools/loyalty-health "${addr[$svc]}" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# The merchant's tables grow from nothing during the set-up. ANALYZE before measuring, as
# autovacuum soon would in production, so that the services' cached plans are made for the real
# table sizes: with the statistics of empty tables PostgreSQL picks plans that scan every row of
# the merchant (the wallet's ledger flush, the points' lot updates) and the figures mean nothing.
export CHECKOUT_BENCH_AFTER_SETUP=${CHECKOUT_BENCH_AFTER_SETUP:-"psql '$LOYALTY_PG_DSN' -qc ANALYZE"}
if [ -n "${BENCH_COUNT:-}" ]; then
  # Counting starts after the set-up: statements (pg_stat_statements) and transactions of the
  # loyalty database, whoever made them (services, their jobs, the outbox publishers).
  CHECKOUT_BENCH_AFTER_SETUP="$CHECKOUT_BENCH_AFTER_SETUP && psql '$LOYALTY_PG_DSN' -qAt -c \
    'SELECT pg_stat_statements_reset(), pg_stat_reset()' >/dev/null"
fi

run_bench() {
  build/bench/checkout_bench "${addr[gateway]}" "${addr[member-svc]}" "${addr[points-svc]}" \
    "${addr[wallet-svc]}" "${addr[referral-svc]}" "${addr[promo-svc]}" "$seconds" "$1" "$2" \
    "$pid_list"
}
echo "== gateway checkout saga: begin + complete, $clients clients, $seconds s"
out=$(run_bench "$clients" 0)
echo "$out"
if [ -n "${BENCH_COUNT:-}" ]; then
  done_n=$(echo "$out" | awk '/^checkouts [0-9]+ in/ {print $2}')
  psql_ -d loyalty -c "SELECT 'per checkout: ' || round(s.work::numeric / $done_n, 1) ||
    ' SQL statements (and ' || round(s.tx::numeric / $done_n, 1) || ' BEGIN/COMMIT/ROLLBACK), ' ||
    round((d.xact_commit + d.xact_rollback)::numeric / $done_n, 1) ||
    ' transactions (an autocommit statement is one), ' ||
    round(d.tup_inserted::numeric / $done_n, 1) || ' rows inserted, ' ||
    round(d.tup_updated::numeric / $done_n, 1) || ' updated'
    FROM (SELECT sum(calls) FILTER (WHERE query NOT IN ('BEGIN', 'COMMIT', 'ROLLBACK')) AS work,
                 coalesce(sum(calls) FILTER (WHERE query IN ('BEGIN', 'COMMIT', 'ROLLBACK')), 0) AS tx
          FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'loyalty')) s,
         pg_stat_database d WHERE d.datname = 'loyalty'"
fi
rate=$(echo "$out" | awk '/checkouts\/s/ {for (i = 1; i <= NF; i++) if ($i == "checkouts/s,") print $(i-1)}')
half=$(awk -v r="$rate" 'BEGIN {printf "%.0f", r / 2}')
echo "== the same paced at half that rate ($half checkouts/s)"
run_bench "$clients" "$half"
