#!/usr/bin/env bash
# Installs the peer sandboxes that bench/shell_peers.sh times against `airlock exec`:
#   Debian: bubblewrap (bwrap; codex's Linux sandbox uses /usr/bin/bwrap too), socat and
#           ripgrep (srt needs both: socat bridges its proxies into the sandbox, rg scans for
#           files to protect), nodejs + npm only if npm is missing.
#   npm:    @openai/codex and @anthropic-ai/sandbox-runtime (srt), at the exact versions of
#           bench/peers/package-lock.json, into bench/peers/node_modules (git-ignored).
# Only `make bench` / `make bench-shell` run this; `make test` never does.
# Idempotent: installs nothing when the packages are there and the lock file is unchanged.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS="$ROOT/bench/peers"
STAMP="$PEERS/node_modules/.airlock-installed-lock.sha256"

PACKAGES=(bubblewrap socat ripgrep)
command -v npm >/dev/null || PACKAGES+=(nodejs npm)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-bench-peers: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

want=$(sha256sum "$PEERS/package-lock.json" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] &&
   [ -x "$PEERS/node_modules/.bin/codex" ] && [ -x "$PEERS/node_modules/.bin/srt" ]; then
  echo "install-bench-peers: bwrap, socat, rg and bench/peers/node_modules present"
  exit 0
fi
echo "install-bench-peers: npm ci --prefix bench/peers (codex and srt, pinned; ~450 MB)"
# srt 0.0.83 declares node >= 22.12 (an EBADENGINE warning on older node); it runs on node 20.
npm ci --prefix "$PEERS" --no-audit --no-fund --loglevel=error
echo "$want" >"$STAMP"
