# Shared by the MCP black-box tests (sourced after lib.sh): the npm parts, the tokens' roles,
# and the policy both tests use.
MCP=$SRC/tests/mcp
EVERYTHING=$MCP/node_modules/@modelcontextprotocol/server-everything/dist/index.js

# require_mcp_packages PACKAGE...: skip the test (exit 0) when node or a package of tests/mcp
# is missing, except under CI, where that is a failure.
require_mcp_packages() {
  local pkg missing=""
  command -v node >/dev/null || missing="node"
  for pkg in "$@"; do
    [ -f "$MCP/node_modules/$pkg/package.json" ] || missing="$missing $pkg"
  done
  [ -z "$missing" ] && return 0
  if [ -z "${CI:-}" ]; then
    echo "skipped: missing $missing (run scripts/install-mcp-tests.sh or make deps)"
    exit 0
  fi
  echo "not ok - missing $missing under CI (scripts/install-mcp-tests.sh)"
  exit 1
}

MAIL_TOKEN=$AGENT_TOKEN        # agent mail-bot, scoped to the MCP servers mail and everything
OTHER_TOKEN=$OTHER_AGENT_TOKEN # agent other-bot, scoped to an SQLite target only
ALICE_TOKEN=$DBA_TOKEN         # approver alice
BOB_TOKEN=$SEC_TOKEN           # approver bob
sqlite3 "$T/other.db" "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)" >/dev/null

# mcp_policy FILE STORE MAIL_LOG APPROVAL_WAIT: the policy of these tests.
mcp_policy() {
  cat > "$1" <<YAML
version: 1
store: $2
agents:
  - {name: mail-bot, token_sha256: "$(sha "$MAIL_TOKEN")", scopes: [mail, everything]}
  - {name: other-bot, token_sha256: "$(sha "$OTHER_TOKEN")", scopes: [other-db]}
approvers:
  - {name: alice, token_sha256: "$(sha "$ALICE_TOKEN")"}
  - {name: bob, token_sha256: "$(sha "$BOB_TOKEN")"}
targets:
  other-db: {kind: sqlite, path: $T/other.db}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
mcp_servers:
  mail:
    command: [node, "$MCP/mail_server.mjs"]
    env: {MAIL_LOG: "$3"}
    approval_wait: $4
    tools:
      - {tool: send_email, risk: low, reason: "one reply"}
      - {tool: send_email, args: {"/to": {count_gt: 1}}, risk: high, reason: "batch send"}
      - {tool: whoami_env, risk: read}
      - {tool: crash, risk: read}
  everything:
    command: [node, "$EVERYTHING", stdio]
    tools:
      - {tool: echo, risk: read}
      - {tool: "*", risk: low}
limits:
  - {match: {target: mail}, rate: 20/min, on_exceed: trip}
YAML
}

# start_everything_http: server-everything's own streamable HTTP server on a free port of
# 127.0.0.1, for `url:` upstreams. Sets EPORT and EVERYTHING_PID (the caller stops it) and
# waits until it listens (30 s at most; its output is in $T/everything-http.log); returns 1
# if it never did.
start_everything_http() {
  EPORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  (PORT=$EPORT exec node "$EVERYTHING" streamableHttp >"$T/everything-http.log" 2>&1) &
  EVERYTHING_PID=$!
  local i
  for i in $(seq 1 300); do grep -q "listening" "$T/everything-http.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "# server-everything did not listen on $EPORT in 30 s: $(tail -5 "$T/everything-http.log")"
  return 1
}
