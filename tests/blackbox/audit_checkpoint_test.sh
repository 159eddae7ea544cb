#!/usr/bin/env bash
# Signed audit checkpoints through the real CLI and a real store: keygen, checkpoint lines
# kept outside the store, verify against them. A history cut back consistently (events and
# the recorded head) passes the plain chain check but not the checkpoints; a forged line, a
# wrong key and a broken chain are caught; bad usage is refused.
source "$(dirname "$0")/lib.sh"
cd "$T"
seed_db
write_policy
mkdir -p keys outside

as_agent sql --target app-db "SELECT count(*) FROM users" >/dev/null
as_agent sql --target app-db "SELECT name FROM users LIMIT 1" >/dev/null

run_json out airlock audit keygen --out keys/audit.key --json
check "keygen writes a private key (0600) and its public key" all [ "$RC" -eq 0 ] -- [ "$(stat -c %a keys/audit.key)" = 600 ] -- [ -f keys/audit.key.pub ] -- [ "$(jf .key_id "$out" | wc -c)" = 17 ]
airlock audit keygen --out keys/audit.key >/dev/null 2>"$T/err"
check "keygen never overwrites a key" all [ $? -ne 0 ] -- grep -q "does not overwrite" "$T/err"

airlock audit checkpoint --key keys/audit.key >> outside/checkpoints.jsonl
first=$(tail -1 outside/checkpoints.jsonl)
events=$(airlock audit verify --json | jq .events)
check "a checkpoint names the chain's length and last hash" all [ "$(jf .seq "$first")" = "$events" ] -- [ "$(jf .hash "$first")" = "$(store "SELECT hash FROM audit WHERE seq = $events")" ]
cut_at=$events

as_agent sql --target app-db "SELECT email FROM users LIMIT 2" >/dev/null
as_agent sql --target app-db "SELECT count(*) FROM users WHERE id > 1" >/dev/null
airlock audit checkpoint --key keys/audit.key >> outside/checkpoints.jsonl
run_json out airlock audit verify --checkpoints outside/checkpoints.jsonl --public-key keys/audit.key.pub --json
check "verify with two checkpoints: ok" all [ "$RC" -eq 0 ] -- [ "$(jf .ok "$out")" = true ] -- [ "$(jf .checkpoints "$out")" = 2 ] -- [ "$(jf '.checkpoint_problems | length' "$out")" = 0 ]
text=$(airlock audit verify --checkpoints outside/checkpoints.jsonl --public-key keys/audit.key.pub)
check "... and says so in text" grep -q "2 checked, every one signed by the key and matched by the chain" <<<"$text"

# Someone with the store cuts the history back to the first checkpoint, head and all: the
# chain alone still verifies.
cp state/airlock.db "$T/before-cut.db"
head_hash=$(store "SELECT hash FROM audit WHERE seq = $cut_at")
store "DELETE FROM audit WHERE seq > $cut_at; UPDATE meta SET value = $cut_at WHERE key = 'audit_head_seq'; UPDATE meta SET value = '$head_hash' WHERE key = 'audit_head_hash';"
run_json out airlock audit verify --json
check "a history cut back with its head passes the plain chain check" all [ "$RC" -eq 0 ] -- [ "$(jf .events "$out")" = "$cut_at" ]
run_json out airlock audit verify --checkpoints outside/checkpoints.jsonl --public-key keys/audit.key.pub --json
check "... but not the checkpoints: exit 1, the later checkpoint's events are gone" all [ "$RC" -eq 1 ] -- [ "$(jf .ok "$out")" = false ] -- grep -q "events were removed" <<<"$(jf '.checkpoint_problems[]' "$out")"
text=$(airlock audit verify --checkpoints outside/checkpoints.jsonl --public-key keys/audit.key.pub)
check "... and the text says FAILED" grep -q "FAILED" <<<"$text"
cp "$T/before-cut.db" state/airlock.db

# A checkpoint line edited to fit another history: its signature no longer holds.
sed "s/\"hash\":\"[0-9a-f]\{8\}/\"hash\":\"00000000/" outside/checkpoints.jsonl > outside/forged.jsonl
run_json out airlock audit verify --checkpoints outside/forged.jsonl --public-key keys/audit.key.pub --json
check "a forged checkpoint line fails its signature" all [ "$RC" -eq 1 ] -- grep -q "signature does not match" <<<"$(jf '.checkpoint_problems[]' "$out")"
airlock audit keygen --out keys/other.key >/dev/null
run_json out airlock audit verify --checkpoints outside/checkpoints.jsonl --public-key keys/other.key.pub --json
check "checkpoints checked against another key fail" all [ "$RC" -eq 1 ] -- grep -q "signed by key" <<<"$(jf '.checkpoint_problems[]' "$out")"
printf 'garbage\n' >> outside/forged.jsonl
run_json out airlock audit verify --checkpoints outside/forged.jsonl --public-key keys/audit.key.pub --json
check "a line that is no checkpoint is a problem, named by its line" grep -q "line 3: not a checkpoint" <<<"$(jf '.checkpoint_problems[]' "$out")"

