#!/usr/bin/env bash
# The HTTP target (`kind: http`) end to end against a real HTTP API (tests/http/api_server.mjs,
# node's built-in http module) that logs every request it receives with its Authorization
# header: reads made at once, writes low and irreversible, a body rule that makes a POST wait
# for approval, the allow list, redirects, the response cap, the rate limit's breaker, and the
# credential that the agent never sees but the server does.
source "$(dirname "$0")/lib.sh"
cd "$T"
command -v node >/dev/null || { echo "node is required"; exit 1; }

API_LOG=$T/api.log
node "$SRC/tests/http/api_server.mjs" "$API_LOG" "$T/port" 2>"$T/server.err" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")

SECRET="sk_live_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
KEY_SECRET="key_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export API_TOKEN=$SECRET
printf '%s\n' "$KEY_SECRET" > "$T/api-key"
cat > "$T/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: support-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [api, api-notify, api-slow, app-db]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
  - {name: security-lead, token_sha256: "$(sha "$SEC_TOKEN")"}
targets:
  app-db: {kind: sqlite, path: ./prod.db}
  api:
    kind: http
    base_url: http://127.0.0.1:$PORT
    allow: ["GET /v1/**", "HEAD /v1/**", "POST /v1/messages", "POST /v1/loop"]
    headers: {Authorization: "env:API_TOKEN", X-Api-Key: "file:./api-key"}
    timeout: 10s
    max_response_bytes: 64KiB
  api-notify:
    kind: http
    base_url: http://127.0.0.1:$PORT
    allow: ["POST /v1/messages"]
    recipients: /recipients
    max_recipients: 5
  api-slow:
    kind: http
    base_url: http://127.0.0.1:$PORT
    allow: ["GET /v1/hang"]
    timeout: 1s
rules:
  - {match: {target: api, method: POST, body: {"/recipients": {count_gt: 1}}}, risk: high, reason: "a batch"}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
limits:
  - {match: {target: api}, rate: 5/min, on_exceed: trip}
  - {match: {target: api-notify}, max_recipients_per_hour: 4}
YAML
export AIRLOCK_CONFIG=$T/airlock.yaml
seed_db
lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }
has() { grep -qe "$1" <<<"$2"; }
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}

out=$(airlock policy check 2>&1)
checkd "the policy with an http target is valid" "$out" [ $? -eq 0 ]
out=$(airlock http --help 2>&1)
checkd "'airlock http --help' names METHOD, PATH and --json" "$out" \
  all has METHOD "$out" -- has PATH "$out" -- has --json "$out"

# ---- reads -----------------------------------------------------------------------------------
out=$(as_agent http --target api GET /v1/items 2>"$T/err")
rc=$?
checkd "GET is a read: sent at once, the response body printed (exit 0)" "$rc $out $(cat "$T/err")" \
  all [ "$rc" -eq 0 ] -- has '"alpha"' "$out"
run_json out as_agent --json http --target api GET "/v1/items?limit=5"
checkd "--json: status applied, risk read, result.status 200" "$out" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .risk "$out")" = read ] -- [ "$(jf .result.status "$out")" = 200 ]
last=$(tail -1 "$API_LOG")
checkd "the server received the credentials airlock holds (env: and file:)" "$last" \
  all [ "$(jq -r .authorization <<<"$last")" = "$SECRET" ] -- [ "$(jq -r .x_api_key <<<"$last")" = "$KEY_SECRET" ]
checkd "the query string reached the server" "$last" [ "$(jq -r .path <<<"$last")" = "/v1/items?limit=5" ]
checkd "the store and the audit keep the response's status and size, not its body" \
  "$(sqlite3 "$T/state/airlock.db" .dump | grep -m3 alpha)" \
  all [ "$(sqlite3 "$T/state/airlock.db" .dump | grep -c alpha)" = 0 ] -- \
  [ "$(as_dba audit log --json | jq -s '[.[] | select(.event == "read")] | .[-1].payload.result.body_bytes')" -gt 0 ]

