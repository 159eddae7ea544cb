#!/usr/bin/env bash
# The PostgreSQL target on a real, private server: reads, low/high/critical writes,
# approval, effect binding, rollback with conflicts, DDL, capture installation, refusals of
# writes airlock could not see, and the DSN's password never shown.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg_lib.sh"
cd "$T"
pg_start || { not_ok "a private PostgreSQL server starts"; finish; }
ok "a private PostgreSQL server starts"

export APP_DB_DSN=$PG_DSN
cat > "$T/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: support-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [app-pg, airlock]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
  - {name: security-lead, token_sha256: "$(sha "$SEC_TOKEN")"}
targets:
  app-pg: {kind: postgres, dsn_env: APP_DB_DSN, schemas: [public], lock_timeout: 2s, statement_timeout: 20s, max_low_rows: 10}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
YAML
export AIRLOCK_CONFIG=$T/airlock.yaml
OUT=$T/all-output.txt  # every output of airlock, searched for the password at the end
q() { pg_sql app "$1"; }
run() { run_json "$@"; printf '%s\n' "${!1}" >>"$OUT"; cat "$T/stderr" >>"$OUT"; }

q "CREATE TABLE users(id int PRIMARY KEY, name text NOT NULL, status text NOT NULL);
   INSERT INTO users SELECT g, 'customer ' || g, CASE WHEN g <= 20 THEN 'inactive' ELSE 'active' END
     FROM generate_series(1, 50) g;
   CREATE TABLE logs(line text); INSERT INTO logs SELECT 'line ' || g FROM generate_series(1, 7) g;
   CREATE SCHEMA other; CREATE TABLE other.t(id int PRIMARY KEY);"

# --- The policy: a postgres target validates; mistakes name file:line:column.
check "policy check accepts the postgres target" airlock policy check >/dev/null
sed 's/dsn_env: APP_DB_DSN, //' airlock.yaml > bad.yaml
err=$(airlock --config bad.yaml policy check 2>&1)
check "a target without dsn_env/dsn_file is refused at its line" grep -q "bad.yaml:9:.*dsn_env" <<<"$err"
sed 's/dsn_env: APP_DB_DSN,/dsn_env: APP_DB_DSN, dsn_file: x,/' airlock.yaml > bad.yaml
check "dsn_env and dsn_file together are refused" grep -q "not both" <<<"$(airlock --config bad.yaml policy check 2>&1)"

# --- Before `pg install`, reads work and writes are refused (nothing could be observed).
run out as_agent sql --json --target app-pg "SELECT name FROM users WHERE id = 3"
check "a read runs before install" all [ "$RC" -eq 0 ] -- [ "$(jf '.result.rows[0][0]' "$out")" = "customer 3" ]
run out as_agent sql --json --target app-pg "UPDATE users SET name = 'x' WHERE id = 3"
check "a write before install fails closed, naming pg install" \
  all [ "$RC" -ne 0 ] -- grep -q "airlock pg install" <<<"$out$(cat "$T/stderr")"
check "... and changed nothing" [ "$(q "SELECT name FROM users WHERE id = 3")" = "customer 3" ]

# --- Install is idempotent and puts the trigger on every table of the listed schemas.
run out airlock --json pg install --target app-pg
check "pg install" all [ "$RC" -eq 0 ] -- [ "$(jf .ok "$out")" = true ]
run out airlock --json pg install --target app-pg
check "pg install again (idempotent)" [ "$RC" -eq 0 ]
check "capture trigger on users and logs, not on other.t" [ "$(q "SELECT string_agg(tgrelid::regclass::text, ',' ORDER BY tgrelid::regclass::text) FROM pg_trigger WHERE tgname = 'airlock_capture'")" = "logs,users" ]
check "two event triggers" [ "$(q "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'airlock%'")" = 2 ]
check "pg install --help works" bash -c "'$AIRLOCK_BIN' pg install --help | grep -q -- --target"

# --- A read returns rows and commits nothing.
run out as_agent sql --json --target app-pg "SELECT id, name FROM users WHERE id IN (1, 2) ORDER BY id"
check "SELECT is read with its rows" all [ "$RC" -eq 0 ] -- [ "$(jf .risk "$out")" = read ] -- [ "$(jf '.result.rows[1][1]' "$out")" = "customer 2" ]
check "nothing captured is left behind" [ "$(q "SELECT count(*) FROM airlock.changes")" = 0 ]

