#!/usr/bin/env bash
# `airlock serve` through a real HTTP client (curl, and node for what curl cannot do) against
# the real binary on a real store: every route of docs/API.md, every error of its table,
# concurrent agents, background expiry, wait_ms, the event stream, and SIGTERM.
source "$(dirname "$0")/lib.sh"
cd "$T"
CLIENT="$SRC/tests/blackbox/serve_client.js"
THIRD_TOKEN=$(token third)

source "$SRC/tests/blackbox/serve_lib.sh"

# serve_policy DIR TIMEOUT [EXTRA_YAML]: a policy with an SQL target, a shell target, a target
# whose database cannot be opened, and a rate limit that trips a breaker.
serve_policy() {
  mkdir -p "$1/repo"
  printf 'hello from the workspace\n' > "$1/repo/README.md"
  mkdir -p "$1/not-a-db"
  cat > "$1/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: support-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [app-db, repo, broken]}
  - {name: other-bot, token_sha256: "$(sha "$OTHER_AGENT_TOKEN")", scopes: [app-db, other-db]}
  - {name: third-bot, token_sha256: "$(sha "$THIRD_TOKEN")", scopes: [app-db]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
  - {name: security-lead, token_sha256: "$(sha "$SEC_TOKEN")"}
targets:
  app-db: {kind: sqlite, path: ./prod.db}
  other-db: {kind: sqlite, path: ./other.db}
  broken: {kind: sqlite, path: ./not-a-db}
  repo: {kind: shell, workspace: ./repo, timeout: 30s}
approvals: {low: 0, high: 1, critical: 2, timeout: $2}
limits:
  - {match: {target: other-db}, rate: 2/min, on_exceed: trip}
${3:-}
YAML
  sqlite3 "$1/prod.db" < "$SRC/examples/quickstart/seed.sql" >/dev/null
  sqlite3 "$1/other.db" "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)" >/dev/null
}

# api METHOD PATH TOKEN [BODY [CONTENT_TYPE]]: sets CODE, BODY and HEADERS (a file).
api() {
  local method=$1 path=$2 tok=$3 data=${4-} ctype=${5:-application/json}
  local args=(-sS -o "$T/body" -D "$T/headers" -w '%{http_code}' -X "$method" "$URL$path")
  [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
  [ $# -ge 4 ] && args+=(-H "Content-Type: $ctype" --data-binary "$data")
  CODE=$(curl "${args[@]}" 2>"$T/curl.err")
  BODY=$(cat "$T/body")
}
header() { grep -i "^$1:" "$T/headers" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
error_code() { jq -r '.error.code' <<<"$BODY"; }
is_error() {  # is_error HTTP CODE: the last reply was this error, in the documented shape
  all [ "$CODE" = "$1" ] -- [ "$(error_code)" = "$2" ] -- jq -e '.error.message | length > 0' <<<"$BODY" >/dev/null
}
sql_body() { jq -cn --arg t "$1" --arg s "$2" '{target: $t, sql: $s}'; }
lacks() { ! grep -q "$@"; }
verifies() { airlock audit verify >/dev/null; }
has() { grep -qe "$1" <<<"$2"; }  # has PATTERN TEXT (usable inside `all`)
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]; }
out=$("$AIRLOCK_BIN" serve --help 2>&1)
check "'airlock serve --help' prints usage and exits 0" all [ $? -eq 0 ] -- has "--max-body" "$out"

A=$T/a
serve_policy "$A" 1h
start_server "$A" --header-timeout 2s --body-timeout 2s --max-wait 30s
check "the server prints its real port and policy when ready" [ -n "$PORT" ]
MAIN_PID=$PID
MAIN_PORT=$PORT
URL=http://127.0.0.1:$PORT
export AIRLOCK_CONFIG=$A/airlock.yaml

"$AIRLOCK_BIN" serve --listen "127.0.0.1:$MAIN_PORT" 2>"$T/taken.log"
check "a taken port is an error (exit 1) that names it" \
  all [ $? -eq 1 ] -- grep -q "cannot listen on 127.0.0.1:$MAIN_PORT" "$T/taken.log"
"$AIRLOCK_BIN" serve --listen nonsense 2>/dev/null
check "a bad --listen is a usage error (exit 2)" [ $? -eq 2 ]

# ---- unauthenticated routes, the page -----------------------------------------------------
api GET /healthz ""
check "GET /healthz is ok without a token" all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = ok ]
check "API replies say no-store and nosniff" \
  all [ "$(header cache-control)" = no-store ] -- [ "$(header x-content-type-options)" = nosniff ]
api GET / ""
check "GET / serves the web page" all [ "$CODE" = 200 ] -- grep -qi "<html" "$T/body"
check "the page has the strict Content-Security-Policy" [ "$(header content-security-policy)" = \
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'" ]
check "the page says no-referrer" [ "$(header referrer-policy)" = no-referrer ]
js=$(cd "$SRC/src/server/ui" && ls *.js 2>/dev/null | head -1)
if [ -n "$js" ]; then
  api GET "/ui/$js" ""
  check "GET /ui/$js serves the script" all [ "$CODE" = 200 ] -- has javascript "$(header content-type)"
fi
api GET /ui/no-such-file.js ""
check "an unknown page file is 404 not_found" is_error 404 not_found
api POST / "" '{}'
check "POST / is 405 with Allow: GET" all is_error 405 method_not_allowed -- [ "$(header allow)" = GET ]

# ---- authentication -----------------------------------------------------------------------
api GET /v1/whoami ""
check "no token is 401 unauthenticated" is_error 401 unauthenticated
api GET /v1/whoami "alk_nobody_holds_this"
check "an unknown token is 401 unauthenticated" is_error 401 unauthenticated
check "failed authentications are audited as auth_failed" \
  [ "$(airlock audit log --json | jq -s '[.[] | select(.event == "auth_failed")] | length')" -ge 2 ]
api GET /v1/whoami "$AGENT_TOKEN"
check "whoami names the agent" all [ "$CODE" = 200 ] -- [ "$(jf .role "$BODY")" = agent ] -- [ "$(jf .name "$BODY")" = support-bot ]
api GET /v1/whoami "$DBA_TOKEN"
check "whoami names the approver" all [ "$(jf .role "$BODY")" = approver ] -- [ "$(jf .name "$BODY")" = oncall-dba ]

# ---- submissions --------------------------------------------------------------------------
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'SELECT id, name FROM users WHERE id <= 3 ORDER BY id')"
check "a read is 200 applied with its rows" all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = applied ] \
  -- [ "$(jf .risk "$BODY")" = read ] -- [ "$(jf '.result.rows | length' "$BODY")" = 3 ] -- [ "$(jf '.result.rows[0][1]' "$BODY")" = "customer 1" ]
