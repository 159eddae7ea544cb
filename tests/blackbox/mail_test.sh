#!/usr/bin/env bash
# The mail target (kind: smtp) against a real SMTP server (smtp-server from npm, in
# tests/mail/smtp_sink.mjs), which stores every message it accepts: the tests count what
# arrived and compare it byte for byte with the preview airlock showed.
source "$(dirname "$0")/lib.sh"
cd "$T"
SINK=$SRC/tests/mail/smtp_sink.mjs
if ! command -v node >/dev/null || [ ! -f "$SRC/tests/mail/node_modules/smtp-server/package.json" ]; then
  echo "skipped: smtp-server missing (run scripts/install-mail-tests.sh or make deps)"
  exit 0
fi

SECRET="smtp-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export SMTP_PASSWORD=$SECRET
INBOX=$T/inbox
node "$SINK" "$INBOX" mailer "$SECRET" >"$T/sink.port" 2>"$T/sink.log" &
SINK_PID=$!
trap 'kill $SINK_PID 2>/dev/null; [ -n "${SERVE_PID:-}" ] && kill $SERVE_PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s "$T/sink.port" ] && break; sleep 0.1; done
SMTP_PORT=$(cat "$T/sink.port")
arrived() { find "$INBOX" -name '*.eml' 2>/dev/null | wc -l; }
latest() { find "$INBOX" -name '*.eml' | sort | tail -1; }

mail_policy() {
  cat > "$T/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: support-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [support-mail]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
  - {name: security-lead, token_sha256: "$(sha "$SEC_TOKEN")"}
targets:
  support-mail: {kind: smtp, url: "smtp://127.0.0.1:$SMTP_PORT", from: support@example.com, username: mailer, password_env: SMTP_PASSWORD, max_recipients: 5}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
${1:-}
YAML
  export AIRLOCK_CONFIG=$T/airlock.yaml
}
mail_policy
check "the policy with a mail target is valid" airlock policy check

# ---- one recipient: sent at once ----------------------------------------------------------
run_json out as_agent send --json --target support-mail --to ann@example.com --subject "Your ticket" --body "Hello Ann"
check "one recipient is low and sent at once (exit 0)" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .status "$out")" = applied ] -- [ "$(jf .risk "$out")" = low ]
check "exactly one message arrived, to that recipient, with airlock's credentials" \
  all [ "$(arrived)" = 1 ] -- [ "$(jq -c .to "$INBOX/0001.json")" = '["ann@example.com"]' ] -- [ "$(jq -r .user "$INBOX/0001.json")" = mailer ]
check "the message is marked irreversible" [ "$(jf .reversible "$out")" = false ]
id1=$(jf .id "$out")
run_json r as_dba rollback "$id1"
check "rollback refuses and explains that sent mail cannot be undone" \
  all [ "$RC" -eq 1 ] -- grep -q "cannot be recalled" "$T/stderr"

# ---- two recipients: a batch waits; approval sends exactly the preview --------------------
run_json out as_agent send --json --target support-mail --to bob@example.com --bcc audit@example.org --subject "Batch" --body "Dear all,
.
line after a lone dot"
id2=$(jf .id "$out")
check "two recipients (one Bcc) wait for approval (exit 10, high)" \
  all [ "$RC" -eq 10 ] -- [ "$(jf .status "$out")" = pending ] -- [ "$(jf .risk "$out")" = high ]
check "the Bcc recipient is counted and listed" \
  all [ "$(jf .effect.extra.recipient_count "$out")" = 2 ] -- [ "$(jf '.effect.extra.recipients[1].field' "$out")" = bcc ]
shown=$(as_dba show "$id2")
has() { [[ $1 == *"$2"* ]]; }  # has TEXT PART
check "airlock show lists every recipient, the subject and the body" \
  all has "$shown" "to: bob@example.com" -- has "$shown" "bcc: audit@example.org" -- has "$shown" "Subject: Batch" -- has "$shown" "line after a lone dot"
