#!/usr/bin/env bash
# An MCP stdio upstream run inside a shell target's sandbox (`sandbox: repo`), end to end with
# real parts: the reference @modelcontextprotocol/server-filesystem rooted at the shell
# target's workspace, driven by the official SDK's client (tests/mcp/client.mjs) through
# `airlock mcp stdio` and through `airlock serve`'s /mcp/NAME. Each call's file effect is read
# from the sandbox's overlay and classified like `airlock exec`: a read is made at once, a
# write is low and committed to the real workspace at once, a move (a deletion, over the
# target's max_low_deletes of 0) is high and staged until a human decides. Approval commits
# exactly the previewed change and hands the client the server's answer; rejection leaves the
# real workspace, and the server's view of it, as they were. The project's mail server in the
# same sandbox shows a clean crash and restart.
source "$(dirname "$0")/lib.sh"
cd "$T"
source "$SRC/tests/blackbox/mcp_lib.sh"
source "$SRC/tests/blackbox/serve_lib.sh"
require_mcp_packages @modelcontextprotocol/sdk @modelcontextprotocol/server-filesystem
FS_SERVER=$MCP/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js

WS=$T/ws
mkdir -p "$WS/docs"
printf 'hello from the workspace\n' > "$WS/a.txt"
for i in 1 2 3; do printf 'doc %s\n' "$i" > "$WS/docs/d$i.txt"; done
# The sandbox hides /home and /root by default; the test's npm packages may live there.
HIDE=""
case "$SRC" in /home/* | /root/*) HIDE=", hide: [/etc/shadow, /etc/gshadow, /etc/ssh]" ;; esac

# sandbox_policy DIR APPROVAL_WAIT
sandbox_policy() {
  mkdir -p "$1"
  cat > "$1/airlock.yaml" <<YAML
version: 1
store: $1/state/airlock.db
agents:
  - {name: fs-bot, token_sha256: "$(sha "$MAIL_TOKEN")", scopes: [fs, mailbox, missing]}
approvers:
  - {name: alice, token_sha256: "$(sha "$ALICE_TOKEN")"}
  - {name: bob, token_sha256: "$(sha "$BOB_TOKEN")"}
targets:
  repo: {kind: shell, workspace: $WS, max_low_deletes: 0$HIDE}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
mcp_servers:
  fs:
    command: [node, "$FS_SERVER", "$WS"]
    sandbox: repo
    read_paths: ["$MCP/node_modules"]
    approval_wait: $2
    tools:
      - {tool: "read_*", risk: read}
      - {tool: list_directory, risk: read}
      - {tool: write_file, risk: low}
      - {tool: move_file, risk: low}
  mailbox:
    command: [node, "$MCP/mail_server.mjs"]
    env: {MAIL_LOG: "$WS/mail.log"}
    sandbox: repo
    read_paths: ["$MCP"]
    tools:
      - {tool: "*", risk: read}
  missing:
    command: [airlock-test-no-such-server]
    sandbox: repo
YAML
}
sandbox_policy "$T/a" 1s   # a pending call answers after 1 s
sandbox_policy "$T/w" 30s  # the same store, for approvals while the call waits
sed -i "s|store: $T/w/state|store: $T/a/state|" "$T/w/airlock.yaml"
P=$T/a/airlock.yaml
P_WAIT=$T/w/airlock.yaml
export AIRLOCK_CONFIG=$P
unset AIRLOCK_TOKEN AIRLOCK_SERVER

as_alice() { AIRLOCK_TOKEN=$ALICE_TOKEN "$AIRLOCK_BIN" "$@"; }
has() { grep -qe "$1" <<<"$2"; }
jqe() { local json=${*: -1}; jq -e "${@:1:$#-1}" <<<"$json" >/dev/null 2>&1; }
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}
first_id() { grep -o 'act_[0-9a-zA-Z]*' <<<"$1" | head -1; }
# mc POLICY SCENARIO [ARGS...]: one client.mjs session on `fs` through `airlock mcp stdio`.
mc() {
  local policy=$1; shift
  timeout 240 node "$MCP/client.mjs" --bin "$AIRLOCK_BIN" --config "$policy" --token "$MAIL_TOKEN" \
    --server "${SERVER:-fs}" --stderr "$T/mcp.err" --timeout 120000 "$@"
}
# A tree's signature: every path with its type and content hash.
tree_sig() { (cd "$1" && find . -path ./mail.log -prune -o -print | LC_ALL=C sort | while read -r p; do
  if [ -f "$p" ]; then echo "$p $(sha256sum < "$p" | cut -c1-16)"; else echo "$p dir"; fi; done); }
action_json() { as_alice --config "$P" show "$1" --json 2>/dev/null; }
# wait_pending PATTERN: the id of the pending action whose JSON matches PATTERN (60 s at most).
wait_pending() {
  local id="" deadline=$((SECONDS + 60))
  until [ -n "$id" ] || [ "$SECONDS" -ge "$deadline" ]; do
    sleep 0.3
    id=$(as_alice --config "$P" pending --json 2>/dev/null |
      jq -r --arg p "$1" 'first(.pending[] | select(tostring | test($p)) | .id) // empty' 2>/dev/null)
  done
  echo "$id"
}
scratch_left() { find "$T/a/state" -path '*/scratch/*' -maxdepth 4 2>/dev/null | wc -l | tr -d ' '; }

out=$(airlock policy check 2>&1)
checkd "the policy with sandbox: repo and read_paths is valid" "$out" [ $? -eq 0 ]
cat > "$T/bad.yaml" <<YAML
version: 1
mcp_servers:
  x: {command: [node], read_paths: [/usr]}
YAML
out=$("$AIRLOCK_BIN" --config "$T/bad.yaml" policy check 2>&1)
checkd "read_paths without a sandbox is refused with its location" "$out" \
  has "read_paths: applies only to a server run in a \`sandbox\`" "$out"

# ---- over stdio ---------------------------------------------------------------------------
out=$(mc "$P" --list calls read_text_file "$(jq -cn --arg p "$WS/a.txt" '{path: $p}')" \
  write_file "$(jq -cn --arg p "$WS/new.txt" '{path: $p, content: "written by the agent\n"}')")
checkd "tools/list through the sandbox: server-filesystem's tools and airlock_action_status" "$out" \
  jqe '.tools as $t | ["read_text_file","write_file","move_file","airlock_action_status"] | all(. as $n | $t | index($n) != null)' "$out"
checkd "read_text_file is answered at once with the workspace's content" "$out" \
  jqe '.calls[0].ok and .calls[0].isError == false and .calls[0].text == "hello from the workspace\n"' "$out"
checkd "write_file is answered at once and the real workspace has the file" "$out" \
  all jqe '.calls[1].ok and .calls[1].isError == false' "$out" -- \
  [ "$(cat "$WS/new.txt" 2>/dev/null)" = "written by the agent" ]
log=$(as_alice audit log --json 2>/dev/null)
logq() { jq -s -e "$1" <<<"$log" >/dev/null 2>&1; }
checkd "... the read was audited as a read, the write as low with its file effect" "$log" \
  all logq 'any(.[]; .event == "read" and .payload.risk == "read")' -- \
  logq 'any(.[]; .event == "submitted" and .payload.risk == "low" and (.payload.reasons | tostring | test("1 added")))' 
checkd "no sandbox is left behind once the session ended (scratch dirs)" "$(find "$T/a/state" -path '*/scratch/*')" \
  [ "$(scratch_left)" = 0 ]

# A move deletes a path: over max_low_deletes (0), so high although the tool's rule says low.
# Approved while the call waits: the client gets the server's own answer.
before=$(tree_sig "$WS")
OUTW=$T/wait.json
mc "$P_WAIT" call move_file "$(jq -cn --arg s "$WS/docs/d1.txt" --arg d "$WS/d1-moved.txt" '{source: $s, destination: $d}')" >"$OUTW" &
WAITER=$!
ID=$(wait_pending d1-moved)
show=$(action_json "$ID")
checkd "move_file is high and pending: its file effect deletes 1 path (max_low_deletes 0)" "$show" \
  all [ -n "$ID" ] -- jqe '.risk == "high" and .status == "pending" and .effect.extra.deleted == 1 and .effect.files_changed == 2' "$show"
checkd "... while it is pending the real workspace is unchanged" "$(tree_sig "$WS")" [ "$(tree_sig "$WS")" = "$before" ]
[ -n "$ID" ] && as_alice approve "$ID" >/dev/null 2>&1
wait "$WAITER"
out=$(cat "$OUTW")
checkd "approved while it waits: the client gets the server's answer (Successfully moved)" "$out" \
  jqe '.call.ok and .call.isError == false and (.call.text | test("Successfully moved"))' "$out"
checkd "... and the real workspace is as previewed: d1.txt moved, its content kept" "$(tree_sig "$WS")" \
  all [ ! -e "$WS/docs/d1.txt" ] -- [ "$(cat "$WS/d1-moved.txt" 2>/dev/null)" = "doc 1" ]
checkd "... the action is applied" "$(action_json "$ID")" jqe '.status == "applied"' "$(action_json "$ID")"

# A second high call, not approved in time: pending; the next call of the same session sees
# the real workspace (its staged change is gone from the server's view); rejected, nothing
# reaches the workspace.
before=$(tree_sig "$WS")
out=$(mc "$P" calls move_file "$(jq -cn --arg s "$WS/docs/d2.txt" --arg d "$WS/d2-moved.txt" '{source: $s, destination: $d}')" \
  read_text_file "$(jq -cn --arg p "$WS/docs/d2.txt" '{path: $p}')" \
  list_directory "$(jq -cn --arg p "$WS" '{path: $p}')")
ID2=$(first_id "$(jq -r '.calls[0].text' <<<"$out" 2>/dev/null)")
checkd "a second move is pending after approval_wait, its text says the change is staged" "$out" \
  all [ -n "$ID2" ] -- jqe '.calls[0].isError == true and (.calls[0].text | test("staged"))' "$out"
checkd "... the same session then reads d2.txt where it was (the staged move is not in its view)" "$out" \
  all jqe '.calls[1].isError == false and .calls[1].text == "doc 2\n"' "$out" -- \
  jqe '.calls[2].isError == false and (.calls[2].text | test("d2-moved") | not)' "$out"
out2=$(as_alice reject "$ID2" 2>&1)
checkd "rejected: the real workspace is unchanged" "$out2 $(tree_sig "$WS")" \
  all [ "$(tree_sig "$WS")" = "$before" ] -- jqe '.status == "rejected"' "$(action_json "$ID2")"
# The rejected call's held answer stays in the shell target's state until airlock store gc.
HELD2=$(jq -r '.effect.extra.held_answer // empty' <<<"$(action_json "$ID2")")
held2=$(find "$T/a/state" -path "*/held/$HELD2" 2>/dev/null | head -1)
checkd "the rejected call's held answer is still stored" "$HELD2" all [ -n "$HELD2" ] -- [ -f "$held2" ]
touch -h -d '2 days ago' "$held2"  # gc keeps a day's worth: two days pass for the file
gc=$("$AIRLOCK_BIN" --config "$P" store gc --json 2>&1)
checkd "airlock store gc removes it (no pending call names it)" "$gc" \
  all [ ! -e "$held2" ] -- jqe '.targets[] | select(.target == "repo") | .held_answers_removed >= 1' "$gc"
