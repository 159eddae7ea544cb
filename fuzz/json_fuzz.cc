// Untrusted JSON: ParseJson (depth-limited, never throws), then the decoders of stored
// records (an Action and its Effect) must reject malformed shapes with a Status, not crash.
// An action that decodes is written as text without a tree (ActionJsonText), which must be
// byte for byte the tree's canonical form: the audit chain hashes those bytes.
// ParseJson's scan of the nesting must change no answer: it is checked against the parse
// that sends every text through the depth callback, at a small limit and the default one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/json.h"
#include "core/types.h"

namespace {

airlock::Result<airlock::Json> ParseWithCallbackOnly(std::string_view text, int max_depth) {
  bool too_deep = false;
  airlock::Json::parser_callback_t cb = [&](int depth, airlock::Json::parse_event_t,
                                            airlock::Json&) {
    if (depth > max_depth) too_deep = true;
    return !too_deep;
  };
  airlock::Json j = airlock::Json::parse(text.begin(), text.end(), cb, false);
  if (too_deep) {
    return airlock::Status::InvalidArgument("JSON nested deeper than " +
                                            std::to_string(max_depth));
  }
  if (j.is_discarded()) return airlock::Status::InvalidArgument("malformed JSON");
  return j;
}

void CheckTheScan(std::string_view text, int max_depth) {
  const auto got = airlock::ParseJson(text, max_depth);
  const auto want = ParseWithCallbackOnly(text, max_depth);
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
