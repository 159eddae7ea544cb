#!/usr/bin/env bash
# PostgreSQL target benchmarks (issue 7), on a private server started by
# tests/blackbox/pg_lib.sh:
#   1. dry-run + classify of a one-row UPDATE through `airlock sql` (policy mode: dry-run, so
#      nothing is applied), against the same statement through `psql -c`. Both are one new
#      process per call, as an agent or a script would run them. Target <= 2x.
#   2. the application's own INSERTs (capture off) into a table with airlock's capture
#      trigger, against the same table without it: one bulk INSERT ... SELECT of --rows rows
#      (the worst case per row) and --statements single-row INSERT statements in one
#      transaction (an application's usual traffic). --rounds alternating rounds each,
#      median. Target <= 1.05x.
#   3. the shared store: `airlock serve` with its store in PostgreSQL, read actions (a
#      one-row SELECT on a SQLite target, as bench/serve_bench.sh) from 32 keep-alive
#      clients (wrk), on one instance and on two instances sharing the store (16 clients
#      each), beside one instance with the SQLite store, --seconds each.
# Usage: bench/pg_bench.sh [--build DIR] [--calls N] [--rows N] [--statements N]
#                          [--rounds N] [--seconds N]
set -u
BUILD=build CALLS=50 ROWS=200000 STATEMENTS=20000 ROUNDS=9 SECONDS_PER_RUN=10
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --calls) CALLS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --statements) STATEMENTS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--build DIR] [--calls N] [--rows N] [--statements N] [--rounds N] [--seconds N]" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "pg_bench: wrk is required (apt-get install wrk)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
AIRLOCK_BIN=$(cd "$BUILD" && pwd)/airlock
export AIRLOCK_BIN
source "$HERE/../tests/blackbox/lib.sh"
source "$HERE/../tests/blackbox/pg_lib.sh"
cd "$T"
# Durable, as a production server is (the tests' servers run with fsync=off): the shared
# store's commits are compared with the SQLite store's, which fsyncs.
PG_FSYNC=on pg_start || exit 1
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

# Inserts: ROUNDS rounds each, alternating, median. Bulk: the server-side time (\timing) of
# one INSERT ... SELECT. Statements: the wall time of a psql session that sends STATEMENTS
# single-row INSERTs in one transaction.
insert_ms() {
  psql_app -c "TRUNCATE $1" -c '\timing on' \
    -c "INSERT INTO $1 SELECT g, 'v' || g FROM generate_series(1, $ROWS) g" |
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}
seq "$STATEMENTS" | awk '{printf "INSERT INTO TABLE_NAME VALUES (%d, '"'"'v%d'"'"');\n", $1, $1}' > inserts.sql
sed 's/TABLE_NAME/plain/' inserts.sql > inserts-plain.sql
sed 's/TABLE_NAME/captured/' inserts.sql > inserts-captured.sql
statements_ms() {
  psql_app -c "TRUNCATE $1"
  local s; s=$(ms_now)
  psql_app -1 -f "inserts-$1.sql" >/dev/null
  echo "$(( ($(ms_now) - s) / 1000 ))" | awk '{printf "%.1f", $1 / 1000}'
}
pg_sql app "SELECT airlock.attach('captured'::regclass)" >/dev/null
[ "$(pg_sql app "SELECT count(*) FROM pg_trigger WHERE tgname = 'airlock_capture' AND tgrelid = 'captured'::regclass")" = 1 ] || exit 1
plain=() captured=() plain_st=() captured_st=()
for _ in $(seq "$ROUNDS"); do
  plain+=("$(insert_ms plain)"); captured+=("$(insert_ms captured)")
  plain_st+=("$(statements_ms plain)"); captured_st+=("$(statements_ms captured)")
done
plain_ms=$(printf '%s\n' "${plain[@]}" | median)
captured_ms=$(printf '%s\n' "${captured[@]}" | median)
plain_st_ms=$(printf '%s\n' "${plain_st[@]}" | median)
captured_st_ms=$(printf '%s\n' "${captured_st[@]}" | median)
[ "$(pg_sql app "SELECT count(*) FROM captured")" = "$STATEMENTS" ] || { echo "pg_bench: the inserts did not land" >&2; exit 1; }
[ "$(pg_sql app "SELECT count(*) FROM airlock.changes")" = 0 ] || { echo "pg_bench: capture recorded the application's rows" >&2; exit 1; }

