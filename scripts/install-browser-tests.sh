#!/usr/bin/env bash
# Installs the browser tests' npm packages (playwright-core, at the exact versions of
# tests/browser/package-lock.json) into tests/browser/node_modules (git-ignored), and node and
# npm from Debian if npm is missing. The browser itself is Debian's chromium
# (scripts/install-deps.sh); Playwright never downloads one (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD).
# Idempotent: installs nothing when node_modules matches the lock file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR="$ROOT/tests/browser"
STAMP="$DIR/node_modules/.airlock-installed-lock.sha256"

if ! command -v npm >/dev/null; then
  echo "install-browser-tests: installing nodejs npm"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

want=$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] &&
   [ -f "$DIR/node_modules/playwright-core/package.json" ]; then
  echo "install-browser-tests: tests/browser/node_modules up to date"
  exit 0
fi
echo "install-browser-tests: npm ci in tests/browser (playwright-core, pinned)"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error
echo "$want" >"$STAMP"
