#!/usr/bin/env bash
# Issue 3's security list, each attempted from inside `airlock exec` for real: the attempt
# must be contained (the host is unchanged) and the reason must show, in the effect or in
# the command's own output.
source "$(dirname "$0")/shell_lib.sh"
cd "$T"
make_repo
write_shell_policy
mkdir -p outside
echo original > outside/victim

# exec_json TARGET CMD...: runs the command through airlock; $out is the JSON, $RC the exit.
exec_json() { local target=$1; shift; run_json out as_agent exec --json --target "$target" -- "$@"; }
output() { jf '.effect.extra.stderr_head // "" ' "$out"; jf '.result.stderr // ""' "$out"; }
reject_it() { [ "$(jf .status "$out")" = pending ] && as_dba reject "$(jf .id "$out")" >/dev/null; true; }

# ---- writes outside the workspace ------------------------------------------------------------
for path in /etc/airlock-escape /root/airlock-escape ../airlock-escape "$T/airlock-escape" \
            /proc/self/root/etc/airlock-escape /proc/1/cwd/../airlock-escape /usr/airlock-escape; do
  exec_json repo sh -c "echo pwned > '$path'"
  check "write to $path is contained" all [ ! -e /etc/airlock-escape ] -- [ ! -e /root/airlock-escape ] -- [ ! -e "$T/airlock-escape" ] -- [ ! -e /usr/airlock-escape ]
  check "write to $path: the reason shows" grep -qiE "read-only|permission denied|no such file|cannot create" <<<"$(output)"
  reject_it
done

# ---- symlinks ------------------------------------------------------------------------------
ln -s "$T/outside" repo/planted
exec_json repo sh -c 'echo pwned > planted/victim; echo pwned > planted/new'
check "writing through a planted symlink is contained" all [ "$(cat outside/victim)" = original ] -- [ ! -e outside/new ]
check "the planted symlink's failure shows" grep -qiE "nonexistent|no such file|read-only|permission" <<<"$(output)"
reject_it
rm repo/planted

exec_json repo sh -c 'ln -s /etc evil; echo pwned > evil/airlock-escape; ln -s ../../outside up'
check "a symlink the command creates to outside is high" all [ "$RC" -eq 10 ] -- grep -q "symlinks pointing outside the workspace" <<<"$(jf '.reasons[]' "$out")"
id=$(jf .id "$out")
run_json v as_dba approve --json "$id"
check "its commit creates the symlinks and writes nothing through them" all [ "$RC" -eq 0 ] -- [ -L repo/evil ] -- [ -L repo/up ] -- [ ! -e /etc/airlock-escape ] -- [ "$(ls outside)" = victim ]
as_dba rollback "$id" >/dev/null
check "its rollback removes them" all [ ! -e repo/evil ] -- [ ! -L repo/up ]

# ---- hard links, devices, setuid -------------------------------------------------------------
exec_json repo sh -c 'ln /etc/passwd hl'
check "a hard link to a file outside fails" all [ ! -e repo/hl ] -- grep -qiE "cross-device|not permitted|denied" <<<"$(output)"
reject_it
exec_json repo sh -c 'mknod dev c 1 3'
check "mknod of a device fails" all [ ! -e repo/dev ] -- grep -qiE "not permitted|denied" <<<"$(output)"
reject_it
exec_json repo sh -c 'cp /bin/sh ./rootsh && chmod 4755 ./rootsh'
check "a setuid binary is critical and named" all [ "$(jf .risk "$out")" = critical ] -- grep -q "rootsh" <<<"$(jf '.reasons[]' "$out")"
reject_it

