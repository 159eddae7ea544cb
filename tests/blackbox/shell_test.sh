#!/usr/bin/env bash
# Issue 3's scenario and the shell connector's contract, through the real CLI and a real
# sandbox: rm -rf waits as high and touches nothing; show lists what would go; approval
# commits exactly that; rollback restores it byte for byte with modes. sed -i is low and
# shows its diff; grep is a read with grep's own exit code. The workspace changing between
# preview and commit, a crash mid-commit, rollback conflicts and bad input.
source "$(dirname "$0")/shell_lib.sh"
cd "$T"
make_repo
write_shell_policy

# ---- rm -rf src: high, pending, nothing happens -----------------------------------------
before=$(tree_sig repo)
run_json out as_agent exec --json --target repo -- sh -c 'rm -rf src && echo done'
id=$(jf .id "$out")
check "rm -rf src exits 10 (pending)" [ "$RC" -eq 10 ]
check "rm -rf src is high and pending" all [ "$(jf .risk "$out")" = high ] -- [ "$(jf .status "$out")" = pending ]
check "the reason counts the deletions" grep -q "deletes 32 paths (more than 20) is high" <<<"$(jf '.reasons[]' "$out")"
check "src/ is untouched" [ "$(tree_sig repo)" = "$before" ]
check "the effect counts 32 deleted paths (29 files, src and src/lib)" all [ "$(jf .effect.extra.deleted "$out")" = 32 ] -- [ "$(jf .effect.files_changed "$out")" = 32 ]
check "the sandboxed run's output is in the effect" [ "$(jf .effect.extra.stdout_head "$out")" = done ]
show=$(as_dba show "$id")
check "show counts the deletions" grep -q "32 paths: 0 added, 0 changed, 32 deleted" <<<"$show"
missing=0
for f in $(cd repo && find src -mindepth 1); do grep -q -- "- deleted  $f " <<<"$show" || missing=$((missing + 1)); done
check "show lists every file that would be deleted" [ "$missing" = 0 ]
check "show names the command" grep -q "command   sh -c 'rm -rf src && echo done'" <<<"$show"

run_json v as_dba approve --json "$id"
check "approval applies it (exit 0)" all [ "$RC" -eq 0 ] -- [ "$(jf .status "$v")" = applied ]
check "src/ is gone" [ ! -e repo/src ]
check "everything else is exactly as before" [ "$(tree_sig repo)" = "$(grep -v '^\./src' <<<"$before")" ]

run_json r as_dba rollback --json "$id"
check "rollback succeeds" all [ "$RC" -eq 0 ] -- [ "$(jf .status "$r")" = rolled_back ]
check "rollback restores src/ byte for byte, with modes" [ "$(tree_sig repo)" = "$before" ]
check "the executable keeps mode 0755" [ "$(stat -c %a repo/src/build.sh)" = 755 ]
check "the private header keeps mode 0600" [ "$(stat -c %a repo/src/lib/private.h)" = 600 ]

# ---- approval commits the previewed bytes; the command is not run again -----------------
run_json out as_agent exec --json --target repo -- sh -c 'rm -rf src; date +%s%N > stamp'
id=$(jf .id "$out")
previewed=$(jf '.effect.files[] | select(.path == "stamp") | .diff' "$out" | sed -n 's/^+\([0-9]\)/\1/p')
sleep 0.2
as_dba approve "$id" >/dev/null
check "the committed file holds the previewed output, not a new run's" all [ -n "$previewed" ] -- [ "$(cat repo/stamp)" = "$previewed" ]
as_dba rollback "$id" >/dev/null
check "its rollback restores the tree" [ "$(tree_sig repo)" = "$before" ]

# A command's bytes pass through unchanged, even when they are not UTF-8.
as_agent exec --target repo -- sh -c 'printf "\377\376bin\n"' > bytes.out
check "binary output is passed through byte for byte" [ "$(od -An -tx1 bytes.out | tr -d ' \n')" = fffe62696e0a ]

