#!/usr/bin/env bash
# The spine's scenario: an agent runs DROP TABLE users against production. Nothing happens;
# it waits as critical; show says what it would do; one approval is not enough; two distinct
# approvers apply it; rollback restores every row, index and trigger; the audit verifies,
# and an edit of one audit row with sqlite3 is named by verify.
source "$(dirname "$0")/lib.sh"
cd "$T"
seed_db
write_policy
before_schema=$(db "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'users' ORDER BY name")
before_rows=$(dump_users)

run_json out as_agent sql --json --target app-db "DROP TABLE users"
id=$(jf .id "$out")
check "DROP TABLE exits 10 (pending)" [ "$RC" -eq 10 ]
check "DROP TABLE is critical" [ "$(jf .risk "$out")" = critical ]
check "DROP TABLE status is pending" [ "$(jf .status "$out")" = pending ]
check "reason names the table, its rows and indexes" \
  grep -q "DROP TABLE users (1,204 rows, 2 indexes" <<<"$(jf '.reasons[]' "$out")"
check "effect lists drop_table users with 1204 rows" \
  [ "$(jf '.effect.ddl[] | select(.op=="drop_table") | "\(.object) \(.rows)"' "$out")" = "users 1204" ]
check "nothing happened to production" [ "$(db 'SELECT count(*) FROM users')" = 1204 ]

show=$(as_dba show "$id")
check "show names the table and its row count" grep -q "drop_table users (1,204 rows" <<<"$show"
check "show names both indexes" grep -q "idx_users_status, idx_users_created" <<<"$show"
check "show names the trigger" grep -q "users_status_log" <<<"$show"

run_json v as_agent approve "$id"
check "the agent cannot approve (exit 11)" [ "$RC" -eq 11 ]
check "agent approval is audited" \
  grep -q '"event":"denied"' <<<"$(as_dba audit log --json --action "$id")"

run_json v as_dba approve "$id" --reason "retiring the table"
check "one approval leaves it pending (exit 10)" [ "$RC" -eq 10 ]
check "still there after one approval" [ "$(db 'SELECT count(*) FROM users')" = 1204 ]
run_json v as_dba approve "$id"
check "the same approver cannot vote twice" all [ "$RC" -ne 0 ] -- [ "$RC" -ne 10 ]

run_json v as_sec approve --json "$id"
check "second distinct approver applies it (exit 0)" [ "$RC" -eq 0 ]
check "status applied" [ "$(jf .status "$v")" = applied ]
check "the table is dropped" [ "$(db "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" = 0 ]

run_json r as_agent rollback "$id"
check "an agent cannot roll back (exit 11)" [ "$RC" -eq 11 ]
run_json r as_dba rollback --json --reason "dropped by mistake" "$id"
check "rollback succeeds" all [ "$RC" -eq 0 ] -- [ "$(jf .status "$r")" = rolled_back ]
check "the rollback's reason is in the audit log" \
  [ "$(as_dba audit log --json --action "$id" | jq -r 'select(.event == "rolled_back") | .payload.reason')" = "dropped by mistake" ]
check "rollback restores the schema: table, indexes, trigger" \
  [ "$(db "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'users' ORDER BY name")" = "$before_schema" ]
check "rollback restores every row exactly" [ "$(dump_users)" = "$before_rows" ]
db "UPDATE users SET status = 'suspended' WHERE id = 1"
check "the restored trigger fires" [ "$(db "SELECT count(*) FROM user_changes WHERE user_id = 1")" = 1 ]

run_json r as_dba rollback "$id"
check "a second rollback is refused" [ "$RC" -ne 0 ]

run_json a airlock audit verify --json
check "audit verifies" all [ "$RC" -eq 0 ] -- [ "$(jf .ok "$a")" = true ]
events=$(jf .events "$a")
check "audit recorded the whole story (>= 8 events)" [ "$events" -ge 8 ]
log=$(as_dba audit log --json --action "$id")
for ev in submitted vote approved applied rollback_started rolled_back; do
  check "audit has event $ev" grep -q "\"event\":\"$ev\"" <<<"$log"
done
check "audit keeps the full arguments" grep -q 'DROP TABLE users' <<<"$log"

store "UPDATE audit SET payload = replace(payload, 'DROP TABLE users', 'SELECT 1') WHERE seq = (SELECT min(seq) FROM audit WHERE payload LIKE '%DROP TABLE users%')"
bad=$(store "SELECT min(seq) FROM audit WHERE payload LIKE '%SELECT 1%'")
run_json a airlock audit verify --json
check "tampering: verify exits 1" [ "$RC" -eq 1 ]
check "tampering: verify names the first bad entry ($bad)" [ "$(jf .first_bad_seq "$a")" = "$bad" ]
human=$(airlock audit verify)
check "human verify output names the event" grep -q "event $bad" <<<"$human"
finish
