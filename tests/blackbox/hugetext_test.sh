#!/usr/bin/env bash
# The airlock binary's code in 2 MiB pages (tools/hugetext.cc, run after every link): its
# segments are 2 MiB aligned; hugetext leaves what it cannot use as it is and changes no byte
# of any file; and a command of a binary it read back maps the code with 2 MiB entries (where
# the kernel and file system have large folios: said and skipped otherwise).
source "$(dirname "$0")/shell_lib.sh"
HUGETEXT_BIN=${HUGETEXT_BIN:?HUGETEXT_BIN must name the hugetext tool}
cd "$T"
make_repo
write_shell_policy

# Every loadable segment of the built binary is aligned to 2 MiB.
aligns=$(readelf -lW "$AIRLOCK_BIN" | awk '$1 == "LOAD" { print $NF }' | sort -u)
check "the binary's loadable segments are 2 MiB aligned ($aligns)" [ "$aligns" = 0x200000 ]

# Bad input: a missing file is an error; anything else it cannot use is left as it is.
"$HUGETEXT_BIN" "$T/no-such-file" 2> err.txt
rc=$?
check "a missing file exits 2 and says why" all [ "$rc" -eq 2 ] -- grep -q "no-such-file: No such file" err.txt
"$HUGETEXT_BIN" 2> err.txt
check "no argument exits 2 with the usage" all [ $? -eq 2 ] -- grep -q "usage: hugetext FILE" err.txt
printf '\177ELF but not really' > fake.bin
cp fake.bin fake.orig
"$HUGETEXT_BIN" fake.bin 2> err.txt
rc=$?
check "a file that is not ELF is left as it is (exit 0)" all [ "$rc" -eq 0 ] -- grep -q "not a 64-bit ELF file; left as it is" err.txt -- cmp -s fake.bin fake.orig
head -c 40 "$AIRLOCK_BIN" > short.bin
"$HUGETEXT_BIN" short.bin 2> err.txt
check "a truncated ELF header is left as it is" all [ $? -eq 0 ] -- grep -q "not a 64-bit ELF file" err.txt
cp /usr/bin/true small-pages
"$HUGETEXT_BIN" small-pages 2> err.txt
check "a binary linked for 4 KiB pages is left as it is" all [ $? -eq 0 ] -- grep -q "not linked with 2 MiB segments" err.txt -- cmp -s small-pages /usr/bin/true

# A copy (a new file, so none of its pages are cached yet in any size).
cp "$AIRLOCK_BIN" airlock-copy
"$HUGETEXT_BIN" airlock-copy 2> err.txt
rc=$?
cat err.txt
check "hugetext on the binary exits 0" [ "$rc" -eq 0 ]
check "it changes no byte of the binary" cmp -s airlock-copy "$AIRLOCK_BIN"
huge_kib=$(sed -n 's/.*: \([0-9]*\) of [0-9]* KiB of its loadable part in 2 MiB pages/\1/p' err.txt)
check "it says how much it read back in 2 MiB pages" [ -n "$huge_kib" ]
if [ "${huge_kib:-0}" -gt 0 ]; then
  # A command of the copy, still running: its code is mapped with 2 MiB entries.
  AIRLOCK_TOKEN=$AGENT_TOKEN ./airlock-copy exec --target repo -- sleep 3 > /dev/null 2>&1 &
  cli=$!
  # Until the command ends: its code is mapped as it runs, and a slow start (a sanitizer's
  # set-up) may not have run any of it at the first look.
  pmd=""
  for _ in $(seq 1 600); do
    now=$(awk '/ r-xp .*airlock-copy$/ { inside = 1; next } inside && /^FilePmdMapped:/ { print $2; exit }' "/proc/$cli/smaps" 2>/dev/null)
    [ -n "$now" ] && pmd=$now
    [ "${pmd:-0}" -ge 2048 ] && break
    kill -0 "$cli" 2> /dev/null || break
    sleep 0.05
  done
  check "a command's code is mapped in 2 MiB pages (${pmd:-none} KiB)" [ "${pmd:-0}" -ge 2048 ]
  wait "$cli"
  check "and the command ran" [ $? -eq 0 ]
else
  ok "# skip: this kernel or file system reads no 2 MiB folios here"
fi

finish
