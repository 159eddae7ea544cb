#!/usr/bin/env bash
# `airlock mcp stdio` end to end with real MCP parts (tests/mcp, pinned npm packages from
# scripts/install-mcp-tests.sh): the official TypeScript SDK's client (tests/mcp/client.mjs), a
# raw JSON-RPC driver (tests/mcp/raw.mjs), the reference server-everything, and a mail server
# of the project's own (tests/mcp/mail_server.mjs) whose sends land in a file. Covers scoped
# tool lists, gating (1 recipient applies, 2 wait for approval), approval while the call waits,
# airlock_action_status, the rate limit's breaker, the upstream's environment, an upstream
# crash, pass-through of prompts/resources/progress/sampling/elicitation/roots, and
# protocol errors.
source "$(dirname "$0")/lib.sh"
cd "$T"
source "$SRC/tests/blackbox/mcp_lib.sh"
require_mcp_packages @modelcontextprotocol/sdk @modelcontextprotocol/server-everything

P=$T/airlock.yaml            # approval_wait 2s
P_WAIT=$T/airlock-wait.yaml  # the same store and mail log, approval_wait 20s
P_LOOP=$T/airlock-loop.yaml  # its own store and mail log (a fresh rate window), approval_wait 200ms
MAIL_LOG=$T/mail.log
LOOP_LOG=$T/loop-mail.log
mcp_policy "$P" "$T/state/airlock.db" "$MAIL_LOG" 2s
mcp_policy "$P_WAIT" "$T/state/airlock.db" "$MAIL_LOG" 20s
mcp_policy "$P_LOOP" "$T/loop-state/airlock.db" "$LOOP_LOG" 200ms
export AIRLOCK_CONFIG=$P
unset AIRLOCK_TOKEN AIRLOCK_SERVER

as_alice() { AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" "$@"; }
as_bob() { AIRLOCK_TOKEN=$BOB_TOKEN "$AIRLOCK_BIN" "$@"; }
has() { grep -qe "$1" <<<"$2"; }  # has PATTERN TEXT
# jqe [JQ_OPTIONS...] FILTER JSON: the filter's last output is true.
jqe() { local json=${*: -1}; jq -e "${@:1:$#-1}" <<<"$json" >/dev/null 2>&1; }
lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }
# mc POLICY TOKEN SERVER SCENARIO [ARGS...]: one client.mjs session through airlock; its
# JSON on stdout, airlock's stderr appended to $T/mcp.err.
mc() {
  local policy=$1 tok=$2 server=$3; shift 3
  timeout 240 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$policy" --token "$tok" \
    --server "$server" --stderr "$T/mcp.err" --timeout 120000 "$@"
}
# checkd DESCRIPTION EVIDENCE COMMAND...: `check`, and shows EVIDENCE (TAP comments) when
# it fails, so that a failure says what airlock answered.
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}
# audit_has POLICY JQ_CONDITION: some event of the audit log (read by alice) matches.
audit_has() { as_alice --config "$1" audit log --json 2>/dev/null | jq -s -e "any(.[]; $2)" >/dev/null 2>&1; }
first_id() { grep -o 'act_[0-9a-zA-Z]*' <<<"$1" | head -1; }
two='{"to":["a@example.com","b@example.com"],"subject":"batch","body":"hello both"}'
one() { jq -cn --arg s "$1" '{to: ["a@example.com"], subject: $s, body: "hello"}'; }

# ---- the command line ---------------------------------------------------------------------
out=$("$AIRLOCK_BIN" mcp stdio --help 2>&1)
checkd "'airlock mcp stdio --help' exits 0 and names --server" "$out" all [ $? -eq 0 ] -- has "--server" "$out"
out=$(airlock policy check 2>&1)
checkd "the test policy is valid ('airlock policy check')" "$out" [ $? -eq 0 ]

AIRLOCK_TOKEN=$MAIL_TOKEN timeout 30 "$AIRLOCK_BIN" mcp stdio </dev/null >/dev/null 2>"$T/e"
rc=$?
checkd "'mcp stdio' without --server is a usage error (exit 2)" "exit $rc: $(cat "$T/e")" [ "$rc" -eq 2 ]
AIRLOCK_TOKEN=$MAIL_TOKEN timeout 30 "$AIRLOCK_BIN" mcp stdio --server nosuch </dev/null >/dev/null 2>"$T/e"
rc=$?
checkd "an unknown --server exits 2 and names it" "exit $rc: $(cat "$T/e")" \
  all [ "$rc" -eq 2 ] -- grep -q nosuch "$T/e"

