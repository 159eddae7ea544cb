# Shared by the black-box tests that run `airlock serve` (sourced after lib.sh): servers
# started on free ports, and killed when the test ends.
SERVER_PIDS=()
stop_servers() {
  local p
  for p in "${SERVER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  jobs -p | xargs -r kill 2>/dev/null
}
trap 'stop_servers; rm -rf "$T"' EXIT

# start_server DIR [FLAGS...]: starts `airlock serve` on a free port; sets PORT and PID.
start_server() {
  local dir=$1; shift
  # A restart in the same directory: the log of the server before must be gone before the
  # port is looked for. The shell truncates it in the child, which may come after the first
  # look here, and that look would then find the old server's (closed) port.
  rm -f "$dir/serve.log"
  "$AIRLOCK_BIN" --config "$dir/airlock.yaml" serve --listen 127.0.0.1:0 "$@" 2>"$dir/serve.log" &
  PID=$!
  SERVER_PIDS+=("$PID")
  PORT=""
  local i
  # (The log may not exist yet when the first look comes.)
  for i in $(seq 1 300); do
    PORT=$(sed -n 's|^airlock: serving http://127\.0\.0\.1:\([0-9]*\) (policy .*)$|\1|p' "$dir/serve.log" 2>/dev/null)
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "# the server did not start:"; sed 's/^/#   /' "$dir/serve.log"
  return 1
}
