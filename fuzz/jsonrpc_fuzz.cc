// Untrusted JSON-RPC, as an MCP client or upstream server sends it: one message through
// Parse (with a small and a large size cap), and the same bytes as a stdio stream through
// LineReader. Oracles, beyond "no crash, no exception":
// - a parsed message is self-consistent (its type matches its fields), came from valid UTF-8,
//   and Serialize gives one line that parses back to the same message;
// - a refusal has a JSON-RPC code and a readable id or none;
// - TopLevelValueSpan finds a parsed message's own top-level id;
// - ScanResponse passes only what Parse takes as a response with the same id, and SpliceId
//   changes that id and nothing else;
// - LineReader yields exactly the events of a plain split on '\n' (see ExpectedEvents).
// Seeds: fuzz/corpus/jsonrpc/, named by scenario.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/jsonrpc.h"

namespace {

using airlock::Json;
using namespace airlock::mcp;

constexpr size_t kSmallCap = 64;
constexpr size_t kLargeCap = 1 << 20;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// Independent of nlohmann's lexer, which Parse relies on to refuse non-UTF-8.
bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80                 ? 1
                 : c >= 0xC2 && c <= 0xDF ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < len; ++k) {
      auto ck = static_cast<unsigned char>(s[i + k]);
      if ((ck & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (ck & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

bool IsId(const Json& id) {
  return id.is_string() || id.is_number_integer();
}

// A member of a const object, or a discarded value (const operator[] on a missing key is UB).
Json Member(const Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? Json(Json::value_t::discarded) : *it;
}

void CheckMessage(const Message& m) {
  Check(m.raw.is_object());
  Check(Member(m.raw, "jsonrpc") == Json("2.0"));
  Check(m.params.is_null() || m.params.is_object() || m.params.is_array());
  const bool has_method = m.raw.contains("method");
  const bool has_result = m.raw.contains("result");
  const bool has_error = m.raw.contains("error");
  switch (m.type) {
    case Message::Type::kRequest:
      Check(IsId(m.id) && Member(m.raw, "id") == m.id);
      Check(Member(m.raw, "method") == Json(m.method) && !has_result && !has_error);
      break;
    case Message::Type::kNotification:
      Check(m.id.is_null() && !m.raw.contains("id"));
      Check(Member(m.raw, "method") == Json(m.method) && !has_result && !has_error);
      break;
    case Message::Type::kResponse:
      Check(IsId(m.id) && Member(m.raw, "id") == m.id && !has_method && !has_error);
      Check(Member(m.raw, "result") == m.result);
      break;
    case Message::Type::kError:
      Check(IsId(m.id) && Member(m.raw, "id") == m.id && !has_method && !has_result);
      Check(m.error.is_object() && Member(m.raw, "error") == m.error);
      Check(Member(m.error, "code").is_number_integer() && Member(m.error, "message").is_string());
      break;
  }
}

bool SameMessage(const Message& a, const Message& b) {
  return a.type == b.type && a.id == b.id && a.method == b.method && a.params == b.params &&
         a.result == b.result && a.error == b.error && a.raw == b.raw;
}

void CheckFailure(const ParseFailure& f) {
  Check(f.code == kParseError || f.code == kInvalidRequest || f.code == kMessageTooLarge);
  Check(f.id.is_null() || IsId(f.id));
  Check(!f.message.empty());
}

void CheckScan(std::string_view text, size_t cap) {
  std::optional<ResponseShape> shape = ScanResponse(text, cap);
  if (!shape) return;
  ParseResult r = Parse(text, cap);
  Check(r.message.has_value() && r.message->type == Message::Type::kResponse);
  Check(r.message->id == Json(shape->id));
  const std::string spliced = SpliceId(text, *shape, R"("c\"1")");
  ParseResult again = Parse(spliced, SIZE_MAX);
  Check(again.message.has_value() && again.message->type == Message::Type::kResponse);
  Json expected = r.message->raw;
  expected["id"] = "c\"1";
  Check(again.message->raw == expected && again.message->result == r.message->result);
}

void CheckParse(std::string_view text) {
  CheckScan(text, kSmallCap);
  CheckScan(text, kLargeCap);
  ParseResult small = Parse(text, kSmallCap);
  ParseResult large = Parse(text, kLargeCap);
  if (text.size() > kSmallCap) {
    Check(!small.message && small.failure.code == kMessageTooLarge);
  } else {
    Check(small.message.has_value() == large.message.has_value());
  }
  if (!large.message) {
    CheckFailure(large.failure);
    return;
  }
  Check(ValidUtf8(text));
  CheckMessage(*large.message);
  // A parsed message's top-level id, where TopLevelValueSpan finds it, is that id, and
  // splicing another in changes nothing else.
  if (auto span = TopLevelValueSpan(text, "id")) {
    Check(large.message->raw.contains("id"));
    const std::string spliced = SpliceSpan(text, *span, "7");
    ParseResult again = Parse(spliced, SIZE_MAX);
    Check(again.message.has_value());
    Json expected = large.message->raw;
    expected["id"] = 7;
    Check(again.message->raw == expected);
  }
  const std::string line = Serialize(large.message->raw);
  Check(line.find('\n') == std::string::npos && line.find('\r') == std::string::npos);
  ParseResult again = Parse(line, SIZE_MAX);
  Check(again.message.has_value() && SameMessage(*again.message, *large.message));
}

// The reference for LineReader: split on '\n' (a last piece without one counts), drop one
// trailing '\r', skip empty lines, and a line over the cap is one kTooLong.
std::vector<std::string> ExpectedEvents(std::string_view data, size_t max_bytes) {
  std::vector<std::string> events;
  while (!data.empty()) {
    size_t nl = data.find('\n');
    std::string_view line = data.substr(0, nl);
    data.remove_prefix(nl == std::string_view::npos ? data.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    events.push_back(line.size() > max_bytes ? "too long" : "line " + std::string(line));
  }
  events.push_back("eof");
  return events;
}

void CheckLineReader(int fd, std::string_view data, size_t max_bytes) {
  if (lseek(fd, 0, SEEK_SET) != 0) abort();
  LineReader reader(fd, max_bytes);
  std::vector<std::string> events;
  for (;;) {
    std::string line;
    LineReader::Event e = reader.Next(&line);
    Check(e != LineReader::Event::kError);
    if (e == LineReader::Event::kEof) break;
    if (e == LineReader::Event::kTooLong) {
      events.push_back("too long");
      continue;
    }
    Check(!line.empty() && line.size() <= max_bytes);
    events.push_back("line " + line);
    (void)Parse(line, max_bytes);
  }
  events.push_back("eof");
  Check(events == ExpectedEvents(data, max_bytes));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int memfd = memfd_create("jsonrpc_fuzz", MFD_CLOEXEC);
  if (memfd < 0) abort();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckParse(text);

  if (ftruncate(memfd, 0) != 0) abort();
  if (size > 0 && pwrite(memfd, data, size, 0) != static_cast<ssize_t>(size)) abort();
  CheckLineReader(memfd, text, 16);
  CheckLineReader(memfd, text, kLargeCap);
  return 0;
}