check "nothing sent while pending" [ "$(arrived)" = 1 ]
jq -j .effect.extra.message <<<"$(as_dba show --json "$id2")" >"$T/preview.eml"
run_json r as_dba approve --json "$id2"
check "approval sends it (applied)" all [ "$RC" -eq 0 ] -- [ "$(jf .status "$r")" = applied ]
check "exactly one more message arrived" [ "$(arrived)" = 2 ]
check "the message that arrived is byte for byte the preview" cmp -s "$T/preview.eml" "$(latest)"
check "with the previewed Message-ID" grep -q "^Message-ID: $(jf .effect.extra.message_id "$out")" "$(latest)"
check "the Bcc recipient got it through the envelope, and no header names it" \
  all [ "$(jq -c .to "$INBOX/0002.json")" = '["bob@example.com","audit@example.org"]' ] -- bash -c "! grep -qi audit@example.org '$(latest)'"

# ---- reject and expiry send nothing ----------------------------------------------------------
run_json out as_agent send --json --target support-mail --to a@example.com,b@example.com --subject r --body r
as_dba reject "$(jf .id "$out")" >/dev/null
check "a rejected message is not sent" all [ "$(airlock show --json "$(jf .id "$out")" | jq -r .status)" = rejected ] -- [ "$(arrived)" = 2 ]
run_json out as_agent send --json --target support-mail --to a@example.com --cc b@example.com --subject e --body e
AIRLOCK_TIME_SHIFT_MS=$((2 * 3600 * 1000)) airlock pending >/dev/null
check "an expired message is not sent" all [ "$(airlock show --json "$(jf .id "$out")" | jq -r .status)" = expired ] -- [ "$(arrived)" = 2 ]

# ---- hostile or oversized input: refused, nothing sent --------------------------------------
run_json out as_agent send --json --target support-mail --to ann@example.com --subject $'hi\r\nBcc: victim@x.org' --body b
check "header injection in the subject is refused (exit 2) with a clear error" \
  all [ "$RC" -eq 2 ] -- grep -q "subject contains a line break" <<<"$(jf .error "$out")"
run_json out as_agent send --json --target support-mail --to $'ann@example.com\nBcc: victim@x.org' --subject s --body b
check "header injection in an address is refused (exit 2)" [ "$RC" -eq 2 ]
run_json out as_agent send --json --target support-mail --to "Ann <ann@example.com>" --subject s --body b
check "a malformed address is refused (exit 2)" [ "$RC" -eq 2 ]
run_json out as_agent send --json --target support-mail --to a@x.org,b@x.org,c@x.org --cc d@x.org,e@x.org --bcc f@x.org --subject s --body b
check "over max_recipients (6 > 5, Bcc counted) is denied (exit 11)" \
  all [ "$RC" -eq 11 ] -- grep -q "over the target's max_recipients of 5" <<<"$(jf .error "$out")"
check "none of them sent anything" [ "$(arrived)" = 2 ]

# ---- attachments ------------------------------------------------------------------------------
printf 'id,total\n1,20\n' >"$T/report.csv"
run_json out as_agent send --json --target support-mail --to ann@example.com --subject Report --body-file "$T/report.csv" --attach "$T/report.csv"
check "an attachment is listed with its size and sha256, and sent" \
  all [ "$RC" -eq 0 ] -- [ "$(jf '.effect.extra.attachments[0].sha256' "$out")" = "$(sha256sum "$T/report.csv" | cut -d' ' -f1)" ] -- [ "$(arrived)" = 3 ] -- grep -q 'filename="report.csv"' "$(latest)"

# ---- idempotency --------------------------------------------------------------------------------
run_json a as_agent send --json --target support-mail --to ann@example.com --subject Once --body once --idempotency-key reply-42
run_json b as_agent send --json --target support-mail --to ann@example.com --subject Once --body once --idempotency-key reply-42
check "a retry with the same idempotency key returns the same action and sends nothing more" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .id "$a")" = "$(jf .id "$b")" ] -- [ "$(arrived)" = 4 ]
run_json b as_agent send --json --target support-mail --to ann@example.com --subject Other --body other --idempotency-key reply-42
check "the same key for a different message is refused (exit 2)" all [ "$RC" -eq 2 ] -- [ "$(arrived)" = 4 ]

