#!/usr/bin/env bash
# The answer to a read tool call through `airlock mcp stdio` goes to the client as the server's
# own text with only its id replaced, and only when airlock's parser reads that text exactly
# as it records it (issue 5's latency line: no parse, build and serialisation before the
# reply). Checked byte for byte with a scripted upstream (tests/mcp/scripted_server.mjs) and a
# raw client (tests/mcp/raw.mjs):
#   - a plain answer reaches the client as the server wrote it (member order, spacing and
#     escapes kept), with the client's id, an integer or a string;
#   - an answer with a repeated key reaches the client as neither value: the call fails with
#     an error at once, and is recorded as failed;
#   - an answer whose top-level key is written with an escape is rebuilt from its parse;
#   - a read call goes upstream as the client wrote it, with only its id replaced, when it
#     holds nothing but what is decided and every parser reads it alike; one with anything
#     more is rebuilt, without it, and so is one with a number airlock's parser may round or
#     with keys equal but for case;
#   - every call is recorded (`read`, then `read_result` or `failed`) and the chain verifies.
source "$(dirname "$0")/lib.sh"
cd "$T"
source "$SRC/tests/blackbox/mcp_lib.sh"
require_mcp_packages @modelcontextprotocol/sdk

P=$T/airlock.yaml
STORE=$T/state/airlock.db
ANSWERS=$T/answers.jsonl
# Each line: a tool and the exact text its call is answered with ("@ID@": the request's id).
jq -cn '{tool: "plain", text: "{\"result\" : {\"content\":[{\"type\":\"text\",\"text\":\"caf\\u00e9 \\\"q\\\" é\"}], \"z\":1,\"a\":[1,2.50]},  \"jsonrpc\":\"2.0\",\"id\":\"@ID@\"}"}' > "$ANSWERS"
jq -cn '{tool: "twice", text: "{\"jsonrpc\":\"2.0\",\"id\":\"@ID@\",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"kept-one\"}],\"content\":[{\"type\":\"text\",\"text\":\"kept-two\"}]}}"}' >> "$ANSWERS"
jq -cn '{tool: "escaped", text: "{\"jsonrpc\":\"2.0\",\"\\u0069d\":\"@ID@\",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"from-escape\"}], \"z\":1}}"}' >> "$ANSWERS"
cat > "$P" <<YAML
version: 1
store: $STORE
agents:
  - {name: mail-bot, token_sha256: "$(sha "$MAIL_TOKEN")", scopes: [scripted]}
approvers:
  - {name: alice, token_sha256: "$(sha "$ALICE_TOKEN")"}
approvals: {low: 0, high: 1, critical: 1, timeout: 1h}
mcp_servers:
  scripted:
    command: [node, "$MCP/scripted_server.mjs", "$ANSWERS", "$T/received.jsonl"]
    tools:
      - {tool: "*", risk: read}
YAML
unset AIRLOCK_TOKEN AIRLOCK_SERVER

checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}
jqe() { local json=${*: -1}; jq -e "${@:1:$#-1}" <<<"$json" >/dev/null 2>&1; }
call() {  # call ID_JSON TOOL: the request line
  jq -cn --argjson id "$1" --arg t "$2" \
    '{jsonrpc: "2.0", id: $id, method: "tools/call", params: {name: $t, arguments: {}}}'
}
raw() {
  timeout 120 node "$MCP/raw.mjs" --bin "$AIRLOCK_BIN" --config "$P" --server scripted \
    --token "$MAIL_TOKEN" --stderr "$T/mcp.err" --wait 20000 "$@"
}
# The scripted answer's text for TOOL with ID_TEXT in place of "@ID@".
expected() { jq -r --arg t "$1" 'select(.tool == $t) | .text' "$ANSWERS" | sed "s/\"@ID@\"/$2/"; }

out=$(raw "$(call 41 plain)" "$(call '"req-7"' plain)")
checkd "a read call's answer reaches the client as the server wrote it, with the client's id" "$out" \
  test "$(jq -r '.steps[0].texts[0]' <<<"$out")" = "$(expected plain 41)"
checkd "... a string id too" "$out" \
  test "$(jq -r '.steps[1].texts[0]' <<<"$out")" = "$(expected plain '"req-7"')"
