#!/usr/bin/env bash
# Installs the browser tests' npm packages (playwright-core, pinned by
# tests/browser/package-lock.json). The browser itself is Debian's chromium
# (scripts/install-deps.sh); Playwright never downloads one.
set -euo pipefail
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 exec bash "$(dirname "${BASH_SOURCE[0]}")/npm-ci.sh" \
  tests/browser playwright-core
