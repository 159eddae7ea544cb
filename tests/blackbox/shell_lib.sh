# Helpers for the shell black-box tests: a policy with shell targets over a workspace, a
# workspace that looks like a small repository, and a signature of a tree (paths, types,
# modes, sizes, content hashes) to compare byte for byte.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# write_shell_policy [EXTRA_TARGETS_YAML] [EXTRA_YAML]
write_shell_policy() {
  cat > "$T/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: dev-bot, token_sha256: "$(sha "$AGENT_TOKEN")", scopes: [repo, tight, gone, linked]}
approvers:
  - {name: oncall-dba, token_sha256: "$(sha "$DBA_TOKEN")"}
  - {name: security-lead, token_sha256: "$(sha "$SEC_TOKEN")"}
targets:
  repo: {kind: shell, workspace: ./repo, timeout: 30s}
  tight: {kind: shell, workspace: ./repo, memory: 64MiB, pids: 32, timeout: 3s, max_upper_size: 8MiB, max_upper_files: 2000}
  gone: {kind: shell, workspace: ./no-such-dir}
  linked: {kind: shell, workspace: ./repo-link}
${1:-}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
${2:-}
YAML
  export AIRLOCK_CONFIG=$T/airlock.yaml
}

# make_repo: ./repo with src/ (30 files, one executable), README.md mentioning foo, a .git
# directory, a binary file and a symlink.
make_repo() {
  rm -rf "$T/repo"
  mkdir -p "$T/repo/src/lib" "$T/repo/.git"
  local i
  for i in $(seq -w 1 27); do printf 'int f%s(void) { return %s; }\n' "$i" "$i" > "$T/repo/src/file$i.c"; done
  printf '#!/bin/sh\necho build\n' > "$T/repo/src/build.sh"
  chmod 0755 "$T/repo/src/build.sh"
  printf 'secret-ish\n' > "$T/repo/src/lib/private.h"
  chmod 0600 "$T/repo/src/lib/private.h"
  head -c 3000 /dev/urandom > "$T/repo/src/lib/blob.bin"
  printf '# demo\nfoo is here\nand foo again\n' > "$T/repo/README.md"
  printf '[core]\n\tbare = false\n' > "$T/repo/.git/config"
  ln -s README.md "$T/repo/readme-link"
}

# tree_sig DIR: one line per path: type, mode, size, sha256 (files) or link target.
tree_sig() {
  (cd "$1" && find . -mindepth 1 -printf '%p %y %m %s %l\n' | sort | while read -r p y m s l; do
    if [ "$y" = f ]; then echo "$p $y $m $s $(sha256sum "$p" | cut -c1-16)"; else echo "$p $y $m ${l:-}"; fi
  done)
}

# Mounts in this (the host's) namespace that a sandbox of this test could have left: under
# the test directory, or made by airlock (its tmpfs sources are named airlock-*).
mount_count() { grep -cE "$T| airlock-" /proc/self/mountinfo; }
# Cgroups left behind: airlock-PID-* directories whose process is gone (runs of other tests
# that are still going are not counted).
airlock_cgroups() {
  local d pid n=0
  while read -r d; do
    pid=${d##*/airlock-}; pid=${pid%%-*}
    [ -d "/proc/$pid" ] || n=$((n + 1))
  done < <(find /sys/fs/cgroup -maxdepth 8 -type d -name 'airlock-*' 2>/dev/null)
  echo "$n"
}