# ---- a write that is low ---------------------------------------------------------------------
before=$(lines "$API_LOG")
run_json out as_agent --json http --target api POST /v1/messages --json '{"recipients":["a@example.com"],"text":"hi"}'
checkd "POST to one recipient is low and sent at once (exit 0)" "$out" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .risk "$out")" = low ] -- [ "$(jf .status "$out")" = applied ]
checkd "it is recorded as irreversible" "$out" [ "$(jf .reversible "$out")" = false ]
LOW_ID=$(jf .id "$out")
last=$(tail -1 "$API_LOG")
checkd "exactly one request arrived, with the canonical JSON body and the secret" "$last" \
  all [ "$(lines "$API_LOG")" = $((before + 1)) ] -- [ "$(jq -r .method <<<"$last")" = POST ] -- \
  [ "$(jq -r .body <<<"$last")" = '{"recipients":["a@example.com"],"text":"hi"}' ] -- \
  [ "$(jq -r .authorization <<<"$last")" = "$SECRET" ] -- [ "$(jq -r .content_type <<<"$last")" = application/json ]
show=$(as_agent show "$LOW_ID")
checkd "'airlock show' renders the request: method, URL, body, header names" "$show" \
  all has "POST http://127.0.0.1:$PORT/v1/messages" "$show" -- has '"a@example.com"' "$show" -- \
  has "Authorization" "$show"
run_json r as_dba rollback "$LOW_ID"
checkd "rollback refuses and says a sent request cannot be undone" "$r $(cat "$T/stderr")" \
  all [ "$RC" -ne 0 ] -- grep -q "cannot be undone" "$T/stderr"

# ---- a rule on the body: a batch waits for approval ------------------------------------------
before=$(lines "$API_LOG")
run_json out as_agent --json http --target api POST /v1/messages --json '{"recipients":["a@x.com","b@x.com"],"text":"batch"}'
checkd "POST to 2 recipients is high by the /recipients rule and pending (exit 10)" "$out" \
  all [ "$RC" -eq 10 ] -- [ "$(jf .risk "$out")" = high ] -- has "a batch" "$(jf '.reasons[]' "$out")"
ID=$(jf .id "$out")
checkd "nothing was sent while pending" "$(cat "$API_LOG")" [ "$(lines "$API_LOG")" = "$before" ]
show=$(as_dba show "$ID")
checkd "the approver sees the exact body" "$show" all has '"b@x.com"' "$show" -- has batch "$show"
run_json r as_dba approve "$ID"
last=$(tail -1 "$API_LOG")
checkd "approve -> exactly one request arrives, the previewed one" "$r $last" \
  all [ "$RC" -eq 0 ] -- [ "$(lines "$API_LOG")" = $((before + 1)) ] -- \
  [ "$(jq -r .body <<<"$last")" = '{"recipients":["a@x.com","b@x.com"],"text":"batch"}' ]
run_json r as_dba approve "$ID"
checkd "a second approval sends nothing again" "$r" [ "$(lines "$API_LOG")" = $((before + 1)) ]
run_json out as_agent --json http --target api POST /v1/messages --json '{"recipients":["c@x.com","d@x.com"]}'
ID2=$(jf .id "$out")
run_json r as_dba reject "$ID2"
checkd "reject -> nothing arrives" "$r" all [ "$RC" -eq 11 ] -- [ "$(lines "$API_LOG")" = $((before + 1)) ]

# ---- what is refused -------------------------------------------------------------------------
before=$(lines "$API_LOG")
run_json out as_agent --json http --target api DELETE /v1/messages
checkd "a method not in the allow list is denied (exit 11)" "$out" \
  all [ "$RC" -eq 11 ] -- [ "$(jf .status "$out")" = denied ] -- has "allow list" "$(jf .error "$out")"
run_json out as_agent --json http --target api GET /admin/users
checkd "a path not in the allow list is denied (exit 11)" "$out" all [ "$RC" -eq 11 ] -- [ "$(jf .status "$out")" = denied ]
for p in "/v1/../admin" "/v1/%2e%2e/admin" "//evil.example/v1/x" "http://evil.example/v1/x" "/v1/a%0d%0aX-Evil:1" "/v1/%2Fadmin"; do
  run_json out as_agent --json http --target api GET "$p"
  checkd "hostile path $p is refused and recorded (exit 2 or 11)" "$out" \
    all [ "$RC" -eq 2 -o "$RC" -eq 11 ] -- [ "$(jf .id "$out")" != null ] -- has "path" "$(jf .error "$out")"
