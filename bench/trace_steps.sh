#!/usr/bin/env bash
# Where the time of one `airlock exec --target repo -- true` goes, step by step: runs it N
# times with AIRLOCK_TRACE and AIRLOCK_TRACE_CPU (src/core/trace.h) and prints, for every
# step that some process or thread of the command marks, the median of
#   at     wall time from the command's first mark ("cli: main"), in µs;
#   cpu    CPU time the marking thread used since its own previous mark, in µs (for a
#          thread's first mark: since it started; for "cli: main", the process's start
#          before main: exec, the dynamic loader, static constructors).
# The wall time between two marks also counts waits (for a core, the disk, another process);
# the CPU column is what the step itself cost, and is far less noisy on a shared machine.
#
#   bash bench/trace_steps.sh [-n N] [--build DIR] [--keep DIR]
#
#   -n N          commands traced (default 30), after 3 untraced warm-up commands
#   --build DIR   build directory holding airlock (default build)
#   --keep DIR    keep the raw traces (one file per command) in DIR
#
# The policy, workspace and store are made fresh in BUILD/trace-steps/ (bench/shell_target.sh,
# as for bench/shell_peers.sh). The table's rows are ordered by their median `at`. A step marked more
# than once in a command (a run's teardown marks "sandbox: supervisor reaped" on two paths)
# is numbered: "#2" is its second mark.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=30
BUILD=build
KEEP=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) RUNS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "trace_steps: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "trace_steps: -n needs a positive integer" >&2; exit 2; }
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
AIRLOCK="$BUILD/airlock"
[[ -x "$AIRLOCK" ]] || { echo "trace_steps: $AIRLOCK not found; build first (make build)" >&2; exit 1; }

DIR="$BUILD/trace-steps"
TOKEN="alk_trace_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
source "$ROOT/bench/shell_target.sh"
make_shell_target "$DIR" "$TOKEN"
mkdir -p "$DIR/traces"

run() { (cd "$DIR" && AIRLOCK_TOKEN=$TOKEN "$AIRLOCK" --config "$DIR/airlock.yaml" exec --target repo -- true) >/dev/null; }
for _ in 1 2 3; do run; done
for i in $(seq 1 "$RUNS"); do
  AIRLOCK_TRACE="$DIR/traces/$i" AIRLOCK_TRACE_CPU=1 run
done

# One row per mark: "step <TAB> at_us <TAB> cpu_us". A line is "pid ns step<TAB>tid cpu_us".
for f in "$DIR"/traces/*; do
  awk -F'\t' '
    {
      split($1, head, " "); step = $1; sub(/^[0-9]+ [0-9]+ /, "", step)
      split($2, t, " "); tid = t[1]; cpu = t[2]
      if (NR == 1) t0 = head[2]
      seen[step]++; if (seen[step] > 1) step = step " #" seen[step]
      d = (tid in last) ? cpu - last[tid] : cpu
      last[tid] = cpu
      printf "%s\t%d\t%d\n", step, (head[2] - t0) / 1000, d
    }' "$f"
done > "$DIR/rows.tsv"

# Medians per step (of the commands that marked it), ordered by the median of `at`.
median() { # column -> "step<TAB>median<TAB>count"
  cut -f1,"$1" "$DIR/rows.tsv" | sort -t$'\t' -k1,1 -k2,2n |
    awk -F'\t' '
      function flush() { if (n) printf "%s\t%d\t%d\n", key, v[int((n + 1) / 2)], n }
      $1 != key { flush(); key = $1; n = 0 }
      { v[++n] = $2 }
      END { flush() }'
}
median 2 > "$DIR/at.tsv"
median 3 > "$DIR/cpu.tsv"
echo "airlock exec --target repo -- true: $RUNS traced commands, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%8s %8s %5s  %s\n' "at µs" "cpu µs" "runs" "step (medians)"
join -t$'\t' <(sort -t$'\t' -k1,1 "$DIR/at.tsv") <(sort -t$'\t' -k1,1 "$DIR/cpu.tsv") |
  sort -t$'\t' -k2,2n | awk -F'\t' '{ printf "%8d %8d %5d  %s\n", $2, $4, $3, $1 }'
awk -F'\t' '{ s += $2 } END { printf "%8s %8d        sum of the steps'"'"' median CPU (every process and thread of the command but `true`)\n", "", s }' "$DIR/cpu.tsv"
if [[ -n "$KEEP" ]]; then mkdir -p "$KEEP" && cp "$DIR"/traces/* "$KEEP"/; fi