# ---- 3. the shared store -----------------------------------------------------------------
source "$SRC/bench/wrk_lib.sh"
SERVE_PIDS=()
stop_serves() {
  for p in "${SERVE_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  SERVE_PIDS=()
}
trap 'stop_serves; pg_stop; rm -rf "$T"' EXIT
pg_sql postgres "CREATE DATABASE airlock_store OWNER app" >/dev/null
export AIRLOCK_STORE_DSN=${PG_DSN/dbname=app/dbname=airlock_store}
BENCH_TOKEN_VALUE="alk_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p S
sqlite3 S/app.db < "$SRC/examples/quickstart/seed.sql" >/dev/null
serve_policy() {  # serve_policy FILE [STORE_LINE]
  cat > "$1" <<YAML
version: 1
store: $T/S/state/airlock.db
$2
agents:
  - {name: bench-bot, token_sha256: "$(sha "$BENCH_TOKEN_VALUE")", scopes: [app-db]}
approvers: []
targets:
  app-db: {kind: sqlite, path: $T/S/app.db}
YAML
}
serve_policy S/pg.yaml "store_dsn_env: AIRLOCK_STORE_DSN"
serve_policy S/sqlite.yaml ""
"$AIRLOCK_BIN" --config S/pg.yaml store migrate >/dev/null || { echo "pg_bench: store migrate failed" >&2; exit 1; }
start_serve() {  # start_serve POLICY LOG: sets PORT
  (cd S && exec "$AIRLOCK_BIN" --config "$T/S/$1" serve --listen 127.0.0.1:0 >/dev/null 2>"$T/S/$2") &
  SERVE_PIDS+=($!)
  PORT=$(wait_port "$T/S/$2" 's/.*serving http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p')
}
# shared_run NAME POLICY INSTANCES: appends "NAME rps p50_us p99_us errors cpu_us" over all
# instances (p50 and CPU µs per action: the instances' mean; p99: the worst) to
# S/results.txt.
shared_run() {
  local ports=() n=$3 i wpids=()
  for i in $(seq "$n"); do start_serve "$2" "serve-$1-$i.log" || return 1; ports+=("$PORT"); done
  for p in "${ports[@]}"; do wrk_post "$p" $((32 / n)) 1 2 "$BENCH_TOKEN_VALUE" >/dev/null 2>&1; done
  for i in $(seq "$n"); do
    wrk_post "${ports[$((i - 1))]}" $((32 / n)) $((2 / n)) "$SECONDS_PER_RUN" "$BENCH_TOKEN_VALUE" \
      "${SERVE_PIDS[$((i - 1))]}" > "S/wrk-$1-$i.txt" &
    wpids+=($!)
  done
  wait "${wpids[@]}"
  stop_serves
  cat S/wrk-"$1"-*.txt | awk -v name="$1" '{r += $1; p50 += $2; if ($3 > p99) p99 = $3; e += $4; c += $5}
    END {printf "%s %.0f %.0f %.0f %d %.0f\n", name, r, p50 / NR, p99, e, c / NR}' >> S/results.txt
}
shared_run sqlite-1 sqlite.yaml 1
shared_run pg-1 pg.yaml 1
shared_run pg-2 pg.yaml 2
verify=$("$AIRLOCK_BIN" --config S/pg.yaml audit verify --json | jq -c '{ok, events}')

echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-62s %10s %10s %8s %8s\n' "benchmark" "airlock" "baseline" "ratio" "target"
awk -v a="$airlock_ms" -v b="$psql_ms" 'BEGIN {printf "%-62s %8.2fms %8.2fms %7.2fx %8s\n", "one-row UPDATE: airlock sql dry-run+classify vs psql -c", a, b, a / b, "<= 2x"}'
awk -v a="$captured_ms" -v b="$plain_ms" -v n="$ROWS" 'BEGIN {printf "%-62s %8.1fms %8.1fms %7.3fx %8s\n", "bulk INSERT of " n " rows, capture trigger (off) vs none", a, b, a / b, "<= 1.05x"}'
awk -v a="$captured_st_ms" -v b="$plain_st_ms" -v n="$STATEMENTS" 'BEGIN {printf "%-62s %8.1fms %8.1fms %7.3fx %8s\n", n " single-row INSERTs, capture trigger (off) vs none", a, b, a / b, "<= 1.05x"}'
echo "  bulk rounds (trigger / none, ms): ${captured[*]} / ${plain[*]}"
echo "  statement rounds (trigger / none, ms): ${captured_st[*]} / ${plain_st[*]}"
echo
echo "airlock serve, read actions (one-row SELECT on a SQLite target), 32 keep-alive clients in all, ${SECONDS_PER_RUN}s"
printf '%-44s %12s %10s %10s %8s %14s\n' "" "actions/s" "p50" "p99" "errors" "CPU µs/action"
while read -r name rps p50 p99 err cpu; do
  case $name in
    sqlite-1) label="1 instance, SQLite store" ;;
    pg-1) label="1 instance, PostgreSQL store" ;;
    pg-2) label="2 instances sharing the PostgreSQL store" ;;
  esac
  printf '%-44s %12s %10s %10s %8s %14s\n' "$label" "$rps" "$(fmt_ms "$p50")" "$(fmt_ms "$p99")" "$err" "$cpu"
done < S/results.txt
echo "the shared audit chain after the runs: $verify"
