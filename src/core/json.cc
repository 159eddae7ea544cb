#include "core/json.h"

namespace airlock {

std::string CanonicalJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string CanonicalJsonOfKeys(const Json& object,
                                const std::function<bool(std::string_view key)>& keep) {
  // Written into one string by the serializer that Json::dump uses, with the same settings
  // as CanonicalJson: compact, UTF-8 as is, invalid UTF-8 replaced.
  std::string out = "{";
  nlohmann::detail::serializer<Json> writer(nlohmann::detail::output_adapter<char>(out), ' ',
                                            Json::error_handler_t::replace);
  bool first = true;
  for (auto it = object.begin(); it != object.end(); ++it) {  // sorted: a std::map
    if (!keep(it.key())) continue;
    if (!first) out += ',';
    first = false;
    writer.dump(Json(it.key()), false, false, 0);
    out += ':';
    writer.dump(it.value(), false, false, 0);
  }
  out += '}';
  return out;
}

Result<Json> ParseJson(std::string_view text, int max_depth) {
  // The SAX-style callback sees every nesting step before the value is built, so hostile
  // input like 100,000 '[' is refused before it can exhaust the stack.
  bool too_deep = false;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t, Json&) {
    if (depth > max_depth) too_deep = true;
    return !too_deep;
  };
  Json j = Json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
  if (too_deep) {
    return Status::InvalidArgument("JSON nested deeper than " + std::to_string(max_depth));
  }
  if (j.is_discarded()) return Status::InvalidArgument("malformed JSON");
  return j;
}

}  // namespace airlock
