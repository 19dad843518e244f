#!/usr/bin/env bash
# bench/support/checkout_counts.sh -- what one checkout costs, per service: bench/checkout_bench.sh
# runs `snapshot` right before the maximum-rate run (checkout_bench's after-set-up hook) and
# `report <checkouts>` right after it, and prints the table of bench/README.md "gateway checkout:
# the cost of one checkout, per service". Sources, all read before and after the run:
# - RPCs served and calls made: the services run with bench/support/rpc_count.c preloaded, which
#   keeps both counts in $COUNTS_DIR/<service>.rpc;
# - SQL statements and WAL bytes per statement: pg_stat_statements, one database role per service
#   (reset by `snapshot`). The services prepare BEGIN, COMMIT, RELEASE and their SET LOCAL once
#   per connection, and pg_stat_statements counts a prepared utility statement only the first
#   time it runs, so the statements counted are the others;
# - transactions and round trips: each service's own counters (loyalty_db_transactions_total,
#   loyalty_db_round_trips_total on its metrics endpoint, background threads included);
# - rows inserted / updated: pg_stat_user_tables, one schema per service (reset by `snapshot`);
# - WAL in total: pg_current_wal_lsn() before and after;
# - CPU: utime + stime from /proc/<pid>/stat of every service process and of every PostgreSQL
#   process (backends grouped by their role; processes that exited during the run through the
#   postmaster's cutime + cstime) and of Redis.
# Environment: LOYALTY_PG_PORT, LOYALTY_REDIS_PORT, COUNTS_DIR (a folder for the snapshots), COUNTS_PIDS
# ("gateway=<pid>,member-svc=<pid>,..."), COUNTS_METRICS ("gateway=<host:port>,..."),
# COUNTS_REDIS_PID_FILE, COUNTS_POSTMASTER_PID.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
psql_() { "$bin/psql" -h 127.0.0.1 -p "$LOYALTY_PG_PORT" -U loyalty -d loyalty -qAt -F ' ' "$@"; }
services="gateway member-svc points-svc wallet-svc referral-svc promo-svc"

# A service's database role: gateway, member_svc, points_svc, ...
role_of() { printf '%s\n' "${1//-/_}"; }

# utime + stime (or, with "children", cutime + cstime) of a process, in clock ticks.
ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  stat=${stat##*) }
  # After "pid (comm) ": state is field 1, utime 12, stime 13, cutime 14, cstime 15.
  if [ "${2:-}" = children ]; then
    awk '{print $14 + $15}' <<<"$stat"
  else
    awk '{print $12 + $13}' <<<"$stat"
  fi
}