# ---- a large deletion shows the first N and the count -------------------------------------
mkdir -p repo/many && for i in $(seq 1 120); do echo "$i" > "repo/many/f$i"; done
run_json out as_agent exec --json --target repo -- rm -rf many
show=$(as_dba show "$(jf .id "$out")")
check "a 121-path deletion shows the first 50 and the total" grep -q "changes (first 50 of 121)" <<<"$show"
check "the JSON effect lists 50 and counts the rest" all [ "$(jf '.effect.files | length' "$out")" = 50 ] -- [ "$(jf .effect.preview_omitted "$out")" = 71 ]
as_dba reject "$(jf .id "$out")" >/dev/null
rm -rf repo/many

# ---- sed -i: low, committed at once, diff shown ------------------------------------------
run_json out as_agent exec --json --target repo -- sed -i s/foo/bar/ README.md
sed_id=$(jf .id "$out")
check "sed -i is low and applied at once (exit 0)" all [ "$RC" -eq 0 ] -- [ "$(jf .risk "$out")" = low ] -- [ "$(jf .status "$out")" = applied ]
check "README.md changed on the host" [ "$(cat repo/README.md)" = "$(printf '# demo\nbar is here\nand bar again')" ]
show=$(as_dba show "$sed_id")
printf '%s\n' "$show" > show.txt
check "show prints the unified diff" all grep -qF -e "--- a/README.md" show.txt -- grep -qF -e "-foo is here" show.txt -- grep -qF -e "+bar is here" show.txt
check "the diff is in the JSON effect" grep -q "@@" <<<"$(jf '.effect.files[0].diff' "$out")"

# Rollback refuses when the file changed since the commit, and names it.
echo "edited by a person" >> repo/README.md
edited=$(tree_sig repo)
run_json r as_dba rollback --json "$sed_id"
check "rollback of a since-edited file is refused" all [ "$RC" -ne 0 ] -- grep -q "README.md" <<<"$r$(cat "$T/stderr")"
check "the refused rollback changed nothing" [ "$(tree_sig repo)" = "$edited" ]
make_repo
before=$(tree_sig repo)

# ---- grep: a read with grep's own exit code ------------------------------------------------
out=$(as_agent exec --target repo -- grep -r foo README.md); rc=$?
check "grep prints its output and exits 0" all [ "$rc" -eq 0 ] -- grep -q "foo is here" <<<"$out"
as_agent exec --target repo -- grep -q nothing-matches README.md; rc=$?
check "grep without a match exits 1, grep's own code" [ "$rc" -eq 1 ]
run_json out as_agent exec --json --target repo -- grep -r foo .
check "grep is a read" all [ "$(jf .risk "$out")" = read ] -- [ "$(jf .status "$out")" = applied ] -- [ "$(jf .result.exit_code "$out")" = 0 ]
rid=$(jf .id "$out")
check "a read is recorded as a read, not a write" all grep -q '"event":"read"' <<<"$(as_dba audit log --json --action "$rid")" -- [ "$(store "SELECT count(*) FROM undo WHERE action_id = '$rid'")" = 0 ]
check "the store keeps the read's exit, not its output" [ "$(store "SELECT count(*) FROM actions WHERE id = '$rid' AND body LIKE '%foo is here%'")" = 0 ]
check "reads changed nothing" [ "$(tree_sig repo)" = "$before" ]

# ---- protected paths ------------------------------------------------------------------------
run_json out as_agent exec --json --target repo -- sh -c 'echo "[x]" >> .git/config'
check "a change under .git is high" all [ "$RC" -eq 10 ] -- grep -q "protected path .git/config" <<<"$(jf '.reasons[]' "$out")"
as_dba reject "$(jf .id "$out")" >/dev/null
run_json out as_agent exec --json --target repo -- sh -c 'echo K=V > .env.local'
check "a new .env file is high" [ "$(jf .risk "$out")" = high ]
as_dba reject "$(jf .id "$out")" >/dev/null

