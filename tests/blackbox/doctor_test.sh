#!/usr/bin/env bash
# airlock doctor on real client configurations (tests/fixtures/doctor/): one fixture per
# warning sign and per client format, a clean one, broken and hostile ones. It checks the
# table and the JSON, the exit codes, that no secret of the fixtures is ever printed, that
# --fix never touches an original and writes valid wrapped copies, and the usual places
# under a temporary HOME.
source "$(dirname "$0")/lib.sh"
F=$SRC/tests/fixtures/doctor
unset AIRLOCK_CONFIG XDG_CONFIG_HOME
cd "$T"
ALL=$T/all-output   # everything doctor printed, for the secret check at the end
: > "$ALL"

# doc ARGS...: runs `airlock doctor ARGS`, keeps stdout in OUT, stderr in ERR, the exit in RC.
doc() {
  "$AIRLOCK_BIN" doctor "$@" >"$T/out" 2>"$T/err"
  RC=$?
  OUT=$(cat "$T/out")
  ERR=$(cat "$T/err")
  cat "$T/out" "$T/err" >> "$ALL"
}
q() { jq -r "$1" "$T/out"; }  # q FILTER: over the last JSON output
# Matchers over the last output, usable inside `all` (which splits on "--", and whose
# commands would share one here-string).
out_has() { grep -qF -e "$1" "$T/out"; }
out_re() { grep -qE -e "$1" "$T/out"; }
err_has() { grep -qF -e "$1" "$T/err"; }
text_has() { grep -qF -e "$2" <<<"$1"; }
text_re() { grep -qE -e "$2" <<<"$1"; }
valid_json() { jq -e . "$1" >/dev/null; }

