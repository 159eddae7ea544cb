# A private PostgreSQL server for a black-box test: initdb in a temporary directory, pg_ctl
# start on a unix socket in it and on a free loopback port, stopped (and removed) at exit.
# Source it after lib.sh. The server runs as the `postgres` system user (PostgreSQL refuses
# to run as root); password authentication (scram-sha-256) on TCP, so that tests can check
# that the password in a DSN never leaks.
#
#   pg_start            start the server; sets PGHOST (socket dir), PGPORT, PG_DIR
#   pg_sql DB SQL       run SQL as the superuser over the socket (psql, unaligned, no header)
#   PG_PASSWORD         the password of role `app` (a superuser: it installs event triggers)
#   PG_DSN              a DSN for role app over TCP, with the password
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
PG_DIR=""
PG_PASSWORD="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# The server refuses to run as root: as root, run its tools as `postgres`; otherwise as is.
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$PG_DIR"
  PG_DIR=""
}

pg_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_start() {
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    echo "pg_lib: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    return 1
  fi
  PG_DIR=$(mktemp -d /tmp/airlock-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; fi
  # lib.sh's trap removes $T; this one also stops the server, whatever way the test ends.
  trap 'pg_stop; rm -rf "$T"' EXIT
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
    cat "$PG_DIR/initdb.log" >&2; return 1; }
  PGPORT=$(pg_free_port)
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PGPORT -c unix_socket_directories=$PG_DIR -c fsync=${PG_FSYNC:-off}" \
    start >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
  export PGHOST=$PG_DIR PGPORT PGUSER=postgres
  pg_sql postgres "CREATE ROLE app LOGIN SUPERUSER PASSWORD '$PG_PASSWORD'" >/dev/null
  pg_sql postgres "CREATE DATABASE app OWNER app" >/dev/null
  PG_DSN="host=127.0.0.1 port=$PGPORT dbname=app user=app password=$PG_PASSWORD connect_timeout=10"
}

# pg_test_begin [CLEANUP]: a test's start: cd to $T and a private server, with a trap that
# runs CLEANUP (if given), stops the server and removes $T; the test ends if it cannot start.
pg_test_begin() {
  local cleanup="${1:+$1; }pg_stop; rm -rf \"\$T\""
  trap "$cleanup" EXIT
  cd "$T" || exit 1
  pg_start || { not_ok "a private PostgreSQL server starts"; finish; }
  trap "$cleanup" EXIT  # pg_start set its own
}

pg_sql() {  # pg_sql DB SQL
  as_pg "$PG_BIN/psql" -h "$PG_DIR" -p "$PGPORT" -U postgres -d "$1" -XAtq \
    -v ON_ERROR_STOP=1 -c "$2"
}