: > outside/empty.jsonl
run_json out airlock audit verify --checkpoints outside/empty.jsonl --public-key keys/audit.key.pub --json
check "an empty checkpoint file does not pass (exit 1)" all [ "$RC" -eq 1 ] -- grep -q "holds no checkpoint" <<<"$(jf '.checkpoint_problems[]' "$out")"
run_json out airlock audit verify --checkpoints /dev/stdin --public-key keys/audit.key.pub --json < outside/checkpoints.jsonl
check "checkpoints can come on stdin; the newest is reported" all [ "$RC" -eq 0 ] -- [ "$(jf .newest_checkpoint.seq "$out")" -gt "$cut_at" ]

# A broken chain is not signed.
seq2=$(store "SELECT min(seq) + 1 FROM audit")
store "UPDATE audit SET payload = '{\"tampered\":true}' WHERE seq = $seq2"
airlock audit checkpoint --key keys/audit.key > "$T/out" 2>"$T/err"
check "checkpoint refuses a broken chain (exit 1)" all [ $? -eq 1 ] -- grep -q "broken" "$T/err" -- [ ! -s "$T/out" ]
cp "$T/before-cut.db" state/airlock.db

# airlock serve signs checkpoints on a schedule (--checkpoint-every): one line when the
# chain has grown, none while it has not, and they verify like the CLI's.
"$AIRLOCK_BIN" serve --listen 127.0.0.1:0 --checkpoint-every 1s --checkpoint-key keys/audit.key \
  --checkpoint-file outside/served.jsonl 2>"$T/serve-cp.log" &
SERVE_PID=$!
served_lines() { if [ -f outside/served.jsonl ]; then wc -l < outside/served.jsonl; else echo 0; fi; }
has_lines() { [ "$(served_lines)" -ge "$1" ]; }
poll 30 has_lines 1
check "serve writes a checkpoint of the chain within its interval" has_lines 1
sleep 2.5
check "... and no other while the chain has not grown" [ "$(served_lines)" = 1 ]
as_agent sql --target app-db "SELECT count(*) FROM users WHERE id > 2" >/dev/null
poll 30 has_lines 2
check "... and a new one once it has grown" [ "$(served_lines)" = 2 ]
run_json out airlock audit verify --checkpoints outside/served.jsonl --public-key keys/audit.key.pub --json
check "the server's checkpoints verify against the chain" \
  all [ "$RC" -eq 0 ] -- [ "$(jf .checkpoints "$out")" = 2 ] -- [ "$(jf '.checkpoint_problems | length' "$out")" = 0 ]
check "the server says where it wrote them" grep -q "audit checkpoint at event [0-9]* written to outside/served.jsonl" "$T/serve-cp.log"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null
"$AIRLOCK_BIN" serve --listen 127.0.0.1:0 --checkpoint-every 1s >/dev/null 2>"$T/err"
rc=$?
check "--checkpoint-every without a key and a file is a usage error (exit 2)" all [ "$rc" -eq 2 ] -- grep -q "needs --checkpoint-key" "$T/err"
"$AIRLOCK_BIN" serve --listen 127.0.0.1:0 --checkpoint-every 1s --checkpoint-key keys/none.key \
  --checkpoint-file outside/x.jsonl >/dev/null 2>"$T/err"
rc=$?
check "a key that cannot be used is refused at start (exit 2)" all [ "$rc" -eq 2 ] -- grep -q "checkpoint-key keys/none.key" "$T/err"

# Usage.
airlock audit verify --checkpoints outside/checkpoints.jsonl >/dev/null 2>"$T/err"
check "--checkpoints without --public-key is a usage error (exit 2)" all [ $? -eq 2 ] -- grep -q "go together" "$T/err"
airlock audit verify --checkpoints outside/none.jsonl --public-key keys/audit.key.pub >/dev/null 2>&1
check "a missing checkpoint file is an error" [ $? -ne 0 ]
chmod 644 keys/audit.key
airlock audit checkpoint --key keys/audit.key >/dev/null 2>"$T/err"
check "a private key others may read is not used" grep -q "chmod 600" "$T/err"
check "checkpoint has --help" grep -q -- "--key" <<<"$(airlock audit checkpoint --help)"
check "keygen has --help" grep -q -- "--out" <<<"$(airlock audit keygen --help)"
finish