cli=$(as_agent sql --json --target app-db 'SELECT id, name FROM users WHERE id <= 3 ORDER BY id')
check "the API's action has the CLI's fields" \
  [ "$(jq -S 'keys' <<<"$BODY")" = "$(jq -S 'keys' <<<"$cli")" ]

api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db "UPDATE users SET name = 'via http' WHERE id = 7")"
LOW_ID=$(jf .id "$BODY")
check "a low write is 200 applied" all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = applied ] -- [ "$(jf .risk "$BODY")" = low ]
check "the low write changed the database" [ "$(sqlite3 "$A/prod.db" 'SELECT name FROM users WHERE id = 7')" = "via http" ]

api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'DELETE FROM users WHERE id <= 200')"
HIGH_ID=$(jf .id "$BODY")
check "a high write is 202 pending" all [ "$CODE" = 202 ] -- [ "$(jf .status "$BODY")" = pending ] -- [ "$(jf .risk "$BODY")" = high ]
check "nothing was deleted yet" [ "$(sqlite3 "$A/prod.db" 'SELECT count(*) FROM users WHERE id <= 200')" = 200 ]

api POST /v1/actions "$AGENT_TOKEN" '{"target": "repo", "command": ["cat", "README.md"]}'
check "a shell read runs in the sandbox: 200 applied with its stdout" \
  all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = applied ] -- [ "$(jf .result.stdout "$BODY")" = "hello from the workspace" ] -- [ "$(jf .kind "$BODY")" = shell ]
check "the shell action's args are its argv" [ "$(jq -c .args <<<"$BODY")" = '{"argv":["cat","README.md"]}' ]

api POST /v1/actions "$AGENT_TOKEN" "$(sql_body other-db 'SELECT 1')"
check "a target outside the agent's scopes is denied (200, status denied)" \
  all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = denied ]
