#!/usr/bin/env bash
# check_up_private_dir.sh SOURCE_DIR -- a newcomer's first hour: the committed HEAD of
# SOURCE_DIR, cloned into a fresh `mktemp -d` folder (mode 0700, which the `postgres` user cannot
# enter, like root's home), must come up with its own scripts/up (build, PostgreSQL, Redis, every
# service), answer SERVING on every service's health check, and stop with scripts/down. The
# clone's services listen on six free ports (LOYALTY_PORT_BASE), so a suite already running on
# the default ports is left alone. Whatever happens, the clone's processes are stopped and its
# files removed on exit.
set -euo pipefail
src=$(cd "${1:?usage: check_up_private_dir.sh SOURCE_DIR}" && pwd)

fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d)
clone="$work/loyalty"
cleanup() {
  local rc=$?
  if [ -x "$clone/scripts/down" ]; then "$clone/scripts/down" >/dev/null 2>&1 || true; fi
  # PostgreSQL's data folder outside the clone, when scripts/up had to put it there.
  local home; home=$(cat "$clone/.local/stack/pg/home" 2>/dev/null || true)
  case $home in /var/tmp/loyalty-pg.*) rm -rf "$home" ;; esac
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT INT TERM

[ "$(stat -c %a "$work")" = 700 ] || fail "mktemp -d made $(stat -c %a "$work"), not 0700"
git clone -q "$src" "$clone"

# Six consecutive free loopback ports.
base=$(python3 - <<'PY'
import random, socket
rng = random.SystemRandom()
for _ in range(200):
    base = rng.randrange(20000, 40000)
    socks = []
    try:
        for port in range(base, base + 6):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
PY
)
[ -n "$base" ] || fail "no six consecutive free ports"

(cd "$clone" && LOYALTY_PORT_BASE=$base scripts/up) || fail "scripts/up failed in $clone"

names=(gateway member-svc points-svc wallet-svc referral-svc promo-svc)
for i in "${!names[@]}"; do
  svc=${names[$i]}
  [ -x "$clone/build/$svc/$svc" ] || fail "scripts/up did not build $svc"
  "$clone/build/tools/loyalty-health" "127.0.0.1:$((base + i))" >/dev/null ||
    fail "$svc on 127.0.0.1:$((base + i)) is not SERVING"
done

"$clone/scripts/down" >/dev/null 2>&1 || fail "scripts/down failed"
for i in "${!names[@]}"; do
  if "$clone/build/tools/loyalty-health" "127.0.0.1:$((base + i))" >/dev/null 2>&1; then
    fail "${names[$i]} still answers after scripts/down"
  fi
done
[ ! -f "$clone/.local/stack/env" ] || fail "scripts/down left the stack's env behind"
pg_home=$(cat "$clone/.local/stack/pg/home" 2>/dev/null || echo "$clone/.local/stack/pg")
[ ! -f "$pg_home/data/postmaster.pid" ] || fail "PostgreSQL still runs after scripts/down"
echo "scripts/up from a 0700 folder: six services SERVING on $base..$((base + 5)); scripts/down stopped them"
