#!/usr/bin/env bash
# Hard caps, rate limits and circuit breakers.
source "$(dirname "$0")/lib.sh"
cd "$T"
seed_db
write_policy "limits:
  - {match: {target: app-db}, rate: 3/min, max_rows: 500, on_exceed: trip}"

run_json out as_agent sql --json --target app-db "UPDATE users SET balance_cents = 0 WHERE id <= 600"
check "over max_rows is denied outright (exit 11)" all [ "$RC" -eq 11 ] -- [ "$(jf .status "$out")" = denied ]
check "the cap is named" grep -q "hard cap of 500" <<<"$(jf .error "$out")"
check "nothing changed" [ "$(db 'SELECT count(*) FROM users WHERE balance_cents = 0')" = 0 ]

# The denied attempt above counts as one write in the window; two more fit under 3/min.
for i in 1 2; do
  run_json out as_agent sql --json --target app-db "UPDATE users SET name = 'r$i' WHERE id = $i"
  check "write $i within the rate is applied" [ "$RC" -eq 0 ]
done
run_json out as_agent sql --json --target app-db "UPDATE users SET name = 'r3' WHERE id = 3"
check "the write over the rate trips the breaker and waits (exit 10)" [ "$RC" -eq 10 ]
check "reason names the rate limit" grep -q "rate limit 3/min exceeded" <<<"$(jf '.reasons[]' "$out")"
check "not applied" [ "$(db 'SELECT name FROM users WHERE id = 3')" = "customer 3" ]
check "breaker_tripped is audited" grep -q '"event":"breaker_tripped"' <<<"$(as_dba audit log --json)"

export AIRLOCK_TIME_SHIFT_MS=$((5 * 60 * 1000))
run_json out as_agent sql --json --target app-db "UPDATE users SET name = 'r4' WHERE id = 4"
check "minutes later the breaker still holds every write (exit 10)" [ "$RC" -eq 10 ]
check "reason names the open breaker" grep -q "circuit breaker open" <<<"$(jf '.reasons[]' "$out")"
run_json out as_agent sql --json --target app-db "SELECT count(*) FROM users"
check "reads still run while the breaker is open" [ "$RC" -eq 0 ]

run_json r as_agent breaker reset --target app-db
check "an agent cannot reset a breaker (exit 11)" [ "$RC" -eq 11 ]
run_json r as_dba breaker reset --target app-db --agent support-bot
check "an approver resets the breaker" [ "$RC" -eq 0 ]
run_json out as_agent sql --json --target app-db "UPDATE users SET name = 'r5' WHERE id = 5"
check "after reset writes apply again" all [ "$RC" -eq 0 ] -- [ "$(db 'SELECT name FROM users WHERE id = 5')" = r5 ]
run_json r as_dba breaker reset --target app-db
check "resetting a closed breaker says so (exit 1)" [ "$RC" -eq 1 ]

# on_exceed: deny
write_policy "limits:
  - {match: {target: app-db, agent: support-bot}, rate: 1/min, on_exceed: deny}"
export AIRLOCK_TIME_SHIFT_MS=$((60 * 60 * 1000))
as_agent sql --target app-db "UPDATE users SET name = 'd1' WHERE id = 11" >/dev/null
run_json out as_agent sql --json --target app-db "UPDATE users SET name = 'd2' WHERE id = 12"
check "on_exceed deny denies the write over the rate" all [ "$RC" -eq 11 ] -- [ "$(db 'SELECT name FROM users WHERE id = 12')" = "customer 12" ]
unset AIRLOCK_TIME_SHIFT_MS
check "audit verifies" airlock audit verify
finish