# --- A one-row UPDATE is low and applied; rollback restores it.
run out as_agent sql --json --target app-pg "UPDATE users SET name = 'renamed' WHERE id = 5"
check "one-row UPDATE is low and applied" all [ "$RC" -eq 0 ] -- [ "$(jf .risk "$out")" = low ] -- [ "$(jf .status "$out")" = applied ]
check "effect: one updated row of public.users" [ "$(jf '.effect.tables[] | select(.table=="public.users") | .updated' "$out")" = 1 ]
check "preview shows before and after" [ "$(jf '.effect.preview[0].before.name + ">" + .effect.preview[0].after.name' "$out")" = "customer 5>renamed" ]
check "the row changed in the database" [ "$(q "SELECT name FROM users WHERE id = 5")" = renamed ]
check "captured rows are not committed" [ "$(q "SELECT count(*) FROM airlock.changes")" = 0 ]
upd=$(jf .id "$out")
run r as_dba rollback "$upd"
check "rollback of the UPDATE restores the row" all [ "$RC" -eq 0 ] -- [ "$(q "SELECT name FROM users WHERE id = 5")" = "customer 5" ]

# --- Rollback stops at a conflict and changes nothing.
run out as_agent sql --json --target app-pg "UPDATE users SET name = 'second' WHERE id IN (6, 7)"
upd=$(jf .id "$out")
q "UPDATE users SET name = 'changed later' WHERE id = 7"
run r as_dba rollback --json "$upd"
check "rollback over a row changed since is refused" all [ "$RC" -ne 0 ] -- grep -q "conflict" <<<"$r$(cat "$T/stderr")"
check "... and nothing was partially undone" [ "$(q "SELECT string_agg(name, ',' ORDER BY id) FROM users WHERE id IN (6, 7)")" = "second,changed later" ]

# --- DELETE without WHERE: every row of the table is critical (as on SQLite); dry-run
#     changes are invisible to another connection; two approvals apply; rollback restores.
run out as_agent sql --json --target app-pg "DELETE FROM users"
del=$(jf .id "$out")
check "DELETE FROM users is critical and pending" all [ "$RC" -eq 10 ] -- [ "$(jf .risk "$out")" = critical ]
check "the reason says every row" grep -q "every row of public.users" <<<"$(jf '.reasons[]' "$out")"
check "another connection still sees all 50 rows" [ "$(q "SELECT count(*) FROM users")" = 50 ]
run v as_dba approve --json "$del"
check "one approval is not enough" [ "$(jf .status "$v")" = pending ]
run v as_sec approve --json "$del"
check "the second approval applies it" all [ "$(jf .status "$v")" = applied ] -- [ "$(q "SELECT count(*) FROM users")" = 0 ]
run r as_dba rollback "$del"
check "rollback restores the 50 rows exactly" all [ "$RC" -eq 0 ] -- [ "$(q "SELECT count(*), sum(id), count(*) FILTER (WHERE name = 'customer ' || id OR id IN (6, 7)) FROM users")" = "50|1275|50" ]

# --- Effect binding: 20 inactive rows (> max_low_rows 10) is high; one more row becomes
#     inactive before the approval => effect_changed, nothing deleted.
run out as_agent sql --json --target app-pg "DELETE FROM users WHERE status = 'inactive'"
id=$(jf .id "$out")
check "DELETE of 20 rows is high and pending" all [ "$RC" -eq 10 ] -- [ "$(jf .risk "$out")" = high ]
q "UPDATE users SET status = 'inactive' WHERE id = 30"
run v as_dba approve --json "$id"
check "approval after the data changed ends effect_changed (exit 11)" all [ "$RC" -eq 11 ] -- [ "$(jf .status "$v")" = effect_changed ]
check "nothing was deleted" [ "$(q "SELECT count(*) FROM users WHERE status = 'inactive'")" = 21 ]

# --- A lock held by the application makes airlock give up after lock_timeout, saying so,
#     instead of queueing behind it; nothing changes.
pg_sql app "BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 100); do
  [ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'users' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ] && break
  sleep 0.1
done
run out as_agent sql --json --target app-pg "UPDATE users SET name = 'blocked' WHERE id = 13"
check "a write behind a held lock fails with the lock_timeout reason" \
  all [ "$RC" -ne 0 ] -- grep -q "lock_timeout" <<<"$out$(cat "$T/stderr")"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$holder" 2>/dev/null