api POST /v1/actions "$DBA_TOKEN" "$(sql_body app-db 'SELECT 1')"
check "an approver submitting is 403 forbidden" is_error 403 forbidden
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'SELEC nothing')"
check "malformed SQL is 400 bad_request, with the failed action" \
  all is_error 400 bad_request -- [ "$(jf .action.status "$BODY")" = failed ]
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body broken 'SELECT 1')"
check "a target that cannot be opened is 500 internal, recorded as failed" \
  all is_error 500 internal -- [ "$(jf .action.status "$BODY")" = failed ]
check "the server keeps serving after errors" healthy

# ---- the error table ----------------------------------------------------------------------
api POST /v1/actions "$AGENT_TOKEN" 'this is not json'
check "a body that is not JSON is 400 bad_json" is_error 400 bad_json
api POST /v1/actions "$AGENT_TOKEN" '[1, 2]'
check "a JSON body that is not an object is 400 bad_json" is_error 400 bad_json
api POST /v1/actions "$AGENT_TOKEN" '{"target": "app-db", "sql": "SELECT 1", "sqll": "DROP TABLE users"}'
check "an unknown field is 400 unknown_field naming it" \
  all is_error 400 unknown_field -- has sqll "$(jf .error.message "$BODY")"
api POST /v1/actions "$AGENT_TOKEN" '{"sql": "SELECT 1"}'
check "a missing target is 400 missing_field" is_error 400 missing_field
api POST /v1/actions "$AGENT_TOKEN" '{"target": "app-db"}'
check "neither sql nor command is 400 missing_field" is_error 400 missing_field
api POST /v1/actions "$AGENT_TOKEN" '{"target": 5, "sql": "SELECT 1"}'
check "a field of the wrong type is 400 bad_request" is_error 400 bad_request
api POST /v1/actions "$AGENT_TOKEN" '{"target": "repo", "command": ["ls", 5]}'
check "a command with a non-string is 400 bad_request" is_error 400 bad_request
api POST /v1/actions "$AGENT_TOKEN" '{"target": "app-db", "sql": "SELECT 1", "wait_ms": 999999999}'
check "wait_ms over --max-wait is 400 bad_request" is_error 400 bad_request
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'SELECT 1')" text/plain
check "a body that is not application/json is 415" is_error 415 unsupported_media_type
api GET "/v1/actions?stauts=pending" "$DBA_TOKEN"
check "an unknown query parameter is 400 bad_request" is_error 400 bad_request
api GET "/v1/actions?limit=lots" "$DBA_TOKEN"
check "a bad limit is 400 bad_request" is_error 400 bad_request
api GET "/v1/actions?status=sideways" "$DBA_TOKEN"
check "an unknown status is 400 bad_request" is_error 400 bad_request
api GET /v1/nothing-here "$DBA_TOKEN"
check "an unknown route is 404 not_found" is_error 404 not_found
api DELETE /v1/actions "$DBA_TOKEN"
check "a wrong method is 405 with Allow" \
  all is_error 405 method_not_allowed -- has POST "$(header allow)" -- has GET "$(header allow)"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $DBA_TOKEN" "$URL/v1/actions/$HIGH_ID/approve")
