#!/usr/bin/env bash
# Three `airlock serve` instances sharing one PostgreSQL store act as one gateway under load:
# 64 concurrent clients submit a mix of reads, low writes and high writes across them,
# approvers vote through whichever instance is next, and one instance is killed with
# SIGKILL in the middle. Afterwards no action is applied twice, none that got a reply is
# lost, nothing is left half-applied, and the audit chain verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg_lib.sh"
source "$(dirname "$0")/serve_lib.sh"
pg_test_begin stop_servers
export AIRLOCK_STORE_DSN=$PG_DSN
seed_db
# marks: one row per applied low write; hmarks: one per applied high write (a rule makes
# every write to it high). No key, so that a second apply would show as a second row.
db "CREATE TABLE marks(tag TEXT NOT NULL); CREATE TABLE hmarks(tag TEXT NOT NULL)"
write_policy 'rules:
  - {match: {target: app-db, table: hmarks}, risk: high, reason: "hmarks needs a human"}'
sed -i "s|^store: ./state/airlock.db|store: $T/state/airlock.db\nstore_dsn_env: AIRLOCK_STORE_DSN|; s|path: ./prod.db|path: $T/prod.db|; s|path: ./other.db|path: $T/other.db|" airlock.yaml
airlock store migrate >/dev/null || { not_ok "store migrate"; finish; }
mkdir -p A B C
for d in A B C; do cp airlock.yaml "$d/airlock.yaml"; done
PORTS=()
for d in A B C; do
  start_server "$T/$d" || { not_ok "instance $d starts"; finish; }
  PORTS+=("$PORT")
done
PID_C=$PID
ok "three airlock serve instances share the store (ports ${PORTS[*]})"

# post PORT TOKEN PATH BODY OUT: the reply's body in OUT, its HTTP status on stdout.
post() {
  curl -s -o "$5" -w '%{http_code}' -X POST -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' --data "$4" "http://127.0.0.1:$1$3" 2>/dev/null
}
mkdir -p replies votes
client() {  # client N: a read, a low write and a high write, all on instance N % 3
  local n=$1 port=${PORTS[$(($1 % 3))]}
  post "$port" "$AGENT_TOKEN" /v1/actions '{"target":"app-db","sql":"SELECT count(*) FROM users"}' "replies/$n-read" >/dev/null
  post "$port" "$AGENT_TOKEN" /v1/actions "{\"target\":\"app-db\",\"sql\":\"INSERT INTO marks(tag) VALUES ('c$n')\"}" "replies/$n-low" >/dev/null
  post "$port" "$AGENT_TOKEN" /v1/actions "{\"target\":\"app-db\",\"sql\":\"INSERT INTO hmarks(tag) VALUES ('c$n')\"}" "replies/$n-high" >/dev/null
}
LIVE=("${PORTS[@]}")
approver() {  # approves what is pending, each time through the next live instance, until
  local i=0 id last=""  # the clients are done, and then once more
  while [ -z "$last" ]; do
    [ -e clients-done ] && last=1
    for id in $(pg_sql app "SELECT id FROM airlock_store.actions WHERE status = 'pending'"); do
      i=$((i + 1))
      [ -e c-dead ] && LIVE=("${PORTS[0]}" "${PORTS[1]}")
      post "${LIVE[$((i % ${#LIVE[@]}))]}" "$DBA_TOKEN" "/v1/actions/$id/approve" '{"reason":"ok"}' "votes/$id-$i" >/dev/null
    done
    sleep 0.2
  done
}
approver &
APPROVER=$!
CLIENTS=()
for n in $(seq 0 63); do client "$n" & CLIENTS+=($!); done
sleep 1
kill -KILL "$PID_C"; touch c-dead
ok "instance C killed with SIGKILL while the clients run"
wait "${CLIENTS[@]}"
echo "# the clients are done after ${SECONDS}s"
touch clients-done
wait "$APPROVER"
echo "# the approvals are done after ${SECONDS}s"

