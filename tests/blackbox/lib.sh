# Shared helpers for the black-box tests: they drive the real `airlock` binary against real
# SQLite files, and print TAP-like lines and a closing "N passed, N failed".
set -u
# The caller's own airlock settings must not leak in (a token or policy exported in the shell
# that runs the tests): each test names its policy and passes its tokens itself.
unset AIRLOCK_TOKEN AIRLOCK_CONFIG AIRLOCK_SERVER
AIRLOCK_BIN=${AIRLOCK_BIN:?AIRLOCK_BIN must name the airlock binary}
SRC=${AIRLOCK_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PASSED=0
FAILED=0
T=$(mktemp -d /tmp/airlock-bb.XXXXXX)
trap 'rm -rf "$T"' EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok $((PASSED + FAILED)) - $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok $((PASSED + FAILED)) - $*"; }
check() {  # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

token() { printf 'alk_test_%s_%s' "$1" "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

AGENT_TOKEN=$(token agent)
OTHER_AGENT_TOKEN=$(token other)
DBA_TOKEN=$(token dba)
SEC_TOKEN=$(token sec)

# write_policy [EXTRA_YAML]: a policy for the test directory; EXTRA_YAML is appended.
write_policy() {
  cat > "$T/airlock.yaml" <<YAML
version: 1
mode: ${MODE:-enforce}
store: ./state/airlock.db
agents:
  - {name: support-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [app-db]}
  - {name: other-bot, token_sha256: "$(sha "$OTHER_AGENT_TOKEN")", scopes: [other-db]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
  - {name: security-lead, token_sha256: "$(sha "$SEC_TOKEN")"}
targets:
  app-db: {kind: sqlite, path: ./prod.db, environment: production}
  other-db: {kind: sqlite, path: ./other.db}
approvals: {low: 0, high: 1, critical: 2, timeout: ${TIMEOUT:-1h}}
${1:-}
YAML
  export AIRLOCK_CONFIG=$T/airlock.yaml
}

seed_db() {
  rm -f "$T/prod.db" "$T/prod.db-wal" "$T/prod.db-shm"
  sqlite3 "$T/prod.db" < "$SRC/examples/quickstart/seed.sql" >/dev/null
  sqlite3 "$T/other.db" "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)" >/dev/null
}

airlock() { "$AIRLOCK_BIN" "$@"; }
as_agent() { AIRLOCK_TOKEN=$AGENT_TOKEN "$AIRLOCK_BIN" "$@"; }
as_dba() { AIRLOCK_TOKEN=$DBA_TOKEN "$AIRLOCK_BIN" "$@"; }
as_sec() { AIRLOCK_TOKEN=$SEC_TOKEN "$AIRLOCK_BIN" "$@"; }

# run_json VAR CMD...: runs CMD, stores stdout in VAR and the exit code in RC.
RC=0
run_json() {
  local __var=$1; shift
  local __out
  __out=$("$@" 2>"$T/stderr")
  RC=$?
  printf -v "$__var" '%s' "$__out"
}
jf() { jq -r "$1" <<<"$2"; }  # jf FILTER JSON
# poll SECONDS CMD...: runs CMD every 0.1 s until it succeeds; fails after SECONDS.
poll() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

db() { sqlite3 "$T/prod.db" "$@"; }
store() { sqlite3 "$T/state/airlock.db" "$@"; }
dump_users() { sqlite3 "$T/prod.db" ".dump users"; }

# all CMD [ARGS] -- CMD [ARGS] ...: succeeds when every command succeeds. One check can hold
# several conditions this way; `check DESC A && B` would report only A and ignore B.
all() {
  local cmd=() arg
  for arg in "$@" --; do
    if [ "$arg" = -- ]; then
      "${cmd[@]}" || return 1
      cmd=()
    else
      cmd+=("$arg")
    fi
  done
}