done
out=$(as_agent http --target api GET $'/v1/a\r\nX-Evil: 1' 2>&1)
checkd "a raw CR/LF in the path is refused" "$out" has "control character" "$out"
run_json out as_agent --json http --target api POST /v1/messages --json '{not json'
checkd "a body that is not JSON is a usage error (exit 2)" "$out" [ "$RC" -eq 2 ]
checkd "none of the refused requests reached the server" "$(cat "$API_LOG")" [ "$(lines "$API_LOG")" = "$before" ]
run_json out as_agent --json http --target app-db GET /v1/items
checkd "an sqlite target does not take http actions" "$out" [ "$RC" -eq 2 ]

# ---- redirects and the response cap ----------------------------------------------------------
run_json out as_agent --json http --target api GET /v1/redirect
checkd "a redirect to another host is not followed: the 302 comes back" "$out" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .result.status "$out")" = 302 ] -- \
  has "127.0.0.2" "$(jf .result.redirect_not_followed "$out")"
checkd "nothing was requested from the other host" "$(cat "$API_LOG")" \
  all [ "$(grep -c /v1/redirect "$API_LOG")" = 1 ] -- [ "$(grep -c -e stolen -e 127.0.0.2 "$API_LOG")" = 0 ]
out=$(as_agent http --target api GET /v1/big 2>"$T/err")
checkd "an oversized response is capped at max_response_bytes (64 KiB) and marked" "$(cat "$T/err")" \
  all [ "${#out}" -eq 65536 ] -- grep -q "response cut at 65,536 bytes" "$T/err"
run_json out as_agent --json http --target api GET /v1/big
checkd "--json marks it truncated" "$(jf .result "$out" | head -c 300)" [ "$(jf .result.truncated "$out")" = true ]

run_json out as_agent --json http --target api-slow GET /v1/hang
checkd "a server that never answers is cut off by the target's timeout: failed (exit 1)" "$out" \
  all [ "$RC" -eq 1 ] -- [ "$(jf .status "$out")" = failed ] -- has "timed out" "$(jf .error "$out")"

# ---- credentials never leak ------------------------------------------------------------------
AIRLOCK_TOKEN=$DBA_TOKEN "$AIRLOCK_BIN" serve --listen 127.0.0.1:0 >"$T/serve.out" 2>"$T/serve.err" &
SERVE_PID=$!
trap 'kill $SERVER_PID $SERVE_PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 300); do grep -qo 'http://127.0.0.1:[0-9]*' "$T/serve.out" "$T/serve.err" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -ho 'http://127.0.0.1:[0-9]*' "$T/serve.out" "$T/serve.err" | head -1)
run_json out as_agent --server "$URL" --json http --target api POST /v1/messages --json '{"recipients":["r@x.com"]}'
checkd "over the API (--server) a POST is sent like locally" "$out" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .risk "$out")" = low ] -- [ "$(jq -r .authorization <<<"$(tail -1 "$API_LOG")")" = "$SECRET" ]
REMOTE_ID=$(jf .id "$out")
{
  as_agent --json http --target api GET /v1/items 2>&1
  as_dba show "$LOW_ID" 2>&1; as_dba --json show "$ID" 2>&1; as_dba --server "$URL" show "$REMOTE_ID" 2>&1
  as_dba audit log --json 2>&1
  curl -s "$URL/metrics"
  curl -s -H "Authorization: Bearer $DBA_TOKEN" "$URL/v1/actions/$ID"
  curl -s -H "Authorization: Bearer $DBA_TOKEN" "$URL/"
  cat "$T/serve.out" "$T/serve.err"
  sqlite3 "$T/state/airlock.db" .dump
} > "$T/everything" 2>&1
checkd "the output, show, the audit log, /metrics, the API and the store hold no secret" \
  "$(grep -n -e "$SECRET" -e "$KEY_SECRET" "$T/everything" | head -5)" \
  all [ -s "$T/everything" ] -- [ "$(grep -c -e "$SECRET" -e "$KEY_SECRET" "$T/everything")" = 0 ]
