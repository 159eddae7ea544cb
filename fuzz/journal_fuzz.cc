// A read journal's lines (gateway/read_journal.h), as recovery reads them from a file a
// crash or a power cut may have cut short or garbled: ParseJournalLine must refuse what is
// not a whole line with a Status, never crash; and what it accepts must survive a round trip
// through JournalLine unchanged, a full line's effect and result included.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/read_journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  auto r = airlock::ParseJournalLine(line);
  if (!r.ok()) return 0;
  auto again =
      airlock::ParseJournalLine(airlock::JournalLine(r->action, r->principal, r->at_ms, r->full));
  if (!again.ok() || again->full != r->full) __builtin_trap();
  // A full line (a command's read) also carries its effect and its result.
  if (r->full &&
      (again->action.result != r->action.result ||
       airlock::EffectToJson(again->action.effect) != airlock::EffectToJson(r->action.effect))) {
    __builtin_trap();
  }
  if (again->action.id != r->action.id || again->action.args != r->action.args ||
      again->action.reasons != r->action.reasons || again->principal != r->principal ||
      again->at_ms != r->at_ms ||
      again->action.effect.effect_hash != r->action.effect.effect_hash) {
    __builtin_trap();
  }
  return 0;
}