check "... and the row is unchanged" [ "$(q "SELECT name FROM users WHERE id = 13")" = "customer 13" ]

# --- Writes airlock cannot see are refused, not applied.
run out as_agent sql --json --target app-pg "INSERT INTO other.t VALUES (1)"
check "a write to a table outside the target's schemas is refused" all [ "$RC" -ne 0 ] -- [ "$(q "SELECT count(*) FROM other.t")" = 0 ]
run out as_agent sql --json --target app-pg "WITH off AS (SELECT set_config('airlock.capture', '', true) AS v) UPDATE users SET name = 'hidden' FROM off WHERE id = 9 AND off.v = ''"
check "a statement that turns capture off is refused" all [ "$RC" -ne 0 ] -- [ "$(q "SELECT name FROM users WHERE id = 9")" = "customer 9" ]
run out as_agent sql --json --target app-pg "COMMIT"
check "transaction control is refused as bad input" all [ "$RC" -eq 2 ] -- grep -q "transaction control" <<<"$out$(cat "$T/stderr")"
run out as_agent sql --json --target app-pg "UPDATE users SET name = 'a' WHERE id = 1; UPDATE users SET name = 'b' WHERE id = 2"
check "two statements in one action are refused" all [ "$RC" -eq 2 ] -- [ "$(q "SELECT name FROM users WHERE id = 1")" = "customer 1" ]
run out as_agent sql --json --target app-pg "UPDATE nosuchtable SET x = 1"
check "malformed SQL is bad input with PostgreSQL's message" all [ "$RC" -eq 2 ] -- grep -q 'nosuchtable' <<<"$out$(cat "$T/stderr")"

# --- Tables created later get the capture trigger; an INSERT there is low and undoable.
q "CREATE TABLE later_t(id int PRIMARY KEY, v text)"
check "a table created later gets the trigger" [ "$(q "SELECT count(*) FROM pg_trigger WHERE tgname = 'airlock_capture' AND tgrelid = 'later_t'::regclass")" = 1 ]
run out as_agent sql --json --target app-pg "INSERT INTO later_t VALUES (1, 'one')"
check "INSERT into it is low, applied, one inserted row" all [ "$(jf .status "$out")" = applied ] -- [ "$(jf '.effect.tables[0].inserted' "$out")" = 1 ]
run r as_dba rollback "$(jf .id "$out")"
check "its rollback deletes the row" all [ "$RC" -eq 0 ] -- [ "$(q "SELECT count(*) FROM later_t")" = 0 ]

# --- No primary key: at least high, undo best-effort.
run out as_agent sql --json --target app-pg "UPDATE logs SET line = 'edited' WHERE line = 'line 1'"
check "a write to a table without a primary key is high" all [ "$RC" -eq 10 ] -- [ "$(jf .risk "$out")" = high ]

# --- DROP TABLE: critical with the row count, two approvals; rollback recreates it from its
#     pg_dump pre-image; an ALTER TABLE is critical and its rollback is refused, saying why.
q "CREATE INDEX logs_line ON logs(line)"
run out as_agent sql --json --target app-pg "DROP TABLE logs"
drop=$(jf .id "$out")
check "DROP TABLE is critical and pending" all [ "$RC" -eq 10 ] -- [ "$(jf .risk "$out")" = critical ]
check "its reason counts the 7 rows" grep -q "DROP TABLE public.logs (7 rows" <<<"$(jf '.reasons[]' "$out")"
check "the table is still there" [ "$(q "SELECT count(*) FROM logs")" = 7 ]
run v as_dba approve --json "$drop"
run v as_sec approve --json "$drop"
check "two approvals drop it" all [ "$(jf .status "$v")" = applied ] -- [ "$(q "SELECT to_regclass('logs') IS NULL")" = t ]
run r as_dba rollback --json "$drop"
check "rollback recreates the table with its 7 rows and its index" \
  all [ "$RC" -eq 0 ] -- [ "$(q "SELECT count(*) FROM logs WHERE line LIKE 'line %'")" = 7 ] -- [ "$(q "SELECT count(*) FROM pg_indexes WHERE indexname = 'logs_line'")" = 1 ]
