#include "mcp/jsonrpc.h"

#include <errno.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

namespace airlock::mcp {

namespace {

constexpr int kMaxDepth = 64;
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMinRead = kReadChunk / 2;  // a read asks for at least this much
// A buffer grown by one long line is given back once it is empty, so that a single 4 MiB
// message does not pin 4 MiB per session for the rest of its life.
constexpr size_t kKeepBufferBytes = 4 * kReadChunk;

struct StrictJson {
  Json value;  // discarded when the text is not JSON
  bool too_deep = false;
  bool duplicate_key = false;
};

// nlohmann's parser with two checks that ParseJson does not make:
// - depth, counted in containers, before the value is built (no stack exhaustion);
// - duplicate object keys. The gateway decides on the value it parsed, the upstream acts on
//   the one it parses; `{"name":"read_file","name":"delete_file"}` must not mean one thing
//   to airlock and another to a server whose parser keeps the first key. An object whose
//   key count differs from its size at its end had a repeated key (the last one's value is
//   kept, as nlohmann's own parser keeps it).
// A SAX handler rather than Json::parse with a callback: the callback parser makes a
// std::function call per token and a Json copy of every key, about a fifth of the parse.
class StrictBuilder {
 public:
  explicit StrictBuilder(StrictJson* out) : out_(out) {}

  bool null() { return Put(nullptr); }
  bool boolean(bool v) { return Put(v); }
  bool number_integer(Json::number_integer_t v) { return Put(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return Put(v); }
  bool number_float(Json::number_float_t v, const Json::string_t& /*text*/) { return Put(v); }
  bool string(Json::string_t& v) { return Put(std::move(v)); }
  bool binary(Json::binary_t& v) { return Put(Json::binary(std::move(v))); }
  bool start_object(std::size_t /*size*/) { return Open(Json::value_t::object); }
  bool start_array(std::size_t /*size*/) { return Open(Json::value_t::array); }
  bool key(Json::string_t& k) {
    ++keys_seen_.back();
    element_ = &(*open_.back())[std::move(k)];
    return true;
  }
  bool end_object() {
    if (keys_seen_.back() != open_.back()->size()) out_->duplicate_key = true;
    keys_seen_.pop_back();
    open_.pop_back();
    return true;
  }
  bool end_array() {
    open_.pop_back();
    return true;
  }
  template <typename Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/, const Exception& /*e*/) {
    return false;
  }

 private:
  // The value goes where the parser is: the top level, the open array, or the key just read.
  Json* Place(Json&& v) {
    if (open_.empty()) {
      out_->value = std::move(v);
      return &out_->value;
    }
    if (open_.back()->is_array()) {
      open_.back()->push_back(std::move(v));
      return &open_.back()->back();
    }
    *element_ = std::move(v);
    return element_;
  }
  bool Put(Json&& v) {
    Place(std::move(v));
    return true;
  }
  bool Open(Json::value_t type) {
    // open_.size() is the number of enclosing containers: the top level is 0.
    if (open_.size() >= static_cast<size_t>(kMaxDepth)) {
      out_->too_deep = true;
      return false;  // stops the parser here
    }
    open_.push_back(Place(Json(type)));
    if (type == Json::value_t::object) keys_seen_.push_back(0);
    return true;
  }