checkd "... whose value the client reads as the server's" "$out" \
  jqe '.steps[0].replies[0].result.content[0].text == "café \"q\" é" and .steps[0].replies[0].id == 41' "$out"

out=$(raw "$(call 42 twice)")
checkd "an answer with a repeated key fails the call at once, with an error" "$out" \
  jqe '.steps[0].timedOut == false and (.steps[0].replies | length) == 1' "$out"
checkd "... that carries neither of its values" "$out" \
  bash -c '[ "$(jq ".steps[0].replies | length" <<<"$1")" = 1 ] && ! grep -q "kept-" <<<"$1"' _ "$out"
checkd "... and airlock says the answer was malformed" "$(cat "$T/mcp.err")" \
  grep -q "repeated key" "$T/mcp.err"

out=$(raw "$(call 43 escaped)")
reply=$(jq -c '.steps[0].replies[0]' <<<"$out")
checkd "an answer whose id key is written with an escape is answered, from its parse" "$out" \
  jqe '.id == 43 and .result.content[0].text == "from-escape" and .result.z == 1' "$reply"
text=$(jq -r '.steps[0].texts[0] // ""' <<<"$out")
checkd "... not as the server's text" "$out" \
  bash -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$text" "$(expected escaped 43)"

# What the upstream read: the client's text, or a rebuilt call.
: > "$T/received.jsonl"
as_written='{"params": {"arguments":{"b":1,"a":"é"},"name":"plain"} , "method":"tools/call","id":51,"jsonrpc":"2.0"}'
extra='{"jsonrpc":"2.0","id":52,"method":"tools/call","params":{"name":"plain","arguments":{},"extra":1}}'
float='{"params": {"arguments":{"n":1.5},"name":"plain"} , "method":"tools/call","id":53,"jsonrpc":"2.0"}'
cased='{"params": {"arguments":{"path":"a","PATH":"b"},"name":"plain"} , "method":"tools/call","id":54,"jsonrpc":"2.0"}'
out=$(raw "$as_written" "$extra" "$float" "$cased")
got=$(grep '"tools/call"' "$T/received.jsonl")
first=$(sed -n 1p <<<"$got")
checkd "a read call goes upstream as the client wrote it, with only its id replaced" "$got" \
  bash -c '[[ $1 == "{\"params\": {\"arguments\":{\"b\":1,\"a\":\"é\"},\"name\":\"plain\"} , \"method\":\"tools/call\",\"id\":"* ]] && [[ $1 == *",\"jsonrpc\":\"2.0\"}" ]] && [ "$(jq -r .id <<<"$1")" != 51 ]' _ "$first"
second=$(sed -n 2p <<<"$got")
checkd "... one with a member beyond what is decided is rebuilt, without it" "$got" \
  bash -c 'jq -e "(.params | keys) == [\"arguments\", \"name\"] and .method == \"tools/call\"" <<<"$1" >/dev/null && [[ $1 == "{\"id\":"* ]]' _ "$second"
checkd "... so is one with a number airlock's parser may round, or keys equal but for case" "$got" \
  bash -c '[[ $(sed -n 3p <<<"$1") == "{\"id\":"* ]] && [[ $(sed -n 4p <<<"$1") == "{\"id\":"* ]]' _ "$got"
checkd "... and all are answered" "$out" \
  jqe '[.steps[].replies[0].id] == [51, 52, 53, 54] and (.steps[1].replies[0].result.content | length) == 1' "$out"

log=$(AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" --config "$P" audit log --json 2>&1)
events=$(jq -sc 'map(select(.payload.args.tool? != null or .event == "read_result" or .event == "failed")) | map(.event)' <<<"$log")
checkd "every call is recorded: seven reads answered, one failed" "$log" \
  jqe '(map(select(. == "read")) | length) == 8 and (map(select(. == "read_result")) | length) == 7 and (map(select(. == "failed")) | length) == 1' "$events"
checkd "... and the chain verifies" "$(AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" --config "$P" audit verify 2>&1)" \
  bash -c 'AIRLOCK_TOKEN=$1 "$2" --config "$3" audit verify >/dev/null 2>&1' _ "$ALICE_TOKEN" "$AIRLOCK_BIN" "$P"
finish
