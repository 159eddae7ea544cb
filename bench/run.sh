#!/usr/bin/env bash
# Runs airlock's benchmarks and prints the summary table with the ratios and targets.
#   bash bench/run.sh [BUILD_DIR]        (make bench runs it with the normal build dir)
# Extra arguments after BUILD_DIR go to airlock_bench (e.g. --benchmark_filter=Classify).
# The generated databases are cached in BUILD_DIR/bench-data and reused when valid.
set -euo pipefail

BUILD=${1:-build}
shift || true
BIN="$BUILD/airlock_bench"
DATA="$BUILD/bench-data"
JSON="$BUILD/bench-results.json"
LOG="$BUILD/bench-console.txt"

if [[ ! -x "$BIN" ]]; then
  echo "bench: $BIN not found; build first (make build, with AIRLOCK_BENCH=ON)" >&2
  exit 1
fi
command -v jq >/dev/null || { echo "bench: jq is required" >&2; exit 1; }
mkdir -p "$DATA"

hr() { printf '%s\n' "------------------------------------------------------------------------------------------"; }

# ---- the machine ---------------------------------------------------------------------------
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null | head -1)
compiler=${compiler:-c++}
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null | head -1)
hr
echo "airlock benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC')"
hr
printf '%-10s %s\n' "cpus" "$(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
printf '%-10s %s\n' "memory" "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
printf '%-10s %s\n' "disk" "$(df -PT "$DATA" | awk 'NR==2 {print $2 " on " $1 ", mounted at " $7 ", " $5 " KiB free"}')"
printf '%-10s %s\n' "kernel" "$(uname -srm)"
printf '%-10s %s\n' "compiler" "$("$compiler" --version | head -1) (CMAKE_BUILD_TYPE=${build_type:-?})"
printf '%-10s %s\n' "data" "$DATA"
printf '%-10s %s\n' "load" "$(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min load average before the run; other work on the machine skews results)"
hr

