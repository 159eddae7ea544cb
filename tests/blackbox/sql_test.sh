#!/usr/bin/env bash
# SQL actions through the real binary: classification by effect, effect binding, reads,
# bad input, authentication and scope denials, rejection, expiry and dry-run mode.
source "$(dirname "$0")/lib.sh"
cd "$T"
seed_db
write_policy

# --- DELETE FROM users is critical and pending; the table is intact.
run_json out as_agent sql --json --target app-db "DELETE FROM users"
check "DELETE FROM users exits 10" [ "$RC" -eq 10 ]
check "DELETE FROM users is critical" [ "$(jf .risk "$out")" = critical ]
check "DELETE reason says every row" grep -q "every row of users" <<<"$(jf '.reasons[]' "$out")"
check "users intact after DELETE dry-run" [ "$(db 'SELECT count(*) FROM users')" = 1204 ]

# --- A one-row UPDATE is low and applied at once, with one row in the effect.
run_json out as_agent sql --json --target app-db "UPDATE users SET name = 'renamed' WHERE id = 5"
check "one-row UPDATE exits 0" [ "$RC" -eq 0 ]
check "one-row UPDATE is low" [ "$(jf .risk "$out")" = low ]
check "one-row UPDATE applied" [ "$(jf .status "$out")" = applied ]
check "effect has one updated row" [ "$(jf '.effect.tables[] | select(.table=="users") | .updated' "$out")" = 1 ]
check "effect preview shows before and after" \
  [ "$(jf '.effect.preview[0].before.name + ">" + .effect.preview[0].after.name' "$out")" = "customer 5>renamed" ]
check "the row changed in production" [ "$(db 'SELECT name FROM users WHERE id = 5')" = renamed ]
upd=$(jf .id "$out")
run_json r as_dba rollback "$upd"
check "rollback of the UPDATE" all [ "$RC" -eq 0 ] -- [ "$(db 'SELECT name FROM users WHERE id = 5')" = "customer 5" ]

# --- SELECT is read, prints rows, creates nothing pending.
pending_before=$(airlock pending --json | jq .count)
run_json out as_agent sql --json --target app-db "SELECT id, email FROM users WHERE id IN (1, 2) ORDER BY id"
check "SELECT exits 0" [ "$RC" -eq 0 ]
check "SELECT is read" [ "$(jf .risk "$out")" = read ]
check "SELECT returns its rows" [ "$(jf '.result.rows[1][1]' "$out")" = customer2@example.com ]
stored=$(airlock show --json "$(jf .id "$out")")
check "the store keeps what was read, not the rows" \
  all [ "$(jf '.result.row_count' "$stored")" = 2 ] -- [ "$(jf '.result.rows' "$stored")" = null ]
human=$(as_agent sql --target app-db "SELECT email FROM users WHERE id = 3")
check "human SELECT output prints the row" grep -q customer3@example.com <<<"$human"
check "SELECT creates nothing pending" [ "$(airlock pending --json | jq .count)" = "$pending_before" ]

# --- Effect binding: approved after another row became inactive => effect_changed.
run_json out as_agent sql --json --target app-db "DELETE FROM users WHERE status = 'inactive'"
id=$(jf .id "$out")
check "DELETE of 70 inactive users is low (<= 100 rows) and applied" [ "$(jf .status "$out")" = applied ]
MAX_LOW=5
sed -i "s/environment: production}/environment: production, max_low_rows: $MAX_LOW}/" airlock.yaml
db "UPDATE users SET status = 'inactive' WHERE id BETWEEN 100 AND 109"
run_json out as_agent sql --json --target app-db "DELETE FROM users WHERE status = 'inactive'"
id=$(jf .id "$out")
check "DELETE of 10 rows over max_low_rows=5 is high and pending" \
  all [ "$RC" -eq 10 ] -- [ "$(jf .risk "$out")" = high ]
db "UPDATE users SET status = 'inactive' WHERE id = 200"
inactive=$(db "SELECT count(*) FROM users WHERE status = 'inactive'")
run_json v as_dba approve --json "$id"
check "approval after the data changed ends effect_changed (exit 11)" [ "$RC" -eq 11 ]
check "status effect_changed" [ "$(jf .status "$v")" = effect_changed ]
check "nothing was deleted ($inactive inactive rows remain)" all [ "$(db "SELECT count(*) FROM users WHERE status = 'inactive'")" = "$inactive" ] -- [ "$inactive" -eq 10 ]

# --- Malformed SQL: exit 2 with SQLite's message, audited as failed, nothing pending.
run_json out as_agent sql --json --target app-db "SELEC * FROM users"
check "malformed SQL exits 2" [ "$RC" -eq 2 ]
check "malformed SQL carries SQLite's message" grep -q 'syntax error' <<<"$(jf .error "$out")"
check "malformed SQL is recorded as failed" [ "$(jf .status "$out")" = failed ]
check "malformed SQL is audited" grep -q '"event":"failed"' <<<"$(as_dba audit log --json --action "$(jf .id "$out")")"
check "malformed SQL leaves nothing pending" [ "$(airlock pending --json | jq '[.pending[] | select(.args.sql | startswith("SELEC "))] | length')" = 0 ]