# ---- the workspace changed between preview and commit: effect_changed --------------------
run_json out as_agent exec --json --target repo -- rm -rf src
id=$(jf .id "$out")
echo "// edited after the preview" >> repo/src/file01.c
edited=$(tree_sig repo)
run_json v as_dba approve --json "$id"
check "approval after the workspace changed: effect_changed (exit 11)" all [ "$RC" -eq 11 ] -- [ "$(jf .status "$v")" = effect_changed ]
check "the observed difference names the file" grep -q "src/file01.c" <<<"$v"
check "nothing was applied" [ "$(tree_sig repo)" = "$edited" ]
make_repo

# TOCTOU: a directory swapped for a symlink to outside between preview and commit.
mkdir -p outside
run_json out as_agent exec --json --target repo -- sh -c 'rm -rf src/lib && mkdir src/lib && echo planted > src/lib/x && rm src/file*'
id=$(jf .id "$out")
check "the swap scenario is pending" [ "$RC" -eq 10 ]
rm -rf repo/src/lib && ln -s "$T/outside" repo/src/lib
run_json v as_dba approve --json "$id"
check "a directory swapped for a symlink: effect_changed" [ "$(jf .status "$v")" = effect_changed ]
check "nothing was written through the symlink" [ -z "$(ls -A outside)" ]
make_repo

# ---- crash in the middle of a commit: reverted at the next start --------------------------
before=$(tree_sig repo)
for point in shell_apply_mid shell_apply_before_marker; do
  run_json out as_agent exec --json --target repo -- rm -rf src
  id=$(jf .id "$out")
  AIRLOCK_CRASH_AT=$point as_dba approve "$id" >/dev/null 2>&1; rc=$?
  check "$point: the approver's process died there (exit 86)" [ "$rc" -eq 86 ]
  airlock pending >/dev/null
  check "$point: recovered as failed" [ "$(airlock show --json "$id" | jq -r .status)" = failed ]
  check "$point: the half-applied deletion was reverted, byte for byte" [ "$(tree_sig repo)" = "$before" ]
  check "$point: no journal left" [ -z "$(ls -A state/airlock.db.shell/repo/journal 2>/dev/null)" ]
done
run_json out as_agent exec --json --target repo -- rm -rf src
id=$(jf .id "$out")
AIRLOCK_CRASH_AT=gateway_after_target_commit as_dba approve "$id" >/dev/null 2>&1
airlock pending >/dev/null
check "crash after the commit: recovered as applied" all [ "$(airlock show --json "$id" | jq -r .status)" = applied ] -- [ ! -e repo/src ]
run_json r as_dba rollback "$id"
check "the recovered commit rolls back" [ "$(tree_sig repo)" = "$before" ]
AIRLOCK_CRASH_AT=shell_rollback_mid as_dba rollback "$id" >/dev/null 2>&1
check "audit verifies after all of it" airlock audit verify

# ---- bad input: a clear error and exit 2 ---------------------------------------------------
as_agent exec --target repo -- 2>err; rc=$?
check "an empty command: exit 2 with a message" all [ "$rc" -eq 2 ] -- grep -qi "empty command" err
as_agent exec --target repo -- no-such-binary-xyz 2>err; rc=$?
check "a missing binary: exit 2, 'command not found'" all [ "$rc" -eq 2 ] -- grep -q "command not found: no-such-binary-xyz" err
as_agent exec --target gone -- true 2>err; rc=$?
check "a missing workspace: exit 2" all [ "$rc" -eq 2 ] -- grep -q "does not exist" err
ln -s repo repo-link
as_agent exec --target linked -- true 2>err; rc=$?
check "a workspace that is a symlink: exit 2" all [ "$rc" -eq 2 ] -- grep -q "is a symlink" err
as_agent exec --target repo 2>err; rc=$?
check "exec without a command: exit 2" [ "$rc" -eq 2 ]
check "exec --help explains itself" grep -q -- "--target" <<<"$(airlock exec --help)"

