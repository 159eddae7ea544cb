#!/usr/bin/env bash
# PostgreSQL as airlock's store, on a real private server: `airlock store migrate`, two
# `airlock serve` instances on different ports sharing one store and acting as one gateway
# (a quorum reached across instances, racing votes, one apply, one expiry, events seen on
# the other instance, one unbroken audit chain), and a SQLite store copied into PostgreSQL
# with its chain still verifiable.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg_lib.sh"
source "$(dirname "$0")/serve_lib.sh"
pg_test_begin stop_servers
ok "a private PostgreSQL server starts"
pg_sql postgres "CREATE DATABASE store2 OWNER app" >/dev/null

export AIRLOCK_STORE_DSN=$PG_DSN
seed_db
write_policy
# The store is PostgreSQL: `store:` stays the place of airlock's local files.
sed -i 's|^store: ./state/airlock.db|store: ./state/airlock.db\nstore_dsn_env: AIRLOCK_STORE_DSN|' airlock.yaml
OUT=$T/all-output.txt
# ---- migrate -----------------------------------------------------------------------------
check "policy check accepts store_dsn_env" airlock policy check
run_json out airlock store migrate --json
check "store migrate creates the schema (version 0 -> 1)" \
  all test "$RC" = 0 -- test "$(jf .from_version "$out")" = 0 -- test "$(jf .to_version "$out")" = 1
run_json out airlock store migrate --json
check "store migrate again is a no-op (1 -> 1)" \
  all test "$RC" = 0 -- test "$(jf .from_version "$out")" = 1
check "the schema has its version table" \
  test "$(pg_sql app "SELECT max(version) FROM airlock_store.schema_version")" = 1
out=$(airlock store migrate --help 2>&1)
check "store migrate --help explains --from" grep -q -- "--from" <<<"$out"
sed 's/^store_dsn_env:.*//' airlock.yaml > sqlite.yaml
out=$(airlock --config sqlite.yaml store migrate 2>&1)
check "store migrate on a SQLite-store policy says what it is for" grep -q "PostgreSQL store" <<<"$out"
out=$(AIRLOCK_STORE_DSN= airlock sql --json --target app-db "SELECT 1" 2>&1)
check "an unset store_dsn_env is a clear error" grep -q "AIRLOCK_STORE_DSN, which is not set" <<<"$out"
BAD_DSN="host=127.0.0.1 port=$PGPORT dbname=app user=app password=wrong-$PG_PASSWORD connect_timeout=5"
out=$(AIRLOCK_STORE_DSN=$BAD_DSN airlock sql --json --target app-db "SELECT 1" 2>&1)
check "a wrong password fails closed, and the DSN is not shown" \
  all grep -q "password authentication failed" <<<"$out" -- bash -c "! grep -q -- 'wrong-' <<<\"\$1\"" _ "$out"

# ---- the CLI on the PostgreSQL store ----------------------------------------------------
run_json out as_agent sql --json --target app-db "SELECT id FROM users WHERE id = 1"
check "a read through the CLI is recorded in PostgreSQL" \
  all test "$RC" = 0 -- test "$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status = 'applied'")" = 1

# ---- two instances, one gateway -----------------------------------------------------------
mkdir -p A B
cp airlock.yaml A/airlock.yaml; cp airlock.yaml B/airlock.yaml
# Two instances on one host, with their local files in one place (the two-host case, with
# claims only in PostgreSQL, is below).
sed -i "s|path: ./prod.db|path: $T/prod.db|; s|path: ./other.db|path: $T/other.db|; s|^store: ./state/airlock.db|store: $T/state/airlock.db|" A/airlock.yaml B/airlock.yaml
start_server "$T/A" || { not_ok "instance A starts"; finish; }
PA=$PORT
# B looks at the store for others' changes only once an hour: what A records must reach B's
# event stream through PostgreSQL's NOTIFY.
start_server "$T/B" --events-poll 1h || { not_ok "instance B starts"; finish; }
PB=$PORT
ok "two airlock serve instances share the store (ports $PA and $PB)"
UA="http://127.0.0.1:$PA"; UB="http://127.0.0.1:$PB"