checkd "the agent's own output holds no secret either (it saw only the response)" "" \
  [ "$(as_agent --json http --target api GET /v1/items | grep -c -e "$SECRET" -e "$KEY_SECRET")" = 0 ]
kill $SERVE_PID 2>/dev/null; wait $SERVE_PID 2>/dev/null

# A credential that cannot be read fails closed: nothing is sent, and the error names the
# reference, not a value.
before=$(lines "$API_LOG")
run_json out env -u API_TOKEN AIRLOCK_TOKEN=$AGENT_TOKEN "$AIRLOCK_BIN" --json http --target api GET /v1/items
checkd "an unset env: credential fails the request and names env:API_TOKEN" "$out" \
  all [ "$RC" -ne 0 ] -- has "env:API_TOKEN" "$(jf .error "$out")" -- [ "$(lines "$API_LOG")" = "$before" ]

# ---- the rate limit and its breaker ----------------------------------------------------------
before=$(lines "$API_LOG")
applied=0 held=0
for i in $(seq 1 12); do
  as_agent http --target api POST /v1/loop --json "{\"n\":$i}" >/dev/null 2>&1
  case $? in 0) applied=$((applied + 1)) ;; 10) held=$((held + 1)) ;; esac
done
sent=$(( $(lines "$API_LOG") - before ))
checkd "a loop of 12 POSTs: at most the rate (5/min, counting earlier writes) reach the server, the rest wait" \
  "applied=$applied held=$held sent=$sent" \
  all [ "$sent" -le 5 ] -- [ "$sent" = "$applied" ] -- [ "$held" -eq $((12 - applied)) ] -- [ "$held" -ge 7 ]
log=$(as_dba audit log --json)
checkd "the breaker tripped and is audited" "" has '"event":"breaker_tripped"' "$log"
run_json r as_dba breaker reset --target api
before=$(lines "$API_LOG")
run_json out as_agent --json http --target api POST /v1/loop --json '{"n":"after"}'
checkd "after an approver's reset a POST is sent again" "$out" \
  all [ "$RC" -eq 0 ] -- [ "$(lines "$API_LOG")" = $((before + 1)) ]

