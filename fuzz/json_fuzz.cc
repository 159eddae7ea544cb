// Untrusted JSON: ParseJson (depth-limited, never throws), then the decoders of stored
// records (an Action and its Effect) must reject malformed shapes with a Status, not crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/json.h"
#include "core/types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = airlock::ParseJson(text);
  if (!j.ok()) return 0;
  (void)airlock::CanonicalJson(*j);
  auto a = airlock::ActionFromJson(*j);
  if (a.ok()) (void)airlock::ActionToJson(*a);
  auto e = airlock::EffectFromJson(*j);
  if (e.ok()) (void)airlock::EffectToJson(*e);
  return 0;
}
