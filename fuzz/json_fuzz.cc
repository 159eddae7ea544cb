// Untrusted JSON: ParseJson (depth-limited, never throws), then the decoders of stored
// records (an Action and its Effect) must reject malformed shapes with a Status, not crash.
// An action that decodes is written as text without a tree (ActionJsonText), which must be
// byte for byte the tree's canonical form: the audit chain hashes those bytes.
// ParseJson's scan of the nesting must change no answer: it is checked against the parse
// that checks the depth at every step, at a small limit and the default one.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/json.h"
#include "core/types.h"

namespace {

void CheckTheScan(std::string_view text, int max_depth) {
  const auto got = airlock::ParseJson(text, max_depth);
  const auto want = airlock::json_internal::ParseJsonChecked(text, max_depth);
  if (got.ok() != want.ok()) __builtin_trap();
  if (got.ok() ? *got != *want : got.status().message() != want.status().message()) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckTheScan(text, 2);
  CheckTheScan(text, 64);
  auto j = airlock::ParseJson(text);
  if (!j.ok()) return 0;
  (void)airlock::CanonicalJson(*j);
  auto a = airlock::ActionFromJson(*j);
  auto all = [](std::string_view) { return true; };
  if (a.ok() &&
      airlock::ActionJsonText(*a, all) != airlock::CanonicalJson(airlock::ActionToJson(*a))) {
    __builtin_trap();
  }
  auto e = airlock::EffectFromJson(*j);
  if (e.ok()) {
    airlock::Action with;
    with.effect = *e;
    const airlock::Json tree = {{"effect", airlock::EffectToJson(*e)}};
    auto effect_only = [](std::string_view key) { return key == "effect"; };
    if (airlock::ActionJsonText(with, effect_only) != airlock::CanonicalJson(tree))
      __builtin_trap();
  }
  return 0;
}
