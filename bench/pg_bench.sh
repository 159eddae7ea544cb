#!/usr/bin/env bash
# PostgreSQL target benchmarks (issue 7), on a private server started by
# tests/blackbox/pg_lib.sh:
#   1. dry-run + classify of a one-row UPDATE through `airlock sql` (policy mode: dry-run, so
#      nothing is applied), against the same statement through `psql -c`. Both are one new
#      process per call, as an agent or a script would run them. Target <= 2x.
#   2. the application's own INSERTs (capture off) into a table with airlock's capture
#      trigger, against the same table without it. Target <= 1.05x.
# Usage: bench/pg_bench.sh [--build DIR] [--calls N] [--rows N]
set -u
BUILD=build CALLS=50 ROWS=200000
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --calls) CALLS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--calls N] [--rows N]" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
AIRLOCK_BIN=$(cd "$BUILD" && pwd)/airlock
export AIRLOCK_BIN
source "$HERE/../tests/blackbox/lib.sh"
source "$HERE/../tests/blackbox/pg_lib.sh"
cd "$T"
pg_start || exit 1
export APP_DB_DSN=$PG_DSN
cat > airlock.yaml <<YAML
version: 1
mode: dry-run
store: ./state/airlock.db
agents:
  - {name: bench, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [app-pg]}
targets:
  app-pg: {kind: postgres, dsn_env: APP_DB_DSN}
YAML
export AIRLOCK_CONFIG=$T/airlock.yaml
pg_sql app "CREATE TABLE users(id int PRIMARY KEY, name text);
  INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 10000) g;
  CREATE TABLE plain(id bigint, v text); CREATE TABLE captured(id bigint, v text);" >/dev/null
airlock pg install --target app-pg >/dev/null || exit 1
psql_app() { PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PGPORT" -U app -d app -XAtq "$@"; }

ms_now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
per_call() {  # per_call CMD...: median wall ms of CALLS runs
  for _ in $(seq "$CALLS"); do
    local s; s=$(ms_now); "$@" >/dev/null 2>&1; echo $(( ($(ms_now) - s) / 1000 ))
  done | median | awk '{printf "%.2f", $1 / 1000}'
}
SQL="UPDATE users SET name = 'renamed' WHERE id = 42"
AIRLOCK_TOKEN=$AGENT_TOKEN "$AIRLOCK_BIN" sql --json --target app-pg "$SQL" | jq -e '.risk == "low"' >/dev/null ||
  { echo "pg_bench: the UPDATE is not previewed as low" >&2; exit 1; }
airlock_ms=$(AIRLOCK_TOKEN=$AGENT_TOKEN per_call "$AIRLOCK_BIN" sql --target app-pg "$SQL")
psql_ms=$(per_call psql_app -c "$SQL")

# Inserts: 5 rounds each, alternating, median of the server-side time (\timing).
insert_ms() {
  psql_app -c "TRUNCATE $1" -c '\timing on' \
    -c "INSERT INTO $1 SELECT g, 'v' || g FROM generate_series(1, $ROWS) g" |
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}
pg_sql app "SELECT airlock.attach('captured'::regclass)" >/dev/null
[ "$(pg_sql app "SELECT count(*) FROM pg_trigger WHERE tgname = 'airlock_capture' AND tgrelid = 'captured'::regclass")" = 1 ] || exit 1
plain=() captured=()
for _ in 1 2 3 4 5; do plain+=("$(insert_ms plain)"); captured+=("$(insert_ms captured)"); done
plain_ms=$(printf '%s\n' "${plain[@]}" | median)
captured_ms=$(printf '%s\n' "${captured[@]}" | median)

echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %10s %10s %8s %8s\n' "benchmark" "airlock" "baseline" "ratio" "target"
awk -v a="$airlock_ms" -v b="$psql_ms" 'BEGIN {printf "%-58s %8.2fms %8.2fms %7.2fx %8s\n", "one-row UPDATE: airlock sql dry-run+classify vs psql -c", a, b, a / b, "<= 2x"}'
awk -v a="$captured_ms" -v b="$plain_ms" -v n="$ROWS" 'BEGIN {printf "%-58s %8.1fms %8.1fms %7.3fx %8s\n", "INSERT " n " rows, capture trigger (off) vs no trigger", a, b, a / b, "<= 1.05x"}'