# ---- a crash between the server's acceptance and the store's commit ------------------------
AIRLOCK_CRASH_AT=smtp_after_accept as_agent send --json --target support-mail --to ann@example.com --subject Crash --body c --idempotency-key reply-43 >/dev/null
check "the process died after the server accepted the message (exit 86)" all [ $? -eq 86 ] -- [ "$(arrived)" = 5 ]
airlock pending >/dev/null  # any command recovers first
run_json b as_agent send --json --target support-mail --to ann@example.com --subject Crash --body c --idempotency-key reply-43
check "after restart the record is kept as failed: unknown_outcome, and the retry sends nothing" \
  all [ "$(jf .status "$b")" = failed ] -- [ "$(jf .error_code "$b")" = unknown_outcome ] -- [ "$(arrived)" = 5 ]
check "audit verifies" airlock audit verify

# ---- the secret never leaves airlock's hands --------------------------------------------------
as_dba audit log --json >"$T/audit.jsonl"
as_dba show --json "$id2" >"$T/show.json"
check "the SMTP password is in no store file, audit event, output or error" \
  bash -c "! grep -rqF -- '$SECRET' '$T/state' '$T/audit.jsonl' '$T/show.json' '$T/stderr'"

# ---- a loop of sends: the rate lets the allowed number through, then the breaker trips --------
mail_policy "limits:
  - {match: {target: support-mail}, rate: 20/min, on_exceed: trip}"
export AIRLOCK_TIME_SHIFT_MS=$((3 * 3600 * 1000))  # a fresh window, past everything above
before=$(arrived)
applied=0 held=0
for i in $(seq 60); do
  as_agent send --target support-mail --to "customer$i@example.com" --subject "Spam $i" --body x >/dev/null 2>&1
  case $? in 0) applied=$((applied + 1)) ;; 10) held=$((held + 1)) ;; esac
done
check "of 60 sends, exactly 20 went out and 40 wait for a human" all [ "$applied" = 20 ] -- [ "$held" = 40 ]
check "exactly 20 messages arrived at the server" [ $(($(arrived) - before)) = 20 ]
check "the breaker is open (breaker_tripped audited)" grep -q '"event":"breaker_tripped"' <<<"$(as_dba audit log --json)"
run_json r as_dba breaker reset --target support-mail
check "an approver resets the breaker" [ "$RC" -eq 0 ]
run_json out as_agent send --json --target support-mail --to after@example.com --subject after --body x
check "after the reset a single send goes out again" all [ "$RC" -eq 0 ] -- [ $(($(arrived) - before)) = 21 ]
unset AIRLOCK_TIME_SHIFT_MS

# ---- max_recipients_per_hour --------------------------------------------------------------------
mail_policy "limits:
  - {match: {target: support-mail}, max_recipients_per_hour: 3}"
export AIRLOCK_TIME_SHIFT_MS=$((6 * 3600 * 1000))
run_json out as_agent send --json --target support-mail --to h1@example.com --subject h --body h
run_json out as_agent send --json --target support-mail --to h2@example.com --cc h3@example.com --subject h --body h
run_json out as_agent send --json --target support-mail --to h4@example.com --subject h --body h
check "max_recipients_per_hour counts pending and sent recipients and denies the 4th" \
  all [ "$RC" -eq 11 ] -- grep -q "max_recipients_per_hour 3 exceeded" <<<"$(jf .error "$out")"
unset AIRLOCK_TIME_SHIFT_MS

# ---- over the API (airlock send --server) ----------------------------------------------------
mail_policy
"$AIRLOCK_BIN" serve --listen 127.0.0.1:0 2>"$T/serve.log" &
SERVE_PID=$!
PORT=""
for _ in $(seq 300); do
  PORT=$(sed -n 's|^airlock: serving http://127\.0\.0\.1:\([0-9]*\) (policy .*)$|\1|p' "$T/serve.log")
  [ -n "$PORT" ] && break
  sleep 0.1
