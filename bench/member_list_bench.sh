#!/usr/bin/env bash
# bench/member_list_bench.sh -- member-svc lists and counts at 1,000 and 1,000,000 members (see
# bench/README.md "member-svc"): builds the release tree, starts a private PostgreSQL and Redis
# under build/bench-member, runs build/bench/member_list_bench (which starts member-svc, seeds
# both merchants with SQL and measures over gRPC), and stops what it started.
# Usage, from the repository root: bench/member_list_bench.sh [members] [samples]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
cd "$LOYALTY_ROOT"

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOYALTY_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

stack=build/bench-member
trap 'stack_stop "$LOYALTY_ROOT/$stack"' EXIT
stack_stop "$LOYALTY_ROOT/$stack" >/dev/null 2>&1 || true
rm -rf "$stack" # a fresh database every run: migrations as on main, no members of earlier runs
stack_start "$stack" ${BENCH_FSYNC_OFF:+fast}
. "$stack/env"
build/bench/member_list_bench "${1:-1000000}" "${2:-300}"