# Events on B while A takes the submission.
# Both must be ready first: the stream (its first keep-alive comes once it is subscribed) and
# both instances' LISTEN connections, opened on a thread of their own after the start.
curl -sN -H "Authorization: Bearer $DBA_TOKEN" "$UB/v1/events" >"$T/events-b.txt" 2>/dev/null &
stream_open() { grep -q '^: keep-alive' "$T/events-b.txt"; }
listening() {
  [ "$(pg_sql app "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN airlock_store'")" -ge 2 ]
}
poll 20 stream_open || true
poll 20 listening || true
run_json out as_agent --server "$UA" --json sql --target app-db "DELETE FROM users"
ID=$(jf .id "$out")
check "a critical action submitted on A is pending (quorum 2)" \
  all test "$RC" = 10 -- test "$(jf .status "$out")" = pending -- test "$(jf .quorum "$out")" = 2
run_json out as_dba --server "$UB" --json show "$ID"
check "B shows the action A recorded" test "$(jf .status "$out")" = pending
seen_on_b() { grep -q "$ID" "$T/events-b.txt"; }
poll 15 seen_on_b
check "B's /v1/events stream carries the action submitted on A at once (NOTIFY, not B's hourly poll)" seen_on_b
run_json out as_dba --server "$UB" --json approve "$ID"
check "the first approval (on B) is counted and waits for the second" \
  all test "$(jf .status "$out")" = pending -- test "$(jf .approvals "$out")" = 1 -- \
  test "$(jf '.votes[0].approver' "$out")" = oncall-dba
run_json out as_dba --server "$UA" --json approve "$ID"
check "the same approver voting again on A is refused" test "$RC" != 0
run_json out as_sec --server "$UA" --json approve "$ID"
check "the second approval (on A) applies it" test "$(jf .status "$out")" = applied
check "the rows are gone, once" test "$(db "SELECT count(*) FROM users")" = 0
applied_events() { pg_sql app "SELECT count(*) FROM airlock_store.audit WHERE action_id = '$1' AND event = '$2'"; }
check "one 'approved' and one 'applied' event" \
  all test "$(applied_events "$ID" approved)" = 1 -- test "$(applied_events "$ID" applied)" = 1

# restart_with SED_EXPR: both instances again, their policies edited.
restart_with() {
  stop_servers; SERVER_PIDS=()
  sed -i "$1" A/airlock.yaml B/airlock.yaml
  start_server "$T/A" || { not_ok "instance A restarts"; finish; }
  PA=$PORT; UA="http://127.0.0.1:$PA"
  start_server "$T/B" || { not_ok "instance B restarts"; finish; }
  PB=$PORT; UB="http://127.0.0.1:$PB"
}

# Racing votes: both approvers at once, on different instances, for ten high actions that
# need both (approvals high: 2) and touch disjoint rows.
seed_db
restart_with 's|high: 1,|high: 2,|'
IDS=()
submitted=""
for i in $(seq 0 9); do
  run_json out as_agent --server "$UA" --json sql --target app-db \
    "DELETE FROM users WHERE id > $((i * 110)) AND id <= $(((i + 1) * 110))"
  IDS+=("$(jf .id "$out")")
  # What each submission got, for the message below if one went wrong.
  submitted+=" $RC:$(jf .status "$out" 2>/dev/null)$( [ "$RC" = 10 ] || printf ':%s' "$(head -c 300 <<<"$out")")"
done
check "ten high actions wait for two approvals (exit:status of each:$submitted)" \
  test "$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status = 'pending' AND body::text <> ''")" = 10