  StrictJson* out_;
  std::vector<Json*> open_;        // the containers being filled, innermost last
  std::vector<size_t> keys_seen_;  // one entry per open object
  Json* element_ = nullptr;        // the open object's member the next value fills
};

StrictJson ParseStrict(std::string_view text) {
  StrictJson out;
  StrictBuilder builder(&out);
  // Strict: nothing but whitespace may follow the value. No comments.
  if (!Json::sax_parse(text.begin(), text.end(), &builder, Json::input_format_t::json,
                       /*strict=*/true, /*ignore_comments=*/false)) {
    out.value = Json(Json::value_t::discarded);
  }
  return out;
}

ParseResult Failure(int code, std::string message, Json id, bool answerable) {
  ParseResult r;
  r.failure.code = code;
  r.failure.message = std::move(message);
  r.failure.id = std::move(id);
  r.failure.answerable = answerable;
  return r;
}

bool IsValidId(const Json& id) {
  // is_number_integer() covers both signed and unsigned; 1.0 is a float and refused.
  return id.is_string() || id.is_number_integer();
}

bool IsErrorObject(const Json& e) {
  if (!e.is_object()) return false;
  auto code = e.find("code");
  auto message = e.find("message");
  return code != e.end() && code->is_number_integer() && message != e.end() && message->is_string();
}

// Validates an object already known to be JSON. Every field is type-checked before it is
// read, so no nlohmann accessor can throw.
ParseResult ParseObject(Json j, bool duplicate_key) {
  auto id_it = j.find("id");
  auto method_it = j.find("method");
  auto params_it = j.find("params");
  auto result_it = j.find("result");
  auto error_it = j.find("error");
  const bool has_id = id_it != j.end();
  const bool has_method = method_it != j.end();
  const bool has_params = params_it != j.end();
  const bool has_result = result_it != j.end();
  const bool has_error = error_it != j.end();

  // The id names the failure whenever it can be read, so the reply can be matched.
  Json id = has_id && IsValidId(*id_it) ? *id_it : Json(nullptr);
  // Never answer a notification (JSON-RPC), nor something shaped like a response: an error
  // sent back for a response would itself be a response to nothing, and could loop between
  // two peers. A "method" that is not a string is answered (the JSON-RPC spec's example).
  const bool is_notification = !has_id && has_method && method_it->is_string();
  const bool is_response_shaped = !has_method && (has_result || has_error);
  const bool answerable = !is_notification && !is_response_shaped;
  auto fail = [&](int code, std::string message) {
    return Failure(code, std::move(message), id, answerable);
  };

  auto version = j.find("jsonrpc");
  if (version == j.end()) return fail(kInvalidRequest, "missing \"jsonrpc\": \"2.0\"");
  if (!version->is_string() || version->get_ref<const std::string&>() != "2.0") {
    return fail(kInvalidRequest, "\"jsonrpc\" must be \"2.0\"");
  }
  if (duplicate_key) return fail(kInvalidRequest, "an object has a repeated key");
  if (has_id && !IsValidId(*id_it)) {
    return fail(kInvalidRequest, "\"id\" must be a string or an integer");
  }

  Message m;
  if (has_method) {
    if (!method_it->is_string()) return fail(kInvalidRequest, "\"method\" must be a string");
    // A message that is both a request and a response would be routed by one peer as the
    // one and by another as the other.
    if (has_result || has_error) {
      return fail(kInvalidRequest,
                  "a message with \"method\" cannot carry \"result\" or \"error\"");
    }
    if (has_params && !params_it->is_object() && !params_it->is_array()) {
      return fail(kInvalidRequest, "\"params\" must be an object or an array");
    }
    m.type = has_id ? Message::Type::kRequest : Message::Type::kNotification;
    m.method = method_it->get_ref<const std::string&>();
    if (has_params) m.params = *params_it;
  } else if (has_result || has_error) {
    if (has_result && has_error) {
      return fail(kInvalidRequest, "a response has both \"result\" and \"error\"");
    }
    if (!has_id) return fail(kInvalidRequest, "a response needs an \"id\"");
    if (has_result) {
      m.type = Message::Type::kResponse;
      m.result = *result_it;
    } else {
      if (!IsErrorObject(*error_it)) {
        return fail(kInvalidRequest,
                    "\"error\" must be an object with an integer \"code\" and a string "
                    "\"message\"");
      }
      m.type = Message::Type::kError;
      m.error = *error_it;
    }
  } else {
    return fail(kInvalidRequest, "missing \"method\"");
  }
  m.id = std::move(id);
  m.raw = std::move(j);
  ParseResult r;
  r.message = std::move(m);
  return r;
}

}  // namespace

ParseResult Parse(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return Failure(kMessageTooLarge,
                   "message of " + std::to_string(text.size()) + " bytes is over the limit of " +
                       std::to_string(max_bytes),
                   nullptr, true);
  }
  // nlohmann's lexer takes a NUL byte for the end of input, so `{}\0garbage` would parse as
  // `{}`. A raw NUL is never valid JSON (inside a string it must be escaped).
  if (text.find('\0') != std::string_view::npos) {
    return Failure(kParseError, "NUL byte in message", nullptr, true);
  }
  // The lexer checks UTF-8 in strings (overlong forms, surrogates, truncated sequences), and
  // outside strings any non-ASCII byte is a syntax error.
  StrictJson parsed = ParseStrict(text);
  if (parsed.too_deep) {
    return Failure(kParseError, "JSON nested deeper than " + std::to_string(kMaxDepth) + " levels",
                   nullptr, true);
  }
  if (parsed.value.is_discarded()) {
    return Failure(kParseError, "not valid JSON or not UTF-8", nullptr, true);
  }
  if (parsed.value.is_array()) {
    return Failure(kInvalidRequest, "batches are not supported", nullptr, true);
  }
  if (!parsed.value.is_object()) {
    return Failure(kInvalidRequest, "a message must be a JSON object", nullptr, true);
  }
  return ParseObject(std::move(parsed.value), parsed.duplicate_key);
}

