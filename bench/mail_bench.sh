#!/usr/bin/env bash
# One SMTP send through `airlock send` (a one-recipient message: low, sent at once; the store
# on the root file system, so the submission, the durable intent and the result are each
# committed with fsync) against the same message sent with `curl --mail-rcpt` to the same
# server (tests/mail/smtp_sink.mjs, smtp-server from npm), in one run, interleaved send by
# send. Both sides start one process per send, as an agent's tool call would. Prints p50 and
# p90 of each side and the p50 ratio (issue 6's target: <= 1.5x).
#   bash bench/mail_bench.sh [--build DIR] [--sends N] [--warmup N]
set -euo pipefail

BUILD=build
SENDS=200
WARMUP=10
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --sends) SENDS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "mail_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
AIRLOCK=$BUILD/airlock
[[ -x $AIRLOCK ]] || { echo "mail_bench: $AIRLOCK not found; build first (make build)" >&2; exit 1; }
[[ -f $SRC/tests/mail/node_modules/smtp-server/package.json ]] ||
  { echo "mail_bench: smtp-server missing; run scripts/install-mail-tests.sh (make deps)" >&2; exit 1; }
command -v curl >/dev/null || { echo "mail_bench: curl is required" >&2; exit 1; }

W=$(mktemp -d /tmp/airlock-mail-bench.XXXXXX)
SINK_PID=""
cleanup() {
  [[ -n $SINK_PID ]] && { kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; }
  rm -rf "$W"
}
trap cleanup EXIT
node "$SRC/tests/mail/smtp_sink.mjs" "$W/inbox" >"$W/port" 2>"$W/sink.log" &
SINK_PID=$!
for _ in $(seq 100); do [[ -s $W/port ]] && break; sleep 0.1; done
PORT=$(cat "$W/port")
TOKEN="alk_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$W/airlock.yaml" <<YAML
version: 1
store: $W/state/airlock.db
agents:
  - {name: bench-bot, token_sha256: "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)", scopes: [mail]}
approvers: []
targets:
  mail: {kind: smtp, url: "smtp://127.0.0.1:$PORT", from: bench@example.com}
approvals: {low: 0, high: 0, critical: 0, timeout: 1h}
YAML
printf 'From: bench@example.com\r\nTo: r@example.com\r\nSubject: bench\r\n\r\nhello\r\n' >"$W/msg.eml"

send_airlock() {
  AIRLOCK_TOKEN=$TOKEN "$AIRLOCK" --config "$W/airlock.yaml" send --target mail \
    --to r@example.com --subject bench --body hello >/dev/null
}
send_curl() {
  curl -s "smtp://127.0.0.1:$PORT" --mail-from bench@example.com --mail-rcpt r@example.com \
    -T "$W/msg.eml"
}
ns() { date +%s%N; }
for _ in $(seq "$WARMUP"); do send_airlock; send_curl; done
: >"$W/airlock.us"
: >"$W/curl.us"
for _ in $(seq "$SENDS"); do
  t0=$(ns); send_airlock; t1=$(ns); send_curl; t2=$(ns)
  echo $(((t1 - t0) / 1000)) >>"$W/airlock.us"
  echo $(((t2 - t1) / 1000)) >>"$W/curl.us"
done
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int((NR-1)*p)+1; print a[i]}'; }
a50=$(pct "$W/airlock.us" 0.5) a90=$(pct "$W/airlock.us" 0.9)
c50=$(pct "$W/curl.us" 0.5) c90=$(pct "$W/curl.us" 0.9)
arrived=$(find "$W/inbox" -name '*.eml' | wc -l)
echo "mail_bench: $SENDS sends per side after $WARMUP warm-up, interleaved; $arrived messages arrived"
printf 'mail_bench: airlock send     p50 %6.2f ms  p90 %6.2f ms\n' "$(bc -l <<<"$a50/1000")" "$(bc -l <<<"$a90/1000")"
printf 'mail_bench: curl --mail-rcpt p50 %6.2f ms  p90 %6.2f ms\n' "$(bc -l <<<"$c50/1000")" "$(bc -l <<<"$c90/1000")"
printf 'mail_bench: p50 ratio %.2fx (target <= 1.5x)\n' "$(bc -l <<<"$a50/$c50")"