# ---- a denied exec: the sandbox built while the store opened goes, unrun -------------------
# (exec builds its sandbox before it has authenticated the caller; the command waits in it.)
AIRLOCK_TOKEN=alk_not_a_token airlock exec --target repo -- sh -c 'echo ran' >out 2>err; rc=$?
check "a wrong token: exit 11, and the command printed nothing" all [ "$rc" -eq 11 ] -- [ ! -s out ] -- grep -q "authentication failed" err
as_dba exec --target repo -- sh -c 'echo ran' >out 2>err; rc=$?
check "an approver cannot exec: exit 11, and the command printed nothing" all [ "$rc" -eq 11 ] -- [ ! -s out ] -- grep -q "only agents may" err
# AIRLOCK_TRACE marks each step on one clock, in every process: the sandbox is built while
# the store opens, and the command starts only after the caller was authenticated.
rm -f trace.log
AIRLOCK_TRACE=$T/trace.log as_agent exec --target repo -- true
mark() { awk -v m="$1" '{ n = $0; sub(/^[0-9]+ [0-9]+ /, "", n) } n == m { print $2; exit }' trace.log; }
check "traced: the sandbox was being built before the store was open" all [ -n "$(mark 'sandbox: supervisor forked')" ] -- [ "$(mark 'sandbox: supervisor forked')" -lt "$(mark 'gateway: store open')" ]
check "traced: the command started after authentication" all [ -n "$(mark 'init: start')" ] -- [ "$(mark 'gateway: authenticated, in scope')" -lt "$(mark 'init: start')" ]
check "traced: three processes marked (airlock, the supervisor, init)" [ "$(cut -d' ' -f1 trace.log | sort -u | wc -l)" = 3 ]
check "traced: the run took the network namespace made early, and the supervisor entered it" all [ -n "$(mark 'sandbox: network namespace made early')" ] -- [ -n "$(mark 'sandbox: network namespace made early taken')" ] -- [ -n "$(mark 'supervisor: network namespace entered')" ] -- [ -z "$(mark 'sandbox: network namespace made')" ]
check "traced: the record's statements were compiled while init was still building the sandbox" all [ -n "$(mark 'gateway: record statements prepared')" ] -- [ "$(mark 'gateway: record statements prepared')" -gt "$(mark 'sandbox: supervisor forked')" ]
check "traced: the read's journal was made before the outcome, and the read journaled, not committed" all [ -n "$(mark 'gateway: read journaled')" ] -- [ "$(mark 'gateway: read journal made')" -lt "$(mark 'gateway: dry run')" ] -- [ -z "$(mark 'gateway: read recorded')" ]

