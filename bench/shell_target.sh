# Sourced by the shell benchmarks (shell_peers.sh, trace_steps.sh): the workspace and policy
# that `airlock exec --target repo -- true` is timed with.
#
# make_shell_target DIR TOKEN: DIR (made afresh) gets repo/ (20 small C files and a README)
# and airlock.yaml: one agent whose token is TOKEN, scoped to the shell target `repo` on that
# workspace, with the store in DIR/state.
make_shell_target() {
  local dir=$1 token=$2 i
  rm -rf "$dir" && mkdir -p "$dir/repo/src"
  for i in $(seq 1 20); do echo "int f$i(void) { return $i; }" > "$dir/repo/src/f$i.c"; done
  echo "# bench" > "$dir/repo/README.md"
  cat > "$dir/airlock.yaml" <<YAML
version: 1
store: ./state/airlock.db
agents:
  - {name: bench-agent, token_sha256: "$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)", scopes: [repo]}
targets:
  repo: {kind: shell, workspace: ./repo}
YAML
}
