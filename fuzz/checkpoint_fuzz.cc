// Audit checkpoint lines (audit/checkpoint.h), read from a file the operator keeps outside
// the store, which anyone who can reach that file may have edited: ParseCheckpointLine must
// refuse what is not a checkpoint with a Status, never crash; what it accepts must have the
// documented forms and survive a round trip through CheckpointLine unchanged.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "audit/checkpoint.h"

namespace {

bool LowerHex(const std::string& s, size_t n) {
  return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto c = airlock::audit::ParseCheckpointLine(line);
  if (!c.ok()) {
    if (c.status().code() != airlock::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  if (c->seq < 0 || c->at_ms < 0 || !LowerHex(c->hash, 64) || !LowerHex(c->key_id, 16) ||
      !LowerHex(c->signature, 128)) {
    __builtin_trap();
  }
  auto again = airlock::audit::ParseCheckpointLine(airlock::audit::CheckpointLine(*c));
  if (!again.ok() || again->seq != c->seq || again->hash != c->hash || again->at_ms != c->at_ms ||
      again->key_id != c->key_id || again->signature != c->signature) {
    __builtin_trap();
  }
  return 0;
}
