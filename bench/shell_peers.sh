#!/usr/bin/env bash
# Times "run `true` in a sandbox" for airlock exec and the peer sandboxes, in one run on the
# same machine, and prints median and p99 wall time per command with ratios to the first.
#
#   bash bench/shell_peers.sh [options] [N] [NAME=COMMAND ...]
#
#   N                 timed runs per command (default 200)
#   NAME=COMMAND      a named command; COMMAND is split into words like a shell line (quotes
#                     work; it is eval'ed, so treat it as code). The FIRST command is the
#                     reference of the ratio columns. Without any, the default list is used:
#                       bwrap         bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true
#                       airlock       $AIRLOCK_EXEC_CMD, default "BUILD/airlock exec --target repo -- true"
#                                     with a policy and workspace of its own in BUILD/shell-peers/airlock
#                       airlock-serve BUILD/airlock exec --server URL --target repo -- true: the same
#                                     through an `airlock serve` this script starts (its own policy,
#                                     workspace and store), which keeps a sandbox built ahead
#                       airlock-serve-cold  the same through a second server started with
#                                     --no-standby: each command's sandbox is built when it comes
#                       codex         bench/peers/node_modules/.bin/codex sandbox -- true   (npm entry, via node)
#                       codex-native  the vendored native codex binary: sandbox -- true   (no node wrapper)
#                       srt           bench/peers/node_modules/.bin/srt -c true
#                       direct        true   (no sandbox: the cost of spawning a process at all)
#   --peers           the default list without airlock (until `airlock exec` exists)
#   --no-serve        the default list without the two airlock-serve rows
#   -n N              same as the positional N
#   -w W              untimed warm-up rounds (default 3)
#   --build DIR       build directory holding spawn_timer and airlock (default build)
#   --cwd DIR         directory the commands run in (default: the repository root)
#   --timeout-ms T    a run taking longer fails its command (default 60000)
#
# Method: build/spawn_timer (bench/spawn_timer.cc) runs every command once per round,
# round-robin with the order rotated each round, after W warm-up rounds; it times each run with
# CLOCK_MONOTONIC from posix_spawn to waitpid. stdin/stdout are /dev/null; stderr is kept in
# BUILD/shell-peers/NAME.stderr. Processes a command leaves behind are waited for, untimed,
# before the next run starts (at most 2 s; the table says how long). A command that exits non-zero (or is killed, or times out) in
# any round, warm-up included, is reported FAILED with its reason and is not timed further;
# then this script exits 1 after printing the table.
# Raw samples: BUILD/shell-peers/results.tsv.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=200
WARMUP=3
BUILD=build
CWD=$ROOT
TIMEOUT_MS=60000
PEERS_ONLY=0
SERVE=1
specs=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) RUNS=$2; shift 2 ;;
    -w) WARMUP=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --cwd) CWD=$2; shift 2 ;;
    --timeout-ms) TIMEOUT_MS=$2; shift 2 ;;
    --peers) PEERS_ONLY=1; shift ;;
    --no-serve) SERVE=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; specs+=("$@"); break ;;
    -*) echo "shell_peers: unknown option $1" >&2; exit 2 ;;
    *)
      if [[ ${#specs[@]} -eq 0 && "$1" =~ ^[0-9]+$ ]]; then RUNS=$1
      elif [[ "$1" == *=* ]]; then specs+=("$1")
      else echo "shell_peers: expected N or NAME=COMMAND, got: $1" >&2; exit 2
      fi
      shift ;;
  esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "shell_peers: N must be a positive integer" >&2; exit 2; }
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
TIMER="$BUILD/spawn_timer"
[[ -x "$TIMER" ]] || { echo "shell_peers: $TIMER not found; build first (make build)" >&2; exit 1; }
[[ -d "$CWD" ]] || { echo "shell_peers: --cwd $CWD is not a directory" >&2; exit 2; }

PEERS="$ROOT/bench/peers/node_modules"
CODEX_NATIVE="$PEERS/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
[[ $(uname -m) == aarch64 ]] && CODEX_NATIVE="$PEERS/@openai/codex-linux-arm64/vendor/aarch64-unknown-linux-musl/bin/codex"
# airlock's side: a policy of its own in BUILD/shell-peers/NAME (a shell target `repo` over
# a small workspace, one agent), so that the run includes policy load, scope check, sandbox,
# classification and the audit write of a real `airlock exec`. Every such policy names one
# agent, with the token in AIRLOCK_TOKEN.
TOKEN="alk_bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
source "$ROOT/bench/shell_target.sh"
prepare_airlock() { make_shell_target "$BUILD/shell-peers/$1" "$TOKEN"; }
# `airlock serve` on BUILD/shell-peers/NAME's policy, any free port; sets URL. Stopped on exit.
SERVERS=()
stop_servers() {
  local pid
  for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVERS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_servers EXIT
start_server() {
  local dir="$BUILD/shell-peers/$1" i
  shift
  "$BUILD/airlock" --config "$dir/airlock.yaml" serve --listen 127.0.0.1:0 "$@" 2>"$dir/serve.log" &
  SERVERS+=($!)
  for i in $(seq 1 200); do
    URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$dir/serve.log" | head -1 || true)
    [[ -n "$URL" ]] && return 0
    sleep 0.05
  done
  echo "shell_peers: airlock serve did not start; see $dir/serve.log" >&2
  exit 1
}
# airlock's code in 2 MiB pages, as its link left it (tools/hugetext.cc; README, Design): a
# page cache dropped since (drop_caches, memory pressure) holds it in 4 KiB pages again, and
# every command then faults it in 16 pages at a time. Read back here, before any airlock
# process of this run maps it (mapped pages cannot be dropped); it says how much it got.
if [[ $PEERS_ONLY != 1 && -x "$BUILD/hugetext" ]]; then "$BUILD/hugetext" "$BUILD/airlock" || true; fi
if [[ ${#specs[@]} -eq 0 ]]; then
  specs+=("bwrap=bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc true")
  if [[ $PEERS_ONLY != 1 ]]; then
    if [[ -z "${AIRLOCK_EXEC_CMD:-}" ]]; then
      prepare_airlock airlock
      export AIRLOCK_CONFIG="$BUILD/shell-peers/airlock/airlock.yaml" AIRLOCK_TOKEN="$TOKEN"
    fi
    specs+=("airlock=${AIRLOCK_EXEC_CMD:-$BUILD/airlock exec --target repo -- true}")
    if [[ $SERVE == 1 ]]; then
      export AIRLOCK_TOKEN="$TOKEN"
      prepare_airlock serve
      start_server serve
      specs+=("airlock-serve=$BUILD/airlock exec --server $URL --target repo -- true")
      prepare_airlock serve-cold
      start_server serve-cold --no-standby
      specs+=("airlock-serve-cold=$BUILD/airlock exec --server $URL --target repo -- true")
    fi
  fi
  specs+=("codex=$PEERS/.bin/codex sandbox -- true"
          "codex-native=$CODEX_NATIVE sandbox -- true"
          "srt=$PEERS/.bin/srt -c true"
          "direct=true")
fi

# ---- the commands -> spawn_timer arguments ----------------------------------------------------
OUT="$BUILD/shell-peers"
mkdir -p "$OUT"
rm -f "$OUT"/*.stderr
args=(--runs "$RUNS" --warmup "$WARMUP" --timeout-ms "$TIMEOUT_MS" --stderr-dir "$OUT")
names=()
for spec in "${specs[@]}"; do
  name=${spec%%=*}; cmdline=${spec#*=}
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "shell_peers: bad command name '$name'" >&2; exit 2; }
  words=()
  eval "words=($cmdline)"
  [[ ${#words[@]} -gt 0 ]] || { echo "shell_peers: '$name' has an empty command" >&2; exit 2; }
  names+=("$name")
  args+=(--cmd "$name" "${#words[@]}" "${words[@]}")
done

hr() { printf '%s\n' "------------------------------------------------------------------------------------------"; }
ver() { local v; v=$("$@" 2>/dev/null | head -1) || true; printf '%s' "${v:-n/a}"; }
hr
echo "shell sandbox peers: \`true\` in a sandbox — $(date -u '+%Y-%m-%d %H:%M UTC')"
hr
printf '%-10s %s\n' "cpus" "$(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
printf '%-10s %s\n' "kernel" "$(uname -srm)"
printf '%-10s %s\n' "user" "$(id -un) (uid $(id -u))"
printf '%-10s %s\n' "cwd" "$CWD"
printf '%-10s %s\n' "bwrap" "$(ver bwrap --version)"
printf '%-10s %s\n' "node" "$(ver node --version)"
printf '%-10s %s\n' "codex" "$(ver "$PEERS/.bin/codex" --version)"
printf '%-10s %s\n' "srt" "$(ver "$PEERS/.bin/srt" --version)"
printf '%-10s %s\n' "load" "$(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before; other work on the machine skews results)"
for f in "${CODEX_HOME:-$HOME/.codex}/config.toml" "$HOME/.srt-settings.json"; do
  [[ -e "$f" ]] && echo "note       $f exists and changes that peer's sandbox policy"
done
printf '%-10s %s\n' "method" "$RUNS timed runs each after $WARMUP warm-up rounds, round-robin (order rotated per round)"
hr
for spec in "${specs[@]}"; do printf '  %-18s %s\n' "${spec%%=*}" "${spec#*=}"; done
hr

# ---- run --------------------------------------------------------------------------------------
RAW="$OUT/results.tsv"
status=0
(cd "$CWD" && "$TIMER" "${args[@]}") >"$RAW" || status=$?
if [[ $status -ne 0 && $status -ne 1 ]]; then
  echo "shell_peers: spawn_timer exited with $status" >&2
  exit "$status"
fi

# ---- table ------------------------------------------------------------------------------------
first=${names[0]}
ref_p50=$(awk -F'\t' -v n="$first" '$1 == "summary" && $2 == n { print $4 }' "$RAW")
ref_p99=$(awk -F'\t' -v n="$first" '$1 == "summary" && $2 == n { print $5 }' "$RAW")
echo
printf '%-18s %6s %11s %11s %11s %11s %13s %13s\n' "name" "runs" "median ms" "p99 ms" "min ms" "max ms" \
  "median/first" "p99/first"
for name in "${names[@]}"; do
  line=$(awk -F'\t' -v n="$name" '$1 == "summary" && $2 == n' "$RAW")
  if [[ -z "$line" ]]; then
    why=$(awk -F'\t' -v n="$name" '$1 == "failed" && $2 == n { print "round " $3 ": " $4 }' "$RAW")
    printf '%-18s %6s  FAILED (%s)\n' "$name" "-" "${why:-no result}"
    continue
  fi
  IFS=$'\t' read -r _ _ runs p50 p99 min max _ lingered linger_max stragglers <<<"$line"
  awk -v name="$name" -v runs="$runs" -v p50="$p50" -v p99="$p99" -v min="$min" -v max="$max" \
      -v r50="$ref_p50" -v r99="$ref_p99" 'BEGIN {
    q50 = (r50 > 0) ? sprintf("%.2fx", p50 / r50) : "n/a"
    q99 = (r99 > 0) ? sprintf("%.2fx", p99 / r99) : "n/a"
    printf "%-18s %6d %11.2f %11.2f %11.2f %11.2f %13s %13s\n", name, runs, p50 / 1e6, p99 / 1e6,
      min / 1e6, max / 1e6, q50, q99 }'
  if [[ "$lingered" != 0 ]]; then
    printf '%18s (%s of %s runs left processes behind that exited up to %.1f ms later, untimed' \
      "" "$lingered" "$((runs + WARMUP))" "$(awk -v v="$linger_max" 'BEGIN { print v / 1e6 }')"
    if [[ "$stragglers" != 0 ]]; then printf '; %s runs left some running > 2 s' "$stragglers"; fi
    printf ')\n'
  fi
done
if [[ -n "$ref_p50" ]]; then echo "(ratios: median and p99 divided by those of the first command, $first)"
else echo "ratios: n/a, the first command ($first) failed"; fi
echo "(p50/p99: nearest rank, index floor(q*n) of the sorted samples; with N <= 100 the p99 is the max)"

if [[ $status -ne 0 ]]; then
  echo
  hr
  echo "FAILED commands (stderr kept in $OUT/NAME.stderr):"
  while IFS=$'\t' read -r _ name round why; do
    echo "  $name: round $round: $why"
    if [[ -s "$OUT/$name.stderr" ]]; then tail -n 5 "$OUT/$name.stderr" | sed 's/^/      | /'; fi
  done < <(awk -F'\t' '$1 == "failed"' "$RAW")
fi
hr
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw samples: $RAW"
exit "$status"
