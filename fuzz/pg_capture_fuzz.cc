// Rows captured by airlock's triggers in a PostgreSQL target hold whatever the agent's
// statement wrote: the effect builder and the undo decoder must return a value or a Status
// for any of them, never crash. Input: lines "op\tschema\ttable\told\tnew"; then the same
// bytes as an undo record.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "connectors/postgres/effect.h"
#include "connectors/postgres/undo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  airlock::pg::CaptureInput in;
  in.max_preview_rows = 3;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::string f[5];
    std::istringstream fields(line);
    for (std::string& x : f) std::getline(fields, x, '\t');
    if (f[0] == "ddl") {
      in.ddl.push_back({f[1], f[2], f[3], "s", f[4]});
      in.rows_before[f[4]] = static_cast<int64_t>(f[4].size());
    } else {
      in.rows.push_back({f[1], f[2], f[0], f[3], f[4]});
      in.facts[f[1] + "." + f[2]] = airlock::pg::TableFacts{};
    }
  }
  auto effect = airlock::pg::BuildEffect(in);
  if (effect.ok() && effect->effect_hash.size() != 64) __builtin_trap();
  auto undo = airlock::pg::DecodeUndo(text);
  if (undo.ok()) {
    // What decodes must encode and decode to the same rows and schema changes.
    auto again = airlock::pg::DecodeUndo(airlock::pg::EncodeUndo(*undo));
    if (!again.ok() || again->rows.size() != undo->rows.size() ||
        again->pre_images.size() != undo->pre_images.size() ||
        again->ddl.size() != undo->ddl.size()) {
      __builtin_trap();
    }
  }
  return 0;
}
