#!/usr/bin/env bash
# A shell target's `network: proxy`: the sandboxed command's only way out is airlock's egress
# proxy, and each request through it is an http action of the target, decided and audited.
# Real parts only: curl inside `airlock exec`, a real HTTP and a real HTTPS server (node's
# built-in modules, tests/http/egress_server.mjs) with a certificate made here by openssl,
# reached by the name localhost.
source "$(dirname "$0")/lib.sh"
cd "$T"
for tool in node curl openssl jq; do command -v $tool >/dev/null || { echo "$tool is required"; exit 1; }; done

mkdir -p ws
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out ws/cert.pem -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1 || { echo "openssl failed"; exit 1; }
LOG=$T/server.log
node "$SRC/tests/http/egress_server.mjs" "$LOG" "$T/ports" ws/cert.pem key.pem 2>"$T/server.err" &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s "$T/ports" ] && break; sleep 0.1; done
read -r HP SP < "$T/ports"
[ -n "${SP:-}" ] || { echo "the test servers did not start: $(cat "$T/server.err")"; exit 1; }

cat > "$T/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: dev-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [web, offline]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
  - {name: security-lead, token_sha256: "$(sha "$SEC_TOKEN")"}
targets:
  web:
    kind: shell
    workspace: ./ws
    network: proxy
    egress: ["localhost:$HP", "localhost:$SP"]
    timeout: 30s
  offline: {kind: shell, workspace: ./ws, timeout: 30s}
rules:
  - {match: {target: web, method: POST, path: "/hold/**"}, risk: high, reason: "held posts need a human"}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
YAML
export AIRLOCK_CONFIG=$T/airlock.yaml

