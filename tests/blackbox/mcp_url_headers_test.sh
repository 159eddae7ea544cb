#!/usr/bin/env bash
# `headers:` of an MCP server reached by `url:`: airlock, not the agent, holds the upstream's
# credentials. The real server-everything (streamable HTTP) sits behind a gate that wants a
# bearer token (tests/mcp/auth_gate.mjs); the official SDK client talks to `airlock mcp stdio`.
# The headers arrive (env: and file: values), a missing variable sends nothing and says which
# header, a wrong secret is a clean error, an approved call made later by the CLI's one-shot
# session sends them too, and the secret is nowhere in the store, the audit log or the output.
source "$(dirname "$0")/lib.sh"
cd "$T"
source "$SRC/tests/blackbox/mcp_lib.sh"
require_mcp_packages @modelcontextprotocol/sdk @modelcontextprotocol/server-everything

has() { grep -qe "$1" <<<"$2"; }
hasnt() { ! grep -qe "$1" <<<"$2"; }
jqe() { local json=${*: -1}; jq -e "${@:1:$#-1}" <<<"$json" >/dev/null 2>&1; }
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}
first_id() { grep -o 'act_[0-9a-zA-Z]*' <<<"$1" | head -1; }
as_alice() { AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" "$@"; }
gate_lines() { if [ -f "$T/gate.log" ]; then wc -l < "$T/gate.log" | tr -d ' '; else echo 0; fi; }

start_everything_http
SECRET="s3cret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
(AUTH_SECRET=$SECRET LOG=$T/gate.log UPSTREAM=http://127.0.0.1:$EPORT PORT=0 \
  exec node "$MCP/auth_gate.mjs" >"$T/gate.out" 2>&1) &
GATE_PID=$!
trap 'kill "$EVERYTHING_PID" "$GATE_PID" 2>/dev/null; rm -rf "$T"' EXIT
for i in $(seq 1 300); do grep -q "listening" "$T/gate.out" 2>/dev/null && break; sleep 0.1; done
GPORT=$(sed -n 's/^listening //p' "$T/gate.out")
checkd "the gate and server-everything are up" "$(cat "$T/gate.out" "$T/everything-http.log" 2>&1 | tail -5)" \
  [ -n "$GPORT" ]
printf 'tenant-7\n' > "$T/tenant.txt"

cat > "$T/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: mail-bot, token_sha256: "$(sha "$MAIL_TOKEN")", scopes: [remote]}
approvers:
  - {name: alice, token_sha256: "$(sha "$ALICE_TOKEN")"}
approvals: {low: 0, high: 1, critical: 1, timeout: 1h}
mcp_servers:
  remote:
    url: "http://127.0.0.1:$GPORT/mcp"
    headers: {Authorization: "env:REMOTE_MCP_AUTH", X-Tenant: "file:./tenant.txt"}
    approval_wait: 1s
    tools:
      - {tool: echo, risk: read}
      - {tool: get-sum, risk: high, reason: "adds numbers"}
      - {tool: "*", risk: low}
YAML
export AIRLOCK_CONFIG=$T/airlock.yaml
unset AIRLOCK_TOKEN AIRLOCK_SERVER
# mc [--env K=V]... SCENARIO [ARGS...]: one SDK client session through airlock mcp stdio.
mc() {
  timeout 120 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$T/airlock.yaml" \
    --token "$MAIL_TOKEN" --server remote --stderr "$T/mcp.err" --timeout 60000 "$@"
}

out=$("$AIRLOCK_BIN" policy check 2>&1)
checkd "the policy with headers: on a url: server checks" "$out" [ $? -eq 0 ]

# ---- the headers arrive ----------------------------------------------------------------------
out=$(mc --env "REMOTE_MCP_AUTH=Bearer $SECRET" call echo '{"message":"hi"}')
checkd "with the variable set, a call passes the gate and is answered" "$out $(tail -3 "$T/mcp.err")" \
  jqe '.call.ok and .call.isError == false and .call.text == "Echo: hi"' "$out"
checkd "... every request carried both headers (env: and file:, its newline dropped)" "$(cat "$T/gate.log")" \
  all [ "$(gate_lines)" -gt 0 ] -- [ "$(grep -vc '^ok [A-Z]* tenant-7$' "$T/gate.log")" = 0 ]

# ---- a variable that is not set: nothing is sent --------------------------------------------
before=$(gate_lines)
out=$(mc call echo '{"message":"hi"}' 2>&1)
said="$out $(cat "$T/mcp.err")"
checkd "without the variable, the client gets a clean error that names the header's source" "$said" \
  all has "REMOTE_MCP_AUTH" "$said" -- jqe '.connectError != null or .call.ok == false or .call.isError == true' "$out"
checkd "... and nothing reached the gate" "$(cat "$T/gate.log")" [ "$(gate_lines)" = "$before" ]

# ---- a wrong secret: the upstream refuses, the client hears it -------------------------------
out=$(mc --env "REMOTE_MCP_AUTH=Bearer wrong" call echo '{"message":"hi"}' 2>&1)
checkd "with a wrong secret, the gate's 401 is a clean error, not a hang" "$out" \
  all jqe '.connectError != null or .call.ok == false or .call.isError == true' "$out" -- \
    grep -q '^401 POST tenant-7$' "$T/gate.log"

# ---- a call approved later is made by the CLI's one-shot session, with the headers ----------
out=$(mc --env "REMOTE_MCP_AUTH=Bearer $SECRET" call get-sum '{"a": 2, "b": 3}')
RID=$(first_id "$(jq -r '.call.text // ""' <<<"$out" 2>/dev/null)")
checkd "a high call waits, then comes back pending" "$out" all [ -n "$RID" ] -- jqe '.call.isError == true' "$out"
before=$(gate_lines)
out=$(REMOTE_MCP_AUTH="Bearer $SECRET" as_alice approve --json "${RID:-none}" 2>&1)
checkd "approved from the CLI (whose environment has the variable): applied" "$out" \
  jqe '.status == "applied" and (.result | tostring | test("5"))' "$out"
checkd "... its requests carried the headers" "$(tail -5 "$T/gate.log")" \
  all [ "$(gate_lines)" -gt "$before" ] -- [ "$(tail -n +"$((before + 1))" "$T/gate.log" | grep -vc '^ok [A-Z]* tenant-7$')" = 0 ]

# ---- the secret stays airlock's --------------------------------------------------------------
log=$(as_alice audit log --json 2>&1)
shows=$(as_alice show --json "${RID:-none}" 2>&1)
checkd "the audit log and show name no secret" "" all [ -n "$log" ] -- hasnt "$SECRET" "$log$shows"
checkd "the store holds no secret" "" [ -z "$(grep -rl -- "$SECRET" "$T/state" 2>/dev/null)" ]
checkd "airlock's messages to the client hold no secret" "" hasnt "$SECRET" "$(cat "$T/mcp.err")"
checkd "the audit chain verifies" "" as_alice audit verify

# ---- what the policy refuses -----------------------------------------------------------------
bad() {  # bad YAML_LINES: the policy check's output for a remote server with these lines
  sed '/^mcp_servers:/,$d' "$T/airlock.yaml" > "$T/bad.yaml"
  printf 'mcp_servers:\n  remote:\n%s\n    tools: [{tool: "*", risk: low}]\n' "$1" >> "$T/bad.yaml"
  "$AIRLOCK_BIN" --config "$T/bad.yaml" policy check 2>&1
}
out=$(bad '    command: [node, x.js]
    headers: {Authorization: "env:X"}')
checkd "headers: on a command (stdio) server is refused" "$out" has "applies only to a streamable HTTP server" "$out"
out=$(bad "    url: http://127.0.0.1:1/mcp
    headers: {Mcp-Session-Id: abc}")
checkd "a header the transport sets itself is refused" "$out" has "set by airlock itself" "$out"
out=$(bad "    url: http://127.0.0.1:1/mcp
    headers: {Authorization: a, authorization: b}")
checkd "a header given twice is refused" "$out" has "duplicate header" "$out"
out=$(bad "    url: http://127.0.0.1:1/mcp
    headers: {Authorization: \"env:not a name\"}")
checkd "env: with a bad variable name is refused" "$out" has "env: needs a variable name" "$out"
finish
