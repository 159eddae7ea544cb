#!/usr/bin/env bash
# airlock store gc, through the real CLI and real sandboxes: what a pending action would
# commit and what an applied action would restore stay; the previews of rejected and
# rolled-back actions go; --dry-run and the default age remove nothing; the kept actions
# still approve and roll back byte for byte afterwards.
source "$(dirname "$0")/shell_lib.sh"
cd "$T"
make_repo
write_shell_policy

BLOBS=state/airlock.db.shell/repo/blobs
content_key() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
has_key() { [ -f "$BLOBS/${1:0:2}/$1" ]; }
has_blob() { has_key "$(content_key "$1")"; }
no_blob() { ! has_blob "$1"; }
blob_count() { find "$BLOBS" -type f -not -name '.*' | wc -l; }
readme_before=$(cat repo/README.md)
readme_key=$(sha256sum repo/README.md | cut -d' ' -f1)

# Rejected: the content it would have written is needed by no one.
run_json out as_agent exec --json --target repo -- sh -c 'printf rejected-content > r.txt; rm -rf src'
rejected=$(jf .id "$out")
check "the rejected-to-be command waits (pending)" [ "$RC" -eq 10 ]
as_dba reject "$rejected" >/dev/null
# Pending: its content is what an approval will commit.
run_json out as_agent exec --json --target repo -- sh -c 'printf pending-content > p.txt; rm -rf src'
pending=$(jf .id "$out")
check "the second command waits (pending)" [ "$RC" -eq 10 ]
# Applied: README.md's old bytes are its undo.
run_json out as_agent exec --json --target repo -- sed -i s/foo/bar/ README.md
applied=$(jf .id "$out")
check "sed -i is applied at once" all [ "$RC" -eq 0 ] -- [ "$(jf .status "$out")" = applied ]
# Applied, then rolled back: nothing needs its content any more.
run_json out as_agent exec --json --target repo -- sh -c 'printf rolled-back-content > rb.txt'
rolled=$(jf .id "$out")
as_dba rollback "$rolled" >/dev/null
check "the fourth command is rolled back" [ ! -e repo/rb.txt ]

check "the store holds all four commands' content" all has_blob rejected-content -- has_blob pending-content -- has_key "$readme_key" -- has_blob rolled-back-content
total=$(blob_count)

run_json out airlock store gc --json
check "gc with the default age (24 h) exits 0" [ "$RC" -eq 0 ]
check "... and keeps everything written today" all [ "$(jf '.targets[] | select(.target == "repo") | .blobs_removed' "$out")" = 0 ] -- [ "$(blob_count)" = "$total" ]
check "... and reports every shell target" [ "$(jf '[.targets[].target] | sort | join(",")' "$out")" = "gone,linked,repo,tight" ]

# Two days pass (for the store's files): gc's default age (24 h) now lets them go.
find state/airlock.db.shell -type f -exec touch -h -d '2 days ago' {} +
run_json out airlock store gc --dry-run --json
would=$(jf '.targets[] | select(.target == "repo") | .blobs_removed' "$out")
check "gc --dry-run counts what would go" all [ "$RC" -eq 0 ] -- [ "$would" -ge 4 ] -- [ "$(jf .dry_run "$out")" = true ]
check "... and removes nothing" [ "$(blob_count)" = "$total" ]

run_json out airlock store gc --json
check "gc removes what it counted" all [ "$RC" -eq 0 ] -- [ "$(jf '.targets[] | select(.target == "repo") | .blobs_removed' "$out")" = "$would" ]
check "... and the store is smaller by that" [ "$(blob_count)" = "$((total - would))" ]
check "the rejected action's content is gone" no_blob rejected-content
check "the rolled-back action's content is gone" no_blob rolled-back-content
check "the pending action's content stays" has_blob pending-content
check "the applied action's pre-image stays" has_key "$readme_key"