# ---- privileged operations ---------------------------------------------------------------
exec_json repo sh -c 'mount -t tmpfs none "$PWD"; mount --bind / "$PWD"'
check "mount fails" all [ "$(jf .result.exit_code "$out")" != 0 ] -- grep -qiE "not permitted|denied|must be superuser" <<<"$(output)"
exec_json repo unshare -r true
check "unshare fails" all [ "$(jf .result.exit_code "$out")" != 0 ] -- grep -qiE "not permitted|denied" <<<"$(output)"
exec_json repo nsenter -t 1 -m true
check "setns (nsenter) fails" all [ "$(jf .result.exit_code "$out")" != 0 ] -- grep -qiE "not permitted|denied|no such" <<<"$(output)"
host_pid=$$
exec_json repo perl -e "syscall(101, 16, $host_pid, 0, 0) == -1 or die 'attached'; print \"ptrace: \$!\\n\""
check "ptrace of a host process fails" all grep -qiE "ptrace: (operation not permitted|no such process)" <<<"$(jf .result.stdout "$out")"
exec_json repo perl -e 'syscall(321, 0, 0, 0) == -1 or die "bpf worked"; print "bpf: $!\n"'
check "bpf fails" grep -qi "bpf: operation not permitted" <<<"$(jf .result.stdout "$out")"
exec_json repo perl -e 'syscall(250, 0, 0, 0, 0, 0) == -1 or die "keyctl worked"; print "keyctl: $!\n"'
check "keyctl fails" grep -qi "keyctl: operation not permitted" <<<"$(jf .result.stdout "$out")"
exec_json repo perl -e 'my $c = "x"; for my $fd (0, 1, 2) { open(my $h, "+<&=", $fd) or next; ioctl($h, 0x5412, $c) or print "tiocsti $fd: $!\n" } open(my $t, "+<", "/dev/tty") or print "tty: $!\n"'
check "TIOCSTI injection fails on every descriptor and there is no terminal" all [ "$(jf .result.stdout "$out" | grep -c "^tiocsti [012]: Operation not permitted")" = 3 ] -- grep -q "^tty: No such device" <<<"$(jf .result.stdout "$out")"

# ---- secrets are invisible ---------------------------------------------------------------------
exec_json repo sh -c "cat '$T/airlock.yaml'; cat '$T/state/airlock.db' | head -c 100; ls /root/.ssh"
check "the policy file, the store and /root are not readable" all [ "$(jf .result.stdout "$out" | grep -c token_sha256)" = 0 ] -- [ "$(jf .result.stdout "$out" | grep -c 'SQLite format')" = 0 ]
check "the hidden paths' reasons show" grep -qiE "no such file|permission" <<<"$(output)"
exec_json repo sh -c 'cat /etc/shadow; ls /etc/ssh'
check "/etc/shadow and /etc/ssh are hidden by default" all [ -z "$(jf .result.stdout "$out")" ] -- [ "$(jf .risk "$out")" = read ]

# ---- network ---------------------------------------------------------------------------------
# A port the kernel picks (free), written once the host listens on it.
perl -MIO::Socket::INET -e "my \$s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5) or die; open(my \$f, '>', '$T/listening.tmp'); print \$f \$s->sockport; close \$f; rename('$T/listening.tmp', '$T/listening'); while (my \$c = \$s->accept) { open(my \$g, '>', '$T/connected'); close \$g; }" &
listener=$!
for _ in $(seq 1 300); do [ -s "$T/listening" ] && break; sleep 0.1; done
port=$(cat "$T/listening" 2>/dev/null)
exec_json repo bash -c "echo hi > /dev/tcp/127.0.0.1/${port:-1}"
check "TCP to a port the host listens on ($port) fails and nothing connects" all [ -n "$port" ] -- [ ! -e "$T/connected" ] -- grep -qi "refused" <<<"$(output)"
check "the TCP attempt is seen and high" all [ "$(jf .effect.extra.network_attempt "$out")" = true ] -- [ "$(jf .risk "$out")" = high ]
reject_it
kill "$listener" 2>/dev/null; wait "$listener" 2>/dev/null
exec_json repo bash -c 'echo q > /dev/udp/1.1.1.1/53'
check "UDP DNS fails, seen as a network attempt" all grep -qi "unreachable" <<<"$(output)" -- [ "$(jf .effect.extra.network_attempt "$out")" = true ]
reject_it
exec_json repo bash -c 'echo q > /dev/tcp/93.184.216.34/80'
check "TCP to a raw IP address fails, seen" all grep -qi "unreachable" <<<"$(output)" -- [ "$(jf .effect.extra.network_attempt "$out")" = true ]
reject_it
exec_json repo perl -e 'socket(my $s, 2, 3, 1) or print "raw: $!\n"'
check "a raw socket cannot be opened" grep -qi "raw: operation not permitted" <<<"$(jf .result.stdout "$out")"