out=$(mc "$P" calls read_text_file "$(jq -cn --arg p "$WS/docs/d2.txt" '{path: $p}')" \
  read_text_file "$(jq -cn --arg p "$WS/d2-moved.txt" '{path: $p}')")
checkd "... and a new session's view is the same: d2.txt is there, d2-moved.txt is not" "$out" \
  all jqe '.calls[0].text == "doc 2\n"' "$out" -- jqe '.calls[1].isError == true' "$out"
out=$(as_alice approve "$ID2" 2>&1)
checkd "a rejected call cannot be approved afterwards; the workspace stays as it was" "$out" \
  all [ ! -e "$WS/d2-moved.txt" ] -- [ -e "$WS/docs/d2.txt" ]

# ---- crash and restart inside the sandbox ----------------------------------------------------
out=$(SERVER=mailbox mc "$P" calls crash '{}' whoami_env '{}')
checkd "the sandboxed server crashes: the client gets a clean error, the session survives" "$out" \
  jqe '.calls[0].ok == false or .calls[0].isError == true' "$out"
checkd "... the next call restarts it in a fresh sandbox and is answered (its environment: AIRLOCK_SANDBOX, MAIL_LOG)" "$out" \
  all jqe '.calls[1].ok and .calls[1].isError == false' "$out" -- \
  has AIRLOCK_SANDBOX "$(jq -r '.calls[1].text' <<<"$out")" -- has MAIL_LOG "$(jq -r '.calls[1].text' <<<"$out")"