BODY=$(cat "$T/body"); CODE=$code
check "a POST without Content-Length is 411 length_required" is_error 411 length_required
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' 'x' > "$T/big"
code=$(curl -sS -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $AGENT_TOKEN" \
  -H 'Content-Type: application/json' --data-binary @"$T/big" "$URL/v1/actions")
BODY=$(cat "$T/body"); CODE=$code
check "a body over --max-body is 413 body_too_large" is_error 413 body_too_large
code=$(curl -sS -o "$T/body" -w '%{http_code}' -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' 'y')" "$URL/healthz")
BODY=$(cat "$T/body"); CODE=$code
check "request headers over 16 KiB are 431 headers_too_large" is_error 431 headers_too_large
out=$(node "$CLIENT" raw "$PORT" $'BLAH BLAH BLAH\n\n')
check "a malformed request is 400 bad_request and the connection closes" \
  all [ "$(jq -r .code <<<"$out")" = bad_request ] -- [ "$(jq -r .closed <<<"$out")" = true ]
out=$(node "$CLIENT" slow-headers "$PORT")
check "a client sending its headers a byte at a time gets 408 and is cut off" \
  all [ "$(jq -r .code <<<"$out")" = request_timeout ] -- [ "$(jq -r .closed <<<"$out")" = true ]
out=$(node "$CLIENT" slow-body "$PORT")
check "a body that stops arriving gets 408 and is cut off" \
  all [ "$(jq -r .code <<<"$out")" = request_timeout ] -- [ "$(jq -r .closed <<<"$out")" = true ]
check "the server keeps serving after slow and oversized clients" healthy
reuse=$(curl -sv "$URL/healthz" "$URL/healthz" 2>&1 | grep -c "Re-using existing connection")
check "HTTP/1.1 keep-alive: a second request reuses the connection" [ "$reuse" -ge 1 ]

# ---- reading actions ----------------------------------------------------------------------
api GET "/v1/actions/$HIGH_ID" "$AGENT_TOKEN"
check "an agent sees its own action" all [ "$CODE" = 200 ] -- [ "$(jf .id "$BODY")" = "$HIGH_ID" ] -- [ "$(jf .status "$BODY")" = pending ]
cli=$(as_agent show --json "$HIGH_ID")
check "GET /v1/actions/{id} is what 'airlock show --json' prints" [ "$(jq -S . <<<"$BODY")" = "$(jq -S . <<<"$cli")" ]
api GET "/v1/actions/$HIGH_ID" "$OTHER_AGENT_TOKEN"
check "another agent's action is 404" is_error 404 not_found
api GET "/v1/actions/act_0000000000000000" "$DBA_TOKEN"
check "an unknown action is 404" is_error 404 not_found
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'DROP TABLE payments')"
CRIT_ID=$(jf .id "$BODY")
api GET "/v1/actions?status=pending" "$DBA_TOKEN"
check "status=pending lists the riskiest first" \
  [ "$(jf '[.actions[].id] | join(",")' "$BODY")" = "$CRIT_ID,$HIGH_ID" ]
api GET "/v1/actions?status=pending&limit=1" "$DBA_TOKEN"
check "limit caps the listing" [ "$(jf '.actions | length' "$BODY")" = 1 ]
api GET "/v1/actions?status=pending" "$OTHER_AGENT_TOKEN"
check "an agent lists only its own actions" [ "$(jf '.actions | length' "$BODY")" = 0 ]
api GET "/v1/actions?target=app-db&limit=1000" "$DBA_TOKEN"
check "the listing filters by target" all [ "$(jf '[.actions[].target] | unique | join(",")' "$BODY")" = app-db ] \
  -- [ "$(jf '.actions | length' "$BODY")" -ge 4 ]
api GET "/v1/actions?agent=support-bot&status=applied" "$DBA_TOKEN"
check "the listing filters by agent and status, newest first" \
  all [ "$(jf '[.actions[].status] | unique | join(",")' "$BODY")" = applied ] -- [ "$(jf '.actions[0].created_ms >= .actions[-1].created_ms' "$BODY")" = true ]

# ---- votes and rollback -------------------------------------------------------------------
api POST "/v1/actions/$HIGH_ID/approve" "$AGENT_TOKEN" '{}'
check "an agent voting is 403 forbidden" is_error 403 forbidden
api POST "/v1/actions/$HIGH_ID/approve" "$DBA_TOKEN" '{"reason": "cleanup ticket 42", "because": "x"}'
check "a vote with an unknown field is 400 and counts nothing" \
  all is_error 400 unknown_field -- [ "$(as_dba show --json "$HIGH_ID" | jq '.votes | length')" = 0 ]
api POST "/v1/actions/$HIGH_ID/approve" "$DBA_TOKEN" '{"reason": "cleanup ticket 42"}'
check "the approval reaching the quorum applies it (200 applied)" \
  all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = applied ] -- [ "$(jf '.votes[0].reason' "$BODY")" = "cleanup ticket 42" ]