run_json out airlock store gc --json
check "a second gc finds nothing more" [ "$(jf '.targets[] | select(.target == "repo") | .blobs_removed' "$out")" = 0 ]

# The kept records still do their work.
run_json out as_dba rollback --json "$applied"
check "the applied action still rolls back" all [ "$RC" -eq 0 ] -- [ "$(cat repo/README.md)" = "$readme_before" ]
run_json out as_dba approve --json "$pending"
check "the pending action still commits its previewed bytes" all [ "$RC" -eq 0 ] -- [ "$(jf .status "$out")" = applied ] -- [ "$(cat repo/p.txt)" = pending-content ] -- [ ! -e repo/src ]
run_json out as_dba rollback --json "$pending"
check "... and rolls back" all [ "$RC" -eq 0 ] -- [ -d repo/src ] -- [ ! -e repo/p.txt ]

# A new command after gc stores its content again, even content gc removed.
run_json out as_agent exec --json --target repo -- sh -c 'printf rejected-content > again.txt'
check "content gc removed is stored again when a new command writes it" all [ "$RC" -eq 0 ] -- has_blob rejected-content
as_dba rollback "$(jf .id "$out")" >/dev/null

check "the audit chain still verifies" as_dba audit verify

# airlock serve runs the same gc in the background (--gc-every): a rejected command's
# content goes, a pending one's stays, and the server says what it removed.
run_json out as_agent exec --json --target repo -- sh -c 'printf served-rejected > s1.txt; rm -rf src'
as_dba reject "$(jf .id "$out")" >/dev/null
run_json out as_agent exec --json --target repo -- sh -c 'printf served-pending > s2.txt; rm -rf src'
served_pending=$(jf .id "$out")
check "two more commands wait; one of them is rejected" all has_blob served-rejected -- has_blob served-pending
find state/airlock.db.shell -type f -exec touch -h -d '2 days ago' {} +
"$AIRLOCK_BIN" serve --listen 127.0.0.1:0 --gc-every 1s 2>"$T/serve-gc.log" &
SERVE_PID=$!
poll 30 no_blob served-rejected
check "the server's background gc removes the rejected command's content" no_blob served-rejected
check "... keeps the pending one's" has_blob served-pending
said_removed() { grep -q "airlock: serve: store gc removed [1-9]" "$T/serve-gc.log"; }
poll 30 said_removed
check "... and says so on stderr" said_removed
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
as_dba reject "$served_pending" >/dev/null
"$AIRLOCK_BIN" serve --listen 127.0.0.1:0 --gc-every 10ms >/dev/null 2>"$T/err"
rc=$?
check "serve refuses a gc interval under a second (exit 2)" all [ "$rc" -eq 2 ] -- grep -qe --gc-every "$T/err"
"$AIRLOCK_BIN" serve --listen 127.0.0.1:0 --gc-every 400d >/dev/null 2>"$T/err"
rc=$?
check "... and one over a year (exit 2)" all [ "$rc" -eq 2 ] -- grep -q "from 1s to 365d" "$T/err"
airlock serve --help >"$T/serve-help.txt"
check "serve --help describes --gc-every and --gc-older-than" \
  all grep -qe --gc-every "$T/serve-help.txt" -- grep -qe --gc-older-than "$T/serve-help.txt"

# Usage.
text=$(airlock store gc --dry-run)
check "the text report names the target and what it would remove" grep -q "shell target repo: would remove" <<<"$text"
airlock store gc --older-than 0 >/dev/null 2>&1
check "an age under an hour is a usage error (exit 2)" [ $? -eq 2 ]
airlock store gc --server http://127.0.0.1:1 >/dev/null 2>"$T/err"
rc=$?
check "gc refuses --server (exit 2)" all [ "$rc" -eq 2 ] -- grep -q "without --server" "$T/err"
check "gc has --help" grep -q -- "--older-than" <<<"$(airlock store gc --help)"
finish
