#!/usr/bin/env bash
# `airlock serve`'s /mcp/NAME (MCP streamable HTTP) end to end: the official TypeScript SDK's
# client (tests/mcp/client.mjs --url, StreamableHTTPClientTransport) against the same real
# upstreams as the stdio test (server-everything, the project's mail server), plus curl for
# what the transport must refuse: no token, a foreign Origin or Host (DNS rebinding), no or an
# unknown session, batches, malformed JSON, unknown protocol versions, wrong media types. A
# session ends with DELETE.
source "$(dirname "$0")/lib.sh"
cd "$T"
source "$SRC/tests/blackbox/mcp_lib.sh"
source "$SRC/tests/blackbox/serve_lib.sh"
require_mcp_packages @modelcontextprotocol/sdk @modelcontextprotocol/server-everything

MAIL_LOG=$T/mail.log
mkdir -p "$T/a"
mcp_policy "$T/a/airlock.yaml" "$T/a/state/airlock.db" "$MAIL_LOG" 20s
export AIRLOCK_CONFIG=$T/a/airlock.yaml
unset AIRLOCK_TOKEN AIRLOCK_SERVER

has() { grep -qe "$1" <<<"$2"; }
jqe() { local json=${*: -1}; jq -e "${@:1:$#-1}" <<<"$json" >/dev/null 2>&1; }
lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}
first_id() { grep -o 'act_[0-9a-zA-Z]*' <<<"$1" | head -1; }
as_alice() { AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" "$@"; }

out=$("$AIRLOCK_BIN" serve --help 2>&1)
checkd "'airlock serve --help' names /mcp/NAME and --mcp-allow-origin" "$out" \
  all has "/mcp/NAME" "$out" -- has "--mcp-allow-origin" "$out"
"$AIRLOCK_BIN" serve --mcp-allow-origin "https://x.example/path" --listen 127.0.0.1:0 >/dev/null 2>"$T/e"
checkd "--mcp-allow-origin with a path is a usage error" "$(cat "$T/e")" has "origin" "$(cat "$T/e")"

start_server "$T/a" || { not_ok "airlock serve starts"; finish; }
BASE=http://127.0.0.1:$PORT
# hc URL TOKEN SCENARIO [ARGS...]: one SDK client session over streamable HTTP.
hc() {
  local url=$1 tok=$2; shift 2
  timeout 240 node "$MCP/client.mjs" --url "$url" --token "$tok" --timeout 120000 "$@"
}

# ---- the SDK client over streamable HTTP ------------------------------------------------------
out=$(hc "$BASE/mcp/mail" "$MAIL_TOKEN" --list call send_email "$(jq -cn '{to: ["a@example.com"], subject: "over http", body: "hello"}')")
checkd "SDK client over HTTP: tools/list is filtered (send_email, crash, whoami_env, airlock_action_status)" "$out" \
  jqe '.tools == ["airlock_action_status", "crash", "send_email", "whoami_env"]' "$out"
checkd "... send_email to 1 recipient is made at once: the tool's text, mail.log has 1 line" "$out" \
  all jqe '.call.ok and .call.isError == false and .call.text == "sent to 1 recipient(s)"' "$out" -- \
  [ "$(lines "$MAIL_LOG")" = 1 ]
checkd "... the session had an Mcp-Session-Id and DELETE ended it" "$out" \
  jqe '(.sessionId | type) == "string" and (.sessionId | length) >= 16 and .terminated == true' "$out"

out=$(hc "$BASE/mcp/mail" "$OTHER_TOKEN" --list call send_email "$(jq -cn '{to: ["a@example.com"], subject: "other", body: "x"}')")
checkd "other-bot (no scope on mail) sees no tools over HTTP and cannot call one by name" "$out" \
  all jqe '.tools == [] and (.call.ok == false or .call.isError == true)' "$out" -- [ "$(lines "$MAIL_LOG")" = 1 ]

# A batch send waits for approval; approved while it waits, the client gets the real result.
OUTW=$T/wait.json
hc "$BASE/mcp/mail" "$MAIL_TOKEN" call send_email \
  '{"to":["a@example.com","c@example.com"],"subject":"http-waiting","body":"hi"}' --progress >"$OUTW" &
WAITER=$!
WID=""
deadline=$((SECONDS + 60))
until [ -n "$WID" ] || ! kill -0 "$WAITER" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do
  sleep 0.3
  WID=$(as_alice pending --json 2>/dev/null |
    jq -r 'first(.pending[] | select(tostring | test("http-waiting")) | .id) // empty' 2>/dev/null)
done
checkd "a batch send over HTTP is pending, and nothing was sent yet" "$(as_alice pending --json 2>&1)" \
  all [ -n "$WID" ] -- [ "$(lines "$MAIL_LOG")" = 1 ]
sleep 1.5  # so that at least one progress notification went out on the request's stream
[ -n "$WID" ] && as_alice approve "$WID" >/dev/null 2>&1
wait "$WAITER"
out=$(cat "$OUTW")
checkd "approved while it waits: the client gets 'sent to 2 recipient(s)', mail.log has 2 lines" "$out" \
  all jqe '.call.ok and .call.isError == false and .call.text == "sent to 2 recipient(s)"' "$out" -- \
  [ "$(lines "$MAIL_LOG")" = 2 ]
checkd "... and progress notifications reached it while it waited" "$(jq -c '.call.progress' <<<"$out" 2>/dev/null)" \
  jqe '(.call.progress | length) >= 1 and (.call.progress[0].message | test("approve"))' "$out"

out=$(hc "$BASE/mcp/everything" "$MAIL_TOKEN" everything)
for what in ping:ping prompts:prompts_get resources:resources_read echo:echo progress:progress \
    sampling:sampling elicitation:elicitation roots:roots; do
  checkd "server-everything over HTTP: ${what%%:*}" \
    "$(jq -c --arg k "${what#*:}" '{summary, connectError, step: .steps[$k]}' <<<"$out" 2>/dev/null || echo "$out")" \
    jqe --arg w "${what%%:*}" '.summary[$w] == true' "$out"
done

sqlite3 "$T/other.db" "INSERT INTO t(v) VALUES ('from sqlite')" >/dev/null
out=$(hc "$BASE/mcp/airlock" "$OTHER_TOKEN" --list call sql_query '{"target":"other-db","sql":"SELECT v FROM t"}')
checkd "the built-in server over HTTP: sql_query on other-bot's target returns the row" "$out" \
  all jqe '.tools | index("sql_query") != null' "$out" -- jqe '.call.ok and .call.isError == false' "$out" -- \
  has "from sqlite" "$(jq -r '.call.text' <<<"$out" 2>/dev/null)"

# ---- what the transport refuses (curl) ------------------------------------------------------
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
# post PATH BODY [CURL_ARGS...]: sets CODE, BODY (the body, SSE data lines joined) and HEADERS.
# CT and ACCEPT override the Content-Type and Accept headers.
post() {
  local path=$1 body=$2; shift 2
  CODE=$(curl -s -m 60 -o "$T/body" -D "$T/headers" -w '%{http_code}' -X POST "$BASE$path" \
    -H "Content-Type: ${CT:-application/json}" -H "Accept: ${ACCEPT:-application/json, text/event-stream}" \
    "$@" --data-binary "$body")
  BODY=$(sed -n 's/^data: //p' "$T/body"); [ -n "$BODY" ] || BODY=$(cat "$T/body")
}
auth=(-H "Authorization: Bearer $MAIL_TOKEN")

post /mcp/mail "$INIT"
checkd "no bearer token: 401 with WWW-Authenticate" "$CODE $(cat "$T/headers")" \
  all [ "$CODE" = 401 ] -- grep -qi "^www-authenticate: bearer" "$T/headers"
post /mcp/mail "$INIT" -H "Authorization: Bearer $ALICE_TOKEN"
checkd "an approver's token: 403" "$CODE $BODY" [ "$CODE" = 403 ]
post /mcp/mail "$INIT" "${auth[@]}" -H "Origin: http://evil.example"
checkd "a foreign Origin: 403, with a JSON-RPC error" "$CODE $BODY" \
  all [ "$CODE" = 403 ] -- jqe '.error.code == -32600' "$BODY"
post /mcp/mail "$INIT" "${auth[@]}" -H "Host: rebound.example:$PORT"
checkd "a foreign Host (DNS rebinding): 403" "$CODE $BODY" [ "$CODE" = 403 ]
post /mcp/nosuch "$INIT" "${auth[@]}"
checkd "an unknown server: 404 naming it" "$CODE $BODY" all [ "$CODE" = 404 ] -- has nosuch "$BODY"

post /mcp/mail "$INIT" "${auth[@]}" -H "Origin: http://localhost:3000"
SID=$(sed -n 's/^mcp-session-id: *\([0-9a-f]*\).*/\1/Ip' "$T/headers" | tr -d '\r')
checkd "initialize from a loopback Origin: 200, an SSE answer, and an Mcp-Session-Id" "$CODE $(cat "$T/headers") $BODY" \
  all [ "$CODE" = 200 ] -- grep -qi "^content-type: text/event-stream" "$T/headers" -- [ -n "$SID" ] -- \
  jqe '.id == 1 and (.result.protocolVersion | type) == "string"' "$BODY"
sess=(-H "Mcp-Session-Id: $SID" -H "MCP-Protocol-Version: 2025-06-18")
post /mcp/mail '{"jsonrpc":"2.0","method":"notifications/initialized"}' "${auth[@]}" "${sess[@]}"
checkd "a notification: 202 Accepted" "$CODE $BODY" [ "$CODE" = 202 ]
post /mcp/mail '{"jsonrpc":"2.0","id":2,"method":"ping"}' "${auth[@]}"
checkd "a request without Mcp-Session-Id: 400" "$CODE $BODY" [ "$CODE" = 400 ]
post /mcp/mail '{"jsonrpc":"2.0","id":2,"method":"ping"}' "${auth[@]}" -H "Mcp-Session-Id: 0123456789abcdef"
checkd "an unknown session: 404" "$CODE $BODY" [ "$CODE" = 404 ]
post /mcp/mail '{"jsonrpc":"2.0","id":2,"method":"ping"}' -H "Authorization: Bearer $OTHER_TOKEN" "${sess[@]}"
checkd "another agent's session: 404" "$CODE $BODY" [ "$CODE" = 404 ]
post /mcp/mail '{"jsonrpc":"2.0","id":2,"method":"ping"}' "${auth[@]}" -H "Mcp-Session-Id: $SID" -H "MCP-Protocol-Version: 1999-01-01"
checkd "an unknown MCP-Protocol-Version: 400" "$CODE $BODY" [ "$CODE" = 400 ]
post /mcp/mail 'this is not json' "${auth[@]}" "${sess[@]}"
checkd "malformed JSON: 400 with -32700" "$CODE $BODY" all [ "$CODE" = 400 ] -- jqe '.error.code == -32700' "$BODY"
post /mcp/mail '[{"jsonrpc":"2.0","id":3,"method":"ping"}]' "${auth[@]}" "${sess[@]}"
checkd "a batch: 400 with -32600" "$CODE $BODY" all [ "$CODE" = 400 ] -- jqe '.error.code == -32600' "$BODY"
CT=text/plain post /mcp/mail '{"jsonrpc":"2.0","id":4,"method":"ping"}' "${auth[@]}" "${sess[@]}"
checkd "a body that is not application/json: 415" "$CODE $BODY" [ "$CODE" = 415 ]
post /mcp/mail '{"jsonrpc":"2.0","id":5,"method":"ping"}' "${auth[@]}" "${sess[@]}"
checkd "... and after all that the session still answers a ping (SSE)" "$CODE $BODY" \
  all [ "$CODE" = 200 ] -- jqe '.id == 5 and .result == {}' "$BODY"
ACCEPT=application/json post /mcp/mail '{"jsonrpc":"2.0","id":6,"method":"ping"}' "${auth[@]}" "${sess[@]}"
checkd "a client that accepts only application/json gets the answer as JSON" "$CODE $(cat "$T/headers") $BODY" \
  all [ "$CODE" = 200 ] -- grep -qi "^content-type: application/json" "$T/headers" -- jqe '.id == 6 and .result == {}' "$BODY"
post /mcp/mail '{"jsonrpc":"2.0","id":7,"method":"no/such/method"}' "${auth[@]}" "${sess[@]}"
checkd "an unknown method: the upstream's -32601, passed through" "$CODE $BODY" jqe '.id == 7 and .error.code == -32601' "$BODY"
CODE=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$BASE/mcp/mail" "${auth[@]}" "${sess[@]}" -H "Accept: application/json")
checkd "GET without Accept: text/event-stream: 406" "$CODE" [ "$CODE" = 406 ]
CODE=$(curl -s -m 2 -o "$T/get" -w '%{http_code}' "$BASE/mcp/mail" "${auth[@]}" "${sess[@]}" -H "Accept: text/event-stream")
checkd "GET opens the session's event stream (200, text/event-stream)" "$CODE $(head -c 200 "$T/get")" \
  all [ "$CODE" = 200 ] -- grep -q "stream open" "$T/get"
CODE=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X DELETE "$BASE/mcp/mail" "${auth[@]}" "${sess[@]}")
checkd "DELETE ends the session: 204" "$CODE" [ "$CODE" = 204 ]
post /mcp/mail '{"jsonrpc":"2.0","id":8,"method":"ping"}' "${auth[@]}" "${sess[@]}"
checkd "... after which it is unknown: 404" "$CODE $BODY" [ "$CODE" = 404 ]

metrics=$(curl -s -m 10 "$BASE/metrics")
checkd "/metrics counts MCP requests under the route /mcp/{server}" "$(grep mcp <<<"$metrics" | head -5)" \
  has 'route="/mcp/{server}"' "$metrics"
checkd "the audit chain verifies" "$(as_alice audit verify 2>&1)" as_alice audit verify
# ---- an upstream reached by url: (server-everything's own streamable HTTP) ----------------------
start_everything_http
SERVER_PIDS+=("$EVERYTHING_PID")
mkdir -p "$T/b"
cat > "$T/b/airlock.yaml" <<YAML
version: 1
store: $T/b/state/airlock.db
agents:
  - {name: mail-bot, token_sha256: "$(sha "$MAIL_TOKEN")", scopes: [remote]}
approvers:
  - {name: alice, token_sha256: "$(sha "$ALICE_TOKEN")"}
approvals: {low: 0, high: 1, critical: 1, timeout: 1h}
mcp_servers:
  remote:
    url: "http://127.0.0.1:$EPORT/mcp"
    approval_wait: 1s
    tools:
      - {tool: echo, risk: read}
      - {tool: get-sum, risk: high, reason: "adds numbers"}
      - {tool: "*", risk: low}
YAML
out=$(timeout 240 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$T/b/airlock.yaml" --token "$MAIL_TOKEN" \
  --server remote --stderr "$T/mcp-remote.err" --timeout 120000 everything)
for what in ping:ping prompts:prompts_get resources:resources_read echo:echo progress:progress \
    sampling:sampling elicitation:elicitation roots:roots; do
  checkd "url: upstream (streamable HTTP) through airlock mcp stdio: ${what%%:*}" \
    "$(jq -c --arg k "${what#*:}" '{summary, connectError, step: .steps[$k]}' <<<"$out" 2>/dev/null || echo "$out"; tail -5 "$T/mcp-remote.err")" \
    jqe --arg w "${what%%:*}" '.summary[$w] == true' "$out"
done
out=$(timeout 240 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$T/b/airlock.yaml" --token "$MAIL_TOKEN" \
  --server remote --stderr "$T/mcp-remote.err" call get-sum '{"a": 2, "b": 3}')
RID=$(first_id "$(jq -r '.call.text // ""' <<<"$out" 2>/dev/null)")
checkd "url: a high call waits, then comes back pending" "$out" \
  all [ -n "$RID" ] -- jqe '.call.isError == true' "$out"
out=$(as_alice --config "$T/b/airlock.yaml" approve "${RID:-none}" 2>&1)
show=$(as_alice --config "$T/b/airlock.yaml" show "${RID:-none}" --json 2>&1)
checkd "url: approved from the CLI, the call is made over HTTP by a one-shot session: applied" "$out; $show" \
  jqe '.status == "applied"' "$show"
kill "$EVERYTHING_PID" 2>/dev/null; wait "$EVERYTHING_PID" 2>/dev/null
out=$(timeout 240 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$T/b/airlock.yaml" --token "$MAIL_TOKEN" \
  --server remote --stderr "$T/mcp-remote.err" --timeout 30000 call echo '{"message":"x"}')
checkd "url: an upstream that is down gives the client a clean error, not a hang" "$out" \
  jqe '.connectError != null or .call.ok == false or .call.isError == true' "$out"

# A session left open (no DELETE), with its upstream running, when the server stops.
post /mcp/mail "$INIT" "${auth[@]}"
SID=$(sed -n 's/^mcp-session-id: *\([0-9a-f]*\).*/\1/Ip' "$T/headers" | tr -d '\r')
post /mcp/mail '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' "${auth[@]}" -H "Mcp-Session-Id: $SID"
UPSTREAMS=$(pgrep -P "$PID" | tr '\n' ' ')
kill -TERM "$PID"; wait "$PID"
rc=$?
alive() { local p; for p in $UPSTREAMS; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
gone() { ! alive; }
poll 10 gone || true  # reaped once their parent-death signal has been taken
checkd "serve exits 0 on SIGTERM with an MCP session open, and its upstream is gone" \
  "exit $rc; upstreams: $UPSTREAMS" all [ "$rc" -eq 0 ] -- [ -n "$UPSTREAMS" ] -- eval '! alive'
if [ "$FAILED" -gt 0 ]; then
  echo "# serve.log, last lines:"; tail -40 "$T/a/serve.log" | sed 's/^/#   /'
fi
finish
