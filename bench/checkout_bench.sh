#!/usr/bin/env bash
# bench/checkout_bench.sh -- the gateway checkout benchmark (bench/README.md "gateway
# checkout"): builds the release tree, starts a private PostgreSQL (fsync on) and Redis under
# build/bench-checkout, measures the "monolith limit" (pgbench writing a checkout's rows as one
# transaction per checkout, bench/checkout_monolith.sql, 8 clients) and the "fair monolith"
# (the rows the saga writes today, idempotency records and outbox rows included, as one
# transaction: bench/checkout_fair_monolith.sql, prepared, same clients), then starts the five
# services and the gateway and runs build/bench/checkout_bench: as fast as it goes with
# `clients` storefront clients, then paced at half that rate for the latency target; all in
# the same run. After the maximum-rate run it prints the saga's ratio to both anchors and what
# one checkout costs, per service (bench/support/checkout_counts.sh). Stops what it started.
# Usage, from the repository root: bench/checkout_bench.sh [seconds] [clients]
# BENCH_COUNT=0 leaves the per-service counts out (and with them pg_stat_statements, the one
# part of them that costs anything while the saga runs); BENCH_TOP=n lists the n statements
# that take the most backend time (15); BENCH_FSYNC_OFF=1 runs PostgreSQL without fsync;
# CHECKOUT_BENCH_WARMUP_S sets the unmeasured load before the ANALYZE and the runs (1 s).
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
count=1
[ "${BENCH_COUNT:-1}" = 0 ] && count=
[ -n "$count" ] && export LOYALTY_PG_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements"
stack_start "$stack" ${BENCH_FSYNC_OFF:+fast}
. "$stack/env"
bin=$(pg_bindir)
psql_() { "$bin/psql" -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -qAt "$@"; }
services="member-svc points-svc wallet-svc referral-svc promo-svc gateway"
# One database role per service (gateway, member_svc, points_svc, ...), so that
# pg_stat_statements and pg_stat_activity tell the services apart. Superusers, like the `loyalty`
# role the services use everywhere else: the data folder is reused from run to run, and whichever
# role ran the migrations first owns the schemas. The bench's own role is not tracked (no query
# ids): the two pgbench anchors run as before, and only the services' statements are counted.
psql_ -d loyalty -c "DO \$\$ DECLARE r text; BEGIN
    FOREACH r IN ARRAY ARRAY['gateway', 'member_svc', 'points_svc', 'wallet_svc', 'referral_svc',
                             'promo_svc'] LOOP
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('CREATE ROLE %I LOGIN SUPERUSER', r);
      END IF;
    END LOOP; END \$\$" -c "ALTER ROLE loyalty SET compute_query_id = off"
if [ -n "$count" ]; then
  psql_ -d loyalty -c "SET client_min_messages = warning" \
    -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
fi
service_dsn() { echo "host=127.0.0.1 port=$LOYALTY_PG_PORT dbname=loyalty user=${1//-/_}"; }
# The services' schemas before the anchors: the fair monolith's tables are copies of theirs.
for svc in $services; do
  LOYALTY_PG_DSN=$(service_dsn "$svc") LOG_LEVEL=warn "build/$svc/$svc" --migrate \
    >"$stack/$svc.migrate.log" 2>&1 || { cat "$stack/$svc.migrate.log" >&2; exit 1; }
done

echo "== monolith limit: one transaction per checkout (pgbench, $pg_clients clients, $seconds s)"
psql_ -d loyalty -f bench/checkout_monolith_schema.sql >/dev/null
pgbench -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -n -c "$pg_clients" -j 2 -T "$seconds" \
  -f bench/checkout_monolith.sql loyalty 2>/dev/null | grep -E "^(tps|latency average|number of failed)" \
  | tee "$stack/monolith.out"

echo "== fair monolith: the rows the saga writes, idempotency records and outbox rows included, as one transaction (pgbench -M prepared, $pg_clients clients, $seconds s)"
psql_ -d loyalty -f bench/checkout_fair_monolith_schema.sql >/dev/null
# Its lines start with "fair monolith: ": tools take the pinned monolith's ratio from the first
# line that starts with "tps = ".
pgbench -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -n -M prepared -c "$pg_clients" -j 2 \
  -T "$seconds" -f bench/checkout_fair_monolith.sql loyalty 2>/dev/null \
  | grep -E "^(tps|latency average|number of failed)" | sed 's/^/fair monolith: /' \
  | tee "$stack/fair_monolith.out"

