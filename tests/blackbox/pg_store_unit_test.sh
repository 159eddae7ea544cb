#!/usr/bin/env bash
# The PostgreSQL store's unit tests (src/store/pg_store_test.cc) need a real server: this
# starts a private one and runs them against it. They must run, not skip.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pg_lib.sh"
UNIT=$(dirname "$AIRLOCK_BIN")/airlock_tests
if [ ! -x "$UNIT" ]; then not_ok "airlock_tests is built beside $AIRLOCK_BIN"; finish; fi
pg_test_begin
pg_sql postgres "CREATE DATABASE unit OWNER app" >/dev/null
export AIRLOCK_TEST_PG_DSN=${PG_DSN/dbname=app/dbname=unit}
out=$("$UNIT" --gtest_filter='PgStoreTest.*' 2>&1)
rc=$?
echo "$out" | grep -E '^\[ +(OK|FAILED|SKIPPED) +\]' | sed 's/^/# /'
n=$(grep -c '^\[       OK \] PgStoreTest\.' <<<"$out")
check "the PostgreSQL store's unit tests pass against a real server ($n ran)" \
  all test "$rc" = 0 -- test "$n" -ge 2 -- bash -c "! grep -q SKIPPED <<<\"\$1\"" _ "$out"
finish