check "the rows are gone" [ "$(sqlite3 "$A/prod.db" 'SELECT count(*) FROM users WHERE id <= 200')" = 0 ]
api POST "/v1/actions/$HIGH_ID/approve" "$SEC_TOKEN" '{}'
check "a vote on a decided action is 409 conflict" is_error 409 conflict
api POST "/v1/actions/$CRIT_ID/approve" "$DBA_TOKEN" ''
check "a vote short of the quorum leaves it pending (200)" all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = pending ]
api POST "/v1/actions/$CRIT_ID/approve" "$DBA_TOKEN" '{}'
check "a second vote by the same approver is 409 conflict" is_error 409 conflict
api POST "/v1/actions/$CRIT_ID/reject" "$SEC_TOKEN" '{"reason": "no drops on Friday"}'
check "a rejection is 200 rejected" all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = rejected ]
check "the rejected DROP did nothing" [ "$(sqlite3 "$A/prod.db" "SELECT count(*) FROM sqlite_master WHERE name = 'payments'")" = 1 ]
api POST "/v1/actions/act_0000000000000000/reject" "$SEC_TOKEN" '{}'
check "a vote on an unknown action is 404" is_error 404 not_found
api GET "/v1/actions/$HIGH_ID/approve" "$DBA_TOKEN"
check "GET on a vote route is 405 with Allow: POST" all is_error 405 method_not_allowed -- [ "$(header allow)" = POST ]

api POST "/v1/actions/$HIGH_ID/rollback" "$AGENT_TOKEN" '{}'
check "an agent rolling back is 403" is_error 403 forbidden
api POST "/v1/actions/$HIGH_ID/rollback" "$DBA_TOKEN" '{"reason": "wrong rows"}'
check "rollback restores the rows (200 rolled_back)" \
  all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = rolled_back ] -- [ "$(sqlite3 "$A/prod.db" 'SELECT count(*) FROM users WHERE id <= 200')" = 200 ]
api GET "/v1/audit?action=$HIGH_ID" "$DBA_TOKEN"
check "the rollback's reason is audited" \
  [ "$(jq -r '.events[] | select(.event == "rollback_started" or .event == "rolled_back") | .payload.reason' <<<"$BODY" | sort | uniq -c | tr -s ' ')" = " 2 wrong rows" ]
api POST "/v1/actions/$HIGH_ID/rollback" "$DBA_TOKEN" '{}'
check "rolling back twice is 409 conflict" is_error 409 conflict
sqlite3 "$A/prod.db" "UPDATE users SET name = 'changed since' WHERE id = 7"
api POST "/v1/actions/$LOW_ID/rollback" "$DBA_TOKEN" '{}'
check "a rollback over later changes is 409 with report.conflicts" \
  all is_error 409 conflict -- [ "$(jf '.report.conflicts | length' "$BODY")" -ge 1 ]

# ---- breakers -----------------------------------------------------------------------------
for i in 1 2 3; do
  api POST /v1/actions "$OTHER_AGENT_TOKEN" "$(sql_body other-db "INSERT INTO t(v) VALUES ('row $i')")"
done
api GET /v1/breakers "$DBA_TOKEN"
check "GET /v1/breakers shows the tripped breaker" \
  all [ "$CODE" = 200 ] -- [ "$(jf '[.breakers[] | select(.target == "other-db" and .agent == "other-bot" and .open)] | length' "$BODY")" = 1 ] \
  -- [ "$(jf '.breakers[0] | has("changed_ms") and has("reason")' "$BODY")" = true ]
api POST /v1/breakers/reset "$OTHER_AGENT_TOKEN" '{"target": "other-db"}'
check "an agent resetting a breaker is 403" is_error 403 forbidden
api POST /v1/breakers/reset "$DBA_TOKEN" '{"agent": "other-bot"}'
check "a reset without target is 400 missing_field" is_error 400 missing_field
api POST /v1/breakers/reset "$DBA_TOKEN" '{"target": "other-db", "agent": "other-bot"}'
check "an approver resets it: 200 {reset: true}" all [ "$CODE" = 200 ] -- [ "$(jf .reset "$BODY")" = true ]
api GET /v1/breakers "$DBA_TOKEN"
check "the breaker is closed" [ "$(jf '[.breakers[] | select(.open)] | length' "$BODY")" = 0 ]
api POST /v1/breakers/reset "$DBA_TOKEN" '{"target": "other-db"}'
check "resetting a closed breaker is 404" is_error 404 not_found

# ---- concurrent agents --------------------------------------------------------------------
# (`name`, not `status`: the seed's trigger on status stamps datetime('now'), so a write whose
# apply lands in the next second than its preview is effect_changed, rightly.)
PAR=()
for i in $(seq 1 20); do
  tok=$AGENT_TOKEN; [ $((i % 2)) -eq 0 ] && tok=$THIRD_TOKEN
  curl -sS -o "$T/par.$i" -w '%{http_code}' -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    --data-binary "$(sql_body app-db "UPDATE users SET name = 'p$i' WHERE id = $((300 + i))")" \
    "$URL/v1/actions" > "$T/par.$i.code" &
  PAR+=($!)