declare -A addr
pid_list=
mapfile -t ports < <(free_ports 6)
i=0
for svc in member-svc points-svc wallet-svc referral-svc promo-svc gateway; do
  addr[$svc]=127.0.0.1:${ports[$i]}
  i=$((i + 1))
done
export MEMBER_SVC_ADDR=${addr[member-svc]} POINTS_SVC_ADDR=${addr[points-svc]} \
  WALLET_SVC_ADDR=${addr[wallet-svc]} REFERRAL_SVC_ADDR=${addr[referral-svc]} \
  PROMO_SVC_ADDR=${addr[promo-svc]}
rm -f "$stack"/*.rpc
for svc in $services; do
  # The services run with their own database role and with bench/support/rpc_count.c preloaded
  # when counting (it counts the gRPC calls each serves and makes).
  svc_env=("LISTEN_ADDR=${addr[$svc]}" "LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}"
    "LOYALTY_PG_DSN=$(service_dsn "$svc")")
  [ -n "$count" ] && svc_env+=("LD_PRELOAD=$LOYALTY_ROOT/build/bench/libbench_rpc_count.so"
    "BENCH_RPC_COUNT_FILE=$LOYALTY_ROOT/$stack/$svc.rpc")
  env "${svc_env[@]}" "build/$svc/$svc" >"$stack/$svc.log" 2>&1 &
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
if [ -n "$count" ]; then
  # Counting starts after the set-up: statements (pg_stat_statements) and transactions of the
  # loyalty database by the services (their RPCs, jobs and outbox publishers), CPU, rows, WAL.
  # Each service's metrics endpoint (LISTEN_ADDR's port + 1000, the default): its own counts of
  # transactions and round trips.
  metrics_list=
  for svc in $services; do
    metrics_list="${metrics_list:+$metrics_list,}$svc=127.0.0.1:$((${addr[$svc]##*:} + 1000))"
  done
  export COUNTS_METRICS=$metrics_list
  export COUNTS_DIR=$LOYALTY_ROOT/$stack COUNTS_PIDS=$pid_list \
    COUNTS_REDIS_PID_FILE=$LOYALTY_ROOT/$stack/redis/redis.pid \
    COUNTS_POSTMASTER_PID=$(head -n 1 "$(pg_home "$LOYALTY_ROOT/$stack")/data/postmaster.pid")
  CHECKOUT_BENCH_AFTER_SETUP="$CHECKOUT_BENCH_AFTER_SETUP && bench/support/checkout_counts.sh snapshot"
fi

run_bench() {
  build/bench/checkout_bench "${addr[gateway]}" "${addr[member-svc]}" "${addr[points-svc]}" \
    "${addr[wallet-svc]}" "${addr[referral-svc]}" "${addr[promo-svc]}" "$seconds" "$1" "$2" \
    "$pid_list"
}
echo "== gateway checkout saga: begin + complete, $clients clients, $seconds s"
out=$(run_bench "$clients" 0)
echo "$out"
rate=$(echo "$out" | awk '/checkouts\/s/ {for (i = 1; i <= NF; i++) if ($i == "checkouts/s,") print $(i-1)}')
awk -v r="$rate" '/^tps = / {m = $3} /^fair monolith: tps = / {f = $5}
  END {if (m > 0 && f > 0) printf "saga / monolith limit: %.1f %% (%s checkouts/s against %.0f tps); " \
       "saga / fair monolith: %.1f %% (against %.0f tps)\n", 100 * r / m, r, m, 100 * r / f, f}' \
  "$stack/monolith.out" "$stack/fair_monolith.out"
if [ -n "$count" ]; then
  done_n=$(echo "$out" | awk '/^checkouts [0-9]+ in/ {print $2}')
  bench/support/checkout_counts.sh report "$done_n"
fi
half=$(awk -v r="$rate" 'BEGIN {printf "%.0f", r / 2}')
echo "== the same paced at half that rate ($half checkouts/s)"
run_bench "$clients" "$half"