check "... with airlock's capture trigger again" [ "$(q "SELECT count(*) FROM pg_trigger WHERE tgname = 'airlock_capture' AND tgrelid = 'logs'::regclass")" = 1 ]
run out as_agent sql --json --target app-pg "DROP TABLE later_t"
drop2=$(jf .id "$out")
run v as_dba approve --json "$drop2"
run v as_sec approve --json "$drop2"
q "CREATE TABLE later_t(other int)"
run r as_dba rollback --json "$drop2"
check "rollback of a DROP TABLE whose name is taken again is a conflict; nothing changes" \
  all [ "$RC" -ne 0 ] -- grep -q "exists again" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT count(*) FROM information_schema.columns WHERE table_name = 'later_t' AND column_name = 'other'")" = 1 ]
# --- Schema changes are undone too: what the action created is dropped, an altered table is
#     replaced by its pre-image (only if its fingerprint shows no one used it since), a dropped
#     view or index comes back. Anything else is irreversible and says so.
approved() {  # approved SQL: submit and approve it as far as needed; sets ID
  run out as_agent sql --json --target app-pg "$1"
  ID=$(jf .id "$out")
  [ "$(jf .status "$out")" = pending ] || return 0
  run v as_dba approve --json "$ID"
  [ "$(jf .status "$v")" = pending ] || return 0
  run v as_sec approve --json "$ID"
}
users_digest() { q "SELECT md5(string_agg(u::text, E'\n' ORDER BY id)) FROM users u"; }
users_columns() { q "SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users'"; }

approved "CREATE TABLE scratch(id serial PRIMARY KEY, v text)"
check "CREATE TABLE is applied" [ "$(q "SELECT to_regclass('scratch') IS NOT NULL")" = t ]
run r as_dba rollback --json "$ID"
check "rollback of CREATE TABLE drops it, with its sequence and index" \
  all [ "$RC" -eq 0 ] -- [ "$(q "SELECT count(*) FROM pg_class WHERE relname LIKE 'scratch%'")" = 0 ]

approved "CREATE TABLE scratch(id int PRIMARY KEY, v text)"
q "INSERT INTO scratch VALUES (1, 'someone else')"
run r as_dba rollback --json "$ID"
check "rollback of a CREATE TABLE that someone filled since is a conflict" \
  all [ "$RC" -ne 0 ] -- grep -q "changed since the action" <<<"$r$(cat "$T/stderr")"
check "... and the table keeps its row" [ "$(q "SELECT v FROM scratch")" = "someone else" ]
check "... and the action is still applied" [ "$(airlock show --json "$ID" | jq -r .status)" = applied ]

digest=$(users_digest)
columns=$(users_columns)
approved "ALTER TABLE users DROP COLUMN status"
check "ALTER TABLE DROP COLUMN is applied" [ "$(users_columns)" != "$columns" ]
run r as_dba rollback --json "$ID"
check "rollback brings the column and its data back, byte for byte" \
  all [ "$RC" -eq 0 ] -- [ "$(users_columns)" = "$columns" ] -- [ "$(users_digest)" = "$digest" ]
check "... with the primary key and airlock's capture trigger" \
  [ "$(q "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = 'users'::regclass AND indisprimary) || ',' || (SELECT count(*) FROM pg_trigger WHERE tgname = 'airlock_capture' AND tgrelid = 'users'::regclass)")" = "1,1" ]

approved "ALTER TABLE users ADD COLUMN note text"
check "ALTER TABLE ADD COLUMN is applied" [ "$(q "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'note'")" = 1 ]
q "UPDATE users SET name = 'changed by the app' WHERE id = 4"
digest=$(users_digest)
run r as_dba rollback --json "$ID"
check "rollback of an ALTER TABLE whose rows changed since is a conflict" \
  all [ "$RC" -ne 0 ] -- grep -q "changed since the action" <<<"$r$(cat "$T/stderr")"
check "... and nothing changed: the column and the new value stay" \
  all [ "$(users_digest)" = "$digest" ] -- [ "$(q "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'note'")" = 1 ]
q "ALTER TABLE users DROP COLUMN note"

q "CREATE TABLE events(id int PRIMARY KEY, at timestamptz NOT NULL, took interval, score float8);
   INSERT INTO events VALUES (1, '2026-01-02 03:04:05.678+00', '90 minutes', 0.1), (2, now(), NULL, 1e-7)"