done
wait "${PAR[@]}"
applied=0
for i in $(seq 1 20); do
  [ "$(cat "$T/par.$i.code")" = 200 ] && [ "$(jq -r .status "$T/par.$i")" = applied ] && applied=$((applied + 1))
done
check "20 parallel submissions from two agents all apply" [ "$applied" = 20 ]
ids=$(for i in $(seq 1 20); do jq -r .id "$T/par.$i"; done | sort -u)
check "each got its own action id" [ "$(wc -l <<<"$ids")" = 20 ]
once=$(airlock audit log --json | jq -r 'select(.event == "applied") | .action_id' | sort | uniq -c | awk '$1 != 1' | wc -l)
recorded=$(for id in $ids; do sqlite3 "$A/state/airlock.db" "SELECT count(*) FROM actions WHERE id = '$id'"; done | sort -u)
check "every action is recorded once and applied once" all [ "$once" = 0 ] -- [ "$recorded" = 1 ]
check "the database has every change" [ "$(sqlite3 "$A/prod.db" "SELECT count(*) FROM users WHERE name = 'p' || (id - 300) AND id BETWEEN 301 AND 320")" = 20 ]
check "the audit chain is intact after concurrent writes" verifies

# ---- audit --------------------------------------------------------------------------------
api GET "/v1/audit?after=0&limit=5" "$DBA_TOKEN"
check "GET /v1/audit pages the chain" all [ "$CODE" = 200 ] -- [ "$(jf '.events | length' "$BODY")" = 5 ] \
  -- [ "$(jf '[.events[].seq] | join(",")' "$BODY")" = 1,2,3,4,5 ] -- [ "$(jf .next_after "$BODY")" = 5 ]
check "its events are 'airlock audit log --json' lines" \
  [ "$(jq -c '.events[0]' <<<"$BODY")" = "$(airlock audit log --json | head -1 | jq -c .)" ]