out=$(SERVER=missing mc "$P" list)
checkd "a server that cannot start in its sandbox: the client gets the sandbox's reason" "$out" \
  jqe '.connectError.message | test("sandbox of .repo.: command not found: airlock-test-no-such-server")' "$out"
checkd "... nothing of the sandboxes is left (scratch dirs)" "$(find "$T/a/state" -path '*/scratch/*')" \
  [ "$(scratch_left)" = 0 ]

# ---- over streamable HTTP (airlock serve /mcp/fs) ---------------------------------------------
start_server "$T/w" || { not_ok "airlock serve starts"; finish; }
URL=http://127.0.0.1:$PORT/mcp/fs
hc() { timeout 240 node "$MCP/client.mjs" --url "$URL" --token "$MAIL_TOKEN" --timeout 120000 "$@"; }
out=$(hc --list calls read_text_file "$(jq -cn --arg p "$WS/a.txt" '{path: $p}')" \
  write_file "$(jq -cn --arg p "$WS/http.txt" '{path: $p, content: "over http\n"}')")
checkd "over HTTP: tools listed, read answered at once, write committed to the real workspace" "$out" \
  all jqe '(.tools | index("move_file")) != null and .calls[0].text == "hello from the workspace\n"' "$out" -- \
  [ "$(cat "$WS/http.txt" 2>/dev/null)" = "over http" ]
before=$(tree_sig "$WS")
hc call move_file "$(jq -cn --arg s "$WS/docs/d3.txt" --arg d "$WS/d3-moved.txt" '{source: $s, destination: $d}')" >"$OUTW" &
WAITER=$!
ID3=$(wait_pending d3-moved)
checkd "over HTTP: a move is pending and the real workspace unchanged" "$(tree_sig "$WS")" \
  all [ -n "$ID3" ] -- [ "$(tree_sig "$WS")" = "$before" ]
[ -n "$ID3" ] && as_alice approve "$ID3" >/dev/null 2>&1
wait "$WAITER"
out=$(cat "$OUTW")
checkd "over HTTP: approved while it waits, the client gets the answer and the file is moved" "$out" \
  all jqe '.call.isError == false and (.call.text | test("Successfully moved"))' "$out" -- \
  [ "$(cat "$WS/d3-moved.txt" 2>/dev/null)" = "doc 3" ] -- [ ! -e "$WS/docs/d3.txt" ]

finish
