#!/usr/bin/env bash
# The round trip of a read tool call (server-everything's `echo`) through `airlock mcp stdio`,
# against the same SDK client talking to the same server directly, and against mcp-proxy (npm),
# in one run on the same machine. One client process (bench/mcp/bench_client.mjs, the official
# TypeScript SDK pinned in tests/mcp) holds one session per side and makes N sequential calls
# per side after a warm-up, interleaved call by call, in an order shuffled afresh each round
# (--order cycle: the fixed cyclic order of runs before 2026-11-29 21:30 UTC). Sides:
#   direct          stdio, client -> server-everything
#   airlock         stdio, client -> airlock mcp stdio -> server-everything (store on disk,
#                   the defaults: every call's record is committed before the reply, and
#                   synced to disk right after it)
#   airlock-synced  the same with `sync_reads: true`: the reply also waits for the record's
#                   fdatasync
#   airlock-tmpfs   the default with the store on tmpfs (/dev/shm): fsync costs ~nothing
#   relay           stdio, client -> stdio_relay (bench/stdio_relay.cc: copies bytes, nothing
#                   else) -> server-everything: what one more process in between costs by
#                   itself here, the floor of any stdio proxy
#   http-direct     streamable HTTP, client -> server-everything's own HTTP transport
#   mcp-proxy       streamable HTTP, client -> mcp-proxy -> stdio server-everything
#   airlock-serve   streamable HTTP, client -> airlock serve /mcp/everything -> stdio
#                   server-everything (store on disk, group commit)
# mcp-proxy and airlock serve bridge a stdio server to HTTP, so their client speaks HTTP: they
# are compared with http-direct (the same server over HTTP without a proxy) and with each
# other, not with the stdio sides.
#   bash bench/mcp_bench.sh [--build DIR] [--calls N] [--warmup N] [--order shuffle|cycle]
#                           [--seed N]
set -euo pipefail

BUILD=build
CALLS=2000
WARMUP=200
ORDER=shuffle
SEED=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --calls) CALLS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --order) ORDER=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "mcp_bench: unknown argument $1" >&2; exit 2 ;;
  esac
done
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
AIRLOCK=$BUILD/airlock
RELAY=$BUILD/stdio_relay
MCP=$SRC/tests/mcp
EVERYTHING=$MCP/node_modules/@modelcontextprotocol/server-everything/dist/index.js
PROXY=$MCP/node_modules/mcp-proxy/dist/bin/mcp-proxy.mjs
[[ -x $AIRLOCK ]] || { echo "mcp_bench: $AIRLOCK not found; build first (make build)" >&2; exit 1; }
[[ -x $RELAY ]] || { echo "mcp_bench: $RELAY not found; build first (make build)" >&2; exit 1; }
command -v node >/dev/null || { echo "mcp_bench: node is required (scripts/install-mcp-tests.sh)" >&2; exit 1; }
for f in "$MCP/node_modules/@modelcontextprotocol/sdk/package.json" "$EVERYTHING" "$PROXY"; do
  [[ -f $f ]] || { echo "mcp_bench: $f is missing; run scripts/install-mcp-tests.sh (make deps)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/airlock-mcp-bench.XXXXXX)     # on the root file system (disk)
SHM=$(mktemp -d /dev/shm/airlock-mcp-bench.XXXXXX)  # tmpfs
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$W" "$SHM"
}
trap cleanup EXIT

TOKEN="alk_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# policy FILE STORE [SERVER_LINE]: one agent scoped to server-everything; echo is a read.
policy() {
  cat > "$1" <<YAML
version: 1
store: $2
agents:
  - {name: bench-bot, token_sha256: "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)", scopes: [everything]}
approvers: []
mcp_servers:
  everything:
    command: [node, "$EVERYTHING", stdio]
${3:-}
    tools:
      - {tool: echo, risk: read}
YAML
}
policy "$W/airlock.yaml" "$W/state/airlock.db"
policy "$W/airlock-tmpfs.yaml" "$SHM/state/airlock.db"
mkdir -p "$W/synced"
policy "$W/synced/airlock.yaml" "$W/synced/state/airlock.db" "    sync_reads: true"

