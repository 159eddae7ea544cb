# Helpers shared by the HTTP benchmarks (serve_bench.sh, pg_bench.sh); source it.
# SRC must name the source tree (for bench/serve_post.lua).

# wait_port FILE SED_EXPR: prints the port a server wrote to FILE once it listens.
wait_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(sed -n "$2" "$1" 2>/dev/null | head -1)
    [[ -n $port ]] && { echo "$port"; return 0; }
    sleep 0.05
  done
  echo "bench: no port in $1:" >&2; cat "$1" >&2; return 1
}

# cpu_ticks PID...: user + system CPU time of the processes so far, in clock ticks.
cpu_ticks() {
  local p t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}

# wrk_post PORT CONNECTIONS THREADS SECONDS TOKEN [PID...]: POSTs serve_post.lua's action
# (BENCH_SQL, BENCH_TARGET from the environment) to /v1/actions; prints "rps p50_us p99_us
# errors", and with PIDs also the CPU µs those processes used per request during the run.
wrk_post() {
  local out line req dur err p50 p99 t0 t1 cpu=""
  local port=$1 conns=$2 threads=$3 secs=$4 token=$5
  shift 5
  [[ $# -gt 0 ]] && t0=$(cpu_ticks "$@")
  out=$(BENCH_TOKEN=$token wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 10s \
    -s "$SRC/bench/serve_post.lua" "http://127.0.0.1:$port/v1/actions" 2>&1)
  [[ $# -gt 0 ]] && t1=$(cpu_ticks "$@")
  line=$(grep '^BENCH ' <<<"$out") || { echo "bench: wrk failed: $out" >&2; return 1; }
  req=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
  dur=$(sed 's/.*duration_us=\([0-9]*\).*/\1/' <<<"$line")
  err=$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$line")
  p50=$(sed 's/.*p50_us=\([0-9]*\).*/\1/' <<<"$line")
  p99=$(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$line")
  if [[ -n ${t0:-} ]]; then
    cpu=" $(awk -v a="$t0" -v b="$t1" -v r="$req" -v hz="$(getconf CLK_TCK)" \
      'BEGIN {printf "%.0f", (r > 0 ? (b - a) * 1e6 / hz / r : 0)}')"
  fi
  echo "$(awk -v r="$req" -v d="$dur" 'BEGIN {printf "%.0f", r * 1e6 / d}') $p50 $p99 $err$cpu"
}

fmt_ms() { awk -v u="$1" 'BEGIN {printf "%.2f ms", u / 1000}'; }
