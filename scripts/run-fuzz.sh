#!/usr/bin/env bash
# Runs every fuzz target for a bounded time over its seed corpus (fuzz/corpus/NAME/).
# The seed is fixed (FUZZ_SEED, default 1) so a CI run explores the same inputs first;
# FUZZ_SEED=0 lets libFuzzer pick one for longer exploratory runs.
# A crash fails the run and leaves the reproducer in fuzz/artifacts/.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/fuzz/artifacts"
status=0
for bin in "$build"/*_fuzz; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin" _fuzz)
  corpus="$root/fuzz/corpus/$name"
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus/." "$work/"
  echo "fuzz: $name for ${seconds}s"
  if ! "$bin" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$root/fuzz/artifacts/${name}-" "$work" >"$work.log" 2>&1; then
    tail -40 "$work.log"
    echo "fuzz: $name FAILED"
    status=1
  else
    grep -E "^Done|stat::number_of_executed_units" "$work.log" | tail -1 || true
    echo "fuzz: $name passed"
  fi
  rm -rf "$work" "$work.log"
done
exit $status