namespace {

constexpr size_t kMaxScannedKeys = 64;  // per object; a larger one is Parse's to check

// The checks of StrictBuilder and ParseObject for a response, without building anything:
// nlohmann's lexer still checks the JSON and its UTF-8; this handler counts depth, compares
// each object's key hashes (a collision is "unsure", never a pass), and reads the top
// level's "jsonrpc", "id", "result", "error" and "method".
class ShapeChecker {
 public:
  bool null() { return Value(Kind::kOther); }
  bool boolean(bool /*v*/) { return Value(Kind::kOther); }
  bool number_integer(Json::number_integer_t v) {
    if (AtTopValue() && key_ == TopKey::kId) id_ = v;
    return Value(Kind::kInteger);
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (AtTopValue() && key_ == TopKey::kId && v <= static_cast<uint64_t>(INT64_MAX)) {
      id_ = static_cast<int64_t>(v);
      return Value(Kind::kInteger);
    }
    return Value(Kind::kOther);
  }
  bool number_float(Json::number_float_t /*v*/, const Json::string_t& /*text*/) {
    return Value(Kind::kOther);
  }
  bool string(Json::string_t& v) {
    if (AtTopValue() && key_ == TopKey::kJsonrpc) version_ok_ = v == "2.0";
    return Value(Kind::kOther);
  }
  bool binary(Json::binary_t& /*v*/) { return false; }
  bool start_object(std::size_t /*size*/) { return Open(true); }
  bool start_array(std::size_t /*size*/) { return Open(false); }
  bool key(Json::string_t& k) {
    Level& level = levels_.back();
    if (level.keys.size() >= kMaxScannedKeys) return false;
    const uint64_t h = std::hash<std::string_view>{}(k);
    if (std::find(level.keys.begin(), level.keys.end(), h) != level.keys.end()) return false;
    level.keys.push_back(h);
    if (levels_.size() == 1) {
      key_ = k == "id"        ? TopKey::kId
             : k == "jsonrpc" ? TopKey::kJsonrpc
             : k == "result"  ? TopKey::kResult
             : k == "error"   ? TopKey::kError
             : k == "method"  ? TopKey::kMethod
                              : TopKey::kOther;
      if (key_ == TopKey::kResult) has_result_ = true;
      // Only jsonrpc, id and result: a strict client (the TypeScript SDK's response schema)
      // would refuse more, which the rebuilt reply drops. Stops the scan at once.
      if (key_ == TopKey::kError || key_ == TopKey::kMethod || key_ == TopKey::kOther) {
        return false;
      }
    }
    return true;
  }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  template <typename Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/, const Exception& /*e*/) {
    return false;
  }

  // After a successful sax_parse: a response with a result and an integer id.
  std::optional<int64_t> Id() const {
    if (!top_object_ || !version_ok_ || !has_result_ || !id_) return std::nullopt;
    return id_;
  }

 private:
  enum class Kind { kInteger, kOther };
  enum class TopKey { kNone, kId, kJsonrpc, kResult, kError, kMethod, kOther };
  struct Level {
    bool object = false;
    std::vector<uint64_t> keys;
  };

  // A value that is a member of the top-level object, right after its key.
  bool AtTopValue() const { return levels_.size() == 1 && levels_[0].object; }
  bool Value(Kind kind) {
    if (levels_.empty()) return false;  // a scalar message: Parse refuses it
    // An id that is not an integer is not a splice's; "jsonrpc" is right only as "2.0",
    // which string() sets.
    if (AtTopValue() && key_ == TopKey::kId && kind != Kind::kInteger) id_.reset();
    return true;
  }
  bool Open(bool object) {
    if (levels_.size() >= static_cast<size_t>(kMaxDepth)) return false;
    if (levels_.empty()) {
      if (!object) return false;  // a batch
      top_object_ = true;
    } else if (!Value(Kind::kOther)) {
      return false;
    }
    levels_.push_back(Level{object, {}});
    return true;
  }
  bool Close() {
    levels_.pop_back();
    return true;
  }

