# Helpers shared by up.sh and down.sh; sourced, not run.

pg_bin=/usr/lib/postgresql/15/bin

log() { echo "stack: $*" >&2; }
die() { echo "stack: error: $*" >&2; exit 1; }

# Prints N distinct free loopback TCP ports (bound together, then released).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# True when something LISTENs on 127.0.0.1:PORT or 0.0.0.0:PORT (read from /proc, no probe
# connection: a probe can hold a dovecot port for seconds after it stops).
is_listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" '$4 == "0A" && (substr($2, length($2) - 4) == p) { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6
}

wait_listening() {  # PORT NAME [SECONDS]
  local deadline=$((SECONDS + ${3:-20}))
  until is_listening "$1"; do
    ((SECONDS < deadline)) || die "$2 did not start listening on port $1 (see its log in $stack)"
    sleep 0.05
  done
}

wait_not_listening() {  # PORT [SECONDS]
  local deadline=$((SECONDS + ${2:-20}))
  while is_listening "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

as_user() {  # USER CMD...: run as USER when root, else as ourselves
  local user=$1
  shift
  if [[ $(id -u) == 0 ]]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

npm_cache_dir() {
  if [[ $(id -u) == 0 ]]; then echo "${MAILSYNC_CACHE_DIR:-/var/cache/mailsync}/npm"; else echo "${MAILSYNC_CACHE_DIR:-$HOME/.cache/mailsync}/npm"; fi
}

# Starts a throwaway PostgreSQL 15 cluster in DIR/data on 127.0.0.1:PORT, superuser postgres with
# trust auth. MODE fast: fsync and synchronous_commit off (tests only); durable: the defaults, for
# benchmarks that must pay for durability.
start_postgres() {  # DIR PORT MODE
  local dir=$1 port=$2 mode=$3 settings=""
  [[ $mode == fast ]] && settings="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  mkdir -p "$dir"
  chown postgres: "$dir" 2>/dev/null || true
  as_user postgres "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$dir/initdb.log")"
  as_user postgres "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=200 $settings" \
    >/dev/null || die "postgres did not start: $(tail -5 "$dir/postgres.log")"
}

stop_postgres() {  # DIR
  as_user postgres "$pg_bin/pg_ctl" -D "$1/data" -m fast -w -t 20 stop >/dev/null 2>&1 || true
}
