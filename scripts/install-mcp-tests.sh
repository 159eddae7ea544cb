#!/usr/bin/env bash
# Installs the MCP tests' npm packages (@modelcontextprotocol/sdk, server-everything and zod,
# at the exact versions of tests/mcp/package-lock.json) into tests/mcp/node_modules
# (git-ignored), and node and npm from Debian if npm is missing. tests/blackbox/mcp_test.sh
# drives `airlock mcp stdio` with them.
# Idempotent: installs nothing when node_modules matches the lock file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR="$ROOT/tests/mcp"
STAMP="$DIR/node_modules/.airlock-installed-lock.sha256"

if ! command -v npm >/dev/null; then
  echo "install-mcp-tests: installing nodejs npm"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

want=$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] &&
   [ -f "$DIR/node_modules/@modelcontextprotocol/sdk/package.json" ] &&
   [ -f "$DIR/node_modules/@modelcontextprotocol/server-everything/package.json" ]; then
  echo "install-mcp-tests: tests/mcp/node_modules up to date"
  exit 0
fi
echo "install-mcp-tests: npm ci in tests/mcp (@modelcontextprotocol/sdk, server-everything; pinned)"
npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error
echo "$want" >"$STAMP"