# ---- run -----------------------------------------------------------------------------------
# The shell sandbox's benchmarks run in a process of their own, first: a sandbox's supervisor
# is a fork of the caller, so what the caller holds (here, what the audit and classification
# benchmarks left in this process's heap) is copied into every run; that would time the
# benchmark process, not the sandbox (docs/BENCHMARKS.md, "the caller's memory"). With
# arguments (a filter of your own, say), one process runs what they select.
run_bench() {  # OUT_JSON ARGS...
  local out=$1
  shift
  "$BIN" --bench_data="$DATA" --benchmark_out="$out" --benchmark_out_format=json \
    --benchmark_counters_tabular=true "$@" 2>&1 | tee -a "$LOG"
  local status=${PIPESTATUS[0]}
  if [[ $status -ne 0 ]]; then
    echo "bench: airlock_bench exited with $status" >&2
    exit "$status"
  fi
}
: > "$LOG"
if [[ $# -gt 0 ]]; then
  run_bench "$JSON" "$@"
else
  shell_filter='^BM_(SandboxTrue|DryRunTouch)'
  run_bench "$JSON.shell" --benchmark_filter="$shell_filter"
  run_bench "$JSON.rest" --benchmark_filter="-$shell_filter"
  jq -s '.[1] + {benchmarks: (.[1].benchmarks + .[0].benchmarks)}' "$JSON.shell" "$JSON.rest" > "$JSON"
  rm -f "$JSON.shell" "$JSON.rest"
fi

# ---- summary -------------------------------------------------------------------------------
# get NAME_PREFIX FIELD: the field of the first benchmark whose name starts with NAME_PREFIX
# ("" if absent); "ERROR" if that benchmark failed.
get() {
  jq -r --arg p "$1" --arg f "$2" '
    [.benchmarks[] | select(.name | startswith($p))][0] as $b
    | if $b == null then "" elif ($b.error_occurred // false) then "ERROR" else ($b[$f] // "") end' "$JSON"
}
# num: prints a number with the given printf format, or the raw word (ERROR / n/a).
num() { if [[ "$2" =~ ^-?[0-9.e+-]+$ ]]; then printf "$1" "$2"; else printf '%s' "${2:-n/a}"; fi; }
# ratio A B: A/B with 2 decimals, or n/a.
ratio() {
  if [[ "$1" =~ ^[0-9.e+-]+$ && "$2" =~ ^[0-9.e+-]+$ ]]; then
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
  else printf 'n/a'; fi
}
# verdict VALUE OP LIMIT: PASS / MISS / n/a
FormatN() { printf "%'d" "$1" 2>/dev/null || printf '%s' "$1"; }
verdict() {
  if [[ "$1" =~ ^[0-9.e+-]+$ ]]; then
    awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
      ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "PASS" : "MISS" }'
  else echo "n/a"; fi
}

ctx() { jq -r --arg k "$1" '.context[$k] // ""' "$JSON"; }
echo
hr
echo "SUMMARY  (sqlite $(ctx sqlite_version); databases: 200 MB = $(awk -v b="$(ctx db_200mb_bytes)" 'BEGIN{printf "%.0f", b/1e6}') MB, 20 MB = $(awk -v b="$(ctx db_20mb_bytes)" 'BEGIN{printf "%.0f", b/1e6}') MB on disk)"
hr

echo "1. Dry-run + classify of a one-row UPDATE (random id) vs the same UPDATE in plain SQLite"
echo "   plain = sqlite3 C API, autocommit, WAL, synchronous=FULL (durable).  target: airlock <= 2x plain"
printf '   %-7s %-52s %10s %10s %10s\n' "db" "what (per call)" "mean µs" "p50 µs" "p99 µs"
declare -A mean p50
for size in 200 20; do
  for row in "BM_AirlockDryRunClassify|airlock: DryRun + Classify" \
             "BM_PlainOpenUpdateClose|plain: open, UPDATE (durable commit), close" \
             "BM_PlainKeptOpenUpdate|plain: UPDATE (durable commit), connection kept open" \
             "BM_PlainKeptOpenUpdateRollback|info: kept open: BEGIN, UPDATE, ROLLBACK"; do
    name=${row%%|*}; label=${row#*|}
    m=$(get "$name/$size/" mean_us); p=$(get "$name/$size/" p50_us); q=$(get "$name/$size/" p99_us)
    mean[$name/$size]=$m; p50[$name/$size]=$p
    printf '   %-7s %-52s %10s %10s %10s\n' "${size} MB" "$label" "$(num %.1f "$m")" "$(num %.1f "$p")" "$(num %.1f "$q")"
  done
done
echo
printf '   %-7s %-44s %12s %12s %8s\n' "db" "ratio" "mean" "p50" "target"
for size in 200 20; do
  a=BM_AirlockDryRunClassify/$size
  for peer in "BM_PlainOpenUpdateClose|airlock / plain open-per-call" \
              "BM_PlainKeptOpenUpdate|airlock / plain kept-open"; do
    b=${peer%%|*}/$size; label=${peer#*|}
    rm_=$(ratio "${mean[$a]}" "${mean[$b]}"); rp=$(ratio "${p50[$a]}" "${p50[$b]}")
    printf '   %-7s %-44s %11sx %11sx %8s\n' "${size} MB" "$label" "$rm_" "$rp" "$(verdict "$rm_" "<=" 2)"
  done
  rm_=$(ratio "${mean[$a]}" "${mean[BM_PlainKeptOpenUpdateRollback/$size]}")
  rp=$(ratio "${p50[$a]}" "${p50[BM_PlainKeptOpenUpdateRollback/$size]}")
  printf '   %-7s %-44s %11sx %11sx %8s\n' "${size} MB" "info: airlock / same work uncommitted" "$rm_" "$rp" "-"
done
g=$(ratio "${mean[BM_AirlockDryRunClassify/200]}" "${mean[BM_AirlockDryRunClassify/20]}")
printf '   %-52s %11sx  (10x the data; ~1.0 = does not grow)\n' "airlock cost at 200 MB / at 20 MB (mean)" "$g"
echo

echo "2. Dry-run vs \"copy the database first\" (backup API copy, synchronous=OFF, then the UPDATE on the copy)"
echo "   target: airlock >= 50x faster at 200 MB"
printf '   %-7s %-40s %12s %12s %12s %8s\n' "db" "" "copy ms" "airlock ms" "speed-up" "target"
for size in 200 20; do
  c=$(get "BM_CopyThenUpdate/$size/" mean_us)
  a=${mean[BM_AirlockDryRunClassify/$size]}
  s=$(ratio "$c" "$a")
  t="-"; [[ $size == 200 ]] && t=$(verdict "$s" ">=" 50)
  printf '   %-7s %-40s %12s %12s %11sx %8s\n' "${size} MB" "copy + UPDATE vs DryRun + Classify (mean)" \
    "$(num %.1f "$(awk -v v="$c" 'BEGIN{print v/1000}')")" "$(num %.3f "$(awk -v v="$a" 'BEGIN{print v/1000}')")" "$s" "$t"
done
echo

echo "3. Classifier::Classify of a one-row UPDATE, policy of 1,000 rules (5 match)   target: p50 <= 10 µs"
printf '   %-52s %9s %9s %9s %10s %8s\n' "layout" "p50 µs" "p99 µs" "mean µs" "GB mean µs" "target"
for row in "0|mixed: rules over 10 targets, ~285 tested for app-db" "1|worst: all 1,000 rules tested"; do
  arg=${row%%|*}; label=${row#*|}
  p=$(get "BM_Classify1000RulesLatency/$arg/" p50_us)
  q=$(get "BM_Classify1000RulesLatency/$arg/" p99_us)
  m=$(get "BM_Classify1000RulesLatency/$arg/" mean_us)
  gb=$(get "BM_Classify1000Rules/$arg" real_time)
  unit=$(get "BM_Classify1000Rules/$arg" time_unit)
  [[ "$unit" == "ns" && "$gb" =~ ^[0-9.e+-]+$ ]] && gb=$(awk -v v="$gb" 'BEGIN{print v/1000}')
  printf '   %-52s %9s %9s %9s %10s %8s\n' "$label" "$(num %.2f "$p")" "$(num %.2f "$q")" \
    "$(num %.2f "$m")" "$(num %.2f "$gb")" "$(verdict "$p" "<=" 10)"
done
echo "   (p50/p99: 100,000 calls each timed alone with steady_clock, after 10,000 warm-up calls)"
echo

echo "4. Durable audit append (SQLite store, WAL, synchronous=FULL), $(get BM_AuditAppendGrouped producers) producer threads, ~3 s each"
echo "   target: >= 50,000 events/s with group commit"
printf '   %-58s %12s %10s %9s %12s %8s\n' "mode" "events/s" "events" "chain" "CPU s/wall s" "target"
for row in "BM_AuditAppendGrouped|TransactGrouped, $(get BM_AuditAppendGrouped window) futures outstanding per thread" \
           "BM_AuditAppendPerEvent|Transact: one durable transaction per event (peer)" \
           "BM_AuditAppendOneTxn|info: 1 thread, 20,000 appends in ONE transaction"; do
  name=${row%%|*}; label=${row#*|}
  r=$(get "$name" events_per_s); n=$(get "$name" events); v=$(get "$name" verified)
  cw="$(num %.1f "$(get "$name" cpu_s)")/$(num %.1f "$(get "$name" wall_s)")"
  chain="n/a"; [[ "$v" == "1" ]] && chain="verified"; [[ "$v" == "0" ]] && chain="BROKEN"
  [[ "$r" == "ERROR" ]] && chain="ERROR"
  t="-"; [[ $name == BM_AuditAppendGrouped ]] && t=$(verdict "$r" ">=" 50000)
  printf '   %-58s %12s %10s %9s %12s %8s\n' "$label" "$(num %.0f "$r")" "$(num %.0f "$n")" "$chain" "$cw" "$t"
done
printf '   %-58s %11sx\n' "group commit / one transaction per event" \
  "$(ratio "$(get BM_AuditAppendGrouped events_per_s)" "$(get BM_AuditAppendPerEvent events_per_s)")"
echo "   (CPU s: user + system CPU of the whole process during the run, all threads. The last row is"
echo "    no peer: it shows what one writer thread can append when commits cost nothing.)"
hr
echo "5. Shell sandbox as a library call (no CLI, no policy, no store)"
printf '   %-58s %10s %10s %10s %8s\n' "what (per call)" "p50 ms" "p99 ms" "mean ms" "target"
p=$(get BM_SandboxTrue/ p50_us); q=$(get BM_SandboxTrue/ p99_us); m=$(get BM_SandboxTrue/ mean_us)
ms() { if [[ "$1" =~ ^[0-9.e+-]+$ ]]; then awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'; else printf '%s' "${1:-n/a}"; fi; }
printf '   %-58s %10s %10s %10s %8s\n' "RunSandboxed({\"true\"})" "$(ms "$p")" "$(ms "$q")" "$(ms "$m")" \
  "$(verdict "$(awk -v v="${p:-0}" 'BEGIN { print v / 1000 }')" "<=" 3)"
p=$(get BM_SandboxTrueToOutcome/ p50_us); q=$(get BM_SandboxTrueToOutcome/ p99_us); m=$(get BM_SandboxTrueToOutcome/ mean_us)
printf '   %-58s %10s %10s %10s %8s\n' "the same up to the outcome (teardown after, untimed)" "$(ms "$p")" "$(ms "$q")" "$(ms "$m")" \
  "$(verdict "$(awk -v v="${p:-0}" 'BEGIN { print v / 1000 }')" "<=" 3)"
p=$(get BM_SandboxTrueBuiltAhead/ p50_us); q=$(get BM_SandboxTrueBuiltAhead/ p99_us); m=$(get BM_SandboxTrueBuiltAhead/ mean_us)
printf '   %-58s %10s %10s %10s %8s\n' "the same in a sandbox built ahead (Run only; as serve does)" "$(ms "$p")" "$(ms "$q")" "$(ms "$m")" \
  "$(verdict "$(awk -v v="${p:-0}" 'BEGIN { print v / 1000 }')" "<=" 3)"
for files in 10 100000; do
  p=$(get "BM_DryRunTouch/$files/0/" p50_us); q=$(get "BM_DryRunTouch/$files/0/" p99_us); m=$(get "BM_DryRunTouch/$files/0/" mean_us)
  printf '   %-58s %10s %10s %10s %8s\n' "shell connector DryRun(touch x), $(FormatN "$files") files" "$(ms "$p")" "$(ms "$q")" "$(ms "$m")" "-"
done
p=$(get "BM_DryRunTouch/10/1/" p50_us); q=$(get "BM_DryRunTouch/10/1/" p99_us); m=$(get "BM_DryRunTouch/10/1/" mean_us)
printf '   %-58s %10s %10s %10s %8s\n' "the same, 10 files, kept warm (KeepWarm; 100 ms apart)" "$(ms "$p")" "$(ms "$q")" "$(ms "$m")" "-"
printf '   %-58s %9sx %21s %8s\n' "100,000-file / 10-file workspace (p50)" \
  "$(ratio "$(get BM_DryRunTouch/100000/0/ p50_us)" "$(get BM_DryRunTouch/10/0/ p50_us)")" "" \
  "$(verdict "$(ratio "$(get BM_DryRunTouch/100000/0/ p50_us)" "$(get BM_DryRunTouch/10/0/ p50_us)")" "<=" 1.2)"
hr
echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw results: $JSON   console: $LOG"
