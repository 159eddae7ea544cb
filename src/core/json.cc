#include "core/json.h"

#include <charconv>
#include <memory>
#include <stdexcept>

namespace airlock {

namespace {

// The serializer Json::dump uses, with CanonicalJson's settings, writing straight into the
// string it is given. One per thread, made on first need: making one takes three
// allocations (itself, its output adapter, its indent string), and a read on `airlock serve`
// writes three texts.
class Dumper {
 public:
  Dumper()
      : target_(std::make_shared<Target>()),
        writer_(nlohmann::detail::output_adapter_t<char>(target_), ' ',
                Json::error_handler_t::replace) {}
  void AppendTo(const Json& j, std::string* out) {
    target_->out = out;
    writer_.dump(j, false, false, 0);
    target_->out = nullptr;
  }

 private:
  // An output adapter whose string changes from one value to the next.
  struct Target final : nlohmann::detail::output_adapter_protocol<char> {
    void write_character(char c) override { out->push_back(c); }
    void write_characters(const char* s, std::size_t length) override { out->append(s, length); }
    std::string* out = nullptr;
  };
  std::shared_ptr<Target> target_;
  nlohmann::detail::serializer<Json> writer_;
};

void AppendJson(const Json& j, std::string* out) {
  thread_local Dumper dumper;
  dumper.AppendTo(j, out);
}

}  // namespace

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
  AppendJson(Json(std::string(s)), out_);
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
  AppendJson(j, out_);
}

std::string CanonicalJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

namespace json_internal {

// Whether no value or key in `text` lies inside more than max_depth containers, by one scan
// of its brackets and strings. Up to the text's first syntax error it counts exactly as the
// parser nests; after it, the parser reads nothing more. So true here means that the parse
// below, with its depth check, would not refuse the text for its depth.
bool NestsWithin(std::string_view text, int max_depth) {
  int level = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, a quote included
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case ' ':
      case '\t':
      case '\n':
      case '\r':
      case ',':
      case ':':
        break;
      case '}':
      case ']':
        if (level > 0) --level;
        break;
      case '{':
      case '[':
        if (level > max_depth) return false;
        ++level;
        break;
      case '"':
        in_string = true;
        [[fallthrough]];
      default:  // a string, number or literal starts (or goes on) here
        if (level > max_depth) return false;
        break;
    }
  }
  return true;
}

// The parse with a depth check: the SAX-style callback sees every nesting step before the
// value is built, so hostile input like 100,000 '[' is refused before it can exhaust memory.
Result<Json> ParseJsonChecked(std::string_view text, int max_depth) {
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

}  // namespace json_internal

Result<Json> ParseJson(std::string_view text, int max_depth) {
  // Text that nests within the limit (nearly all) is parsed without the callback, which
  // costs a dozen allocations per parse (each request body on `airlock serve` is one); the
  // rest gets the checked parse, and so the same answer and message as before.
  if (!json_internal::NestsWithin(text, max_depth)) {
    return json_internal::ParseJsonChecked(text, max_depth);
  }
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("malformed JSON");
  return j;
}

}  // namespace airlock