api GET "/v1/audit?after=5&limit=2" "$DBA_TOKEN"
check "next_after resumes where the last page ended" [ "$(jf '[.events[].seq] | join(",")' "$BODY")" = 6,7 ]
api GET "/v1/audit?action=$HIGH_ID" "$DBA_TOKEN"
check "?action= gives only that action's events" \
  all [ "$(jf "[.events[] | select(.action_id != \"$HIGH_ID\")] | length" "$BODY")" = 0 ] -- [ "$(jf '.events | length' "$BODY")" -ge 4 ]
api GET "/v1/audit?limit=0" "$DBA_TOKEN"
check "a limit of 0 is 400" is_error 400 bad_request
api GET /v1/audit "$AGENT_TOKEN"
check "an agent reading the audit log is 403" is_error 403 forbidden
api GET /v1/audit/verify "$DBA_TOKEN"
cli=$(airlock audit verify --json)
check "GET /v1/audit/verify is what 'airlock audit verify --json' prints" \
  all [ "$(jf .ok "$BODY")" = true ] -- [ "$(jq -S . <<<"$BODY")" = "$(jq -S . <<<"$cli")" ]
api GET /v1/audit/verify "$AGENT_TOKEN"
check "an agent verifying the audit log is 403" is_error 403 forbidden

# ---- wait_ms ------------------------------------------------------------------------------
curl -sS -o "$T/wait.body" -w '%{http_code}' -H "Authorization: Bearer $AGENT_TOKEN" -H 'Content-Type: application/json' \
  --data-binary '{"target": "app-db", "sql": "DELETE FROM users WHERE id BETWEEN 500 AND 700", "wait_ms": 25000}' \
  "$URL/v1/actions" > "$T/wait.code" &
WAIT_CURL=$!
pending_wait_id() { api GET "/v1/actions?status=pending&agent=support-bot" "$DBA_TOKEN"; WAIT_ID=$(jf '.actions[0].id // empty' "$BODY"); [ -n "$WAIT_ID" ]; }
poll 20 pending_wait_id
api POST "/v1/actions/$WAIT_ID/approve" "$SEC_TOKEN" '{}'
wait "$WAIT_CURL"
check "a waiting submission returns 200 applied once another request approves it" \
  all [ "$(cat "$T/wait.code")" = 200 ] -- [ "$(jq -r .status "$T/wait.body")" = applied ] -- [ "$(jq -r .id "$T/wait.body")" = "$WAIT_ID" ]
api POST /v1/actions "$AGENT_TOKEN" '{"target": "app-db", "sql": "DELETE FROM users WHERE id BETWEEN 800 AND 1000", "wait_ms": 300}'
check "a wait that runs out returns 202 pending" all [ "$CODE" = 202 ] -- [ "$(jf .status "$BODY")" = pending ]

# ---- the event stream ---------------------------------------------------------------------
curl -sN -H "Authorization: Bearer $DBA_TOKEN" "$URL/v1/events" > "$T/sse.approver" 2>/dev/null &
SSE1=$!
curl -sN -H "Authorization: Bearer $OTHER_AGENT_TOKEN" "$URL/v1/events" > "$T/sse.other" 2>/dev/null &
SSE2=$!
curl -sN -H "Authorization: Bearer $DBA_TOKEN" "$URL/v1/events?after=0" > "$T/sse.replay" 2>/dev/null &
SSE3=$!
# A stream starts at the head: wait until both are open (their first comment) before submitting.
opened() { grep -q '^: keep-alive' "$T/sse.approver" && grep -q '^: keep-alive' "$T/sse.other"; }
poll 20 opened
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db "UPDATE users SET name = 'streamed' WHERE id = 9")"
SSE_ID=$(jf .id "$BODY")
sees_applied() { grep -q "\"action_id\":\"$SSE_ID\"" "$T/sse.approver" && grep -q '^event: applied' "$T/sse.approver"; }
poll 20 sees_applied
check "the SSE stream delivers the applied event of a new submission" sees_applied
check "SSE messages carry id: and data: lines" all grep -qE '^id: [0-9]+$' "$T/sse.approver" -- grep -q '^data: {' "$T/sse.approver"
replayed() { grep -q '^id: 1$' "$T/sse.replay" && grep -q "\"action_id\":\"$SSE_ID\"" "$T/sse.replay"; }
poll 20 replayed
check "?after=0 replays the chain from its first event" replayed
check "an agent's stream has no other agent's events" \
  all grep -q '^: keep-alive' "$T/sse.other" -- lacks "support-bot" "$T/sse.other"
kill "$SSE1" "$SSE2" "$SSE3" 2>/dev/null
out=$(curl -sS -o /dev/null -w '%{http_code} %{content_type}' -m 2 -H "Authorization: Bearer $DBA_TOKEN" "$URL/v1/events" 2>/dev/null)
check "the stream is text/event-stream" grep -q "^200 text/event-stream" <<<"$out"

api GET /metrics ""
check "/metrics counts requests by route pattern and code" \
  all [ "$CODE" = 200 ] -- grep -q 'airlock_http_requests_total{route="/v1/actions/{id}/approve",code="409"}' "$T/body"
check "/metrics counts decisions" grep -qE '^airlock_decision_latency_seconds_count [1-9]' "$T/body"

# ---- background expiry and the connection cap, on a second server --------------------------
node "$CLIENT" receive 0 > "$T/hooks" &
RECEIVER=$!
poll 20 grep -q port "$T/hooks"
HOOK_PORT=$(head -1 "$T/hooks" | jq -r .port)
B=$T/b
serve_policy "$B" 2s "notify:
  - {url: \"http://127.0.0.1:$HOOK_PORT/hook\", on: [pending, expired]}"
start_server "$B" --max-connections 2
B_PID=$PID
URL=http://127.0.0.1:$PORT
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'DELETE FROM users WHERE id <= 300')"
EXP_ID=$(jf .id "$BODY")
check "a high write waits (timeout 2s)" [ "$(jf .status "$BODY")" = pending ]
expired() { [ "$(sqlite3 "$B/state/airlock.db" "SELECT status FROM actions WHERE id = '$EXP_ID'")" = expired ]; }
poll 30 expired
check "it expires in the background, with no request asking" expired
check "its expiry is audited" \
  grep -q '"event":"expired"' <<<"$("$AIRLOCK_BIN" --config "$B/airlock.yaml" audit log --json --action "$EXP_ID")"
notified() { [ "$(grep -c "\"action_id\":\"$EXP_ID\"" "$T/hooks")" -ge 2 ]; }
poll 30 notified
check "the webhook is told that it waits, then that it expired" \
  all notified -- [ "$(grep "$EXP_ID" "$T/hooks" | jq -r .kind | tr '\n' ' ')" = "pending expired " ]
kill "$RECEIVER"

node "$CLIENT" hold "$PORT" 2 > "$T/hold.out" &
HOLD=$!
poll 20 grep -q held "$T/hold.out"
refused() {
  CODE=$(curl -sS -o "$T/body" -w '%{http_code}' "$URL/healthz" 2>/dev/null); BODY=$(cat "$T/body")
  [ "$CODE" = 503 ]
}
poll 20 refused
check "over --max-connections: 503 too_many_connections" is_error 503 too_many_connections
kill "$HOLD"
poll 20 healthy
check "once connections close, new ones are served again" healthy
kill -INT "$B_PID"; wait "$B_PID"
check "the second server exits 0 on SIGINT" [ $? -eq 0 ]

# ---- webhooks: pending and applied arrive; with the receiver down, actions still complete ---
node "$CLIENT" receive 0 > "$T/hooks2" &
RECEIVER=$!
poll 20 grep -q port "$T/hooks2"
HOOK_PORT=$(head -1 "$T/hooks2" | jq -r .port)
C=$T/c
serve_policy "$C" 1h "notify:
  - {url: \"http://127.0.0.1:$HOOK_PORT/hook\", on: [pending, applied]}"
start_server "$C"
C_PID=$PID
URL=http://127.0.0.1:$PORT
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'DELETE FROM users WHERE id <= 150')"
HOOK_ID=$(jf .id "$BODY")
api POST "/v1/actions/$HOOK_ID/approve" "$DBA_TOKEN" '{"reason": "ok"}'
check "the approved action is applied" [ "$(jf .status "$BODY")" = applied ]
hooked() { [ "$(grep "\"action_id\":\"$HOOK_ID\"" "$T/hooks2" | jq -r .kind | tr '\n' ' ')" = "pending applied " ]; }
poll 30 hooked
check "the webhook gets the pending and then the applied notification" hooked
check "a notification carries a one-line text" \
  [ -n "$(grep "$HOOK_ID" "$T/hooks2" | head -1 | jq -r '.text // empty')" ]
kill "$RECEIVER"; wait "$RECEIVER" 2>/dev/null
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'DELETE FROM users WHERE id BETWEEN 151 AND 160')"
check "with the receiver down, a low write is still applied at once" \
  all [ "$CODE" = 200 ] -- [ "$(jf .status "$BODY")" = applied ]
api POST /v1/actions "$AGENT_TOKEN" "$(sql_body app-db 'DELETE FROM users WHERE id <= 400')"
DOWN_ID=$(jf .id "$BODY")
api POST "/v1/actions/$DOWN_ID/approve" "$DBA_TOKEN" '{}'
check "with the receiver down, an approved action is still applied" [ "$(jf .status "$BODY")" = applied ]
check "the rows are gone for real" \
  [ "$(sqlite3 "$C/prod.db" 'SELECT count(*) FROM users WHERE id <= 400')" = 0 ]
kill -TERM "$C_PID"; wait "$C_PID"
check "the webhook server exits 0 on SIGTERM though deliveries are failing" [ $? -eq 0 ]

# ---- SIGTERM: drain, refuse new work, exit 0 ------------------------------------------------
URL=http://127.0.0.1:$MAIN_PORT
out=$(node "$CLIENT" drain "$MAIN_PORT" "$MAIN_PID" "$AGENT_TOKEN" repo)
check "after SIGTERM, a request on an open connection is 503 shutting_down" \
  all [ "$(jq -r .during <<<"$out")" = 503 ] -- [ "$(jq -r .during_code <<<"$out")" = shutting_down ]
check "a request running at SIGTERM still completes" \
  all [ "$(jq -r .slow <<<"$out")" = 200 ] -- [ "$(jq -r .slow_status <<<"$out")" = applied ]
wait "$MAIN_PID"
check "the server exits 0 after draining" [ $? -eq 0 ]
check "it says it stopped" grep -q "airlock: stopped" "$A/serve.log"
check "the store verifies after the shutdown" verifies
finish
