#!/usr/bin/env bash
# The order of a read tool call through `airlock mcp stdio` (issue 5's latency line): the
# request goes upstream at once and its record (the action, the `read` event with the full
# arguments) is appended to the session's journal while the server works; the answer reaches
# the client only once that record is written, and the store's record follows the reply. The answer's size and shape follow in a `read_result` event after
# the reply. Checked with the real SDK client and server-everything's echo:
#   - a normal call: `read` (full arguments) then `read_result`, the chain verifies;
#   - the store write-locked by another process during the call: the record is a line in the
#     session's journal, so the answer goes out, and the next start writes the record;
#   - the journal cannot be written: the client gets an error and never the answer;
#   - a crash right after the record is durable (before the answer is handed back): no
#     answer, a recorded read action;
#   - a crash right after the reply: a recorded read action whose result is unknown (no
#     `read_result`), and a chain that verifies; the next session works.
source "$(dirname "$0")/lib.sh"
cd "$T"
source "$SRC/tests/blackbox/mcp_lib.sh"
require_mcp_packages @modelcontextprotocol/sdk @modelcontextprotocol/server-everything

P=$T/airlock.yaml
STORE=$T/state/airlock.db
# echo is a read, and nothing else matches it (a `"*": low` rule would make it low).
cat > "$P" <<YAML
version: 1
store: $STORE
agents:
  - {name: mail-bot, token_sha256: "$(sha "$MAIL_TOKEN")", scopes: [everything]}
approvers:
  - {name: alice, token_sha256: "$(sha "$ALICE_TOKEN")"}
  - {name: bob, token_sha256: "$(sha "$BOB_TOKEN")"}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
mcp_servers:
  everything:
    command: [node, "$EVERYTHING", stdio]
    tools:
      - {tool: echo, risk: read}
YAML
export AIRLOCK_CONFIG=$P
unset AIRLOCK_TOKEN AIRLOCK_SERVER

as_alice() { AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" "$@"; }
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}
jqe() { local json=${*: -1}; jq -e "${@:1:$#-1}" <<<"$json" >/dev/null 2>&1; }
# echo_call MESSAGE [--env K=V ...]: one session, one echo call; the client's JSON.
echo_call() {
  local msg=$1; shift
  timeout 240 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$P" --token "$MAIL_TOKEN" \
    --server everything --stderr "$T/mcp.err" --timeout 120000 "$@" \
    call echo "$(jq -cn --arg m "$msg" '{message: $m}')"
}
# events MESSAGE: the audit events (JSON lines) of the echo action whose arguments hold MESSAGE.
events() {
  local log id
  log=$(as_alice audit log --json 2>/dev/null)
  id=$(jq -r --arg m "$1" 'select(.payload.args.arguments.message? == $m) | .action_id' <<<"$log" | head -1)
  [ -n "$id" ] && jq -c --arg id "$id" 'select(.action_id == $id)' <<<"$log"
}
has_result() { [ "$(events "$1" | wc -l)" -ge 2 ]; }
action_of() { events "$1" | jq -r .action_id | head -1; }
verified() { as_alice audit verify >/dev/null 2>&1; }

# ---- a normal read: answered, recorded, and its result follows ------------------------------
out=$(echo_call "order one")
checkd "a read call through airlock gets the server's answer" "$out" \
  jqe '.call.ok == true and (.call.result.content[0].text == "Echo: order one") and (.call.result.isError | not)' "$out"
# The result record is written with the next commit or when the session ends: airlock may
# still be finishing when the client has returned.
poll 30 has_result "order one" || true
ev=$(events "order one")
checkd "... its 'read' event holds the full arguments and comes before its 'read_result'" "$ev" \
  jqe -s 'map(.event) == ["read", "read_result"] and .[0].payload.args.arguments == {"message": "order one"} and .[0].payload.status == "applied"' "$ev"
checkd "... and 'read_result' holds the answer's size and shape, not its text" "$ev" \
  jqe -s '.[1].payload.result.summary.size_bytes > 0 and (.[1] | tostring | contains("Echo: order one") | not)' "$ev"
id=$(action_of "order one")
shown=$(as_alice show "$id" --json 2>&1)
checkd "... 'airlock show' has it applied, read risk, with the result's summary" "$shown" \
  jqe '.status == "applied" and .risk == "read" and (.result.summary | type == "object")' "$shown"
checkd "... the chain verifies" "$(as_alice audit verify 2>&1)" verified

# ---- the store is locked while the call is in flight: the journal holds the record --------
# airlock pauses once the request is sent (AIRLOCK_PAUSE_AT); meanwhile another process takes
# the store's write lock and holds it longer than airlock waits for it (10 s). The call's
# record is already a line in the session's journal, so the answer goes out; the record
# reaches the store when the next airlock process starts after the session.
: > "$T/mcp.err"
echo_call "order locked" --env AIRLOCK_PAUSE_AT=mcp_read_sent --env AIRLOCK_PAUSE_MS=8000 \
  > "$T/locked.json" &
client=$!
for _ in $(seq 1 600); do
  grep -q "paused at mcp_read_sent" "$T/mcp.err" 2>/dev/null && break
  sleep 0.1
done
# The holder waits for the lock (.timeout): the probe below takes it for an instant too, and
# a holder that gave up on meeting it there would leave the store unlocked.
(echo ".bail on"; echo ".timeout 20000"; echo "BEGIN IMMEDIATE;"; echo "SELECT 'holding';"; sleep 30
 echo "ROLLBACK;") | sqlite3 "$STORE" > "$T/holder.out" 2>&1 &
