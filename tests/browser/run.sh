#!/usr/bin/env bash
# Browser tests of the approvers' web page (ctest: browser.ui): node's test runner with
# playwright-core driving Debian's chromium headless against a real `airlock serve`.
# Needs AIRLOCK_BIN; AIRLOCK_ARTIFACTS_DIR overrides where screenshots go (default:
# test-artifacts/ beside the binary, i.e. in the build directory).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${AIRLOCK_BIN:?AIRLOCK_BIN must name the airlock binary}"
export AIRLOCK_SOURCE_DIR=${AIRLOCK_SOURCE_DIR:-$ROOT}
# Playwright drives the system's chromium; it must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
CHROMIUM=${AIRLOCK_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  echo "browser tests: $CHROMIUM is missing (scripts/install-deps.sh installs Debian's chromium)" >&2
  exit 1
fi
# The npm packages at the versions of package-lock.json (quick when they are there already).
bash "$ROOT/scripts/install-browser-tests.sh" >&2
cd "$HERE"
exec node --test --test-reporter=spec ui.test.mjs
