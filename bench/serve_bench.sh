#!/usr/bin/env bash
# `airlock serve` against a minimal Beast HTTP service (bench/http_baseline.cc), in the same
# run on the same machine: 32 keep-alive clients (wrk, 2 threads) submit a one-row SELECT on
# a SQLite target. airlock authenticates, classifies, runs the read and makes its audit event
# durable (group commit) before it replies; the baseline only runs the SELECT.
# Each is run twice: at saturation (each client sends its next request as soon as it has
# an answer), then with each client waiting --paced-delay-ms on average after an answer
# (default 2.6: about 10,000 requests/s from 32 clients when answers take ~0.5 ms, the
# throughput target), so that the latencies are those of a service below its limit rather
# than of the queue the clients build at saturation. The rate reached is printed: it falls
# as answers take longer. Since every audited answer waits for a group commit's fdatasync,
# the disk's synced-write latency is measured too and printed with the results.
#   bash bench/serve_bench.sh [--build DIR] [--seconds N] [--connections N]
#                             [--paced-delay-ms MS (0: no paced runs)]
set -euo pipefail

BUILD=build
SECONDS_PER_RUN=10
CONNECTIONS=32
PACED_DELAY_MS=2.6
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --paced-delay-ms) PACED_DELAY_MS=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "serve_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
AIRLOCK=$BUILD/airlock
BASELINE=$BUILD/http_baseline
for b in "$AIRLOCK" "$BASELINE"; do
  [[ -x $b ]] || { echo "serve_bench: $b not found; build first (make build)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "serve_bench: wrk is required (apt-get install wrk)" >&2; exit 1; }

W=$(mktemp -d /tmp/airlock-serve-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

TOKEN="alk_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
sqlite3 "$W/app.db" < "$SRC/examples/quickstart/seed.sql" >/dev/null
cat > "$W/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: bench-bot, token_sha256: "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)", scopes: [app-db]}
approvers: []
targets:
  app-db: {kind: sqlite, path: ./app.db}
YAML

source "$SRC/bench/wrk_lib.sh"

# The disk under the store: 4 KiB writes, each synced (O_DSYNC), as the WAL's commits are.
sync_ms=$(dd if=/dev/zero of="$W/sync-probe" bs=4k count=200 oflag=dsync 2>&1 |
  sed -n 's/.* copied, \([0-9.]*\) s.*/\1/p' | awk '{printf "%.2f", $1 * 1000 / 200}')
rm -f "$W/sync-probe"

# run_wrk NAME PORT PID: a 2 s warm-up, then prints "NAME rps p50_us p99_us errors
# cpu_us_per_request", the last from the server's CPU time around the measured run: far
# less noisy on a shared machine than its throughput.
run_wrk() {
  wrk_post "$2" "$CONNECTIONS" 2 2 "$TOKEN" >/dev/null 2>&1 || true
  echo "$1 $(wrk_post "$2" "$CONNECTIONS" 2 "$SECONDS_PER_RUN" "$TOKEN" "$3")"
}

# run_paced NAME PORT PID: the same at the set load (no warm-up: it follows run_wrk); prints
# "NAME rps p50_us p99_us errors cpu_us_per_request", or "NAME -" when there is none.
run_paced() {
  if awk -v d="$PACED_DELAY_MS" 'BEGIN {exit !(d > 0)}'; then
    echo "$1 $(BENCH_DELAY_MS=$PACED_DELAY_MS wrk_post "$2" "$CONNECTIONS" 2 "$SECONDS_PER_RUN" \
      "$TOKEN" "$3")"
  else
    echo "$1 -"
  fi
}

# ---- airlock serve -----------------------------------------------------------------------
(cd "$W" && exec "$AIRLOCK" --config "$W/airlock.yaml" serve --listen 127.0.0.1:0 \
  2>"$W/serve.log") &
PIDS+=($!)
APORT=$(wait_port "$W/serve.log" 's/.*serving http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p')
A=$(run_wrk airlock "$APORT" "${PIDS[0]}")
AP=$(run_paced airlock "$APORT" "${PIDS[0]}")

# ---- baseline ----------------------------------------------------------------------------
"$BASELINE" "$W/app.db" 0 2 >"$W/baseline.log" 2>&1 &
PIDS+=($!)
BPORT=$(wait_port "$W/baseline.log" 's/^listening \([0-9]*\)/\1/p')
B=$(run_wrk baseline "$BPORT" "${PIDS[1]}")
BP=$(run_paced baseline "$BPORT" "${PIDS[1]}")

# ---- the audit chain after the run -------------------------------------------------------
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
verify=$("$AIRLOCK" --config "$W/airlock.yaml" audit verify --json)

read -r _ a_rps a_p50 a_p99 a_err a_cpu <<<"$A"
read -r _ b_rps b_p50 b_p99 b_err b_cpu <<<"$B"
ratio=$(awk -v a="$a_rps" -v b="$b_rps" 'BEGIN {printf "%.2f", a / b}')
printf '%s\n' "------------------------------------------------------------------------------------------"
echo "airlock serve vs a minimal Beast service: one-row SELECT, $CONNECTIONS keep-alive clients (wrk -t2), ${SECONDS_PER_RUN}s each"
printf '%-28s %12s %10s %10s %8s %14s\n' "" "actions/s" "p50" "p99" "errors" "CPU µs/action"
printf '%-28s %12s %10s %10s %8s %14s\n' "airlock serve (audited)" "$a_rps" "$(fmt_ms "$a_p50")" "$(fmt_ms "$a_p99")" "$a_err" "$a_cpu"
printf '%-28s %12s %10s %10s %8s %14s\n' "baseline (no auth, no audit)" "$b_rps" "$(fmt_ms "$b_p50")" "$(fmt_ms "$b_p99")" "$b_err" "$b_cpu"
echo "ratio airlock/baseline: $ratio (target >= 0.5); throughput target >= 10000/s, p99 target <= 2 ms"
read -r _ ap_rps ap_p50 ap_p99 ap_err ap_cpu <<<"$AP"
read -r _ bp_rps bp_p50 bp_p99 bp_err bp_cpu <<<"$BP"
if [[ $ap_rps != - ]]; then
  echo "below saturation (each client waits ${PACED_DELAY_MS} ms on average after an answer):"
  printf '%-28s %12s %10s %10s %8s %14s\n' "airlock serve (audited)" "$ap_rps" "$(fmt_ms "$ap_p50")" "$(fmt_ms "$ap_p99")" "$ap_err" "$ap_cpu"
  printf '%-28s %12s %10s %10s %8s %14s\n' "baseline (no auth, no audit)" "$bp_rps" "$(fmt_ms "$bp_p50")" "$(fmt_ms "$bp_p99")" "$bp_err" "$bp_cpu"
fi
echo "the disk under the store: ${sync_ms:-?} ms per synced 4 KiB write (dd oflag=dsync, mean of 200)"
echo "audit chain after the run: $verify"