VOTERS=()
for id in "${IDS[@]}"; do
  as_dba --server "$UA" --json approve "$id" >"$T/race-a-$id" 2>&1 &
  VOTERS+=($!)
  as_sec --server "$UB" --json approve "$id" >"$T/race-b-$id" 2>&1 &
  VOTERS+=($!)
  as_dba --server "$UB" --json approve "$id" >"$T/race-c-$id" 2>&1 &
  VOTERS+=($!)
done
# Every vote answered (a server that hangs on them fails the count below, not ctest's timeout);
# an apply may still be finishing on a server.
voters_done() { local p; for p in "${VOTERS[@]}"; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
poll 60 voters_done || true
wait_votes() { [ "$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status IN ('pending', 'applying')")" = 0 ]; }
poll 60 wait_votes
bad=0
for id in "${IDS[@]}"; do
  [ "$(applied_events "$id" applied)$(applied_events "$id" approved)" = 11 ] || bad=$((bad + 1))
  [ "$(pg_sql app "SELECT count(*) FROM airlock_store.votes WHERE action_id = '$id'")" = 2 ] || bad=$((bad + 1))
done
check "racing votes on two instances: each action approved once, applied once, two votes kept ($bad bad)" test "$bad" = 0
if [ "$bad" != 0 ]; then
  # What each vote got and what the servers said, for whoever reads a failed run.
  echo "# the actions' statuses: $(pg_sql app "SELECT string_agg(id || '=' || status, ' ') FROM airlock_store.actions WHERE status IN ('pending', 'applying')")"
  for id in "${IDS[@]}"; do
    for f in "$T"/race-?-"$id"; do echo "# $(basename "$f"): $(head -c 300 "$f" | tr '\n' ' ')"; done
  done
  for p in "${SERVER_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && echo "# server $p is alive" || echo "# server $p is gone"; done
  for d in A B; do echo "# $d/serve.log:"; tail -n 30 "$T/$d/serve.log" | sed 's/^/#   /'; done
fi
# The actions ran in some order; each deleted what was left above its bound exactly once.
check "the target holds what the ten applies leave (ids 1 to 1100 gone, the rest kept)" \
  all test "$(db "SELECT count(*) FROM users WHERE id <= 1100")" = 0 -- \
  test "$(db "SELECT count(*) FROM users")" = 104

# Expiry: a short timeout; both instances run the background expiry.
restart_with 's|timeout: 1h|timeout: 2s|'
run_json out as_agent --server "$UA" --json sql --target app-db "DELETE FROM users"
EXP=$(jf .id "$out")
expired() { [ "$(pg_sql app "SELECT status FROM airlock_store.actions WHERE id = '$EXP'")" = expired ]; }
poll 30 expired
sleep 2  # both instances have had another pass
check "a pending action expires once, though two instances expire in the background" \
  all expired -- test "$(applied_events "$EXP" expired)" = 1

# Many due at once, submitted through both instances, one of them held by a transaction
# outside airlock: the instances take due actions FOR UPDATE SKIP LOCKED, so the held one
# stays pending (nothing waits for it) while the rest expire, each once; it expires when it
# is let go.
MANY=()
for i in $(seq 1 30); do
  if [ $((i % 2)) = 0 ]; then U=$UA; else U=$UB; fi
  run_json out as_agent --server "$U" --json sql --target app-db "DELETE FROM users WHERE id > $i"
  MANY+=("$(jf .id "$out")")
  if [ "$i" = 1 ]; then  # held from before it is due until it is let go below
    HELD=${MANY[0]}
    pg_sql app "SET application_name = 'airlock-test-holder'; BEGIN; SELECT 1 FROM airlock_store.actions WHERE id = '$HELD' FOR UPDATE; SELECT pg_sleep(120); COMMIT" >/dev/null 2>&1 &
    HOLDER=$!
    # Its row lock taken (it sleeps after it) before anything else runs, well before the
    # action is due.
    holding() {
      [ "$(pg_sql app "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'airlock-test-holder' AND wait_event = 'PgSleep'")" = 1 ]
    }
    poll 20 holding || true
  fi
done
others_expired() {
  [ "$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status = 'expired' AND id IN ($(printf "'%s'," "${MANY[@]:1}" | sed 's/,$//'))")" = 29 ]
}
poll 20 others_expired
check "29 due actions expire while another transaction holds the 30th's row (SKIP LOCKED: nothing waits for it)" \
  all others_expired -- \
  test "$(pg_sql app "SELECT status FROM airlock_store.actions WHERE id = '$HELD'")" = pending
pg_sql app "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'airlock-test-holder'" >/dev/null
wait "$HOLDER"
held_expired() { [ "$(pg_sql app "SELECT status FROM airlock_store.actions WHERE id = '$HELD'")" = expired ]; }
poll 15 held_expired
twice=$(pg_sql app "SELECT count(*) FROM (SELECT action_id FROM airlock_store.audit WHERE event = 'expired' AND action_id IN ($(printf "'%s'," "${MANY[@]}" | sed 's/,$//')) GROUP BY action_id HAVING count(*) = 1) x")
check "the held one expires once let go, and each of the 30 has exactly one 'expired' event" \
  all held_expired -- test "$twice" = 30

run_json out airlock --config A/airlock.yaml audit verify --json
check "the audit chain is one unbroken chain across instances" \
  all test "$(jf .ok "$out")" = true -- test "$(jf .events "$out")" = "$(pg_sql app "SELECT count(*) FROM airlock_store.audit")"
check "its head is the last event" \
  test "$(pg_sql app "SELECT seq FROM airlock_store.audit_head")" = "$(pg_sql app "SELECT max(seq) FROM airlock_store.audit")"
stop_servers; SERVER_PIDS=()

# ---- claims across hosts -------------------------------------------------------------------
# Two "hosts": each keeps its local files in its own place, so only the store can tell one
# that the other is working on an action.
mkdir -p C D
for h in C D; do
  sed "s|^store: .*|store: $T/$h/state/airlock.db|" A/airlock.yaml > $h/airlock.yaml
done
sed -i 's|timeout: 2s|timeout: 1h|; s|high: 2,|high: 1,|' C/airlock.yaml D/airlock.yaml
seed_db
run_json out as_agent --config C/airlock.yaml --json sql --target app-db "DELETE FROM users WHERE id <= 200"
CID=$(jf .id "$out")
# Paused long enough for the poll, a CLI's start and its recovery on a loaded machine.
AIRLOCK_PAUSE_AT=gateway_after_claim AIRLOCK_PAUSE_MS=12000 \
  as_dba --config C/airlock.yaml --json approve "$CID" >"$T/c-approve.json" 2>"$T/c-approve.err" &
CPID=$!
applying() { [ "$(pg_sql app "SELECT status FROM airlock_store.actions WHERE id = '$CID'")" = applying ]; }
poll 10 applying
as_sec --config D/airlock.yaml --json pending >/dev/null 2>&1   # D opens the store: recovery runs
check "another host's recovery leaves an apply in progress alone (the claim is in PostgreSQL)" applying
wait $CPID
check "the paused apply then finishes: applied once" \
  all test "$(jq -r .status "$T/c-approve.json")" = applied -- test "$(applied_events "$CID" applied)" = 1 -- \
  test "$(db "SELECT count(*) FROM users WHERE id <= 200")" = 0
run_json out as_agent --config C/airlock.yaml --json sql --target app-db "DELETE FROM users WHERE id > 1000"
KID=$(jf .id "$out")
AIRLOCK_CRASH_AT=gateway_after_claim as_dba --config C/airlock.yaml --json approve "$KID" >/dev/null 2>&1
check "a process that dies holding a claim leaves the action applying" \
  test "$(pg_sql app "SELECT status FROM airlock_store.actions WHERE id = '$KID'")" = applying
# The claim dies with the dead process's PostgreSQL session, which ends once the server has
# seen the connection close: recovery on D is tried until then.
resolved_on_d() {
  as_sec --config D/airlock.yaml --json pending >/dev/null 2>&1
  [ "$(pg_sql app "SELECT status FROM airlock_store.actions WHERE id = '$KID'")" != applying ]
}
poll 20 resolved_on_d || true
check "and the other host's recovery resolves it (its claim died with it)" \
  test "$(pg_sql app "SELECT status FROM airlock_store.actions WHERE id = '$KID'")" != applying

# ---- copying a SQLite store into PostgreSQL ----------------------------------------------
mkdir -p L && cd L
seed_db
cp "$T/prod.db" ./prod.db
cat > airlock.yaml <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: support-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [app-db]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
targets:
  app-db: {kind: sqlite, path: ./prod.db}
approvals: {low: 0, high: 1, critical: 1, timeout: 1h}
YAML
export AIRLOCK_CONFIG=$PWD/airlock.yaml
as_agent sql --json --target app-db "UPDATE users SET name = 'x' WHERE id = 1" >/dev/null
run_json out as_agent sql --json --target app-db "DELETE FROM users WHERE id > 10"
LID=$(jf .id "$out")
as_dba approve --json "$LID" >/dev/null
as_agent sql --json --target app-db "SELECT count(*) FROM users" >/dev/null
SQLITE_EVENTS=$(airlock audit verify --json | jq .events)
sed 's|^store: ./state/airlock.db|store: ./state/airlock.db\nstore_dsn_env: STORE2_DSN|' airlock.yaml > pg.yaml
export STORE2_DSN="host=127.0.0.1 port=$PGPORT dbname=store2 user=app password=$PG_PASSWORD connect_timeout=10"
run_json out airlock --config pg.yaml store migrate --json --from ./state/airlock.db
check "store migrate --from copies the SQLite store ($SQLITE_EVENTS events)" \
  all test "$RC" = 0 -- test "$(jf .copied_audit_events "$out")" = "$SQLITE_EVENTS"
run_json out airlock --config pg.yaml audit verify --json
check "the copied chain verifies in PostgreSQL" \
  all test "$(jf .ok "$out")" = true -- test "$(jf .events "$out")" = "$SQLITE_EVENTS"
run_json out as_dba --config pg.yaml show --json "$LID"
check "the copied action keeps its status and its vote" \
  all test "$(jf .status "$out")" = applied -- test "$(jf '.votes | length' "$out")" = 1
run_json out as_dba --config pg.yaml rollback --json "$LID"
check "its undo record came along: rollback works from the PostgreSQL store" \
  all test "$(jf .status "$out")" = rolled_back -- test "$(sqlite3 prod.db "SELECT count(*) FROM users")" = "$(sqlite3 "$T/prod.db" "SELECT count(*) FROM users")"
run_json out airlock --config pg.yaml store migrate --json --from ./state/airlock.db
check "copying into a store that already has events is refused" \
  all test "$RC" != 0 -- grep -q "already holds" <<<"$out"
# A tampered source: nothing is copied.
pg_sql postgres "CREATE DATABASE store3 OWNER app" >/dev/null
sqlite3 state/airlock.db "UPDATE audit SET principal = 'someone-else' WHERE seq = 2"
export STORE2_DSN="host=127.0.0.1 port=$PGPORT dbname=store3 user=app password=$PG_PASSWORD connect_timeout=10"
run_json out airlock --config pg.yaml store migrate --json --from ./state/airlock.db
check "a source chain broken at event 2 is refused, and nothing is copied" \
  all test "$RC" != 0 -- grep -q "event 2 does not hash" <<<"$out" -- \
  test "$(pg_sql store3 "SELECT count(*) FROM airlock_store.audit")" = 0
cd "$T"

finish
