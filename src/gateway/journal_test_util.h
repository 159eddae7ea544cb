// What the journal tests (the read journal's and the command journal's) write: a command's
// read as `airlock exec` records it.
#pragma once

#include <string>

#include "core/hash.h"
#include "core/types.h"

namespace airlock::test {

// A read by a shell command: the journal line holds its effect and its result as recorded,
// with a quote, a newline and a non-ASCII character to escape.
inline Action CommandRead(const std::string& id) {
  Action a;
  a.id = id;
  a.created_ms = a.updated_ms = 1700000000123;
  a.agent = "bot";
  a.target = "repo";
  a.kind = "shell";
  a.args = {{"argv", {"sh", "-c", "grep -r 'foo\n' . </dev/null"}}};
  a.status = ActionStatus::kApplied;
  a.risk = Risk::kRead;
  a.reasons = {"reads only: no file change and no network attempt"};
  a.effect.kind = "shell";
  a.effect.extra = {{"exit_code", 1}, {"command", a.args["argv"]}, {"workspace", "/w ✓"}};
  a.effect.effect_hash = Sha256Hex(id + "effect");
  a.result = {{"exit_code", 1}, {"signal", 0}, {"stdout_bytes", 0}, {"stderr_bytes", 12}};
  return a;
}

}  // namespace airlock::test
