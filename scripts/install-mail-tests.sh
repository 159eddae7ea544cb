#!/usr/bin/env bash
# Installs the mail tests' npm package (smtp-server, pinned by tests/mail/package-lock.json).
# tests/blackbox/mail_test.sh sends through airlock to it (tests/mail/smtp_sink.mjs), and
# bench/mail_bench.sh measures a send against curl --mail-rcpt to it.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/npm-ci.sh" tests/mail smtp-server