# ---- the built-in MCP server's http_request, through the official SDK client ---------------------
# (The client gives the airlock it starts only PATH, HOME, AIRLOCK_TOKEN and --env pairs.)
if [ -f "$SRC/tests/mcp/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  mc() { timeout 120 node "$SRC/tests/mcp/client.mjs" --bin "$AIRLOCK_BIN" --config "$T/airlock.yaml" \
    --token "$AGENT_TOKEN" --server airlock --env "API_TOKEN=$SECRET" --stderr "$T/mcp.err" \
    --timeout 60000 "$@"; }
  holds() { grep -qF -- "$1" <<<"$2"; }    # holds TEXT_PART TEXT
  lacks() { ! grep -qF -- "$1" <<<"$2"; }
  before=$(lines "$API_LOG")
  out=$(mc --list call http_request '{"target":"api","method":"GET","path":"/v1/items"}')
  checkd "http_request is offered by the built-in MCP server, and a GET returns the API's answer" "$out" \
    all jq -e '(.tools | index("http_request")) != null and .call.isError == false and (.call.text | test("alpha"))' <<<"$out" -- \
    [ "$(lines "$API_LOG")" = $((before + 1)) ]
  checkd "... with airlock's credential at the server, and none in what the agent got" "$(tail -1 "$API_LOG")" \
    all holds "$SECRET" "$(tail -1 "$API_LOG")" -- lacks "$SECRET" "$out"
  out=$(mc call http_request '{"target":"api","method":"DELETE","path":"/v1/items"}')
  checkd "http_request outside the allow list is refused, and nothing is sent" "$out" \
    all jq -e '.call.isError == true or .call.ok == false' <<<"$out" -- [ "$(lines "$API_LOG")" = $((before + 1)) ]
else
  echo "# http_request over MCP: skipped (tests/mcp not installed)"
fi

# ---- recipients: counted from the body, for max_recipients and max_recipients_per_hour -------
notify() { run_json out as_agent --json http --target api-notify POST /v1/messages --json "$1"; }
before=$(lines "$API_LOG")
notify '{"recipients":["a@x.com","b@x.com"],"text":"hi"}'
checkd "recipients: the body's list is the effect's recipient count" "$out" \
  all [ "$(jf .status "$out")" = applied ] -- [ "$(jf .effect.extra.recipient_count "$out")" = 2 ] -- \
  [ "$(jf '.effect.extra.recipients[1]' "$out")" = b@x.com ]
notify '{"recipients":"c@x.com","text":"hi"}'
checkd "one string counts one" "$out" [ "$(jf .effect.extra.recipient_count "$out")" = 1 ]
notify '{"recipients":["d@x.com","e@x.com"],"text":"hi"}'
checkd "max_recipients_per_hour: 3 this hour, 2 more asked, over 4: denied and not sent" "$out" \
  all [ "$RC" -eq 11 ] -- has "max_recipients_per_hour 4 exceeded" "$(jf .error "$out")" -- \
  [ "$(lines "$API_LOG")" = $((before + 2)) ]
notify '{"recipients":["1@x","2@x","3@x","4@x","5@x","6@x"]}'
checkd "max_recipients: 6 recipients over the target's 5 are denied" "$out" \
  all [ "$RC" -eq 11 ] -- has "over the target's max_recipients of 5" "$(jf .error "$out")" -- \
  [ "$(lines "$API_LOG")" = $((before + 2)) ]

# ---- idempotency keys ------------------------------------------------------------------------
before=$(lines "$API_LOG")
KEY="retry-$(date +%s%N)"
run_json first as_agent --json http --target api-notify POST /v1/messages --idempotency-key "$KEY" --json '{"text":"once"}'
run_json again as_agent --json http --target api-notify POST /v1/messages --idempotency-key "$KEY" --json '{"text":"once"}'
checkd "a retry with the same idempotency key returns the first action and sends nothing again" "$first $again" \
  all [ "$(jf .status "$first")" = applied ] -- [ "$(jf .id "$again")" = "$(jf .id "$first")" ] -- \
  [ "$(lines "$API_LOG")" = $((before + 1)) ]
run_json out as_agent --json http --target api-notify POST /v1/messages --idempotency-key "$KEY" --json '{"text":"other"}'
checkd "the same key for a different request is refused, and nothing is sent" "$out" \
  all [ "$RC" -ne 0 ] -- has "already used for a different" "$out$(cat "$T/stderr")" -- \
  [ "$(lines "$API_LOG")" = $((before + 1)) ]

# ---- policy errors ---------------------------------------------------------------------------
bad() {  # bad YAML_TARGET_FIELDS EXPECTED
  cat > "$T/bad.yaml" <<YAML
version: 1
targets:
  api: {kind: http, $1}
YAML
  local msg; msg=$(airlock --config "$T/bad.yaml" policy check 2>&1)
  checkd "policy error: $2" "$msg" all has "bad.yaml:3:" "$msg" -- has "$2" "$msg"
}
bad 'allow: ["GET /x"]' 'missing required key "base_url"'
bad 'base_url: "ftp://x"' 'http:// or https://'
bad 'base_url: "http://user:pw@x"' 'user:password@'
bad 'base_url: "http://x", allow: ["FETCH /x"]' 'unsupported HTTP method'
bad 'base_url: "http://x", allow: ["GET x/**"]' "starts with '/'"
bad 'base_url: "http://x", headers: {Host: "evil"}' 'set by airlock itself'
bad 'base_url: "http://x", headers: {"Bad Name": "x"}' 'header name'
bad 'base_url: "http://x", headers: {Authorization: "env:"}' 'env: needs a variable name'
bad 'base_url: "http://x", max_response_bytes: 1TiB' 'max_response_bytes'
bad 'base_url: "http://x", recipients: "to"' 'JSON pointer'
bad 'base_url: "http://x", max_recipients: 3' 'needs recipients:'
check "audit verifies" airlock audit verify
finish
