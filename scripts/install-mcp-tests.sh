#!/usr/bin/env bash
# Installs the MCP tests' npm packages (the SDK, server-everything, server-filesystem, the
# Inspector CLI and mcp-proxy, pinned by tests/mcp/package-lock.json). tests/blackbox/mcp*_test.sh drive
# `airlock mcp stdio` with them; bench/mcp_bench.sh measures it.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/npm-ci.sh" tests/mcp \
  @modelcontextprotocol/sdk @modelcontextprotocol/server-everything \
  @modelcontextprotocol/inspector-cli @modelcontextprotocol/server-filesystem mcp-proxy