done
before=$(arrived)
run_json out as_agent --server "http://127.0.0.1:$PORT" send --json --target support-mail --to api@example.com --subject API --body "over HTTP"
check "airlock send --server sends through airlock serve" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .status "$out")" = applied ] -- [ $(($(arrived) - before)) = 1 ]
run_json out as_agent --server "http://127.0.0.1:$PORT" send --json --target support-mail --to api@example.com --subject $'x\nBcc: v@x.org' --body b
check "header injection over the API is refused too (exit 2), nothing sent" \
  all [ "$RC" -eq 2 ] -- [ $(($(arrived) - before)) = 1 ]
check "nor does the server's log hold the secret" bash -c "! grep -qF -- '$SECRET' '$T/serve.log'"

# ---- the scenario over the API: 1,000 sends, the breaker trips, a notification fires -----------
node "$SRC/tests/blackbox/serve_client.js" receive 0 > "$T/hooks" &
RECEIVER=$!
for _ in $(seq 300); do grep -q port "$T/hooks" 2>/dev/null && break; sleep 0.1; done
HOOK_PORT=$(head -1 "$T/hooks" | jq -r .port)
sed -e 's|^store: .*|store: ./loop-state/airlock.db|' "$T/airlock.yaml" > "$T/loop.yaml"
cat >> "$T/loop.yaml" <<YAML
limits:
  - {match: {target: support-mail}, rate: 20/min, on_exceed: trip}
notify:
  - {url: "http://127.0.0.1:$HOOK_PORT/hook", on: [breaker]}
YAML
"$AIRLOCK_BIN" --config "$T/loop.yaml" serve --listen 127.0.0.1:0 2>"$T/loop-serve.log" &
LOOP_PID=$!
LPORT=""
for _ in $(seq 300); do
  LPORT=$(sed -n 's|^airlock: serving http://127\.0\.0\.1:\([0-9]*\) (policy .*)$|\1|p' "$T/loop-serve.log")
  [ -n "$LPORT" ] && break
  sleep 0.1
done
# One curl, one keep-alive connection, 1,000 single-recipient sends in a row.
for i in $(seq 1000); do
  printf 'url = "http://127.0.0.1:%s/v1/actions"\nheader = "Authorization: Bearer %s"\n' "$LPORT" "$AGENT_TOKEN"
  printf 'header = "Content-Type: application/json"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
  printf 'data = "{\\"target\\":\\"support-mail\\",\\"to\\":[\\"c%s@example.com\\"],\\"subject\\":\\"Spam %s\\",\\"body\\":\\"x\\"}"\n' "$i" "$i"
  [ "$i" -lt 1000 ] && printf 'next\n'
done > "$T/loop.curl"
before=$(arrived)
curl -sS -K "$T/loop.curl" > "$T/loop.codes" 2>"$T/loop.err"
loop_count() { sqlite3 "$T/loop-state/airlock.db" "SELECT count(*) FROM actions WHERE status = '$1'"; }
check "1,000 sends over the API: 20 applied, 980 wait for a human ($(sort "$T/loop.codes" | uniq -c | tr '\n' ' '))" \
  all [ "$(wc -l < "$T/loop.codes")" = 1000 ] -- [ "$(loop_count applied)" = 20 ] -- [ "$(loop_count pending)" = 980 ]
check "exactly 20 messages arrived at the SMTP server, none twice" \
  all [ $(($(arrived) - before)) = 20 ] -- \
  [ "$(cat "$INBOX"/*.json | jq -r '.to[]' | grep -c '^c[0-9]*@example.com$')" = 20 ] -- \
  [ "$(cat "$INBOX"/*.json | jq -r '.to[]' | grep '^c[0-9]*@example.com$' | sort | uniq -d | wc -l)" = 0 ]