fixture_sums=$(cd "$F" && sha256sum ./* | sort)

# ---- help and usage --------------------------------------------------------------------------
doc --help
check "doctor --help exits 0 and documents every flag and the exit codes" \
  all [ "$RC" -eq 0 ] -- out_has --fix-out -- out_has --strict -- out_has --sandbox \
  -- out_has "Exit: 0" -- out_has claude_desktop_config.json
doc --frobnicate
check "an unknown flag exits 2" [ "$RC" -eq 2 ]

# ---- one warning sign per fixture ------------------------------------------------------------
doc "$F/credentials.json" --json
check "credentials: exit 0 without --strict" [ "$RC" -eq 0 ]
check "credentials: every planted secret is a finding (8)" \
  [ "$(q '[.findings[] | select(.kind == "credential")] | length')" -eq 8 ]
check "credentials: env keys show only their prefix" \
  all out_has 'env OPENAI_API_KEY=sk-proj-****' -- out_has 'env ANTHROPIC_API_KEY=sk-ant-****' \
  -- out_has 'env AWS_ACCESS_KEY_ID=AKIA****' -- out_has 'env PGPASSWORD=****'
check "credentials: flag values, bearer headers and URL passwords are redacted" \
  all out_has 'args[2]: --api-key ****' -- out_has 'header Authorization: Bearer eyJ****' \
  -- out_has 'redis://default:****@localhost:6379/0'
check "credentials: LOG_LEVEL is not a finding" [ "$(q '[.findings[] | select(.evidence | test("LOG_LEVEL"))] | length')" -eq 0 ]
check "credentials: each finding has severity, server, file, kind, title, evidence, fix" \
  [ "$(q '[.findings[] | select(.severity and .server and .file and .kind and .title and .evidence and .fix)] | length')" -eq "$(q '.findings | length')" ]
check "credentials: summary counts the findings" [ "$(q '.summary.findings')" -eq "$(q '.findings | length')" ]

doc "$F/claude_desktop.json" --json
check "a password for a production database is critical" \
  [ "$(q '[.findings[] | select(.kind == "credential" and .severity == "critical" and .server == "postgres")] | length')" -eq 1 ]
check "the connection string is shown without its password" \
  out_has 'postgres://app:****@db.prod.example.com:5432/app'

doc "$F/fs_root.json" --json
root_sev() { q "[.findings[] | select(.kind == \"filesystem_root\" and .server == \"$1\") | .severity] | join(\",\")"; }
check "filesystem root /: critical" [ "$(root_sev everything)" = critical ]
check "filesystem root ~: high" [ "$(root_sev home)" = high ]
check "filesystem root /home/alice/: high" [ "$(root_sev alice)" = high ]
check "a container mounting / is critical" [ "$(root_sev docker-root)" = critical ]
check "a project directory is not a root" [ -z "$(root_sev project)" ]

doc "$F/not_behind.json" --json
check "not behind airlock: exactly one medium finding" \
  all [ "$(q '.findings | length')" -eq 1 ] -- [ "$(q '.findings[0].kind')" = not_behind_airlock ] \
  -- [ "$(q '.findings[0].severity')" = medium ] -- [ "$(q '.findings[0].pointer')" = /mcpServers/everything ]
doc "$F/not_behind.json" --json --strict
check "--strict: a medium finding alone still exits 0" [ "$RC" -eq 0 ]

doc "$F/prod_host.json" --json
check "production-looking hosts in a URL and in PGHOST are high" \
  all [ "$(q '[.findings[] | select(.kind == "production_host" and .severity == "high")] | length')" -eq 2 ] \
  -- out_has 'mcp.billing.prod.example.com' -- out_has 'orders.live.example.net'
doc "$F/prod_host.json" --strict
check "--strict: a high finding exits 1" [ "$RC" -eq 1 ]

# ---- the readable table ----------------------------------------------------------------------
doc "$F/credentials.json" "$F/fs_root.json"
check "table: exit 0" [ "$RC" -eq 0 ]
check "table: summary line, header, fixes" \
  all out_re '^Checked 2 files, 8 servers: [0-9]+ findings \(' \
  -- out_re '^# +SEVERITY +SERVER +FILE +FINDING$' -- out_re '^How to fix:'
# Every row's title and every evidence line start in the FINDING column.
col=$(awk '/^# +SEVERITY/ { print index($0, "FINDING"); exit }' <<<"$OUT")
misaligned=$(awk -v c="$col" '
  /^How to fix:/ { exit }
  /^[0-9]+ +(critical|high|medium|low) / || /^ +(args|env|url|header|command)/ {
    if (substr($0, c - 2, 2) != "  " || substr($0, c, 1) == " ") print
  }' <<<"$OUT")
check "table: titles and evidence are aligned under FINDING" all [ -n "$col" ] -- [ -z "$misaligned" ]
check "table: most severe first" [ "$(awk '/^1 /{print $2; exit}' <<<"$OUT")" = critical ]

# ---- client formats --------------------------------------------------------------------------
doc "$F/vscode.json" --json
check "VS Code (comments, trailing commas, inputs): read as VS Code" \
  all [ "$RC" -eq 0 ] -- [ "$(q '.files[0].client')" = "VS Code" ] -- [ "$(q '.files[0].servers')" -eq 3 ]
check "VS Code: \${input:...} values are not credentials; a literal key is" \
  [ "$(q '[.findings[] | select(.kind == "credential") | .server] | join(",")')" = fetch ]
doc "$F/claude_user.json" --json
check "~/.claude.json: top-level and project servers, the project named" \
  all [ "$(q '.files[0].servers')" -eq 2 ] \
  -- [ "$(q '[.findings[] | select(.server == "shop-db")][0].project')" = /home/dev/shop ] \
  -- [ "$(q '[.findings[] | select(.server == "shop-db" and .kind == "credential")][0].severity')" = critical ]
doc "$F/cursor.json" --json
check "Cursor: the Slack token, the remote server not behind airlock" \
  all [ "$(q '[.findings[] | select(.kind == "credential")] | length')" -eq 1 ] \
  -- [ "$(q '[.findings[] | select(.server == "linear") | .kind] | join(",")')" = not_behind_airlock ]
doc "$F/claude_code_project.json" --json
check "Claude Code .mcp.json: the GitHub token, \${VAR} headers are fine" \
  all [ "$(q '[.findings[] | select(.kind == "credential") | .server] | join(",")')" = github ] \
  -- out_has 'ghp_****'

# ---- clean -----------------------------------------------------------------------------------
doc "$F/clean.json" --json --strict
check "clean: no findings, exit 0 even with --strict" \
  all [ "$RC" -eq 0 ] -- [ "$(q '.findings | length')" -eq 0 ] -- [ "$(q '.summary.servers')" -eq 3 ]
doc "$F/clean.json"
check "clean: the table says so" out_re "no warning signs found"

# ---- broken and hostile files ----------------------------------------------------------------
for case in "malformed:not valid JSON" "not_a_config:not an MCP client configuration" \
            "wrong_types:/mcpServers/fs/args: expected an array of strings" \
            "deep_nesting:nested deeper than" "non_utf8:not UTF-8"; do
  name=${case%%:*}
  want=${case#*:}
  doc "$F/$name.json"
  check "$name: exit 2, the error names the file and the problem" \
    all [ "$RC" -eq 2 ] -- err_has "$F/$name.json: " -- err_has "$want"
done
doc "$F/malformed.json" "$F/not_behind.json" --json
check "a broken file does not stop the others (exit 2, findings of the good one)" \
  all [ "$RC" -eq 2 ] -- [ "$(q '.files[0].error | length > 0')" = true ] \
  -- [ "$(q '.files[0].error_code')" = invalid_argument ] -- [ "$(q '.findings | length')" -eq 1 ]
doc "$T/no-such-file.json"
check "a missing file named on the command line exits 2" all [ "$RC" -eq 2 ] -- err_has "no such file"

head -c $((9 * 1024 * 1024)) /dev/zero | tr '\0' ' ' > "$T/huge.json"
start=$(date +%s)
doc "$T/huge.json"
check "a 9 MiB file is refused at once (exit 2, too large)" \
  all [ "$RC" -eq 2 ] -- err_has "too large" -- [ $(($(date +%s) - start)) -lt 10 ]

doc "$F/hostile_names.json" --json
check "hostile names and arguments: exit 0, valid JSON" all [ "$RC" -eq 0 ] -- valid_json "$T/out"
doc "$F/hostile_names.json"
check "hostile names: no escape, bell or bidi override reaches the terminal" \
  all [ "$RC" -eq 0 ] -- bash -c '! LC_ALL=C grep -qP "[\x1b\x07]|\xe2\x80\xae" "$1"' _ "$T/out"
check "hostile names: a 100 kB argument is cut in the evidence" [ "$(wc -L < "$T/out")" -lt 2000 ]

# ---- --fix -----------------------------------------------------------------------------------
mkdir -p "$T/work"
cp "$F"/claude_desktop.json "$F"/credentials.json "$F"/vscode.json "$F"/clean.json "$F"/claude_user.json \
   "$F"/hostile_names.json "$T/work/"
originals=$(cd "$T/work" && sha256sum ./* | sort)
doc --fix --fix-out "$T/fixed" "$T"/work/*.json --json
check "--fix: exit 0" [ "$RC" -eq 0 ]
check "--fix: the originals are unchanged" [ "$(cd "$T/work" && sha256sum ./*.json | sort)" = "$originals" ]
check "--fix: no copy of a file with nothing to wrap (clean.json)" [ ! -e "$T/fixed/clean.airlock.json" ]
fix_ok=true
for copy in "$T"/fixed/*.airlock.json; do
  if ! jq -e . "$copy" >/dev/null; then echo "# not JSON: $copy"; fix_ok=false; fi
done
check "--fix: every copy is valid JSON" $fix_ok
wrapped='[(.mcpServers // {}), (.servers // {}), ((.projects // {}) | map(.mcpServers // {}) | add // {})]
         | add | to_entries[] | select(.value.command == "airlock") | .value'
bad=$(jq -c "$wrapped"' | select((.args[0:3] != ["mcp","stdio","--server"]) or (.args | length != 4)
         or (.args[3] | test("^[a-z0-9_-]+$") | not) or ((.env | keys) != ["AIRLOCK_TOKEN"])
         or (.env.AIRLOCK_TOKEN != "<agent token>"))' "$T"/fixed/*.airlock.json)
count=$(jq -c "$wrapped" "$T"/fixed/*.airlock.json | wc -l)
check "--fix: every stdio server is wrapped: airlock mcp stdio --server NAME, env AIRLOCK_TOKEN only ($count)" \
  all [ -z "$bad" ] -- [ "$count" -ge 10 ]
check "--fix: the desktop copy wraps filesystem and postgres" \
  [ "$(jq -r '.mcpServers | [.filesystem.args[3], .postgres.args[3]] | join(",")' "$T/fixed/claude_desktop.airlock.json")" = filesystem,postgres ]
check "--fix: remote servers and already-wrapped ones are left alone" \
  all [ "$(jq -r '.servers.github.url' "$T/fixed/vscode.airlock.json")" = https://api.githubcopilot.com/mcp/ ] \
  -- [ "$(jq -r '.mcpServers["remote-api"].type' "$T/fixed/credentials.airlock.json")" = http ]
check "--fix: VS Code keeps type stdio; ~/.claude.json keeps its other state" \
  all [ "$(jq -r '.servers.fetch.type' "$T/fixed/vscode.airlock.json")" = stdio ] \
  -- [ "$(jq -r '.numStartups' "$T/fixed/claude_user.airlock.json")" = 42 ] \
  -- [ "$(jq -r '.projects["/home/dev/shop"].mcpServers["shop-db"].args[3]' "$T/fixed/claude_user.airlock.json")" = shop-db ]
check "--fix: hostile server names become policy names [a-z0-9_-]" \
  [ "$(jq -r '[.mcpServers[].args[3]] | sort | join(",")' "$T/fixed/hostile_names.airlock.json")" = "airlock-upstream,bidi-gnp-exe,evil-31mred-0m,line-break-x,server" ]
check "--fix: copies are private (0600)" [ "$(stat -c %a "$T/fixed/claude_desktop.airlock.json")" = 600 ]
yaml=$(q '.fix.policy_yaml')
check "--fix: the policy entries name every wrapped server with its real command" \
  all text_re "$yaml" '^mcp_servers:$' -- text_has "$yaml" '  postgres:' \
  -- text_has "$yaml" 'command: [npx, -y, "@modelcontextprotocol/server-postgres", "postgres://app:****@db.prod.example.com:5432/app"]' \
  -- text_has "$yaml" 'sandbox: repo' -- text_has "$yaml" 'OPENAI_API_KEY: "sk-proj-****"' 

# The printed entries are what the policy loader takes (hostile names and redacted secrets
# included): appended to a policy with the shell target they name, it checks.
mkdir -p "$T/repo"
{ printf 'version: 1\nstore: ./state/airlock.db\ntargets:\n  repo: {kind: shell, workspace: ./repo}\n'
  printf '%s\n' "$yaml"; } > "$T/with-entries.yaml"
"$AIRLOCK_BIN" --config "$T/with-entries.yaml" policy check >"$T/check.out" 2>&1
check "--fix: the printed mcp_servers entries pass \`airlock policy check\`" [ $? -eq 0 ]
[ -s "$T/check.out" ] && grep -v ': ok' "$T/check.out" | head -5 | sed 's/^/# /'

# Default destination: NAME.airlock.json beside the original; --config adds AIRLOCK_CONFIG.
cp "$F/not_behind.json" "$T/work/.mcp.json"
sum=$(sha256sum < "$T/work/.mcp.json")
"$AIRLOCK_BIN" --config "$T/policy.yaml" doctor --fix --sandbox build "$T/work/.mcp.json" >"$T/out" 2>"$T/err"
RC=$?
cat "$T/out" "$T/err" >> "$ALL"
check "--fix without --fix-out writes .mcp.airlock.json beside the original, which is unchanged" \
  all [ "$RC" -eq 0 ] -- [ -f "$T/work/.mcp.airlock.json" ] -- [ "$(sha256sum < "$T/work/.mcp.json")" = "$sum" ]
check "--fix with --config: AIRLOCK_CONFIG is the policy's absolute path; --sandbox is used" \
  all [ "$(jq -r '.mcpServers.everything.env.AIRLOCK_CONFIG' "$T/work/.mcp.airlock.json")" = "$T/policy.yaml" ] \
  -- out_has 'sandbox: build' -- out_re '^  wrote ' 
chmod 500 "$T/work"
doc --fix "$T/work/.mcp.json"
chmod 700 "$T/work"
if [ "$(id -u)" -ne 0 ]; then
  check "--fix: a copy that cannot be written exits 1" [ "$RC" -eq 1 ]
fi

# ---- the usual places under a temporary HOME ------------------------------------------------
H=$T/home
P=$T/project
mkdir -p "$H/.config/Claude" "$H/.cursor" "$P/.vscode" "$P/.cursor"
cp "$F/claude_desktop.json" "$H/.config/Claude/claude_desktop_config.json"
cp "$F/claude_user.json" "$H/.claude.json"
cp "$F/cursor.json" "$H/.cursor/mcp.json"
cp "$F/claude_code_project.json" "$P/.mcp.json"
cp "$F/vscode.json" "$P/.vscode/mcp.json"
cp "$F/not_behind.json" "$P/.cursor/mcp.json"
cd "$P"
HOME=$H doc --json
check "no arguments: the six usual files are read from HOME and the current directory" \
  all [ "$RC" -eq 0 ] -- [ "$(q '.files | length')" -eq 6 ] -- [ "$(q '[.files[] | select(.found == "default")] | length')" -eq 6 ] \
  -- [ "$(q '[.files[].client] | unique | join(",")')" = "Claude Code,Claude Desktop,Cursor,VS Code" ] \
  -- [ "$(q '.searched | length')" -ge 7 ]
HOME=$H doc
check "no arguments, table: home paths are shown with ~" \
  all out_has '~/.cursor/mcp.json' -- out_has '~/.claude.json'
echo '{ nope' > "$P/.mcp.json"
HOME=$H doc --json
check "a broken file in a usual place is reported (stderr/JSON) but is not a usage error" \
  all [ "$RC" -eq 0 ] -- [ "$(q '[.files[] | select(.error != null)] | length')" -eq 1 ]
HOME=$H doc
check "... and the table run names it on stderr" err_has "$P/.mcp.json: not valid JSON"
mkdir -p "$T/empty-home" "$T/empty-project"
cd "$T/empty-project"
HOME=$T/empty-home doc
check "no configuration anywhere: says where it looked, exit 0" \
  all [ "$RC" -eq 0 ] -- out_re "No MCP client configuration found" -- out_has "~/.claude.json"
cd "$T"

# ---- no secret, ever ---------------------------------------------------------------------------
leaked=""
missing=""
while IFS= read -r secret; do
  [ -n "$secret" ] || continue
  grep -rqF -- "$secret" "$F" --exclude=secrets.txt || missing+=" $secret"
  grep -qF -- "$secret" "$ALL" && leaked+=" $secret"
done < "$F/secrets.txt"
check "every secret of secrets.txt is planted in some fixture" [ -z "$missing" ]
check "no secret value of the fixtures appears in any output" [ -z "$leaked" ]
[ -z "$leaked" ] || echo "# leaked:$leaked"
check "the wrapped entries of the copies hold no secret" \
  bash -c '! jq -c "$1" "$2"/fixed/*.airlock.json | grep -qE "sk-proj-Q7|ghp_aB3|s3cr3t|Tr0ub4dor|xoxb-12"' _ "$wrapped" "$T"

check "the fixtures themselves were not changed" [ "$(cd "$F" && sha256sum ./* | sort)" = "$fixture_sums" ]
finish