timeout 30 "$AIRLOCK_BIN" mcp stdio --server mail </dev/null >/dev/null 2>"$T/e"
rc=$?
if [ "$rc" -eq 2 ]; then
  ok "without AIRLOCK_TOKEN 'mcp stdio' exits 2"
else
  # The other allowed behaviour: the session starts but refuses every call.
  out=$(timeout 240 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$P" --server mail \
    --stderr "$T/mcp.err" call send_email "$(one no-token)")
  checkd "without AIRLOCK_TOKEN (exit $rc at EOF) the session refuses calls and sends nothing" "$out" \
    all jqe '.connectError != null or .call.ok == false or .call.isError == true' "$out" -- \
    [ "$(lines "$MAIL_LOG")" = 0 ]
fi

# ---- scopes -------------------------------------------------------------------------------
out=$(mc "$P" "$OTHER_TOKEN" mail --list call send_email "$(one from-other-bot)")
checkd "tools/list for other-bot (no scope on mail) is empty" "$out" jqe '.tools == []' "$out"
checkd "other-bot calling send_email by name is refused, and nothing is sent" "$out" \
  all jqe '.connectError != null or .call.ok == false or .call.isError == true' "$out" -- \
  [ "$(lines "$MAIL_LOG")" = 0 ]
checkd "... and the audit log has other-bot's denial" "$(as_alice audit log --json 2>&1 | tail -5)" \
  audit_has "$P" '.event == "denied" and (.principal | test("other-bot"))'

# ---- gating: one recipient applies, two wait for approval --------------------------------
out=$(mc "$P" "$MAIL_TOKEN" mail --list call send_email "$(one single)")
checkd "tools/list for mail-bot: send_email, crash, whoami_env and airlock_action_status" "$out" \
  jqe '.tools == ["airlock_action_status", "crash", "send_email", "whoami_env"]' "$out"
checkd "send_email to 1 recipient: isError false, the tool's own text; mail.log has 1 line" "$out" \
  all jqe '.call.ok and .call.isError == false and .call.text == "sent to 1 recipient(s)"' "$out" -- \
  [ "$(lines "$MAIL_LOG")" = 1 ]

# Two batch sends in one session: each waits approval_wait (2 s), then comes back pending.
out=$(mc "$P" "$MAIL_TOKEN" mail calls send_email "$two" send_email "$two")
text=$(jq -r '.calls[0].text // ""' <<<"$out" 2>/dev/null)
ID=$(first_id "$text")
ID2=$(first_id "$(jq -r '.calls[1].text // ""' <<<"$out" 2>/dev/null)")
checkd "send_email to 2 recipients: after approval_wait, isError with the action id, 'pending', 'airlock approve'" "$out" \
  all jqe '.calls[0].ok and .calls[0].isError == true' "$out" -- [ -n "$ID" ] -- \
  has pending "$text" -- has "airlock approve" "$text"
checkd "... the second one too, with another id" "$out" \
  all jqe '.calls[1].ok and .calls[1].isError == true' "$out" -- [ -n "$ID2" ] -- [ "$ID2" != "$ID" ]
checkd "... and nothing was sent yet" "$(cat "$MAIL_LOG" 2>&1)" [ "$(lines "$MAIL_LOG")" = 1 ]
pend=$(as_alice pending --json 2>>"$T/cli.err")
checkd "'airlock pending --json' lists both" "$pend" \
  jqe --arg a "${ID:-none}" --arg b "${ID2:-none}" 'any(.pending[]; .id == $a) and any(.pending[]; .id == $b)' "$pend"
out=$(as_alice approve "${ID:-none}" 2>&1)
rc=$?
checkd "alice approves the first (quorum 1 for high): exit 0, and mail.log has the batch to both" \
  "exit $rc: $out; mail.log: $(cat "$MAIL_LOG" 2>&1)" \
  all [ "$rc" -eq 0 ] -- [ "$(lines "$MAIL_LOG")" = 2 ] -- \
  jqe '.to == ["a@example.com","b@example.com"]' "$(tail -1 "$MAIL_LOG" 2>/dev/null)"
show=$(as_alice show "${ID:-none}" --json 2>>"$T/cli.err")
checkd "'airlock show ID --json' says applied" "$show" jqe '.status == "applied"' "$show"
out=$(as_bob reject "${ID2:-none}" --reason "not today" 2>&1)
show=$(as_alice show "${ID2:-none}" --json 2>>"$T/cli.err")
checkd "bob rejects the second: status rejected and mail.log unchanged" "$out; $show" \
  all jqe '.status == "rejected"' "$show" -- [ "$(lines "$MAIL_LOG")" = 2 ]

# Approved while the call still waits: the client gets the tool's real result.
OUTW=$T/wait.json
before=$(lines "$MAIL_LOG")
mc "$P_WAIT" "$MAIL_TOKEN" mail call send_email \
  '{"to":["a@example.com","c@example.com"],"subject":"while-waiting","body":"hi"}' >"$OUTW" &
WAITER=$!
waiting_id() {
  WID=$(as_alice pending --json 2>/dev/null |
    jq -r 'first(.pending[] | select(tostring | test("while-waiting")) | .id) // empty' 2>/dev/null)
  [ -n "$WID" ]
}
# Until it is pending, or the client is done (it failed to get that far), or 60 s.
deadline=$((SECONDS + 60))
until waiting_id || ! kill -0 "$WAITER" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
checkd "a waiting batch call shows up in 'airlock pending'" "$(as_alice pending --json 2>&1)" [ -n "${WID:-}" ]
[ -n "${WID:-}" ] && as_alice approve "$WID" >/dev/null 2>&1
wait "$WAITER"
out=$(cat "$OUTW")
checkd "approved while it waits: the client gets isError false and 'sent to 2 recipient(s)'" "$out" \
  all jqe '.call.ok and .call.isError == false and .call.text == "sent to 2 recipient(s)"' "$out" -- \
  [ "$(lines "$MAIL_LOG")" = $((before + 1)) ]

# ---- action status, the upstream's environment, and its crash, in one session --------------
before=$(lines "$MAIL_LOG")
out=$(mc "$P" "$MAIL_TOKEN" mail --env SECRET_DECOY=xyz calls \
  airlock_action_status "{\"id\":\"${ID:-none}\"}" airlock_action_status "{\"id\":\"${ID2:-none}\"}" \
  whoami_env '{}' crash '{}' send_email "$(one after-crash)")
checkd "airlock_action_status says applied for the approved call" "$(jq -c '.calls[0]' <<<"$out" 2>/dev/null || echo "$out")" \
  jqe '.calls[0].ok and .calls[0].isError != true and ([.calls[0].result | .. | strings] | any(test("applied")))' "$out"
# (isError is not asserted here: the status of a call that was not made may be a tool error.)
checkd "... and rejected for the rejected one" "$(jq -c '.calls[1]' <<<"$out" 2>/dev/null || echo "$out")" \
  jqe '.calls[1].ok and ([.calls[1].result | .. | strings] | any(test("rejected")))' "$out"
# What the client gave airlock (beyond PATH) must not reach the upstream.
client_env='["HOME","LOGNAME","SHELL","TERM","USER","AIRLOCK_TOKEN","SECRET_DECOY"]'
checkd "the upstream's env has MAIL_LOG and PATH, and nothing of the client's (no AIRLOCK_TOKEN, SECRET_DECOY, HOME)" \
  "$(jq -c '.calls[2]' <<<"$out" 2>/dev/null || echo "$out")" \
  jqe --argjson bad "$client_env" '.calls[2].ok and .calls[2].isError == false and
    (.calls[2].text | split("\n")) as $n | ($n | index("MAIL_LOG")) != null and ($n | index("PATH")) != null
    and ([$n[] | select(. as $x | $bad | index($x))] == [])' "$out"
checkd "crash: the call gets an error" "$(jq -c '.calls[3]' <<<"$out" 2>/dev/null || echo "$out")" \
  jqe '.calls[3].ok == false or .calls[3].isError == true' "$out"
checkd "... and the next send_email in the same session works (upstream restarted)" \
  "$(jq -c '{next: .calls[4], transportClosed}' <<<"$out" 2>/dev/null || echo "$out")" \
  all jqe '.calls[4].ok and .calls[4].isError == false and .calls[4].text == "sent to 1 recipient(s)"' "$out" -- \
  [ "$(lines "$MAIL_LOG")" = $((before + 1)) ]

# ---- server-everything, passed through --------------------------------------------------------
out=$(mc "$P" "$MAIL_TOKEN" everything everything)
for what in ping:ping prompts:prompts_get resources:resources_read echo:echo progress:progress \
    sampling:sampling elicitation:elicitation roots:roots; do
  checkd "server-everything through airlock: ${what%%:*}" \
    "$(jq -c --arg k "${what#*:}" '{summary, connectError, step: .steps[$k]}' <<<"$out" 2>/dev/null || echo "$out")" \
    jqe --arg w "${what%%:*}" '.summary[$w] == true' "$out"
done

# ---- protocol robustness (raw lines) --------------------------------------------------------
out=$(AIRLOCK_TOKEN=$MAIL_TOKEN timeout 240 node "$MCP/raw.mjs" --bin "$AIRLOCK_BIN" --config "$P" \
  --server mail --stderr "$T/mcp.err" --wait 30000 \
  'this is not json' \
  '{"jsonrpc":"2.0","id":1,"method":"ping"}' \
  '[{"jsonrpc":"2.0","id":2,"method":"ping"}]' \
  '{"id":3,"method":"ping"}' \
  '{"jsonrpc":"2.0","id":4,"method":"no/such/method"}' \
  '@big:5242880' \
  '{"jsonrpc":"2.0","id":5,"method":"ping"}')
step() { jq -c ".steps[$1] | {sent: .sent[0:80], replies, other, timedOut}" <<<"$out" 2>/dev/null || echo "$out"; }
checkd "raw: the initialize handshake works" "$(jq -c '{init, exit, stderr}' <<<"$out" 2>/dev/null || echo "$out")" \
  jqe '.init.result.protocolVersion != null' "$out"
checkd "raw: a line that is not JSON gets -32700 with id null" "$(step 0)" \
  jqe '.steps[0].replies[0].error.code == -32700 and .steps[0].replies[0].id == null' "$out"
checkd "raw: ... and the session still answers a ping" "$(step 1)" \
  jqe '.steps[1].replies[0].id == 1 and .steps[1].replies[0].result == {}' "$out"
checkd "raw: a batch (an array) gets -32600" "$(step 2)" \
  jqe '.steps[2].replies[0].error.code == -32600' "$out"
checkd "raw: a request without \"jsonrpc\" gets -32600 with its id" "$(step 3)" \
  jqe '.steps[3].replies[0].error.code == -32600 and .steps[3].replies[0].id == 3' "$out"
checkd "raw: an unknown method gets -32601 (the upstream's answer, passed through)" "$(step 4)" \
  jqe '.steps[4].replies[0].error.code == -32601 and .steps[4].replies[0].id == 4' "$out"
checkd "raw: a 5 MiB line gets -32002 or -32600" "$(step 5)" \
  jqe '.steps[5].replies[0].error.code == -32002 or .steps[5].replies[0].error.code == -32600' "$out"
checkd "raw: ... and the session survives it" "$(step 6)" \
  jqe '.steps[6].replies[0].id == 5 and .steps[6].replies[0].result == {}' "$out"

# ---- the rate limit (20/min, trip) in a loop of 50 sends, on a fresh store ------------------
out=$(mc "$P_LOOP" "$MAIL_TOKEN" mail loop 50 send_email \
  '{"to":["a@example.com"],"subject":"loop {i}","body":"hello"}')
checkd "50 sends in one session: exactly 20 go through" "$(jq -c '{summary, connectError, scenarioError, last: .loop[-1]}' <<<"$out" 2>/dev/null || echo "$out")" \
  jqe '.summary.ok == 20' "$out"
checkd "... the other 30 come back isError, saying pending or breaker" "$(jq -c '[.loop[20:][] | {ok, isError, text: (.text // "" | .[0:120]), error}] | unique' <<<"$out" 2>/dev/null)" \
  jqe '[.loop[20:][] | select(.ok and .isError and (.text | test("pending|breaker|rate limit"; "i")))] | length == 30' "$out"
checkd "... mail.log has 20 lines: the first 20 sends, none twice" "$(cat "$LOOP_LOG" 2>&1 | head -30)" \
  all [ "$(lines "$LOOP_LOG")" = 20 ] -- \
  [ "$(jq -r .subject "$LOOP_LOG" 2>/dev/null | sort -u | wc -l)" = 20 ] -- \
  [ "$(jq -r .subject "$LOOP_LOG" 2>/dev/null | sort -V | tr '\n' ,)" = "$(seq -f 'loop %g' 1 20 | tr '\n' ,)" ]
checkd "... and the audit log has breaker_tripped" "$(as_alice --config "$P_LOOP" audit log --json 2>&1 | tail -3)" \
  audit_has "$P_LOOP" '.event == "breaker_tripped"'

verified() { as_alice --config "$1" audit verify >/dev/null 2>&1; }
checkd "the audit chains verify" "$(as_alice audit verify 2>&1; as_alice --config "$P_LOOP" audit verify 2>&1)" \
  all verified "$P" -- verified "$P_LOOP"
if [ "$FAILED" -gt 0 ]; then
  for f in mcp.err cli.err; do
    [ -s "$T/$f" ] && { echo "# $f (stderr of airlock mcp stdio / of the CLI), last lines:"; tail -40 "$T/$f" | sed 's/^/#   /'; }
  done
fi
finish
