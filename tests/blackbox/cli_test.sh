#!/usr/bin/env bash
# The CLI contract around the edges: help, usage errors, policy check, tokens, and a store
# that is corrupt or not airlock's.
source "$(dirname "$0")/lib.sh"
cd "$T"
seed_db
write_policy

for cmd in "" sql pending show approve reject rollback "breaker reset" "audit verify" "audit log" "policy check" "token new"; do
  # shellcheck disable=SC2086
  out=$(airlock $cmd --help 2>&1)
  check "'airlock $cmd --help' prints usage and exits 0" all [ $? -eq 0 ] -- grep -qi usage <<<"$out"
done
airlock frobnicate >/dev/null 2>&1
check "an unknown command exits 2" [ $? -eq 2 ]
airlock sql "SELECT 1" >/dev/null 2>&1
check "a missing --target exits 2" [ $? -eq 2 ]

check "policy check accepts the test policy" airlock policy check
printf 'version: 1\nagents:\n  - {name: a, token_sha256: "%s", scopes: [x]}\n  bogus: 1\n' "$(sha x)" > bad.yaml
out=$(airlock --config bad.yaml policy check 2>&1)
check "a bad policy exits 2" [ $? -eq 2 ]
check "the error names file:line:column" grep -qE 'bad\.yaml:[0-9]+:[0-9]+:' <<<"$out"
cat > two.yaml <<YAML
version: 1
approvers:
  - {name: solo, token_sha256: "$(sha solo)"}
targets: {}
approvals: {critical: 2}
YAML
out=$(airlock --config two.yaml policy check 2>&1)
check "a quorum larger than the approvers is refused with its location" \
  grep -qE 'two\.yaml:5:[0-9]+:' <<<"$out"
out=$(airlock --config two.yaml sql --target x "SELECT 1" 2>&1)
check "every command refuses a bad policy with exit 2" [ $? -eq 2 ]

tok=$(airlock token new --json)
t=$(jq -r .token <<<"$tok")
check "token new prints a token and its SHA-256" [ "$(jq -r .token_sha256 <<<"$tok")" = "$(sha "$t")" ]
check "two tokens differ" [ "$t" != "$(airlock token new --json | jq -r .token)" ]

# The store: created on first use; a corrupt or foreign file is never recreated over.
as_agent sql --target app-db "SELECT 1" >/dev/null
check "the store is created on first use" [ -s state/airlock.db ]
cp state/airlock.db good.db
head -c 8192 /dev/urandom > state/airlock.db
rm -f state/airlock.db-wal state/airlock.db-shm
sum=$(sha256sum state/airlock.db)
out=$(as_agent sql --target app-db "SELECT 1" 2>&1)
rc=$?
check "a corrupt store is a clear error (exit 1)" all [ $rc -eq 1 ] -- grep -q "airlock.db" <<<"$out"
check "the corrupt store is left as it was" [ "$(sha256sum state/airlock.db)" = "$sum" ]
sqlite3 state/airlock.db.foreign "CREATE TABLE customers(id INTEGER PRIMARY KEY)"
mv state/airlock.db.foreign state/airlock.db
sum=$(sha256sum state/airlock.db)
out=$(as_agent sql --target app-db "SELECT 1" 2>&1)
check "a foreign SQLite database is refused" all [ $? -eq 1 ] -- grep -qi "not an airlock store" <<<"$out"
check "the foreign database is left as it was" [ "$(sha256sum state/airlock.db)" = "$sum" ]
mv good.db state/airlock.db

# A store that was used (an applied write left its claim-lock file) and then deleted is an
# error, not a fresh empty history.
as_agent sql --target app-db "UPDATE users SET name = 'kept' WHERE id = 1" >/dev/null
mv state/airlock.db saved.db
rm -f state/airlock.db-wal state/airlock.db-shm
out=$(as_agent sql --target app-db "SELECT 1" 2>&1)
check "a deleted store is a clear error (exit 1)" all [ $? -eq 1 ] -- grep -q "is missing" <<<"$out"
check "the deleted store is not recreated" [ ! -e state/airlock.db ]
mv saved.db state/airlock.db
check "the restored store still verifies" airlock audit verify

printf 'version: 1\nmode: \xff\xfe\n' > nonutf8.yaml
out=$(airlock --config nonutf8.yaml policy check 2>&1)
check "a non-UTF-8 policy is a clear error (exit 2)" all [ $? -eq 2 ] -- grep -qi "utf-8" <<<"$out"
{ echo "version: 1"; echo "a: &a [x, x, x, x, x, x, x, x, x]"; for l in b c d e f g h i; do echo "$l: &$l [*a, *a, *a, *a, *a, *a, *a, *a, *a]"; done; } > laughs.yaml
out=$(timeout 20 "$AIRLOCK_BIN" --config laughs.yaml policy check 2>&1)
check "a billion-laughs policy is refused at once (exit 2)" all [ $? -eq 2 ] -- grep -qi "alias" <<<"$out"

rm -f prod.db
out=$(as_agent sql --target app-db "SELECT 1" 2>&1)
check "a missing target database is an error, never created" all [ $? -ne 0 ] -- [ ! -e prod.db ]
finish