# ---- a read's record: a synced journal line, taken into the store by the next command -------
# The lines waiting in the command journal (up to its first NUL byte).
jnl() { tr '\0' '\n' < state/airlock.db.journal/commands.log 2>/dev/null | sed '/^$/,$d' | grep -c . ; }
as_dba pending >/dev/null  # takes in what the commands above left
check "no line waits after a command that reads the store" [ "$(jnl)" = 0 ]
run_json out as_agent exec --json --target repo -- grep -c foo README.md
id=$(jf .id "$out")
check "a read exec prints its output and is applied" all [ "$RC" -eq 0 ] -- [ "$(jf .status "$out")" = applied ] -- [ "$(jf .result.stdout "$out")" = 2 ]
check "its record is one line in the command journal" all [ "$(jnl)" = 1 ] -- grep -qa "\"$id\"" state/airlock.db.journal/commands.log
check "the journal is the user's alone" all [ "$(stat -c %a state/airlock.db.journal)" = 700 ] -- [ "$(stat -c %a state/airlock.db.journal/commands.log)" = 600 ]
show=$(as_dba show "$id")
check "show finds the read: the line was taken into the store" all grep -q "applied" <<<"$show" -- [ "$(jnl)" = 0 ]
events=$(airlock audit log --json --action "$id")
check "its one event, read, by the agent at the time it ran, is in the chain, which verifies" all airlock audit verify -- [ "$(wc -l <<<"$events")" = 1 ] -- [ "$(jf .event "$events")" = read ] -- [ "$(jf .principal "$events")" = agent:dev-bot ] -- [ "$(jf .at_ms "$events")" -ge "$(jf .created_ms "$out")" ]
check "traced without AIRLOCK_TRACE_CPU: no line carries a thread's CPU time" [ "$(grep -c $'\t' trace.log)" = 0 ]
rm -f trace.log
# With AIRLOCK_TRACE_CPU, every line ends with "<tab><tid> <cpu µs>": each thread's CPU time
# never goes back, and the command's own thread used some before main (exec, the loader).
AIRLOCK_TRACE=$T/trace.log AIRLOCK_TRACE_CPU=1 as_agent exec --target repo -- true
cpu_lines_ok() {
  awk -F'\t' '
    NF != 2 || $2 !~ /^[0-9]+ [0-9]+$/ { bad++; next }
    { split($2, t, " "); if ((t[1] in last) && t[2] < last[t[1]]) bad++; last[t[1]] = t[2] }
    END { exit !(NR > 20 && bad == 0) }' trace.log
}
check "traced with AIRLOCK_TRACE_CPU: every line has a thread and its CPU time, never decreasing" cpu_lines_ok
check "traced with AIRLOCK_TRACE_CPU: the first mark counts the CPU used before main" [ "$(head -1 trace.log | awk -F'\t' '{ split($2, t, " "); print (t[2] > 0) }')" = 1 ]
check "traced with AIRLOCK_TRACE_CPU: marks from three processes, as without" [ "$(cut -d' ' -f1 trace.log | sort -u | wc -l)" = 3 ]
rm -f trace.log
AIRLOCK_TRACE=$T/trace.log AIRLOCK_TOKEN=alk_not_a_token airlock exec --target repo -- true 2>/dev/null
check "traced: a denied exec built a sandbox and never started the command" all [ -n "$(mark 'sandbox: supervisor forked')" ] -- [ -z "$(mark 'init: start')" ] -- [ -z "$(mark 'init: command spawned')" ]
as_dba audit log --json > audited
check "both denials are audited" all grep -q '"event":"auth_failed"' audited -- grep -q '"event":"denied".*only agents submit.*"principal":"approver:oncall-dba"' audited

# ---- network: on -----------------------------------------------------------------------------
# exec makes a network namespace before it knows the target: a target with the network on
# leaves it unused, and its command reaches the host's loopback.
sed -e 's/scopes: \[repo, tight, gone, linked\]/scopes: [repo, tight, gone, linked, online]/' \
  -e 's|^  linked: .*|&\n  online: {kind: shell, workspace: ./repo, network: on, timeout: 30s}|' \
  "$T/airlock.yaml" > "$T/online.yaml"
rm -f "$T/listening" "$T/connected"
perl -MIO::Socket::INET -e "my \$s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5) or die; open(my \$f, '>', '$T/listening.tmp'); print \$f \$s->sockport; close \$f; rename('$T/listening.tmp', '$T/listening'); while (my \$c = \$s->accept) { open(my \$g, '>', '$T/connected'); close \$g; }" &
listener=$!
for _ in $(seq 1 300); do [ -s "$T/listening" ] && break; sleep 0.1; done
port=$(cat "$T/listening" 2>/dev/null)
rm -f trace.log
AIRLOCK_CONFIG=$T/online.yaml AIRLOCK_TRACE=$T/trace.log as_agent exec --target online -- bash -c "echo hi > /dev/tcp/127.0.0.1/$port" >out 2>err; rc=$?
for _ in $(seq 1 50); do [ -e "$T/connected" ] && break; sleep 0.1; done
check "network: on: the command connects to a host port (exit 0)" all [ -n "$port" ] -- [ "$rc" -eq 0 ] -- [ -e "$T/connected" ]
check "network: on: the run did not take the namespace made early" all [ -n "$(mark 'init: start')" ] -- [ -z "$(mark 'sandbox: network namespace made early taken')" ]
kill "$listener" 2>/dev/null; wait "$listener" 2>/dev/null
rm -f trace.log

# ---- nothing left behind -------------------------------------------------------------------
check "no mount left behind" [ "$(mount_count)" = 0 ]
check "no cgroup left behind" [ "$(airlock_cgroups)" = 0 ]
check "no scratch directory left behind" [ -z "$(ls -A state/airlock.db.shell/repo/scratch 2>/dev/null)" ]
finish
