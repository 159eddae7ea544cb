// Untrusted layer manifests: a layer read back from the store or a journal must be refused
// with a Status when a path could leave the workspace ("../x", "/abs", "a//b", "a/./b",
// NUL bytes), when numbers are out of range or of the wrong type, or when the states do not
// fit together; never crash. What LayerFromJson accepts must survive a round trip with the
// same hash, and every accepted path must pass ValidateLayerPath.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "connectors/shell/layer.h"
#include "core/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)airlock::shell::ValidateLayerPath(text);  // raw bytes as a path
  auto j = airlock::ParseJson(text);
  if (!j.ok()) return 0;
  auto layer = airlock::shell::LayerFromJson(*j);
  if (!layer.ok()) return 0;
  for (const auto& s : layer->after) {
    if (!airlock::shell::ValidateLayerPath(s.path).ok()) std::abort();
  }
  airlock::Json again = airlock::shell::LayerToJson(*layer);
  auto back = airlock::shell::LayerFromJson(*airlock::ParseJson(airlock::CanonicalJson(again)));
  if (!back.ok()) std::abort();
  if (airlock::shell::LayerHash(*back) != airlock::shell::LayerHash(*layer)) std::abort();
  return 0;
}