# free_port: a TCP port nothing listens on now.
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
# wait_listen PORT LOG: until 127.0.0.1:PORT accepts a connection (20 s).
wait_listen() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "mcp_bench: nothing listens on port $1:" >&2; cat "$2" >&2; return 1
}

HTTP_PORT=$(free_port)
(cd "$W" && PORT=$HTTP_PORT exec node "$EVERYTHING" streamableHttp >"$W/everything-http.log" 2>&1) &
PIDS+=($!)
PROXY_PORT=$(free_port)
(cd "$W" && exec node "$PROXY" --host 127.0.0.1 --port "$PROXY_PORT" --server stream \
  -- node "$EVERYTHING" stdio >"$W/mcp-proxy.log" 2>&1) &
PIDS+=($!)
SERVE_PORT=$(free_port)
mkdir -p "$W/serve"
policy "$W/serve/airlock.yaml" "$W/serve/state/airlock.db"
"$AIRLOCK" --config "$W/serve/airlock.yaml" serve --listen "127.0.0.1:$SERVE_PORT" 2>"$W/serve.log" &
PIDS+=($!)
wait_listen "$HTTP_PORT" "$W/everything-http.log"
wait_listen "$PROXY_PORT" "$W/mcp-proxy.log"
wait_listen "$SERVE_PORT" "$W/serve.log"

jq -n --arg ev "$EVERYTHING" --arg bin "$AIRLOCK" --arg relay "$RELAY" --arg tok "$TOKEN" --arg w "$W" \
  --argjson hpid "${PIDS[0]}" --argjson ppid "${PIDS[1]}" --arg http "http://127.0.0.1:$HTTP_PORT/mcp" --arg proxy "http://127.0.0.1:$PROXY_PORT/mcp" \
  --argjson spid "${PIDS[2]}" --arg serve "http://127.0.0.1:$SERVE_PORT/mcp/everything" '
  def al(p): {command: $bin, args: ["--config", p, "mcp", "stdio", "--server", "everything"],
              env: {AIRLOCK_TOKEN: $tok}, stderr: ($w + "/airlock.err")};
  [{name: "direct", stdio: {command: "node", args: [$ev, "stdio"], stderr: ($w + "/everything.err")}},
   {name: "airlock", stdio: al($w + "/airlock.yaml")},
   {name: "airlock-synced", stdio: al($w + "/synced/airlock.yaml")},
   {name: "airlock-tmpfs", stdio: al($w + "/airlock-tmpfs.yaml")},
   {name: "relay", stdio: {command: $relay, args: ["node", $ev, "stdio"], stderr: ($w + "/relay.err")}},
   {name: "http-direct", http: $http, pid: $hpid},
   {name: "mcp-proxy", http: $proxy, pid: $ppid},
   {name: "airlock-serve", http: $serve, pid: $spid, headers: {Authorization: ("Bearer " + $tok)}}]' > "$W/sides.json"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
if ! out=$(node "$SRC/bench/mcp/bench_client.mjs" --mcp-dir "$MCP" --sides "$W/sides.json" \
    --n "$CALLS" --warmup "$WARMUP" --order "$ORDER" --seed "$SEED" --fsync-probe "$W/state"); then
  echo "mcp_bench: the run failed: $out" >&2
  for f in airlock.err everything.err everything-http.log mcp-proxy.log serve.log; do
    [[ -s $W/$f ]] && { echo "--- $f" >&2; tail -20 "$W/$f" >&2; }
  done
  exit 1
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
verify=$("$AIRLOCK" --config "$W/airlock.yaml" audit verify --json 2>&1 || true)
verify_synced=$("$AIRLOCK" --config "$W/synced/airlock.yaml" audit verify --json 2>&1 || true)
verify_tmpfs=$("$AIRLOCK" --config "$W/airlock-tmpfs.yaml" audit verify --json 2>&1 || true)
verify_serve=$("$AIRLOCK" --config "$W/serve/airlock.yaml" audit verify --json 2>&1 || true)