export PGTZ=UTC
approved "ALTER TABLE events ALTER COLUMN score TYPE numeric"
export PGTZ=Asia/Tokyo
run r as_dba rollback --json "$ID"
unset PGTZ
check "an ALTER TABLE applied in one time zone rolls back from another (the fingerprint does not depend on it)" \
  all [ "$RC" -eq 0 ] -- [ "$(q "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'events'::regclass AND attname = 'score'")" = "double precision" ]

approved "CREATE INDEX users_name ON users(name)"
check "CREATE INDEX is applied" [ "$(q "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name'")" = 1 ]
run r as_dba rollback --json "$ID"
check "rollback of CREATE INDEX drops the index" all [ "$RC" -eq 0 ] -- [ "$(q "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_name'")" = 0 ]

approved "DROP INDEX logs_line"
check "DROP INDEX is applied" [ "$(q "SELECT count(*) FROM pg_indexes WHERE indexname = 'logs_line'")" = 0 ]
run r as_dba rollback --json "$ID"
check "rollback of DROP INDEX recreates it" all [ "$RC" -eq 0 ] -- [ "$(q "SELECT indexdef FROM pg_indexes WHERE indexname = 'logs_line'")" = "CREATE INDEX logs_line ON public.logs USING btree (line)" ]

q "CREATE TABLE codes(code text); CREATE UNIQUE INDEX codes_code ON codes(code);
   CREATE TABLE uses(code text REFERENCES codes(code))"
approved "DROP INDEX codes_code CASCADE"
check "DROP INDEX CASCADE is applied, taking the foreign key with it" [ "$(q "SELECT count(*) FROM pg_constraint WHERE conrelid = 'uses'::regclass AND contype = 'f'")" = 0 ]
run r as_dba rollback --json "$ID"
check "... and its rollback is refused as irreversible: the foreign key would not come back" \
  all [ "$RC" -ne 0 ] -- grep -q "no pre-image of public.codes_code" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT count(*) FROM pg_indexes WHERE indexname = 'codes_code'")" = 0 ]

q "CREATE VIEW active_users AS SELECT id, name FROM users WHERE status = 'active'"
view=$(q "SELECT pg_get_viewdef('active_users'::regclass)")
active=$(q "SELECT count(*) FROM active_users")
approved "DROP VIEW active_users"
check "DROP VIEW is applied" [ "$(q "SELECT to_regclass('active_users') IS NULL")" = t ]
run r as_dba rollback --json "$ID"
check "rollback of DROP VIEW recreates it as it was" \
  all [ "$RC" -eq 0 ] -- [ "$(q "SELECT pg_get_viewdef('active_users'::regclass)")" = "$view" ] -- [ "$(q "SELECT count(*) FROM active_users")" = "$active" ]
approved "DROP VIEW active_users"
q "CREATE VIEW active_users AS SELECT 1 AS one"
run r as_dba rollback --json "$ID"
check "rollback of DROP VIEW whose name is taken again is a conflict; nothing changes" \
  all [ "$RC" -ne 0 ] -- grep -q "exists again" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT one FROM active_users")" = 1 ]
q "DROP VIEW active_users"
q "CREATE VIEW active_users AS SELECT id FROM users"
approved "CREATE OR REPLACE VIEW active_users AS SELECT id, name FROM users"
run r as_dba rollback --json "$ID"
check "CREATE OR REPLACE VIEW over an existing view is irreversible: the old view is not dropped" \
  all [ "$RC" -ne 0 ] -- grep -q "create_view public.active_users is not undone" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT count(*) FROM information_schema.columns WHERE table_name = 'active_users'")" = 2 ]
q "DROP VIEW active_users"
approved "CREATE VIEW recent_users AS SELECT id FROM users WHERE id > 40"
q "CREATE OR REPLACE VIEW recent_users AS SELECT id FROM users WHERE id > 45"
run r as_dba rollback --json "$ID"
check "rollback of a created view that someone replaced since is a conflict; the view stays" \
  all [ "$RC" -ne 0 ] -- grep -q "replaced since" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT count(*) FROM recent_users")" = 5 ]
q "DROP VIEW recent_users"

q "CREATE SEQUENCE order_no START 100; SELECT nextval('order_no'), nextval('order_no')" >/dev/null
approved "DROP SEQUENCE order_no"
check "DROP SEQUENCE is applied" [ "$(q "SELECT to_regclass('order_no') IS NULL")" = t ]
run r as_dba rollback --json "$ID"
check "rollback of DROP SEQUENCE recreates it where it stood" all [ "$RC" -eq 0 ] -- [ "$(q "SELECT nextval('order_no')")" = 102 ]