  std::vector<Level> levels_;
  TopKey key_ = TopKey::kNone;
  bool top_object_ = false;
  bool version_ok_ = false;
  bool has_result_ = false;
  std::optional<int64_t> id_;
};

size_t SkipSpace(std::string_view t, size_t i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  return i;
}

// From the opening quote of a string to just past its closing quote; *escaped tells whether
// it holds a backslash. The text is valid JSON, checked before.
size_t SkipString(std::string_view t, size_t i, bool* escaped) {
  *escaped = false;
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') {
      *escaped = true;
      ++i;
    } else if (t[i] == '"') {
      return i + 1;
    }
  }
  return t.size();
}

// From the first byte of a value to just past it, in valid JSON.
size_t SkipValue(std::string_view t, size_t i) {
  bool escaped;
  if (t[i] == '"') return SkipString(t, i, &escaped);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    for (; i < t.size(); ++i) {
      const char c = t[i];
      if (c == '"') {
        i = SkipString(t, i, &escaped) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return i + 1;
      }
    }
    return t.size();
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' &&
         t[i] != '\n' && t[i] != '\r') {
    ++i;
  }
  return i;
}

}  // namespace

std::optional<ResponseShape> ScanResponse(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes || text.find('\0') != std::string_view::npos ||
      text.find('\r') != std::string_view::npos || text.find('\n') != std::string_view::npos) {
    return std::nullopt;
  }
  ShapeChecker checker;
  if (!Json::sax_parse(text.begin(), text.end(), &checker, Json::input_format_t::json,
                       /*strict=*/true, /*ignore_comments=*/false)) {
    return std::nullopt;
  }
  std::optional<int64_t> id = checker.Id();
  if (!id) return std::nullopt;
  std::optional<std::pair<size_t, size_t>> span = TopLevelValueSpan(text, "id");
  if (!span) return std::nullopt;
  // Only the plain decimal form, so the splice replaces exactly the number read.
  if (text.substr(span->first, span->second - span->first) != std::to_string(*id)) {
    return std::nullopt;
  }
  return ResponseShape{*id, span->first, span->second};
}

std::optional<std::pair<size_t, size_t>> TopLevelValueSpan(std::string_view text,
                                                           std::string_view key) {
  size_t i = SkipSpace(text, 0);
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  ++i;
  for (;;) {
    i = SkipSpace(text, i);
    if (i >= text.size() || text[i] != '"') return std::nullopt;
    bool escaped;
    const size_t key_end = SkipString(text, i, &escaped);
    if (escaped) return std::nullopt;  // "\u0069d" is "id" too: the caller rebuilds
    const std::string_view name = text.substr(i + 1, key_end - i - 2);
    i = SkipSpace(text, key_end);
    if (i >= text.size() || text[i] != ':') return std::nullopt;
    i = SkipSpace(text, i + 1);
    if (i >= text.size()) return std::nullopt;
    const size_t value_end = SkipValue(text, i);
    if (name == key) return std::make_pair(i, value_end);
    i = SkipSpace(text, value_end);
    if (i >= text.size() || text[i] != ',') return std::nullopt;
    ++i;
  }
}

std::string SpliceSpan(std::string_view text, std::pair<size_t, size_t> span,
                       std::string_view with) {
  std::string out;
  out.reserve(text.size() - (span.second - span.first) + with.size());
  out.append(text.substr(0, span.first));
  out.append(with);
  out.append(text.substr(span.second));
  return out;
}

std::string SpliceId(std::string_view text, const ResponseShape& shape, std::string_view id_json) {
  return SpliceSpan(text, {shape.id_begin, shape.id_end}, id_json);
}

std::string Serialize(const Json& message) {
  // Compact form: control characters in strings are escaped, so there is no raw newline.
  // Invalid UTF-8 (only possible in a Json built in memory) is replaced, never thrown on.
  return message.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The builders fill their objects member by member: an initializer list builds each member
// as a two-element array first, which costs more than the message's own copy (each tool
// call's request and reply go through here).
Json MakeRequest(const Json& id, const std::string& method, const Json& params) {
  Json j = Json::object();
  j["jsonrpc"] = "2.0";
  j["id"] = id;
  j["method"] = method;
  if (!params.is_null()) j["params"] = params;
  return j;
}

Json MakeNotification(const std::string& method, const Json& params) {
  Json j = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) j["params"] = params;
  return j;
}

Json MakeResult(const Json& id, const Json& result) {
  Json j = Json::object();
  j["jsonrpc"] = "2.0";
  j["id"] = id;
  j["result"] = result;
  return j;
}