lines() { if [ -f "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }
has() { grep -qe "$1" <<<"$2"; }
checkd() {
  local what=$1 ev=$2; shift 2
  if "$@"; then ok "$what"; else not_ok "$what"; printf '%s\n' "$ev" | head -c 3000 | sed 's/^/#   /'; echo; fi
}
# The audit events of http actions the proxy recorded, one JSON object per line.
egress_events() { as_dba audit log --json | jq -c 'select(.payload.kind == "http" and .payload.args.via == "egress proxy")'; }
# The "applied" event of action $1 (it carries the result: status, bytes both ways).
applied_event() { as_dba audit log --json | jq -c "select(.event == \"applied\" and .action_id == \"$1\")"; }
CURL=(curl -sS --max-time 20)

# ---- the policy ------------------------------------------------------------------------------
out=$(airlock policy check 2>&1)
checkd "a policy with network: proxy and an egress list is valid" "$out" [ $? -eq 0 ]
sed 's/    network: proxy/    network: off/' "$T/airlock.yaml" > "$T/bad1.yaml"
out=$(airlock --config "$T/bad1.yaml" policy check 2>&1)
checkd "egress without network: proxy is refused with file:line:column" "$out" \
  all [ -n "$out" ] -- has 'bad1.yaml:[0-9]*:[0-9]*' "$out" -- has "needs network: proxy" "$out"
sed "s/egress: \[\"localhost:$HP\"/egress: [\"127.0.0.1:$HP\"/" "$T/airlock.yaml" > "$T/bad2.yaml"
out=$(airlock --config "$T/bad2.yaml" policy check 2>&1)
checkd "an IP address in the egress list is refused" "$out" has "IP address cannot be allowed" "$out"
sed 's/    network: proxy/    network: proxy\n    egres: []/' "$T/airlock.yaml" > "$T/bad3.yaml"
out=$(airlock --config "$T/bad3.yaml" policy check 2>&1)
checkd "an unknown field next to it is an error" "$out" all has 'bad3.yaml:[0-9]*:[0-9]*' "$out" -- has egres "$out"

# ---- plain HTTP through the proxy ------------------------------------------------------------
run_json out as_agent --json exec --target web -- "${CURL[@]}" "http://localhost:$HP/ok?x=1"
EXEC_ID=$(jf .id "$out")
checkd "curl http://localhost/ok inside exec goes through the proxy and gets the answer (exit 0)" \
  "$out $(cat "$T/stderr")" \
  all [ "$RC" -eq 0 ] -- has "hello from http GET /ok?x=1" "$(jf .result.stdout "$out")"
checkd "the server received it, by name, with airlock's Host header" "$(cat "$LOG")" \
  all [ "$(lines "$LOG")" = 1 ] -- [ "$(tail -1 "$LOG" | jq -r .host)" = "localhost:$HP" ]
checkd "the command's own action lists the request and shows no escape attempt" "$out" \
  all [ "$(jf .effect.extra.egress.requests "$out")" = 1 ] -- [ "$(jf .effect.extra.network_attempt "$out")" = false ]
ev=$(egress_events)
sub=$(jq -c "select(.event == \"submitted\" and .payload.args.url == \"http://localhost:$HP/ok?x=1\")" <<<"$ev" | tail -1)
applied=$(applied_event "$(jq -r .action_id <<<"$sub")" | jq -c 'select(.payload.result.status == 200)')
checkd "the audit has the GET as an http action of target web, linked to the exec, read, applied" \
  "$ev" all [ -n "$applied" ] -- [ -n "$sub" ] -- [ "$(jq -r .payload.args.exec_action <<<"$sub")" = "$EXEC_ID" ] -- \
  [ "$(jq -r .payload.target <<<"$sub")" = web ] -- [ "$(jq -r .payload.risk <<<"$sub")" = read ] -- \
  [ "$(jq -r .payload.args.method <<<"$sub")" = GET ]

# ---- HTTPS through CONNECT -------------------------------------------------------------------
run_json out as_agent --json exec --target web -- "${CURL[@]}" --cacert cert.pem "https://localhost:$SP/ok"
checkd "curl https://localhost/ok goes through CONNECT and TLS works end to end (exit 0)" \
  "$out $(cat "$T/stderr")" \
  all [ "$RC" -eq 0 ] -- has "hello from https GET /ok" "$(jf .result.stdout "$out")"
checkd "the HTTPS server received it" "$(cat "$LOG")" \
  all [ "$(lines "$LOG")" = 2 ] -- [ "$(tail -1 "$LOG" | jq -r .scheme)" = https ]
ev=$(egress_events)
sub=$(jq -c "select(.event == \"submitted\" and .payload.args.method == \"CONNECT\")" <<<"$ev" | tail -1)
tunnel=$(applied_event "$(jq -r .action_id <<<"$sub")" | jq -c 'select(.payload.result.bytes_received > 0)')
checkd "the audit has the CONNECT with host and port, and the bytes both ways" "$ev" \
  all [ -n "$tunnel" ] -- [ "$(jq -r .payload.args.url <<<"$sub")" = "localhost:$SP" ] -- \
  [ "$(jq -r .payload.result.bytes_sent <<<"$tunnel")" -gt 0 ]

# ---- a request in flight is left alone by another airlock process's crash recovery ----------
as_agent --json exec --target web -- "${CURL[@]}" "http://localhost:$HP/wait?file=$T/release" > "$T/held.json" 2>&1 &
HELD=$!
for _ in $(seq 300); do [ "$(lines "$LOG")" = 3 ] && break; sleep 0.1; done
as_dba pending >/dev/null 2>&1   # opens the store: recovery runs while the request is open
touch "$T/release"
wait $HELD
held=$(egress_events | jq -c "select(.event == \"submitted\" and (.payload.args.url | test(\"/wait\")))" | tail -1)
held_id=$(jq -r .action_id <<<"$held")
events=$(as_dba audit log --json --action "$held_id" | jq -r .event | tr '\n' ' ')
checkd "a request held open while another airlock command starts is not declared failed" \
  "$events $(cat "$T/held.json")" all [ "$events" = "submitted applied " ] -- \
  has "hello from http GET /wait" "$(jq -r .result.stdout "$T/held.json")"

# ---- refused: a host outside the allow list, raw IPs, a direct connection --------------------
denials() { egress_events | jq -c 'select(.event == "denied")'; }
run_json out as_agent --json exec --target web -- "${CURL[@]}" -o /dev/null -w '%{http_code}' http://blocked.invalid/
checkd "a host outside the allow list gets 403" "$out" [ "$(jf .result.stdout "$out")" = 403 ]
checkd "the refusal is audited as a denied http action" "$(denials)" \
  has "blocked.invalid:80 is not in the egress allow list of target 'web'" "$(denials | jq -r .payload.error)"
run_json out as_agent --json exec --target web -- "${CURL[@]}" -o /dev/null -w '%{http_code}' "http://localhost:1/"
checkd "an allowed name on another port is refused too" "$out" [ "$(jf .result.stdout "$out")" = 403 ]

before=$(denials | wc -l)
run_json out as_agent --json exec --target web -- "${CURL[@]}" -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/ok"
checkd "http://127.0.0.1 (a raw IP) through the proxy gets 403" "$out" [ "$(jf .result.stdout "$out")" = 403 ]
run_json out as_agent --json exec --target web -- "${CURL[@]}" --cacert cert.pem "https://127.0.0.1:$SP/ok"
checkd "CONNECT 127.0.0.1 is refused (curl fails)" "$out" \
  all [ "$(jf .result.exit_code "$out")" -ne 0 ] -- has 403 "$(jf .result.stderr "$out")"
run_json out as_agent --json exec --target web -- "${CURL[@]}" -o /dev/null -w '%{http_code}' "http://2130706433:$HP/ok"
checkd "the decimal spelling 2130706433 is refused" "$out" [ "$(jf .result.stdout "$out")" = 403 ]
d=$(denials | jq -r .payload.error)
checkd "the raw-IP refusals are audited" "$d" \
  all [ "$(denials | wc -l)" -ge $((before + 3)) ] -- has "raw IP address 127.0.0.1" "$d"
checkd "the server received none of them" "$(cat "$LOG")" [ "$(lines "$LOG")" = 3 ]
run_json out as_agent --json exec --target web -- "${CURL[@]}" --noproxy '*' "http://127.0.0.1:$HP/ok"
checkd "a direct connection that bypasses the proxy finds no route out (curl fails)" \
  "$out $(cat "$LOG")" all [ "$(jf .effect.extra.exit_code "$out")" -eq 7 ] -- [ "$(lines "$LOG")" = 3 ]
checkd "and the command's action shows it as a network attempt" "$out" \
  [ "$(jf .effect.extra.network_attempt "$out")" = true ]

# ---- writes: low ones are sent, a high one is refused and not sent ---------------------------
run_json out as_agent --json exec --target web -- "${CURL[@]}" -H 'Content-Type: application/json' \
  -d '{"text":"hi"}' "http://localhost:$HP/note"
checkd "a POST that no rule raises is low: sent at once" "$out $(cat "$LOG")" \
  all [ "$(lines "$LOG")" = 4 ] -- [ "$(tail -1 "$LOG" | jq -r .method)" = POST ] -- \
  [ "$(tail -1 "$LOG" | jq -r .body)" = '{"text":"hi"}' ]
sub=$(egress_events | jq -c "select(.event == \"submitted\" and .payload.args.method == \"POST\")" | tail -1)
checkd "it is audited as a low, irreversible http action" "$sub" \
  all [ "$(jq -r .payload.risk <<<"$sub")" = low ] -- [ "$(jq -r .payload.effect.extra.irreversible <<<"$sub")" = true ]
run_json out as_agent --json exec --target web -- "${CURL[@]}" -o /dev/null -w '%{http_code}' \
  -H 'Content-Type: application/json' -d '{"amount":5000}' "http://localhost:$HP/hold/payment"
checkd "a POST the rule makes high is answered 403 and not sent now" "$out $(cat "$LOG")" \
  all [ "$(jf .result.stdout "$out")" = 403 ] -- [ "$(lines "$LOG")" = 4 ]
pending=$(as_dba pending --json)
held=$(jq -c '[.pending[] | select(.kind == "http")] | last' <<<"$pending")
HELD=$(jq -r .id <<<"$held")
checkd "it is held as a pending http action, with the rule's reason and the body the approver sees" "$pending" \
  all [ "$(jq -r .status <<<"$held")" = pending ] -- \
  has "held posts need a human" "$(jq -r '.reasons[]' <<<"$held")" -- \
  [ "$(jq -r .effect.extra.body.amount <<<"$held")" = 5000 ] -- \
  [ "$(jq -r .args.exec_action <<<"$held")" != null ]
run_json out as_dba --json approve "$HELD"
checkd "approval sends exactly that request, once, from airlock" "$out $(cat "$LOG")" \
  all [ "$(jf .status "$out")" = applied ] -- [ "$(lines "$LOG")" = 5 ] -- \
  [ "$(tail -1 "$LOG" | jq -r .method)" = POST ] -- [ "$(tail -1 "$LOG" | jq -r .path)" = /hold/payment ] -- \
  [ "$(tail -1 "$LOG" | jq -r .body)" = '{"amount":5000}' ] -- [ "$(jf .result.status "$out")" = 200 ]
run_json out as_sec --json approve "$HELD"
checkd "a second approval sends nothing again" "$out" all [ "$RC" -ne 0 ] -- [ "$(lines "$LOG")" = 5 ]
run_json out as_dba --json rollback "$HELD"
checkd "rollback says a sent request cannot be undone" "$out $(cat "$T/stderr")" \
  has "cannot be undone" "$out $(cat "$T/stderr")"
run_json out as_agent --json exec --target web -- "${CURL[@]}" -o /dev/null -w '%{http_code}' \
  -H 'Content-Type: application/json' -d '{"amount":7000}' "http://localhost:$HP/hold/payment"
HELD2=$(as_dba pending --json | jq -r '[.pending[] | select(.kind == "http")] | last | .id')
run_json out as_dba --json reject "$HELD2"
checkd "a held request that is rejected is never sent" "$out $(cat "$LOG")" \
  all [ "$(jf .status "$out")" = rejected ] -- [ "$(lines "$LOG")" = 5 ]
run_json out as_agent --json exec --target web -- "${CURL[@]}" -o /dev/null -w '%{http_code}' \
  -H 'Content-Type: text/plain' -d 'not json' "http://localhost:$HP/hold/raw"
d=$(denials | jq -c 'select(.payload.risk == "high")' | tail -1)
checkd "a high request whose body is not JSON cannot be held: refused, audited, not sent" "$d $(cat "$LOG")" \
  all [ "$(jf .result.stdout "$out")" = 403 ] -- has "only a JSON body" "$(jq -r .payload.error <<<"$d")" -- \
  [ "$(lines "$LOG")" = 5 ]

# ---- network: off is unchanged: no proxy ----------------------------------------------------
run_json out as_agent --json exec --target offline -- sh -c 'echo "proxy=${http_proxy:-none}"; curl -sS --max-time 5 http://localhost:'"$HP"'/ok'
checkd "with network: off the command gets no proxy, curl fails, and the attempt makes it wait (exit 10)" \
  "$out $(cat "$T/stderr")" \
  all [ "$RC" -eq 10 ] -- has "proxy=none" "$(jf .effect.extra.stdout_head "$out")" -- \
  [ "$(jf .effect.extra.network_attempt "$out")" = true ] -- [ "$(lines "$LOG")" = 5 ]

out=$(as_dba audit verify 2>&1)
checkd "the audit chain verifies" "$out" [ $? -eq 0 ]
finish