q "CREATE VIEW user_names AS SELECT name FROM users"
approved "ALTER TABLE users ADD COLUMN flag int"
run r as_dba rollback --json "$ID"
check "an ALTER TABLE of a table a view depends on is irreversible, saying so" \
  all [ "$RC" -ne 0 ] -- grep -q "no pre-image of public.users" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'flag'")" = 1 ]
q "DROP VIEW user_names; ALTER TABLE users DROP COLUMN flag"

approved "CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'"
check "CREATE FUNCTION is applied" [ "$(q "SELECT answer()")" = 42 ]
run r as_dba rollback --json "$ID"
check "rollback of a created function is refused as irreversible, saying why" \
  all [ "$RC" -ne 0 ] -- grep -q "create_function public.answer() is not undone" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT answer()")" = 42 ]
approved "ALTER TABLE later_t RENAME TO renamed_t"
run r as_dba rollback --json "$ID"
check "rollback of a table RENAME is refused as irreversible" \
  all [ "$RC" -ne 0 ] -- grep -q "is not undone" <<<"$r$(cat "$T/stderr")" -- [ "$(q "SELECT to_regclass('renamed_t') IS NOT NULL")" = t ]

# --- The built-in MCP tools serve a postgres target too (raw JSON-RPC over stdio).
mcp_call() {  # mcp_call TOOL SQL: one session; prints every reply up to the tools/call's
  # stdin stays open until that reply came: at end of input the session ends at once.
  local line
  coproc MCP { AIRLOCK_TOKEN=$AGENT_TOKEN timeout 60 "$AIRLOCK_BIN" mcp stdio --server airlock 2>>"$OUT"; }
  printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"pg-test","version":"1"}}}' \
    '{"jsonrpc":"2.0","method":"notifications/initialized"}' '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
    "$(jq -cn --arg t "$1" --arg s "$2" '{jsonrpc:"2.0",id:3,method:"tools/call",params:{name:$t,arguments:{target:"app-pg",sql:$s}}}')" >&"${MCP[1]}"
  while IFS= read -r -t 60 line <&"${MCP[0]}"; do
    printf '%s\n' "$line"
    [ "$(jq -r .id <<<"$line" 2>/dev/null)" = 3 ] && break
  done
  eval "exec ${MCP[1]}>&-"
  wait "$MCP_PID" 2>/dev/null
}
mcp_out=$(mcp_call sql_query "SELECT name FROM users WHERE id = 12")
check "MCP tools/list offers sql_query on app-pg" \
  grep -q app-pg <<<"$(jq -c 'select(.id == 2) | .result.tools[] | select(.name == "sql_query") | .inputSchema.properties.target.enum' <<<"$mcp_out")"
check "MCP sql_query returns the row" grep -q "customer 12" <<<"$(jq -c 'select(.id == 3) | .result' <<<"$mcp_out")"
mcp_out=$(mcp_call sql_execute "UPDATE users SET name = 'via mcp' WHERE id = 12")
check "MCP sql_execute applies a low write" all [ "$(jq -r 'select(.id == 3) | .result.isError' <<<"$mcp_out")" = false ] -- [ "$(q "SELECT name FROM users WHERE id = 12")" = "via mcp" ]
printf '%s\n' "$mcp_out" >>"$OUT"

# --- Crash points: a process killed anywhere between "decided" and "recorded" leaves the
#     database and the store agreeing after the next command's recovery.
n=40
for point in gateway_after_claim postgres_apply_before_commit gateway_after_undo_saved \
             postgres_apply_after_commit gateway_after_target_commit; do
  n=$((n + 1))
  AIRLOCK_CRASH_AT=$point as_agent sql --json --target app-pg "UPDATE users SET name = 'crash $n' WHERE id = $n" >/dev/null 2>&1
  rc=$?
  id=$(store "SELECT id FROM actions ORDER BY created_ms DESC, rowid DESC LIMIT 1")
  airlock pending >/dev/null 2>&1  # any later command recovers first
  status=$(airlock show --json "$id" | jq -r .status)
  name=$(q "SELECT name FROM users WHERE id = $n")
  if [ "$name" = "crash $n" ]; then
    check "$point: died there (86); committed, and the store says applied" all [ "$rc" -eq 86 ] -- [ "$status" = applied ]
    run r as_dba rollback "$id"
    check "$point: the recovered action rolls back" all [ "$RC" -eq 0 ] -- [ "$(q "SELECT name FROM users WHERE id = $n")" = "customer $n" ]
  else
    check "$point: died there (86); untouched, and the store says failed" all [ "$rc" -eq 86 ] -- [ "$status" = failed ]
  fi