# --- Denials: unknown target, out of scope, wrong or missing token, agent approving.
audit_len() { airlock audit verify --json | jq .events; }
n=$(audit_len)
run_json out as_agent sql --json --target nope "SELECT 1"
check "unknown target is denied (exit 11)" all [ "$RC" -eq 11 ] -- [ "$(jf .status "$out")" = denied ]
run_json out as_agent sql --json --target other-db "SELECT 1"
check "out-of-scope target is denied (exit 11)" [ "$RC" -eq 11 ]
check "out-of-scope reason names the scope" grep -q "not in the scopes" <<<"$(jf .error "$out")"
run_json out env AIRLOCK_TOKEN="${AGENT_TOKEN}x" "$AIRLOCK_BIN" sql --json --target app-db "SELECT 1"
check "wrong token is denied (exit 11)" [ "$RC" -eq 11 ]
wrong_msg=$(jf .error "$out")
run_json out env -u AIRLOCK_TOKEN "$AIRLOCK_BIN" sql --json --target app-db "SELECT 1"
check "missing token is denied (exit 11)" [ "$RC" -eq 11 ]
check "wrong and missing token give the same message (nothing leaks)" [ "$(jf .error "$out")" = "$wrong_msg" ]
run_json out env AIRLOCK_TOKEN="${AGENT_TOKEN:0:20}" "$AIRLOCK_BIN" sql --json --target app-db "SELECT 1"
check "a token prefix gives the same message" [ "$(jf .error "$out")" = "$wrong_msg" ]
check "every denial was audited (5 events)" [ "$(audit_len)" -ge $((n + 5)) ]
check "failed authentication is in the log" grep -q '"event":"auth_failed"' <<<"$(as_dba audit log --json)"

# --- Rejection ends the action; nothing applied.
run_json out as_agent sql --json --target app-db "DROP TABLE payments"
id=$(jf .id "$out")
run_json v as_dba reject --json "$id" --reason "no"
check "reject ends the action as rejected (exit 11)" all [ "$RC" -eq 11 ] -- [ "$(jf .status "$v")" = rejected ]
run_json v as_sec approve "$id"
check "no vote after a rejection" all [ "$RC" -ne 0 ] -- [ "$RC" -ne 10 ]
check "payments intact" [ "$(db 'SELECT count(*) FROM payments')" = 3000 ]

# --- ATTACH cannot be previewed or undone: critical, and refused even when approved.
run_json out as_agent sql --json --target app-db "ATTACH '$T/escape.db' AS x"
id=$(jf .id "$out")
check "ATTACH is critical and pending" all [ "$RC" -eq 10 ] -- [ "$(jf .risk "$out")" = critical ]
as_dba approve "$id" >/dev/null
run_json v as_sec approve --json "$id"
check "an approved ATTACH fails instead of running (exit 1)" all [ "$RC" -eq 1 ] -- [ "$(jf .status "$v")" = failed ]
check "the failure is audited" grep -q '"event":"failed"' <<<"$(as_dba audit log --json --action "$id")"
check "ATTACH created no file" [ ! -e "$T/escape.db" ]

# --- Policy rule raises the risk: payments are money.
sed -i 's/^approvals:/rules:\n  - {match: {target: app-db, table: payments}, risk: high, reason: "payments are money"}\napprovals:/' airlock.yaml
run_json out as_agent sql --json --target app-db "UPDATE payments SET state = 'settled' WHERE id = 9"
check "a rule raises a one-row UPDATE on payments to high" all [ "$(jf .risk "$out")" = high ] -- [ "$RC" -eq 10 ]
check "the rule's reason is listed" grep -q "payments are money" <<<"$(jf '.reasons[]' "$out")"

# --- Expiry: no answer before the timeout means denied.
run_json out as_agent sql --json --target app-db "DROP TABLE user_changes"
id=$(jf .id "$out")
export AIRLOCK_TIME_SHIFT_MS=$((2 * 3600 * 1000))
run_json s airlock show --json "$id"
check "past the timeout the action is expired" [ "$(jf .status "$s")" = expired ]
run_json v as_dba approve "$id"
check "an expired action takes no vote" all [ "$RC" -ne 0 ] -- [ "$RC" -ne 10 ]
unset AIRLOCK_TIME_SHIFT_MS
check "expiry is audited" grep -q '"event":"expired"' <<<"$(as_dba audit log --json --action "$id")"

# --- mode: dry-run never changes the target.
before=$(db ".dump")
MODE=dry-run write_policy
for sql in "UPDATE users SET name = 'x' WHERE id = 7" "DELETE FROM users" "DROP TABLE users" "INSERT INTO users(name, email, created_at) VALUES ('n', 'n@x', 'now')"; do
  run_json out as_agent sql --json --target app-db "$sql"
  check "dry-run mode: '$sql' is not applied (status denied, dry_run)" \
    all [ "$(jf .status "$out")" = denied ] -- [ "$(jf .dry_run "$out")" = true ]
done
check "dry-run mode: the target is byte-for-byte unchanged" [ "$(db ".dump")" = "$before" ]
run_json out as_agent sql --json --target app-db "SELECT count(*) FROM users"
check "dry-run mode: reads still answer" all [ "$RC" -eq 0 ] -- [ "$(jf '.result.rows[0][0]' "$out")" -gt 1000 ]

check "the audit chain verifies after all of it" airlock audit verify
finish