v() { jq -r ".sides[\"$1\"].$2" <<<"$out"; }
us() { awk -v u="$1" 'BEGIN {printf "%.0f µs", u}'; }
row() {  # row LABEL SIDE BASE_SIDE
  local p50 b50
  p50=$(v "$2" p50_us); b50=$(v "$3" p50_us)
  printf '%-52s %10s %10s %10s %12s %8s %14s\n' "$1" "$(us "$p50")" "$(us "$(v "$2" p90_us)")" \
    "$(us "$(v "$2" p99_us)")" "$(awk -v a="$p50" -v b="$b50" 'BEGIN {printf "%+.0f µs", a - b}')" \
    "$(awk -v a="$p50" -v b="$b50" 'BEGIN {printf "%.2fx", a / b}')" \
    "$(jq -r ".sides[\"$2\"].cpu_us_per_call | if . then \"\\(.self) + \\(.children)\" else \"-\" end" <<<"$out")"
}
d50=$(v direct p50_us); a50=$(v airlock p50_us); t50=$(v airlock-tmpfs p50_us)
s50=$(v airlock-synced p50_us)
allow=$(awk -v d="$d50" 'BEGIN {x = d * 0.10; if (x < 150) x = 150; printf "%.0f", x}')
verdict() { awk -v a="$1" -v d="$d50" -v m="$allow" 'BEGIN {print (a - d <= m) ? "met" : "missed"}'; }
printf '%s\n' "------------------------------------------------------------------------------------------------------"
echo "MCP tools/call round trip, server-everything echo, SDK $(jq -r .sdk <<<"$out") client, $CALLS sequential calls per side after $WARMUP warm-up, interleaved (order: $ORDER, seed $SEED)"
echo "started $started; load average $load_before before, $load_after after ($(nproc) CPUs)"
printf '%-52s %10s %10s %10s %12s %8s %14s\n' "" "p50" "p90" "p99" "p50 added" "p50 x" "CPU µs/call"
row "direct (stdio)" direct direct
row "airlock mcp stdio (store on disk; defaults)" airlock direct
row "airlock mcp stdio (disk; sync_reads: true)" airlock-synced direct
row "airlock mcp stdio (store on tmpfs: no fsync cost)" airlock-tmpfs direct
row "stdio_relay (bytes only: one more process's floor)" relay direct
row "http-direct (server-everything's own HTTP)" http-direct http-direct
row "mcp-proxy (HTTP -> stdio), vs http-direct" mcp-proxy http-direct
row "airlock serve /mcp (HTTP -> stdio), vs http-direct" airlock-serve http-direct
row "airlock serve /mcp, vs mcp-proxy" airlock-serve mcp-proxy
echo "target: airlock adds <= 10% of direct p50 or <= 150 µs, whichever is larger (here <= $allow µs):" \
  "$(verdict "$a50") with the defaults (+$((a50 - d50)) µs), $(verdict "$s50") with sync_reads: true (+$((s50 - d50)) µs), $(verdict "$t50") with the store on tmpfs (+$((t50 - d50)) µs)"
r50=$(v relay p50_us)
echo "floor: a relay that only copies bytes adds +$((r50 - d50)) µs; airlock adds $((a50 - r50)) µs (disk) and $((t50 - r50)) µs (tmpfs) over it"
echo "fdatasync of 4 KiB on the store's disk: p50 $(jq -r .fsync.p50_us <<<"$out") µs, p99 $(jq -r .fsync.p99_us <<<"$out") µs ($(jq -r .fsync.count <<<"$out") syncs)"
echo "CPU µs/call: of the process the client talks to + of its children (the stdio upstream), user+system, 10 ms ticks / calls"
echo "session setup (initialize) ms: $(jq -r '[.sides | to_entries[] | "\(.key) \(.value.init_ms)"] | join(", ")' <<<"$out")"
echo "audit chains after the run: disk $verify; synced $verify_synced; tmpfs $verify_tmpfs; serve $verify_serve"
if [[ -n ${MCP_BENCH_JSON:-} ]]; then printf '%s\n' "$out" > "$MCP_BENCH_JSON"; fi