done
run out as_agent sql --json --target app-pg "UPDATE users SET name = 'kept' WHERE id = 46"
id=$(jf .id "$out")
for point in postgres_rollback_before_commit postgres_rollback_after_commit; do
  AIRLOCK_CRASH_AT=$point as_dba rollback "$id" >/dev/null 2>&1
  rc=$?
  airlock pending >/dev/null 2>&1
  status=$(airlock show --json "$id" | jq -r .status)
  if [ "$point" = postgres_rollback_before_commit ]; then
    check "rollback $point: died; still applied" all [ "$rc" -eq 86 ] -- [ "$status" = applied ] -- [ "$(q "SELECT name FROM users WHERE id = 46")" = kept ]
  else
    check "rollback $point: died; recovered as rolled back" all [ "$rc" -eq 86 ] -- [ "$status" = rolled_back ] -- [ "$(q "SELECT name FROM users WHERE id = 46")" = "customer 46" ]
  fi
done

# --- mode: dry-run never changes the target (as on SQLite): every write is previewed,
#     classified and audited, and denied with dry_run; reads still answer.
sed 's/^version: 1$/version: 1\nmode: dry-run/' "$T/airlock.yaml" > "$T/dry.yaml"
# (pg_dump brackets its output with a \restrict line holding a random key: left out.)
public_dump() {
  as_pg "$PG_BIN/pg_dump" -h "$PG_DIR" -p "$PGPORT" -U postgres --schema=public app |
    grep -v -E '^\\(un)?restrict '
}
before=$(public_dump)
for sql in "UPDATE users SET name = 'dry' WHERE id = 30" "DELETE FROM users" "DROP TABLE logs" \
    "ALTER TABLE users ADD COLUMN dry int"; do
  run out as_agent --config "$T/dry.yaml" sql --json --target app-pg "$sql"
  check "dry-run mode: '$sql' is not applied (denied, dry_run, would be $(jf .would_status "$out"))" \
    all [ "$(jf .status "$out")" = denied ] -- [ "$(jf .dry_run "$out")" = true ]
done
after=$(public_dump)
diff <(echo "$before") <(echo "$after") | head -20 | sed "s/^/# /"
check "dry-run mode: the public schema is byte-for-byte unchanged ($(wc -l <<<"$after") lines of pg_dump)" \
  all [ "$after" = "$before" ] -- grep -q "COPY public.users" <<<"$after"
run out as_agent --config "$T/dry.yaml" sql --json --target app-pg "SELECT count(*) FROM users"
check "dry-run mode: reads still answer" all [ "$RC" -eq 0 ] -- [ "$(jf '.result.rows[0][0]' "$out")" -gt 0 ]

# --- The DSN's password appears nowhere: outputs, errors, the store, the audit log.
APP_DB_DSN="${PG_DSN/password=$PG_PASSWORD/password=${PG_PASSWORD}x}"
run out as_agent sql --json --target app-pg "UPDATE users SET name = 'z' WHERE id = 11"
check "a wrong password fails closed" all [ "$RC" -ne 0 ] -- grep -qi "password authentication failed" <<<"$out$(cat "$T/stderr")"
APP_DB_DSN="$PG_DSN"
airlock audit log --json >>"$OUT" 2>&1
check "audit verify passes" airlock audit verify
check "the password is in no output, error or audit line" bash -c "! grep -qF -- '$PG_PASSWORD' '$OUT'"
check "the password is not in the store" bash -c "! grep -qaF -- '$PG_PASSWORD' '$T'/state/*"

# --- Uninstall removes everything, twice.
run out airlock pg uninstall --target app-pg
check "pg uninstall" [ "$RC" -eq 0 ]
run out airlock pg uninstall --target app-pg
check "pg uninstall again (idempotent)" [ "$RC" -eq 0 ]
check "no schema, trigger or event trigger is left" [ "$(q "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'airlock') + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'airlock%') + (SELECT count(*) FROM pg_event_trigger)")" = 0 ]
finish