# ---- resource limits ---------------------------------------------------------------------------
exec_json tight bash -c 'bomb() { bomb | bomb & }; bomb; sleep 2'
check "a fork bomb is stopped by a limit and is high" all grep -qE "^(pids|timeout)$" <<<"$(jf .effect.extra.killed_by "$out")" -- [ "$(jf .risk "$out")" = high ]
reject_it
exec_json tight perl -e '$x = "x" x (300 * 1024 * 1024); print length($x)'
check "a memory bomb is killed by the memory limit" [ "$(jf .effect.extra.killed_by "$out")" = memory ]
reject_it
start=$(date +%s)
exec_json tight sh -c 'trap "" TERM; sleep 108'
check "a process ignoring SIGTERM is killed at the timeout" all [ "$(jf .effect.extra.killed_by "$out")" = timeout ] -- [ $(( $(date +%s) - start )) -lt 20 ]
reject_it
exec_json tight sh -c 'sleep 107'
check "sleep past the timeout is killed" [ "$(jf .effect.extra.killed_by "$out")" = timeout ]
reject_it
exec_json repo sh -c 'setsid sh -c "sleep 1013 &" ; sleep 1014 & echo started'
sleep 0.5
check "a double fork does not outlive the sandbox" [ -z "$(pgrep -f 'sleep 101[34]')" ]
exec_json tight sh -c 'head -c 30000000 /dev/zero > big'
check "a file over the upper layer's size cap is cut and high" all [ "$(jf .effect.extra.upper_full "$out")" = size ] -- [ "$(jf .risk "$out")" = high ] -- [ ! -e repo/big ]
reject_it
exec_json tight perl -e 'for my $i (1..1000000) { open(my $f, ">", "f$i") or do { print "stopped at $i: $!\n"; last } }'
check "a million tiny files stop at the file cap" all [ "$(jf .effect.extra.upper_full "$out")" = files ] -- grep -q "No space left" <<<"$(jf .effect.extra.stdout_head "$out")"
reject_it
check "the workspace still has only its own files" [ -z "$(ls repo | grep -E '^(f[0-9]+|big|rootsh|hl|dev)$')" ]

# ---- the files the policy reads credentials from are hidden --------------------------------------
# Outside /tmp (a sandbox has its own), where a sandbox sees the host read-only.
KEYS=$(mktemp -d /var/tmp/airlock-keys.XXXXXX)
secret="k3y-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$secret" > "$KEYS/api.key"
printf 'postgres://u:%s@db.internal/app\n' "$secret" > "$KEYS/pg.dsn"
printf 'not a credential\n' > "$KEYS/other.txt"
write_shell_policy "  api: {kind: http, base_url: \"https://api.example.com\", headers: {X-Key: \"file:$KEYS/api.key\"}}
  pg: {kind: postgres, dsn_file: $KEYS/pg.dsn}"
exec_json repo sh -c "cat '$KEYS/api.key' '$KEYS/pg.dsn' '$KEYS/other.txt'; echo end"
check "a command reads the policy's credential files (headers: file:, dsn_file) as empty" all [ "$RC" -eq 0 ] -- grep -q "not a credential" <<<"$out" -- [ "$(grep -c "$secret" <<<"$out")" = 0 ]
check "... and the files are still there for airlock" grep -q "$secret" "$KEYS/api.key"
rm -rf "$KEYS"
write_shell_policy

# ---- nothing left behind ---------------------------------------------------------------------------
check "no mount left behind" [ "$(mount_count)" = 0 ]
check "no cgroup left behind" [ "$(airlock_cgroups)" = 0 ]
check "no sandbox process left behind" [ -z "$(pgrep -f 'sleep 10[78]$')" ]
check "audit verifies" airlock audit verify
finish