# Recovery: any airlock command opens the gateway and resolves what a dead process left.
run_json verify airlock audit verify --json

ids_of() { for f in "$@"; do [ -s "$f" ] && jq -r '.id // empty' "$f" 2>/dev/null; done; }
answered=$(ids_of replies/* | sort -u)
n_answered=$(wc -w <<<"$answered")
in_store=$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE id IN ($(printf "'%s'," $answered | sed 's/,$//'))")
missing=$((n_answered - in_store))
check "every action that got a reply with an id is in the store ($n_answered replies, $missing missing)" \
  all test "$missing" = 0 -- test "$n_answered" -ge 100

twice=$(pg_sql app "SELECT count(*) FROM (SELECT action_id FROM airlock_store.audit WHERE event = 'applied' GROUP BY action_id HAVING count(*) > 1) x")
check "no action has two 'applied' events" test "$twice" = 0
# Each applied write left exactly one row; nothing that is not applied left one.
{ db "SELECT 'marks', tag, count(*) FROM marks GROUP BY tag"
  db "SELECT 'hmarks', tag, count(*) FROM hmarks GROUP BY tag"; } > rows.txt
bad=0
while IFS='|' read -r id status sql; do
  tag=$(sed -n "s/.*VALUES ('\(c[0-9]*\)').*/\1/p" <<<"$sql")
  table=$(sed -n 's/INSERT INTO \([a-z]*\).*/\1/p' <<<"$sql")
  [ -n "$tag" ] || continue
  rows=$(awk -F'|' -v t="$table" -v g="$tag" '$1 == t && $2 == g {print $3}' rows.txt)
  rows=${rows:-0}
  if [ "$status" = applied ]; then [ "$rows" = 1 ] || { echo "# $id applied, $rows rows"; bad=$((bad + 1)); }
  else [ "$rows" = 0 ] || { echo "# $id $status, $rows rows"; bad=$((bad + 1)); }; fi
done < <(pg_sql app "SELECT id, status, convert_from(body, 'UTF8')::json->'args'->>'sql' FROM airlock_store.actions WHERE kind = 'sql'")
applied_writes=$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status = 'applied' AND convert_from(body, 'UTF8')::json->'args'->>'sql' LIKE 'INSERT%'")
check "every applied write left exactly one row in the target, every other none ($applied_writes applied writes, $bad wrong)" \
  all test "$bad" = 0 -- test "$applied_writes" -ge 2
rows_total=$(( $(db "SELECT count(*) FROM marks") + $(db "SELECT count(*) FROM hmarks") ))
check "the target holds no row that no applied action accounts for ($rows_total rows)" \
  test "$rows_total" = "$applied_writes"
stuck=$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status NOT IN ('applied', 'pending', 'denied', 'rejected', 'expired', 'failed', 'effect_changed', 'rolled_back')")
check "after recovery nothing is left between states (applying)" test "$stuck" = 0
left=$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status = 'pending'")
sent=$(ls votes | wc -l)
check "approvals sent through the instances in turn leave nothing waiting ($sent approvals sent, $left pending)" \
  test "$left" = 0
high_applied=$(pg_sql app "SELECT count(*) FROM airlock_store.actions WHERE status = 'applied' AND convert_from(body, 'UTF8')::json->'args'->>'sql' LIKE 'INSERT INTO hmarks%'")
votes_ok=$(pg_sql app "SELECT count(*) FROM airlock_store.actions a WHERE a.status = 'applied' AND convert_from(a.body, 'UTF8')::json->'args'->>'sql' LIKE 'INSERT INTO hmarks%' AND (SELECT count(*) FROM airlock_store.votes v WHERE v.action_id = a.id) = 1")
check "high writes approved through the instances: each applied one has exactly one vote ($high_applied applied)" \
  all test "$high_applied" -ge 1 -- test "$votes_ok" = "$high_applied"
check "the audit chain verifies after the kill and the recovery" \
  all test "$RC" = 0 -- test "$(jf .ok "$verify")" = true
finish
