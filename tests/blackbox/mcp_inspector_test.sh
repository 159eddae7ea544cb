#!/usr/bin/env bash
# `airlock mcp stdio` driven by a second, independent MCP client: the MCP Inspector's CLI mode
# (npm @modelcontextprotocol/inspector-cli, pinned in tests/mcp/package-lock.json, installed by
# scripts/install-mcp-tests.sh), in front of the project's mail server (tests/mcp/mail_server.mjs).
# The inspector runs one method per process: it spawns the server command, initializes, runs the
# method and prints the result as JSON. It is started the two ways its users start it:
#   - from a client configuration file ({"mcpServers": {NAME: {command, args, env}}}, the form
#     of claude_desktop_config.json), with the agent's token in the entry's env;
#   - from the command line, `--cli -e AIRLOCK_TOKEN=... -- airlock ... --method ...` (the
#     inspector puts -e pairs into the spawned command's environment, on top of its own);
#   - over streamable HTTP, against `airlock serve`'s /mcp/mail with a bearer header.
# Covers: tools/list (send_email and airlock_action_status), a 1-recipient send (made), a
# 2-recipient send (pending: isError, nothing sent), airlock_action_status on it, an agent
# without the scope, a wrong token, and what reaches the upstream of the inspector's environment.
source "$(dirname "$0")/lib.sh"
cd "$T"
source "$SRC/tests/blackbox/mcp_lib.sh"
INS=$MCP/node_modules/@modelcontextprotocol/inspector-cli
require_mcp_packages @modelcontextprotocol/sdk @modelcontextprotocol/inspector-cli

MAIL_LOG=$T/mail.log
P=$T/airlock.yaml
mcp_policy "$P" "$T/state/airlock.db" "$MAIL_LOG" 1s
unset AIRLOCK_TOKEN AIRLOCK_SERVER AIRLOCK_CONFIG

# client_config FILE TOKEN: a client configuration that runs airlock in front of "mail".
client_config() {
  jq -n --arg bin "$AIRLOCK_BIN" --arg p "$P" --arg tok "$2" \
    '{mcpServers: {mail: {command: $bin, args: ["--config", $p, "mcp", "stdio", "--server", "mail"],
                          env: {AIRLOCK_TOKEN: $tok}}}}' > "$1"
}
client_config "$T/client.json" "$MAIL_TOKEN"
client_config "$T/client-other.json" "$OTHER_TOKEN"

# ins ARGS...: the inspector's CLI mode; its stdout (JSON) in OUT, its stderr in $T/ins.err, its
# exit status in RC. It runs from its own build directory: build/index.js looks for its package.json
# as "../package.json" relative to the working directory (fs.existsSync) but imports it relative
# to itself, so any other directory without a ../package.json makes it fail before it connects.
RC=0
OUT=
ins() {
  OUT=$(cd "$INS/build" && timeout 120 node "$INS/build/cli.js" --cli "$@" 2>"$T/ins.err")
  RC=$?
}
# ins_cmd TOKEN ARGS...: the inspector on the command-line form, the token given with -e.
ins_cmd() {
  local tok=$1; shift
  ins -e "AIRLOCK_TOKEN=$tok" -e SECRET_DECOY=xyz -- "$AIRLOCK_BIN" --config "$P" mcp stdio --server mail "$@"
}
has() { grep -qe "$1" <<<"$2"; }  # has PATTERN TEXT
jqe() { local json=${*: -1}; jq -e "${@:1:$#-1}" <<<"$json" >/dev/null 2>&1; }
lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }
# checkd DESCRIPTION EVIDENCE COMMAND...: `check`, showing EVIDENCE and the inspector's stderr
# (TAP comments) when it fails.
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else
    not_ok "$what"
    { printf 'exit %s: %s\n' "$RC" "$ev"; echo "inspector stderr:"; cat "$T/ins.err" 2>/dev/null; } |
      head -c 3000 | sed 's/^/#   /'; echo
  fi
}
audit_has() { AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" --config "$P" audit log --json 2>/dev/null |
  jq -s -e "any(.[]; $1)" >/dev/null 2>&1; }

# ---- tools/list, from a client configuration file -----------------------------------------
ins --config "$T/client.json" --server mail --method tools/list
out=$OUT
checkd "inspector (config file): tools/list exits 0 and shows send_email and airlock_action_status" "$out" \
  all [ "$RC" -eq 0 ] -- \
  jqe '[.tools[].name] | (index("send_email") != null and index("airlock_action_status") != null)' "$out"
checkd "... send_email keeps the upstream's input schema (to: array)" "$out" \
  jqe '.tools[] | select(.name == "send_email") | .inputSchema.properties.to.type == "array"' "$out"

ins --config "$T/client-other.json" --server mail --method tools/list
out=$OUT
checkd "inspector as other-bot (no scope on mail): tools/list is empty" "$out" \
  all [ "$RC" -eq 0 ] -- jqe '.tools == []' "$out"

# ---- tools/call, from the command line ----------------------------------------------------
ins_cmd "$MAIL_TOKEN" --method tools/call --tool-name send_email \
  --tool-arg 'to=["a@example.com"]' subject=inspector-one body=hello
