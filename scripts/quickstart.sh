#!/usr/bin/env bash
# `make run`: starts airlock on the embedded default (the quick-start policy, SQLite state,
# a demo "production" database) and plays the tour: each command is printed, then run.
# Every run starts from a fresh demo database and an empty store.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AIRLOCK_BIN:-$root/build/airlock}
demo=$root/examples/quickstart
# shellcheck source=/dev/null
source "$demo/demo-tokens.env"
export AIRLOCK_CONFIG=$demo/airlock.yaml
unset AIRLOCK_TOKEN
# The binary's code back in 2 MiB pages if the page cache lost them since the link
# (tools/hugetext.cc); quiet, and nothing changes if it cannot.
"$(dirname "$bin")/hugetext" "$bin" 2>/dev/null || true

bold=$(tput bold 2>/dev/null || true); dim=$(tput dim 2>/dev/null || true); off=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
# run WHO COMMAND...: prints the command as a user would type it, then runs it.
# Quotes an argument the way a user would type it.
q() { case $1 in *[[:space:]\'\"\;\*\<\>\|\&\$]*) printf '"%s"' "${1//\"/\\\"}" ;; *) printf '%s' "$1" ;; esac; }
show_cmd() { local out=() a; for a in "$@"; do out+=("$(q "$a")"); done; printf '%s' "${out[*]}"; }
run() {
  local who=$1; shift
  local token_var
  case $who in
    agent) token_var=AGENT_TOKEN ;; dba) token_var=DBA_TOKEN ;; security) token_var=SECURITY_TOKEN ;;
    *) token_var= ;;
  esac
  if [ -n "$token_var" ]; then
    printf '%s$ AIRLOCK_TOKEN=$%s %s%s\n' "$dim" "$token_var" "$(show_cmd "$@")" "$off"
    AIRLOCK_TOKEN=${!token_var} "$@"
  else
    printf '%s$ %s%s\n' "$dim" "$(show_cmd "$@")" "$off"
    "$@"
  fi
  local rc=$?
  printf '%s(exit %d)%s\n' "$dim" "$rc" "$off"
  return 0
}
airlock() { "$bin" "$@"; }
id_of() { sed -n 's/.*"id":"\(act_[0-9a-f]*\)".*/\1/p'; }

rm -rf "$demo/state" "$demo/prod.db" "$demo/prod.db-wal" "$demo/prod.db-shm" "$demo/repo"
sqlite3 "$demo/prod.db" < "$demo/seed.sql" >/dev/null
# The demo repository: a README and 40 source files.
mkdir -p "$demo/repo/src" "$demo/repo/.git"
printf '# demo service\nThe foo service answers on port 8080.\nRun foo with ./run.sh\n' > "$demo/repo/README.md"
for i in $(seq -w 1 40); do printf 'int handler_%s(void) { return %d; }\n' "$i" "$((10#$i))" > "$demo/repo/src/handler_$i.c"; done
printf '[core]\n\tbare = false\n' > "$demo/repo/.git/config"

# The mail target's server: a local test SMTP server that keeps each message it receives in
# state/mail/ (tests/mail/smtp_sink.mjs, installed by `make deps`).
mkdir -p "$demo/state/mail"
sink_pid=""
if [ -d "$root/tests/mail/node_modules/smtp-server" ] && command -v node >/dev/null; then
  SMTP_SINK_PORT=2525 node "$root/tests/mail/smtp_sink.mjs" "$demo/state/mail" >"$demo/state/smtp.port" 2>"$demo/state/smtp.log" &
  sink_pid=$!
  for _ in $(seq 50); do [ -s "$demo/state/smtp.port" ] && break; sleep 0.1; done
  [ -s "$demo/state/smtp.port" ] || { echo "(port 2525 is taken: the mail steps will fail)"; sink_pid=""; }
fi
trap '[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null' EXIT
arrived() { find "$demo/state/mail" -name '*.eml' | wc -l; }

cat <<TXT
${bold}airlock quick start${off}
policy:   $AIRLOCK_CONFIG
database: $demo/prod.db (1,204 users, 3,000 payments) — the "production" target app-db
tokens (demo only, from examples/quickstart/demo-tokens.env):
  agent    support-bot    AGENT_TOKEN=$AGENT_TOKEN
  approver oncall-dba     DBA_TOKEN=$DBA_TOKEN
  approver security-lead  SECURITY_TOKEN=$SECURITY_TOKEN
TXT

step "The policy is valid"
run - airlock policy check

step "A read runs at once (risk read) and prints its rows"
run agent airlock sql --target app-db "SELECT id, name, status FROM users WHERE id <= 3"

step "A one-row UPDATE is low: applied at once, with its undo kept"
run agent airlock sql --target app-db "UPDATE users SET status = 'vip' WHERE id = 5"

step "DROP TABLE users: nothing happens to production; it waits as critical"
drop_id=$(AIRLOCK_TOKEN=$AGENT_TOKEN airlock sql --json --target app-db "DROP TABLE users" | id_of)
printf '%s$ AIRLOCK_TOKEN=$AGENT_TOKEN airlock sql --target app-db "DROP TABLE users"%s\n' "$dim" "$off"
echo "-> $drop_id (exit 10: pending)"
run - sqlite3 "$demo/prod.db" "SELECT count(*) AS users_still_there FROM users"

step "What it would do: the table, its rows, its indexes and triggers"
run dba airlock show "$drop_id"

step "The agent cannot approve its own action (denied and audited)"
run agent airlock approve "$drop_id"

step "One approval is not enough for critical"
run dba airlock approve "$drop_id" --reason "table is being retired"
run - airlock pending

step "The second approver reaches the quorum: the table is dropped"
run security airlock approve "$drop_id" --reason "confirmed with the owners"
run - sqlite3 "$demo/prod.db" "SELECT count(*) FROM users"

