#!/usr/bin/env bash
# bench/pooler_bench.sh -- direct to PostgreSQL against through PgBouncer in transaction pooling
# mode (bench/README.md "PgBouncer"), in the same run: builds the release tree, starts a private
# PostgreSQL (fsync on) and Redis under build/bench-pooler and a private PgBouncer in front of it
# (scripts/lib.sh pgbouncer_start, 20 server connections), then, for each mode in turn and
# `rounds` times over (BENCH_MODES, default all four): direct (today's default: a connection
# per thread), pool4 (direct, DB_POOL_SIZE=4 per process), session-free (direct, but
# LOYALTY_PG_POOLER=transaction: unnamed statements and the settings in every transaction, i.e.
# the cost of the mode without the extra hop) and pgbouncer (through PgBouncer in that mode):
#   - the six services (LOYALTY_PG_POOLER=transaction through PgBouncer), and
#     build/bench/checkout_bench (Begin + Complete, `clients` storefront clients, `seconds`);
#   - one more wallet-svc with caching off (no Redis, no near cache: every call a statement),
#     and build/bench/wallet_bench's health (the anchor: no database) and balance phases.
# Prints each round's figures; the ratios are the caller's arithmetic (bench/README.md).
# Usage, from the repository root: bench/pooler_bench.sh [seconds] [clients] [rounds]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
cd "$LOYALTY_ROOT"
seconds=${1:-8}
clients=${2:-16}
rounds=${3:-2}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOYALTY_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

stack=build/bench-pooler
pids=()
bouncer=
stop_services() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_services
  [ -n "$bouncer" ] && pgbouncer_stop "$bouncer"
  stack_stop "$LOYALTY_ROOT/$stack"
}
trap cleanup EXIT
stack_start "$stack"
. "$stack/env"
direct_dsn=$LOYALTY_PG_DSN
read -r bouncer bouncer_port < <(pgbouncer_start "$LOYALTY_PG_PORT" 20)
pooled_dsn="host=127.0.0.1 port=$bouncer_port dbname=loyalty user=loyalty"
services="member-svc points-svc wallet-svc referral-svc promo-svc gateway"
for svc in $services; do
  LOYALTY_PG_DSN=$direct_dsn LOG_LEVEL=warn "build/$svc/$svc" --migrate >/dev/null
done

wait_healthy() {
  for _ in $(seq 300); do
    build/tools/loyalty-health "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$1 did not become healthy"
}

# start_services MODE: the six services, and a wallet-svc without caches, for MODE.
declare -A addr
start_services() {
  local mode=$1 mode_env=()
  if [ "$mode" = pgbouncer ]; then
    mode_env=("LOYALTY_PG_DSN=$pooled_dsn" "LOYALTY_PG_POOLER=transaction")
  elif [ "$mode" = pool4 ]; then
    mode_env=("LOYALTY_PG_DSN=$direct_dsn" "DB_POOL_SIZE=4" "DB_POOL_WAIT_MS=10000")
  elif [ "$mode" = session-free ]; then
    mode_env=("LOYALTY_PG_DSN=$direct_dsn" "LOYALTY_PG_POOLER=transaction")
  else
    mode_env=("LOYALTY_PG_DSN=$direct_dsn")
  fi
  mapfile -t ports < <(free_ports 7)
  local i=0
  for svc in $services wallet-nocache; do
    addr[$svc]=127.0.0.1:${ports[$i]}
    i=$((i + 1))
  done
  for svc in $services; do
    env "${mode_env[@]}" LISTEN_ADDR="${addr[$svc]}" METRICS_ADDR= LOG_LEVEL=warn \
      MEMBER_SVC_ADDR="${addr[member-svc]}" POINTS_SVC_ADDR="${addr[points-svc]}" \
      WALLET_SVC_ADDR="${addr[wallet-svc]}" REFERRAL_SVC_ADDR="${addr[referral-svc]}" \
      PROMO_SVC_ADDR="${addr[promo-svc]}" "build/$svc/$svc" >"$stack/$svc.$mode.log" 2>&1 &
    pids+=($!)
  done
  env "${mode_env[@]}" LISTEN_ADDR="${addr[wallet-nocache]}" METRICS_ADDR= LOG_LEVEL=warn \
    LOYALTY_REDIS_URL= NEAR_CACHE_ENTRIES=0 build/wallet-svc/wallet-svc \
    >"$stack/wallet-nocache.$mode.log" 2>&1 &
  pids+=($!)
  for svc in $services wallet-nocache; do wait_healthy "${addr[$svc]}"; done
}

for round in $(seq "$rounds"); do
  for mode in ${BENCH_MODES:-direct pool4 session-free pgbouncer}; do
    start_services "$mode"
    echo "== round $round, $mode: checkout (begin + complete), $clients clients, $seconds s"
    build/bench/checkout_bench "${addr[gateway]}" "${addr[member-svc]}" "${addr[points-svc]}" \
      "${addr[wallet-svc]}" "${addr[referral-svc]}" "${addr[promo-svc]}" "$seconds" \
      "$clients" 0 | grep -E "^checkouts|^latency"
    echo "== round $round, $mode: wallet-svc without caches, Health/Check and GetBalance, $clients threads, $seconds s"
    build/bench/wallet_bench "${addr[wallet-nocache]}" "$seconds" "$clients" hb \
      | grep -vE "^wallet-svc at"
    stop_services
  done
done