out=$OUT
checkd "inspector: send_email to 1 recipient is made: 'sent to 1 recipient(s)', mail.log has 1 line" \
  "$out; mail.log: $(cat "$MAIL_LOG" 2>&1)" \
  all [ "$RC" -eq 0 ] -- jqe '(.isError // false) == false and .content[0].text == "sent to 1 recipient(s)"' "$out" -- \
  [ "$(lines "$MAIL_LOG")" = 1 ] -- jqe '.to == ["a@example.com"] and .subject == "inspector-one"' "$(tail -1 "$MAIL_LOG" 2>/dev/null)"

ins_cmd "$MAIL_TOKEN" --method tools/call --tool-name send_email \
  --tool-arg 'to=["a@example.com","b@example.com"]' subject=inspector-batch body=hello
out=$OUT
text=$(jq -r '[.content[]? | select(.type == "text") | .text] | join("\n")' <<<"$out" 2>/dev/null)
ID=$(grep -o 'act_[0-9a-zA-Z]*' <<<"$text" | head -1)
checkd "inspector: send_email to 2 recipients comes back after approval_wait as isError, pending, with the action id" \
  "$out" all [ "$RC" -eq 0 ] -- jqe '.isError == true' "$out" -- [ -n "$ID" ] -- \
  has pending "$text" -- has "airlock approve" "$text"
checkd "... and nothing was sent (mail.log still has 1 line)" "$(cat "$MAIL_LOG" 2>&1)" \
  [ "$(lines "$MAIL_LOG")" = 1 ]

ins_cmd "$MAIL_TOKEN" --method tools/call --tool-name airlock_action_status --tool-arg "id=${ID:-none}"
out=$OUT
checkd "inspector: airlock_action_status on it says pending" "$out" \
  all [ "$RC" -eq 0 ] -- jqe '[.. | strings] | any(test("pending"))' "$out"

# The inspector gives the server its whole environment (HOME, USER, ..., the -e pairs):
# airlock must pass on none of it to the upstream but PATH.
ins_cmd "$MAIL_TOKEN" --method tools/call --tool-name whoami_env
out=$OUT
checkd "inspector: the upstream's env has MAIL_LOG and PATH, not AIRLOCK_TOKEN, SECRET_DECOY or HOME" "$out" \
  all [ "$RC" -eq 0 ] -- jqe '(.content[0].text | split("\n")) as $n |
    ($n | index("MAIL_LOG")) != null and ($n | index("PATH")) != null and
    ([$n[] | select(. == "AIRLOCK_TOKEN" or . == "SECRET_DECOY" or . == "HOME")] == [])' "$out"

ins_cmd "alk_test_not_a_token" --method tools/call --tool-name send_email \
  --tool-arg 'to=["a@example.com"]' subject=bad-token body=hello
out=$OUT
checkd "inspector with a wrong token: fails (exit != 0) and nothing is sent" "$out" \
  all [ "$RC" -ne 0 ] -- [ "$(lines "$MAIL_LOG")" = 1 ]

checkd "the audit log has the inspector's send_email calls: the one made, and the pending one with its id" \
  "$(AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" --config "$P" audit log --json 2>&1 | tail -5)" \
  all audit_has '(tostring | test("inspector-one"))' -- audit_has "(tostring | test(\"${ID:-none}\"))"
# ---- the same over streamable HTTP: airlock serve's /mcp/mail -----------------------------------
source "$SRC/tests/blackbox/serve_lib.sh"
mkdir -p "$T/srv"
cp "$P" "$T/srv/airlock.yaml"
if start_server "$T/srv"; then
  URL=http://127.0.0.1:$PORT/mcp/mail
  ins "$URL" --transport http --header "Authorization: Bearer $MAIL_TOKEN" --method tools/list
  out=$OUT
  checkd "inspector over HTTP (/mcp/mail): tools/list shows send_email and airlock_action_status" "$out" \
    all [ "$RC" -eq 0 ] -- jqe '[.tools[].name] | index("send_email") != null and index("airlock_action_status") != null' "$out"
  ins "$URL" --transport http --header "Authorization: Bearer $MAIL_TOKEN" --method tools/call \
    --tool-name send_email --tool-arg 'to=["a@example.com"]' subject=inspector-http body=hello
  out=$OUT
  checkd "inspector over HTTP: send_email to 1 recipient is made, mail.log has it" "$out" \
    all [ "$RC" -eq 0 ] -- jqe '.isError != true' "$out" -- \
    jqe '.subject == "inspector-http"' "$(tail -1 "$MAIL_LOG" 2>/dev/null)"
  ins "$URL" --transport http --header "Authorization: Bearer alk_test_not_a_token" --method tools/list
  checkd "inspector over HTTP with a wrong token: fails (exit != 0)" "$OUT" [ "$RC" -ne 0 ]
else
  not_ok "airlock serve starts for the inspector over HTTP"
fi

verified() { AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" --config "$P" audit verify >/dev/null 2>&1; }
checkd "the audit chain verifies" "$(AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" --config "$P" audit verify 2>&1)" \
  verified
finish