step "Rollback brings the table back with every row, index and trigger"
run dba airlock rollback "$drop_id"
run - sqlite3 "$demo/prod.db" "SELECT count(*) AS users FROM users; SELECT name FROM sqlite_master WHERE tbl_name = 'users' ORDER BY name"

step "Shell: grep is a read (run in the sandbox, output and exit code passed through)"
run agent airlock exec --target repo -- grep -rn foo README.md

step "Shell: sed -i is low: committed at once, and show prints the diff"
sed_id=$(AIRLOCK_TOKEN=$AGENT_TOKEN airlock exec --json --target repo -- sed -i s/foo/bar/ README.md | id_of)
printf '%s$ AIRLOCK_TOKEN=$AGENT_TOKEN airlock exec --target repo -- sed -i s/foo/bar/ README.md%s\n' "$dim" "$off"
echo "-> $sed_id (exit 0: applied)"
run dba airlock show "$sed_id"

step "Shell: rm -rf src waits as high; nothing is deleted meanwhile"
rm_id=$(AIRLOCK_TOKEN=$AGENT_TOKEN airlock exec --json --target repo -- sh -c 'rm -rf src && echo done' | id_of)
printf '%s$ AIRLOCK_TOKEN=$AGENT_TOKEN airlock exec --target repo -- sh -c '"'"'rm -rf src && echo done'"'"'%s\n' "$dim" "$off"
echo "-> $rm_id (exit 10: pending)"
run - sh -c "ls '$demo/repo/src' | wc -l"
run dba airlock show "$rm_id"

step "Approval deletes exactly the previewed files (the command is not re-run); rollback restores them"
run dba airlock approve "$rm_id"
run - ls "$demo/repo"
run dba airlock rollback "$rm_id"
run - sh -c "ls '$demo/repo/src' | wc -l"

step "Mail: one reply to one customer goes out at once (low, irreversible)"
run agent airlock send --target support-mail --to ann@example.com --subject "Your ticket" --body "Hello Ann, it is fixed."
run - sh -c "ls '$demo/state/mail' | grep -c eml"

step "Mail: the same text to two customers is a batch: it waits (high), every recipient listed"
batch_id=$(AIRLOCK_TOKEN=$AGENT_TOKEN airlock send --json --target support-mail --to bob@example.com --bcc carol@example.com --subject "Your ticket" --body "Hello" | id_of)
printf '%s$ AIRLOCK_TOKEN=$AGENT_TOKEN airlock send --target support-mail --to bob@example.com --bcc carol@example.com ...%s\n' "$dim" "$off"
echo "-> $batch_id (exit 10: pending)"
run dba airlock show "$batch_id"
run dba airlock reject "$batch_id" --reason "not a batch we send"

step "Mail: a prompt-injected loop of 40 sends: at most 20 a minute go out (the two above count), then the breaker trips"
before=$(arrived)
sent=0 held=0
for i in $(seq 40); do
  AIRLOCK_TOKEN=$AGENT_TOKEN airlock send --target support-mail --to "customer$i@example.com" --subject "Offer" --body "x" >/dev/null 2>&1
  case $? in 0) sent=$((sent + 1)) ;; 10) held=$((held + 1)) ;; esac
done
echo "sent at once: $sent; waiting for a human: $held; arrived at the SMTP server: $(( $(arrived) - before ))"
run dba airlock breaker reset --target support-mail

step "The audit chain proves the history was not edited"
run - airlock audit verify
run dba airlock audit log --action "$drop_id"

step "Someone edits one audit row with sqlite3: verify names the first bad entry"
sqlite3 "$demo/state/airlock.db" ".backup $demo/state/before-tamper.db"
run - sqlite3 "$demo/state/airlock.db" "UPDATE audit SET payload = replace(payload, 'DROP TABLE', 'SELECT 1;') WHERE seq = 4"
run - airlock audit verify
sqlite3 "$demo/state/airlock.db" ".restore $demo/state/before-tamper.db" && rm -f "$demo/state/before-tamper.db"
echo "(the untampered store is restored for you to try things)"

cat <<TXT

${bold}Try it yourself${off} (the demo resets on every \`make run\`):
  export AIRLOCK_CONFIG=$AIRLOCK_CONFIG
  export AIRLOCK_TOKEN=$AGENT_TOKEN      # the agent
  $bin sql --target app-db "DELETE FROM users WHERE status = 'inactive'"
  $bin exec --target repo -- sh -c 'echo hello > notes.txt'
  $bin exec --target repo -- rm .git/config       # protected: waits for approval
  AIRLOCK_TOKEN=$DBA_TOKEN $bin pending
  AIRLOCK_TOKEN=$DBA_TOKEN $bin approve ID
  $bin --help
TXT

# The gateway as a server: the approvers' page, the HTTP API and /metrics. QUICKSTART_SERVE=0
# ends the tour here instead.
[ "${QUICKSTART_SERVE:-1}" = 0 ] && exit 0
listen=${AIRLOCK_LISTEN:-127.0.0.1:7070}
cat <<TXT

${bold}airlock serve${off} is starting on http://$listen (Ctrl-C stops it)
  approvers' page   http://$listen/        sign in with a demo token:
                    oncall-dba      $DBA_TOKEN
                    security-lead   $SECURITY_TOKEN
  agent token       support-bot     $AGENT_TOKEN
  API               curl -H "Authorization: Bearer $AGENT_TOKEN" \\
                      -d '{"target":"app-db","sql":"DELETE FROM users WHERE id < 300"}' http://$listen/v1/actions
  CLI via server    $bin --server http://$listen pending
  metrics           http://$listen/metrics
TXT
"$bin" serve --listen "$listen"
