#!/usr/bin/env bash
# npm-ci.sh DIR PACKAGE...: installs the npm packages of DIR (tests/browser, tests/mcp) at the
# exact versions of DIR/package-lock.json into DIR/node_modules (git-ignored), and node and npm
# from Debian if npm is missing. Idempotent: installs nothing when node_modules matches the
# lock file (a stamp of its hash) and every PACKAGE named is there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REL=$1
shift
DIR="$ROOT/$REL"
STAMP="$DIR/node_modules/.airlock-installed-lock.sha256"
NAME="npm-ci $REL"

if ! command -v npm >/dev/null; then
  echo "$NAME: installing nodejs npm"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

want=$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)
present=1
for pkg in "$@"; do
  [ -f "$DIR/node_modules/$pkg/package.json" ] || present=0
done
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ "$present" = 1 ]; then
  echo "$NAME: node_modules up to date"
  exit 0
fi
echo "$NAME: npm ci ($*; pinned by package-lock.json)"
npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error
echo "$want" >"$STAMP"
