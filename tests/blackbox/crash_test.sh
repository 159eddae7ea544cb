#!/usr/bin/env bash
# A process killed at any point between "decided" and "recorded" leaves the target and the
# store agreeing after restart, and the audit chain still verifies. AIRLOCK_CRASH_AT names
# the point where the process dies at once (_exit, like kill -9).
source "$(dirname "$0")/lib.sh"
cd "$T"
seed_db
write_policy

n=0
for point in gateway_after_claim sqlite_apply_before_commit gateway_after_undo_saved \
             sqlite_apply_after_commit gateway_after_target_commit; do
  n=$((n + 1))
  out=$(AIRLOCK_CRASH_AT=$point as_agent sql --json --target app-db "UPDATE users SET name = 'crash $n' WHERE id = $n")
  rc=$?
  check "$point: the process died there (exit 86)" [ "$rc" -eq 86 ]
  id=$(store "SELECT id FROM actions ORDER BY created_ms DESC, rowid DESC LIMIT 1")
  # Any later command recovers first.
  airlock pending >/dev/null
  status=$(airlock show --json "$id" | jq -r .status)
  name=$(db "SELECT name FROM users WHERE id = $n")
  if [ "$name" = "crash $n" ]; then
    check "$point: target committed, store says applied" [ "$status" = applied ]
    run_json r as_dba rollback "$id"
    check "$point: the recovered action can be rolled back" all [ "$RC" -eq 0 ] -- [ "$(db "SELECT name FROM users WHERE id = $n")" = "customer $n" ]
  else
    check "$point: target untouched, store says failed" [ "$status" = failed ]
  fi
  check "$point: nothing left applying" [ "$(store "SELECT count(*) FROM actions WHERE status IN ('applying','rolling_back')")" = 0 ]
  check "$point: audit verifies" airlock audit verify
done

# A crashed action whose target cannot be reached stays unresolved, and does not stop other
# commands; once the target is back, the next command resolves it.
AIRLOCK_CRASH_AT=gateway_after_claim as_agent sql --target app-db "UPDATE users SET name = 'away' WHERE id = 9" >/dev/null
id=$(store "SELECT id FROM actions ORDER BY created_ms DESC, rowid DESC LIMIT 1")
mv prod.db prod.db.away
check "with the target gone, other commands still run" airlock pending
check "the action stays unresolved meanwhile" [ "$(store "SELECT status FROM actions WHERE id = '$id'")" = applying ]
mv prod.db.away prod.db
airlock pending >/dev/null
check "with the target back, it is resolved (not applied)" \
  all [ "$(airlock show --json "$id" | jq -r .status)" = failed ] -- [ "$(db 'SELECT name FROM users WHERE id = 9')" = "customer 9" ]

# Approval path: the crash happens in the approver's process.
out=$(as_agent sql --json --target app-db "DROP TABLE payments")
id=$(jq -r .id <<<"$out")
as_dba approve "$id" >/dev/null
AIRLOCK_CRASH_AT=sqlite_apply_after_commit as_sec approve "$id" >/dev/null
check "approval path: died after the target commit" [ $? -eq 86 ]
airlock pending >/dev/null
check "approval path: recovered as applied" [ "$(airlock show --json "$id" | jq -r .status)" = applied ]
check "approval path: the table is gone" [ "$(db "SELECT count(*) FROM sqlite_master WHERE name = 'payments'")" = 0 ]

# Rollback path.
for point in gateway_after_rollback_claim sqlite_rollback_before_commit; do
  AIRLOCK_CRASH_AT=$point as_dba rollback "$id" >/dev/null
  check "rollback $point: died there" [ $? -eq 86 ]
  airlock pending >/dev/null
  check "rollback $point: recovered to applied; table still dropped" \
    all [ "$(airlock show --json "$id" | jq -r .status)" = applied ] -- [ "$(db "SELECT count(*) FROM sqlite_master WHERE name = 'payments'")" = 0 ]
done
AIRLOCK_CRASH_AT=sqlite_rollback_after_commit as_dba rollback "$id" >/dev/null
check "rollback sqlite_rollback_after_commit: died there" [ $? -eq 86 ]
airlock pending >/dev/null
check "rollback sqlite_rollback_after_commit: recovered as rolled_back, table back" \
  all [ "$(airlock show --json "$id" | jq -r .status)" = rolled_back ] -- [ "$(db 'SELECT count(*) FROM payments')" = 3000 ]
run_json r as_dba rollback "$id"
check "a recovered rollback is not run twice" all [ "$RC" -ne 0 ] -- [ "$(db 'SELECT count(*) FROM payments')" = 3000 ]
check "audit verifies after every crash" airlock audit verify
finish