# cpu_snapshot FILE: one line per process, "<group> <key> <ticks>".
cpu_snapshot() {
  local out=$1 pid group
  : >"$out"
  IFS=, read -ra pairs <<<"$COUNTS_PIDS"
  for p in "${pairs[@]}"; do
    echo "${p%%=*} svc:${p%%=*} $(ticks "${p#*=}")" >>"$out"
  done
  if [ -f "${COUNTS_REDIS_PID_FILE:-}" ]; then
    echo "redis redis $(ticks "$(cat "$COUNTS_REDIS_PID_FILE")")" >>"$out"
  fi
  # Backends of the services' roles are that service's; everything else PostgreSQL runs
  # (background processes, the bench's own psql) is "other".
  while read -r pid group; do
    echo "pg:$group pg:$pid $(ticks "$pid")" >>"$out"
  done < <(psql_ -c "SELECT pid, CASE WHEN backend_type = 'client backend'
                       AND usename IN ('gateway', 'member_svc', 'points_svc', 'wallet_svc',
                                       'referral_svc', 'promo_svc')
                     THEN replace(usename, '_', '-') ELSE 'other' END
                     FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
  echo "pg:other pg:postmaster $(( $(ticks "$COUNTS_POSTMASTER_PID") + $(ticks "$COUNTS_POSTMASTER_PID" children) ))" >>"$out"
}

# The sum of one counter family on a service's metrics endpoint (0 when it cannot be read).
metric_sum() {
  python3 -c 'import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://$1/metrics" 2>/dev/null |
    awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}

# rpc_snapshot FILE: "<service> <served> <made> <transactions> <round trips>" per service.
rpc_snapshot() {
  local out=$1 metrics
  : >"$out"
  for svc in $services; do
    local f="$COUNTS_DIR/$svc.rpc" counts="0 0"
    [ -f "$f" ] && counts=$(od -An -t u8 -w16 "$f")
    metrics=$(tr ',' '\n' <<<"${COUNTS_METRICS:-}" | awk -F= -v s="$svc" '$1 == s {print $2}')
    echo "$svc $counts $(metric_sum "$metrics" loyalty_db_transactions_total)" \
      "$(metric_sum "$metrics" loyalty_db_round_trips_total)" >>"$out"
  done
}

# A backend reports its table and transaction counts when it goes idle, but at most once a
# second; when it reported less than a second ago it waits for 10 s of idleness instead
# (PostgreSQL 15, PGSTAT_IDLE_INTERVAL): wait that long so that the counts of what just ran are in
# before reading or resetting them.
settle() { sleep 10.5; }

snapshot() {
  settle
  psql_ -c "SELECT pg_stat_statements_reset(), pg_stat_reset()" >/dev/null
  redis-cli -p "$LOYALTY_REDIS_PORT" CONFIG RESETSTAT >/dev/null
  psql_ -c "SELECT pg_current_wal_lsn()" >"$COUNTS_DIR/before.lsn"
  rpc_snapshot "$COUNTS_DIR/before.rpc"
  cpu_snapshot "$COUNTS_DIR/before.cpu"
}

report() {
  local n=$1 hz
  hz=$(getconf CLK_TCK)
  cpu_snapshot "$COUNTS_DIR/after.cpu"
  rpc_snapshot "$COUNTS_DIR/after.rpc"
  settle
  local wal_total
  wal_total=$(psql_ -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$(cat "$COUNTS_DIR/before.lsn")')")
  # The totals of the whole database, as printed before there was a table (BENCH_COUNT=1).
  psql_ -F '|' -c "SELECT 'per checkout: ' || round(s.work::numeric / $n, 1) ||
    ' SQL statements (besides BEGIN, COMMIT, RELEASE and SET), ' ||
    round((d.xact_commit + d.xact_rollback)::numeric / $n, 1) ||
    ' transactions (an autocommit statement is one), ' ||
    round(d.tup_inserted::numeric / $n, 1) || ' rows inserted, ' ||
    round(d.tup_updated::numeric / $n, 1) || ' updated'
    FROM (SELECT sum(calls) FILTER (WHERE query NOT IN ('BEGIN', 'COMMIT', 'ROLLBACK')) AS work
          FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'loyalty')) s,
         pg_stat_database d WHERE d.datname = 'loyalty'"
  # Per service: "<service> <statements> <wal bytes>" (transactions come from the services).
  psql_ -c "SELECT CASE WHEN r.rolname IN ('gateway', 'member_svc', 'points_svc', 'wallet_svc',
                                         'referral_svc', 'promo_svc')
                      THEN replace(r.rolname, '_', '-') ELSE 'other' END,
                 coalesce(sum(s.calls) FILTER (WHERE s.query NOT IN ('BEGIN', 'COMMIT', 'ROLLBACK')), 0),
                 coalesce(sum(s.wal_bytes), 0)
            FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
           WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = 'loyalty')
           GROUP BY 1" >"$COUNTS_DIR/statements"
  # Per table: "<schema>.<table> <inserted> <updated> <hot updated> <deleted>".
  psql_ -c "SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
              FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0
             ORDER BY 1" >"$COUNTS_DIR/tables"
  psql_ -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'loyalty'" \
    >"$COUNTS_DIR/xacts"

  awk -v n="$n" -v hz="$hz" -v wal_total="$wal_total" -v services="$services" \
      -v xacts="$(cat "$COUNTS_DIR/xacts")" '
    FILENAME ~ /before.rpc$/ { rpc_s0[$1] = $2; rpc_m0[$1] = $3; tx0[$1] = $4; rt0[$1] = $5; next }
    FILENAME ~ /after.rpc$/ {
      served[$1] = $2 - rpc_s0[$1]; made[$1] = $3 - rpc_m0[$1]
      begins[$1] = $4 - tx0[$1]; trips[$1] = $5 - rt0[$1]; next
    }
    FILENAME ~ /before.cpu$/ { cpu0[$2] = $3; next }
    FILENAME ~ /after.cpu$/ {
      g = $1; sub(/^pg:/, "", g)
      if ($1 ~ /^pg:/) pg_cpu[g] += $3 - cpu0[$2]; else proc_cpu[g] += $3 - cpu0[$2]
      next
    }
    FILENAME ~ /statements$/ { st[$1] += $2; wal[$1] += $3; next }
    FILENAME ~ /tables$/ {
      split($1, p, "."); svc = p[1]
      if (svc == "member" || svc == "points" || svc == "wallet" || svc == "referral" || svc == "promo") svc = svc "-svc"
      else if (svc != "gateway") svc = "other"
      ins[svc] += $2; upd[svc] += $3; next
    }
    END {
      ms = 1000 / hz
      printf "per checkout, by service (%d checkouts of the maximum-rate run):\n", n
      printf "%-13s %8s %6s %9s %7s %6s %9s %9s %6s %6s %8s\n", "service", "RPCs in", "out",
        "SQL stmts", "trips", "tx", "pg CPU ms", "proc CPU", "ins", "upd", "WAL kB"
      k = split(services " redis other", names, " ")
      for (i = 1; i <= k; i++) {
        s = names[i]
        if (s == "other") wal[s] += wal_total - wal_sum
        printf "%-13s %8.2f %6.2f %9.1f %7.1f %6.1f %9.2f %9.2f %6.1f %6.1f %8.1f\n", s,
          served[s] / n, made[s] / n, st[s] / n, trips[s] / n, begins[s] / n, pg_cpu[s] * ms / n,
          proc_cpu[s] * ms / n, ins[s] / n, upd[s] / n, wal[s] / 1024 / n
        t_served += served[s]; t_made += made[s]; t_st += st[s]; t_tc += trips[s]
        t_begins += begins[s]; t_pg += pg_cpu[s]; t_proc += proc_cpu[s]; t_ins += ins[s]
        t_upd += upd[s]; wal_sum += (s == "other" ? 0 : wal[s])
      }
      printf "%-13s %8.2f %6.2f %9.1f %7.1f %6.1f %9.2f %9.2f %6.1f %6.1f %8.1f\n", "total",
        t_served / n, t_made / n, t_st / n, t_tc / n, t_begins / n, t_pg * ms / n,
        t_proc * ms / n, t_ins / n, t_upd / n, wal_total / 1024 / n
      printf "transactions: %.1f per checkout in all, %.1f explicit (tx, counted by each service), " \
        "%.1f autocommit statements (not attributable to a service)\n",
        xacts / n, t_begins / n, (xacts - t_begins) / n
    }' "$COUNTS_DIR/before.rpc" "$COUNTS_DIR/after.rpc" "$COUNTS_DIR/before.cpu" \
       "$COUNTS_DIR/after.cpu" "$COUNTS_DIR/statements" "$COUNTS_DIR/tables"
  # The rows behind the "ins" and "upd" columns, table by table (what the fair monolith writes).
  awk -v n="$n" '{ line = line sprintf("  %s %.2f/%.2f", $1, $2 / n, $3 / n) }
    END { if (line != "") print "rows inserted/updated per checkout, by table:" line }' \
    "$COUNTS_DIR/tables" | fold -s -w 100
  # What the services ask of Redis per checkout (caches, invalidations, event streams).
  redis-cli -p "$LOYALTY_REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$n" '
    /^cmdstat_/ { sub(/^cmdstat_/, "", $1); line = line sprintf("  %s %.2f", $1, $3 / n); t += $3 }
    END { printf "redis commands per checkout: %.1f:%s\n", t / n, line }' | fold -s -w 100
  # Where the backends' time goes: the statements that take the most of it per checkout
  # (execution only, lock waits included; planning is not tracked, it would cost the run).
  echo "statements taking the most backend time per checkout (exec ms, calls, mean us, role, query):"
  psql_ -F ' ' -c "SELECT to_char(s.total_exec_time / $n, 'FM990.000'),
                          to_char(s.calls::numeric / $n, 'FM990.00'),
                          to_char(s.mean_exec_time * 1000, 'FM999990'), r.rolname,
                          left(regexp_replace(s.query, '\s+', ' ', 'g'), 90)
                     FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
                    WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = 'loyalty')
                      AND r.rolname <> 'loyalty'
                    ORDER BY s.total_exec_time DESC LIMIT ${BENCH_TOP:-15}" | sed 's/^/  /'
}

case "${1:-}" in
  snapshot) snapshot ;;
  report) report "$2" ;;
  *) echo "usage: $0 snapshot | report <checkouts>" >&2; exit 2 ;;
esac