Json MakeError(const Json& id, int code, const std::string& message, const Json& data) {
  Json error = {{"code", code}, {"message", message}};
  if (!data.is_null()) error["data"] = data;
  Json j = {{"jsonrpc", "2.0"}, {"error", std::move(error)}};
  // MCP's schema (2025-11-25; the TypeScript SDK checks it strictly) makes the id of an error
  // optional but never null, where plain JSON-RPC writes "id": null. Omitting it is what
  // MCP clients accept.
  if (!id.is_null()) j["id"] = id;
  return j;
}

// ---- LineReader -----------------------------------------------------------------------------

LineReader::LineReader(int fd, size_t max_bytes) : fd_(fd), max_bytes_(max_bytes) {}

LineReader::Event LineReader::Next(std::string* line) {
  for (;;) {
    if (discarding_) {
      const void* nl = std::memchr(buf_.data() + start_, '\n', end_ - start_);
      if (nl == nullptr) {
        start_ = end_ = scanned_ = 0;  // the too-long line's bytes are never kept
      } else {
        start_ = scanned_ = static_cast<const char*>(nl) - buf_.data() + 1;
        discarding_ = false;
      }
    }
    if (!discarding_) {
      const size_t from = std::max(start_, scanned_);
      const void* nl = std::memchr(buf_.data() + from, '\n', end_ - from);
      if (nl != nullptr) {
        const size_t nl_at = static_cast<const char*>(nl) - buf_.data();
        std::string_view text(buf_.data() + start_, nl_at - start_);
        start_ = scanned_ = nl_at + 1;
        if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
        if (text.empty()) continue;
        if (text.size() > max_bytes_) return Event::kTooLong;
        line->assign(text);
        return Event::kLine;
      }
      scanned_ = end_;
      // One byte of slack: a line of exactly max_bytes may still be followed by "\r\n".
      const size_t pending = end_ - start_;
      if (pending > max_bytes_ && pending - max_bytes_ > 1) {
        discarding_ = true;
        start_ = end_ = scanned_ = 0;
        return Event::kTooLong;
      }
    }
    if (eof_) {
      std::string_view text(buf_.data() + start_, end_ - start_);
      start_ = end_ = scanned_ = 0;
      discarding_ = false;
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (text.empty()) return Event::kEof;
      if (text.size() > max_bytes_) return Event::kTooLong;
      line->assign(text);  // a last line without "\n"; kEof comes on the next call
      return Event::kLine;
    }

    // Make room to read: drop what was returned, give back a buffer that one long line made
    // large, move a partial line to the front when the tail is short, and grow only when
    // that is not enough (so a reader of small messages keeps one 64 KiB buffer).
    if (start_ == end_) {
      start_ = end_ = scanned_ = 0;
      if (buf_.size() > kKeepBufferBytes) std::string().swap(buf_);
    } else if (start_ > 0 && buf_.size() - end_ < kMinRead) {
      std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
      end_ -= start_;
      scanned_ -= start_;
      start_ = 0;
    }
    if (buf_.size() - end_ < kMinRead) buf_.resize(end_ + kReadChunk);

    ssize_t n;
    do {
      n = ::read(fd_, buf_.data() + end_, std::min(buf_.size() - end_, kReadChunk));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      errno_ = errno;
      return Event::kError;
    }
    if (n == 0) {
      eof_ = true;
    } else {
      end_ += static_cast<size_t>(n);
    }
  }
}

// ---- WriteLine ------------------------------------------------------------------------------

bool WriteLine(int fd, std::string_view line) {
  char newline = '\n';
  iovec iov[2] = {{const_cast<char*>(line.data()), line.size()}, {&newline, 1}};
  iovec* next = iov;
  int count = 2;
  while (count > 0) {
    ssize_t n = ::writev(fd, next, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // A non-blocking fd (a caller's choice): wait until it can take more.
        pollfd p = {fd, POLLOUT, 0};
        if (::poll(&p, 1, -1) < 0 && errno != EINTR) return false;
        continue;
      }
      return false;
    }
    if (n == 0) return false;  // no progress on a regular fd or pipe means it cannot write
    auto done = static_cast<size_t>(n);
    while (count > 0 && done >= next->iov_len) {
      done -= next->iov_len;
      ++next;
      --count;
    }
    if (count > 0) {
      next->iov_base = static_cast<char*>(next->iov_base) + done;
      next->iov_len -= done;
    }
  }
  return true;
}

}  // namespace airlock::mcp