holder=$!
locked=no
for _ in $(seq 1 100); do
  if ! sqlite3 -cmd ".timeout 0" "$STORE" "BEGIN IMMEDIATE; ROLLBACK;" >/dev/null 2>&1; then
    grep -q holding "$T/holder.out" && { locked=yes; break; }
  fi
  sleep 0.1
done
wait "$client"
out=$(cat "$T/locked.json")
checkd "airlock paused with the request sent, and the store's write lock was taken meanwhile" \
  "locked=$locked; $(cat "$T/holder.out"); $(tail -3 "$T/mcp.err")" \
  bash -c '[ "$1" = yes ] && grep -q "paused at mcp_read_sent" "$2"' _ "$locked" "$T/mcp.err"
checkd "with the store locked, the journaled call is answered" "$out" \
  jqe '.call.ok == true and .call.result.content[0].text == "Echo: order locked"' "$out"
# Its store write waits for the lock, after the reply, until the client's end stops the
# session: the record is still only in the journal.
checkd "... whose record is in the session's journal" "$(ls -la "$STORE.journal" 2>&1)" \
  bash -c 'ls "$1"/*.jnl >/dev/null 2>&1' _ "$STORE.journal"
wait "$holder"
ev=$(events "order locked")
checkd "... and once the store is free, the next start writes it into the chain, marked recovered" "$ev" \
  jqe -s 'map(.event) == ["read"] and .[0].payload.args.arguments == {"message": "order locked"} and (.[0].payload.recovered | type == "string")' "$ev"
checkd "... and removes the journal" "$(ls -la "$STORE.journal" 2>&1)" \
  bash -c '! ls "$1"/*.jnl >/dev/null 2>&1' _ "$STORE.journal"
checkd "... the chain verifies" "$(as_alice audit verify 2>&1)" verified

# ---- the journal cannot be written: the answer is withheld ---------------------------------
# The journal's directory is a full file system (a 4 KiB tmpfs, filled): the call's record
# cannot be made, so the client gets an error and never the answer.
mkdir -p "$STORE.journal"
if mount -t tmpfs -o size=4k,mode=0700 tmpfs "$STORE.journal" 2>/dev/null; then
  head -c 4096 /dev/zero > "$STORE.journal/fill" 2>/dev/null || true
  : > "$T/mcp.err"
  out=$(echo_call "order no journal")
  checkd "with the journal unwritable, the client gets an error that says the answer is withheld" "$out" \
    jqe '.initialize != null and .call.ok == false and (.call.error.message | test("audit write failed; the result is withheld"))' "$out"
  checkd "... and never the server's answer" "$out" bash -c '! grep -q "Echo: order no journal" <<<"$1"' _ "$out"
  umount -l "$STORE.journal"
  checkd "... nothing claims the call was recorded" "$(events "order no journal")" \
    test -z "$(events "order no journal")"
else
  not_ok "mounting a tmpfs for the journal (this test runs as root)"
fi

# ---- a crash once the record is durable, before the answer is handed back -------------------
out=$(echo_call "order crash before" --env AIRLOCK_CRASH_AT=mcp_read_recorded)
checkd "a crash after the record, before the answer: the client gets no answer" "$out" \
  bash -c '! grep -q "Echo: order crash before" <<<"$1" && jq -e ".initialize != null and .call.ok == false" <<<"$1" >/dev/null' _ "$out"
ev=$(events "order crash before")
checkd "... the read is recorded with its arguments, its result unknown" "$ev" \
  jqe -s 'map(.event) == ["read"] and .[0].payload.args.arguments == {"message": "order crash before"}' "$ev"

# ---- a crash right after the reply ----------------------------------------------------------
out=$(echo_call "order crash after" --env AIRLOCK_CRASH_AT=mcp_read_replied)
checkd "a crash right after the reply: the client got the answer" "$out" \
  jqe '.call.ok == true and .call.result.content[0].text == "Echo: order crash after"' "$out"
ev=$(events "order crash after")
checkd "... the read is durable with its full arguments; its result record was lost" "$ev" \
  jqe -s 'map(.event) == ["read"] and .[0].payload.args.arguments == {"message": "order crash after"}' "$ev"
id=$(action_of "order crash after")
shown=$(as_alice show "$id" --json 2>&1)
checkd "... 'airlock show' has it applied with no result (its size is unknown)" "$shown" \
  jqe '.status == "applied" and .risk == "read" and (.result == null)' "$shown"
checkd "... the chain verifies after the crash" "$(as_alice audit verify 2>&1)" verified

out=$(echo_call "order after crash")
poll 30 has_result "order after crash" || true
ev=$(events "order after crash")
checkd "the next session answers and records as before" "$out $ev" \
  all jqe '.call.ok == true and .call.result.content[0].text == "Echo: order after crash"' "$out" -- \
  jqe -s 'map(.event) == ["read", "read_result"]' "$ev"
checkd "... and the chain still verifies" "$(as_alice audit verify 2>&1)" verified

if [ "$FAILED" -gt 0 ] && [ -s "$T/mcp.err" ]; then
  echo "# stderr of airlock mcp stdio, last lines:"
  tail -40 "$T/mcp.err" | sed 's/^/#   /'
fi
finish
