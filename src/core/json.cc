#include "core/json.h"

#include <charconv>
#include <stdexcept>

namespace airlock {

// The serializer Json::dump uses, with CanonicalJson's settings, writing into the same string.
class JsonTextWriter::Dumper {
 public:
  explicit Dumper(std::string* out)
      : writer_(nlohmann::detail::output_adapter<char>(*out), ' ', Json::error_handler_t::replace) {
  }
  void Dump(const Json& j) { writer_.dump(j, false, false, 0); }

 private:
  nlohmann::detail::serializer<Json> writer_;
};

JsonTextWriter::JsonTextWriter(std::string* out) : out_(out) {}
JsonTextWriter::~JsonTextWriter() = default;

void JsonTextWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (depth_ == 0) return;
  const uint64_t bit = uint64_t{1} << (depth_ - 1);
  if (has_element_ & bit) *out_ += ',';
  has_element_ |= bit;
}

void JsonTextWriter::Open(char bracket) {
  Separate();
  // The shapes written this way are a few levels deep; 64 would be a bug in the caller.
  if (depth_ == 64) throw std::logic_error("JsonTextWriter: nested too deep");
  ++depth_;
  has_element_ &= ~(uint64_t{1} << (depth_ - 1));
  *out_ += bracket;
}

void JsonTextWriter::Close(char bracket) {
  // Misuse by the caller (a writer of a fixed shape): refused rather than written as bad JSON.
  if (depth_ == 0 || after_key_) throw std::logic_error("JsonTextWriter: unbalanced end");
  --depth_;
  *out_ += bracket;
}

void JsonTextWriter::BeginObject() {
  Open('{');
}
void JsonTextWriter::EndObject() {
  Close('}');
}
void JsonTextWriter::BeginArray() {
  Open('[');
}
void JsonTextWriter::EndArray() {
  Close(']');
}

void JsonTextWriter::Key(std::string_view key) {
  String(key);
  *out_ += ':';
  after_key_ = true;
}

void JsonTextWriter::String(std::string_view s) {
  Separate();
  // Printable ASCII other than '"' and '\\' is written as it is (so CanonicalJson writes it);
  // anything else goes through the serializer, which escapes and replaces invalid UTF-8.
  bool plain = true;
  for (const char c : s) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      plain = false;
      break;
    }
  }
  if (plain) {
    *out_ += '"';
    *out_ += s;
    *out_ += '"';
    return;
  }
  if (!dumper_) dumper_ = std::make_unique<Dumper>(out_);
  dumper_->Dump(Json(std::string(s)));
}

void JsonTextWriter::Int(int64_t v) {
  Separate();
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out_->append(buf, end);
}

void JsonTextWriter::Bool(bool b) {
  Separate();
  *out_ += b ? "true" : "false";
}

void JsonTextWriter::Strings(const std::vector<std::string>& list) {
  BeginArray();
  for (const auto& s : list) String(s);
  EndArray();
}

void JsonTextWriter::Value(const Json& j) {
  Separate();
  if (!dumper_) dumper_ = std::make_unique<Dumper>(out_);
  dumper_->Dump(j);
}

std::string CanonicalJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
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
