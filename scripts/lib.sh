# scripts/lib.sh -- shared by scripts/up, scripts/down and scripts/test: installs the Debian
# packages the suite needs, and starts or stops a private PostgreSQL and Redis on loopback with
# their state under a folder of the repository (PostgreSQL's data goes elsewhere when the
# server's user cannot reach that folder: see pg_home). Sourced, not run.

LOYALTY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOYALTY_PACKAGES=(cmake gcc make pkg-config libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
  protobuf-compiler libpq-dev libhiredis-dev libcriterion-dev postgresql redis-server
  python3-grpcio python3-protobuf nghttp2-client postgresql-contrib
  python3-yaml yamllint docker-compose binutils clang prometheus libmicrohttpd-dev
  python3-prometheus-client libssl-dev pgbouncer libyaml-dev)

log() { printf '[loyalty] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root (or sudo) to run: $*"; fi
}

# Installs the packages that are missing; does nothing when all are present.
deps_install() {
  local missing=()
  for p in "${LOYALTY_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Node.js and npm for the Node checks and client: the machine's own when present (it may come
# from another repository than Debian's, with npm inside), else Debian's packages.
node_install() {
  command -v node >/dev/null && command -v npm >/dev/null && return 0
  log "installing: nodejs npm"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nodejs npm >/dev/null
}

# node_deps SRC DEST: installs the npm packages locked in SRC/package-lock.json into
# DEST/node_modules (npm ci), and does it again only when the lock file changed.
node_deps() {
  local src=$1 dest=$2
  mkdir -p "$dest"
  if [ -d "$dest/node_modules" ] && cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
    return 0
  fi
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    die "npm ci failed for $src"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# free_ports N: N different free loopback ports, one per line. Calls of free_port one after
# another may hand out the same port twice, and gRPC servers bind with SO_REUSEPORT, so two
# services given one port would both listen on it and share its calls; the sockets here are all
# held open together until every port is known.
free_ports() {
  python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# PostgreSQL refuses to run as root: when we are root, its commands run as the unprivileged
# `postgres` user the Debian package creates, in a data directory that user owns. Otherwise
# the server runs as the invoking user, in the stack's own folder. From / (every path given is
# absolute), since postgres may not be allowed into the current directory.
pg_run() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# pg_home DIR: prints the folder holding PostgreSQL's data/, server.log and socket for the stack
# in DIR: the one recorded in DIR/pg/home when there is one, else DIR/pg.
pg_home() {
  local dir=$1
  if [ -f "$dir/pg/home" ]; then cat "$dir/pg/home"; else printf '%s\n' "$dir/pg"; fi
}

# pg_home_prepare DIR: makes sure the server's user can use PostgreSQL's folder and prints it.
# As root, the server runs as `postgres`, which cannot enter a checkout under a private folder
# (root's 0700 home, a mktemp -d): then the folder is a new one in /var/tmp (world-writable,
# kept across reboots), owned by postgres and recorded in DIR/pg/home, so that reuse and
# scripts/down find it. A recorded folder is reused while it still holds data of postgres.
pg_home_prepare() {
  local dir=$1 home
  mkdir -p "$dir/pg"
  if [ "$(id -u)" -ne 0 ]; then printf '%s\n' "$dir/pg"; return 0; fi
  if [ -f "$dir/pg/home" ]; then
    home=$(cat "$dir/pg/home")
    if [ -d "$home" ] && [ ! -L "$home" ] && [ "$(stat -c %U "$home")" = postgres ]; then
      printf '%s\n' "$home"; return 0
    fi
    rm -f "$dir/pg/home"
  fi
  chown postgres "$dir/pg"
  if pg_run test -w "$dir/pg" -a -x "$dir/pg"; then
    printf '%s\n' "$dir/pg"; return 0
  fi
  home=$(mktemp -d /var/tmp/loyalty-pg.XXXXXXXX) || die "cannot create a folder in /var/tmp"
  chown postgres "$home"
  printf '%s\n' "$home" >"$dir/pg/home"
  log "PostgreSQL's data is in $home: the postgres user cannot enter $dir"
  printf '%s\n' "$home"
}

# stack_start DIR [fast]: starts (or reuses) PostgreSQL and Redis with state in DIR and writes
# DIR/env with LOYALTY_PG_DSN and LOYALTY_REDIS_URL. "fast" turns off fsync (tests only).
stack_start() {
  local dir=$1 mode=${2:-}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/env" ] && stack_alive "$dir"; then
    log "reusing PostgreSQL and Redis in $dir"
    return 0
  fi
  stack_stop "$dir" >/dev/null 2>&1 || true
  local bin; bin=$(pg_bindir); [ -n "$bin" ] || die "PostgreSQL server binaries not found"
  local pg_port redis_port
  pg_port=$(free_port); redis_port=$(free_port)
  while [ "$redis_port" = "$pg_port" ]; do redis_port=$(free_port); done
  mkdir -p "$dir/redis"
  local home; home=$(pg_home_prepare "$dir")
  if [ ! -f "$home/data/PG_VERSION" ]; then
    # Byte-order collation for the ids and keys every index compares (docs/operations.md,
    # "Collation"); character classes stay UTF-8 aware.
    pg_run "$bin/initdb" -D "$home/data" -U loyalty --auth=trust -E UTF8 --locale=C.UTF-8 \
      --lc-collate=C >"$dir/pg/initdb.log" 2>&1 \
      || { cat "$dir/pg/initdb.log" >&2; die "initdb failed"; }
  fi
  local opts="-c listen_addresses=127.0.0.1 -p $pg_port -k $home -c max_connections=400"
  # Extra server settings for one run (benchmarks: e.g. pg_stat_statements).
  [ -n "${LOYALTY_PG_EXTRA_OPTS:-}" ] && opts="$opts $LOYALTY_PG_EXTRA_OPTS"
  [ "$mode" = fast ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  pg_run "$bin/pg_ctl" -D "$home/data" -l "$home/server.log" -o "$opts" -w -t 60 start >/dev/null \
    || { tail -20 "$home/server.log" >&2; die "PostgreSQL did not start"; }
  "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U loyalty -d postgres -qAt \
    -c "SELECT 1 FROM pg_database WHERE datname = 'loyalty'" | grep -q 1 \
    || "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U loyalty loyalty
  redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --dir "$dir/redis" --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" >/dev/null
  for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 || die "Redis did not start"
  cat >"$dir/env" <<ENV
export LOYALTY_PG_DSN='host=127.0.0.1 port=$pg_port dbname=loyalty user=loyalty'
export LOYALTY_REDIS_URL='redis://127.0.0.1:$redis_port/0'
export LOYALTY_PG_PORT=$pg_port
export LOYALTY_REDIS_PORT=$redis_port
ENV
  log "PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port (state in $dir)"
}

stack_alive() {
  local dir=$1
  # shellcheck disable=SC1091
  (. "$dir/env" && pg_isready -q -h 127.0.0.1 -p "$LOYALTY_PG_PORT" &&
    redis-cli -p "$LOYALTY_REDIS_PORT" ping >/dev/null 2>&1)
}

stack_stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  local bin home; bin=$(pg_bindir); home=$(pg_home "$dir")
  if [ -f "$home/data/postmaster.pid" ]; then
    pg_run "$bin/pg_ctl" -D "$home/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/redis/redis.pid" ]; then
    kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis/redis.pid"
  fi
  rm -f "$dir/env"
}

# pgbouncer_start PG_PORT SERVER_CONNECTIONS: starts a private PgBouncer in transaction pooling
# mode on a free loopback port, in front of the stack's PostgreSQL on PG_PORT (every database,
# user loyalty, trust as that PostgreSQL does), with at most SERVER_CONNECTIONS connections to it
# per database. Its state goes to a new folder under /tmp (as root PgBouncer runs as `postgres`,
# which must reach it). Prints "<folder> <port>"; stop it with pgbouncer_stop <folder>.
pgbouncer_start() {
  local pg_port=$1 server_connections=$2 bin=/usr/sbin/pgbouncer dir port
  [ -x "$bin" ] || bin=$(command -v pgbouncer) || die "pgbouncer not installed"
  dir=$(mktemp -d /tmp/loyalty-pgbouncer.XXXXXXXX) || die "cannot create a folder in /tmp"
  chmod 755 "$dir"
  port=$(free_port)
  printf '"loyalty" ""\n' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = loyalty
stats_users = loyalty
pool_mode = transaction
default_pool_size = $server_connections
max_db_connections = $server_connections
reserve_pool_size = 0
max_client_conn = 900
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
INI
  [ "$(id -u)" -eq 0 ] && chown -R postgres "$dir"
  pg_run "$bin" -d "$dir/pgbouncer.ini" >"$dir/start.log" 2>&1 ||
    { cat "$dir/start.log" "$dir/pgbouncer.log" >&2 2>/dev/null; die "PgBouncer did not start"; }
  for _ in $(seq 100); do
    psql -h 127.0.0.1 -p "$port" -U loyalty -d loyalty -qAt -c 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  psql -h 127.0.0.1 -p "$port" -U loyalty -d loyalty -qAt -c 'SELECT 1' >/dev/null 2>&1 ||
    { tail -20 "$dir/pgbouncer.log" >&2; die "PgBouncer does not answer on $port"; }
  printf '%s %s\n' "$dir" "$port"
}

# pgbouncer_stop DIR: stops the PgBouncer of pgbouncer_start and removes its folder.
pgbouncer_stop() {
  local dir=$1
  case "$dir" in /tmp/loyalty-pgbouncer.*) ;; *) return 0 ;; esac
  if [ -f "$dir/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$dir/pgbouncer.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}