breaker_told() { grep -q '"kind":"breaker"' "$T/hooks"; }
for _ in $(seq 100); do breaker_told && break; sleep 0.1; done
check "the webhook gets a breaker notification, with a text for Slack" \
  all breaker_told -- [ "$(grep '"kind":"breaker"' "$T/hooks" | head -1 | jq -r '.text | length > 0')" = true ]
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $DBA_TOKEN" -H 'Content-Type: application/json' \
  -d '{"target":"support-mail"}' "http://127.0.0.1:$LPORT/v1/breakers/reset")
out=$(curl -s -H "Authorization: Bearer $AGENT_TOKEN" -H 'Content-Type: application/json' \
  -d '{"target":"support-mail","to":["after-reset@example.com"],"subject":"after","body":"x"}' \
  "http://127.0.0.1:$LPORT/v1/actions")
check "an approver resets the breaker over the API, and a single send goes out again" \
  all [ "$code" = 200 ] -- [ "$(jq -r .status <<<"$out")" = applied ] -- [ $(($(arrived) - before)) = 21 ]
kill "$LOOP_PID" "$RECEIVER" 2>/dev/null; wait "$LOOP_PID" 2>/dev/null

# ---- the built-in MCP server's send_mail, through the official SDK client ----------------------
# (The client gives the airlock it starts only PATH, HOME, AIRLOCK_TOKEN and --env pairs.)
MCP_CLIENT=$SRC/tests/mcp/client.mjs
if [ -f "$SRC/tests/mcp/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  mc() { timeout 120 node "$MCP_CLIENT" --bin "$AIRLOCK_BIN" --config "$T/airlock.yaml" --token "$AGENT_TOKEN" \
    --server airlock --env "SMTP_PASSWORD=$SECRET" --stderr "$T/mcp.err" --timeout 60000 "$@"; }
  before=$(arrived)
  out=$(mc --list call send_mail '{"target":"support-mail","to":["mcp@example.com"],"subject":"via MCP","body":"hello"}')
  check "send_mail is offered by the built-in MCP server for the agent's mail target" \
    jq -e '.tools | index("send_mail") != null' <<<"$out" >/dev/null
  check "send_mail to 1 recipient is sent at once: 'sent to 1 recipient', one message arrived" \
    all jq -e '.call.ok and .call.isError == false and (.call.text | test("sent to 1 recipient"))' <<<"$out" >/dev/null -- \
    [ $(($(arrived) - before)) = 1 ]
  # Two recipients (one Bcc) wait for approval (the built-in server waits up to 60 s); a
  # human approves while the call waits, and the client gets the real result.
  mc call send_mail '{"target":"support-mail","to":["a@example.com"],"bcc":["b@example.com"],"subject":"batch via MCP","body":"x"}' >"$T/mcp-batch.json" &
  MC_PID=$!
  pid=""
  for _ in $(seq 200); do
    pid=$(as_dba pending --json 2>/dev/null | jq -r 'first(.pending[] | select(tostring | test("batch via MCP")) | .id) // empty')
    [ -n "$pid" ] && break
    sleep 0.2
  done
  check "send_mail to 2 recipients (one Bcc) is pending, and nothing was sent yet" \
    all [ -n "$pid" ] -- [ $(($(arrived) - before)) = 1 ]
  [ -n "$pid" ] && as_dba approve "$pid" >/dev/null 2>&1
  wait "$MC_PID"
  out=$(cat "$T/mcp-batch.json")
  check "approved while it waits: the client gets 'sent to 2 recipients'; one more message arrived" \
    all jq -e '.call.isError == false and (.call.text | test("sent to 2 recipients"))' <<<"$out" >/dev/null -- \
    [ $(($(arrived) - before)) = 2 ]
  out=$(mc call send_mail '{"target":"support-mail","to":["a@example.com"],"subject":"x\r\nBcc: victim@example.org","body":"x"}')
  check "send_mail with a header injection in the subject is refused, nothing sent" \
    all jq -e '.call.isError == true or .call.ok == false' <<<"$out" >/dev/null -- [ $(($(arrived) - before)) = 2 ]
else
  echo "# send_mail over MCP: skipped (tests/mcp not installed)"
fi
finish
