// JSON-RPC 2.0 as MCP uses it (2025-06-18 and 2025-11-25 revisions): one message per line
// on stdio, one message per HTTP body. Batches (a top-level array) are refused: MCP removed
// them in 2025-06-18. Everything here is untrusted input; nothing throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/json.h"

namespace airlock::mcp {

// JSON-RPC 2.0 error codes.
enum ErrorCode : int {
  kParseError = -32700,      // not JSON, not UTF-8
  kInvalidRequest = -32600,  // JSON, but not a valid message (batch, missing jsonrpc, ...)
  kMethodNotFound = -32601,
  kInvalidParams = -32602,
  kInternalError = -32603,
  // Implementation-defined server errors (-32000..-32099).
  kUpstreamUnavailable = -32001,  // the upstream server crashed or is restarting
  kMessageTooLarge = -32002,      // over the size cap (the rest of the line is discarded)
  kRequestCancelled = -32800,     // LSP's code, used by MCP SDKs for a cancelled request
};

struct Message {
  enum class Type { kRequest, kNotification, kResponse, kError };
  Type type = Type::kNotification;
  Json id = nullptr;     // request/response/error: a string or an integer; else null
  std::string method;    // request/notification
  Json params = nullptr; // request/notification: an object or array, or null when absent
  Json result = nullptr; // response
  Json error = nullptr;  // error: {"code": int, "message": string, "data"?: any}
  Json raw;              // the whole message as received (extra members kept)

  bool IsRequest() const { return type == Type::kRequest; }
  bool IsNotification() const { return type == Type::kNotification; }
  bool IsResponse() const { return type == Type::kResponse || type == Type::kError; }
};

// Why a message was refused, and what to answer. `id` is the request's id when it could be
// read (so the error reply can name it), else null. A refused notification gets no answer
// (JSON-RPC), which `answerable` says; nor does a refused response (one with "result" or
// "error" and no "method"), though its `id` is still set when readable so that the request
// it answers can be failed. A repeated object key is refused (kInvalidRequest): the gateway
// and the upstream must not read different values from one message.
struct ParseFailure {
  int code = kInvalidRequest;
  std::string message;  // for people: "batches are not supported", "missing \"method\""
  Json id = nullptr;
  bool answerable = true;
};

struct ParseResult {
  std::optional<Message> message;  // set on success
  ParseFailure failure;            // meaningful when !message
};

// Parses and validates one message. Rules (JSON-RPC 2.0 + MCP):
// - size > max_bytes: kMessageTooLarge; invalid UTF-8 or not JSON: kParseError;
// - not an object (arrays: batches): kInvalidRequest;
// - "jsonrpc" must be exactly "2.0";
// - id: a string or an integer (MCP forbids null; fractional numbers refused);
// - "method" (string) makes a request (with id) or a notification (without);
// - otherwise "result" or "error" (exactly one, with an id) makes a response; an error
//   object needs an integer "code" and a string "message";
// - "params", when present, is an object or an array.
// Nesting deeper than 64 levels is refused as kParseError (no stack exhaustion).
ParseResult Parse(std::string_view text, size_t max_bytes);

// Where a response's id is in its text, for a reply that goes out as the server's own text
// with only the id replaced (SpliceId), before the message is built: the reply to a read
// tool call, whose parse and re-serialisation cost ~20 us of the round trip at p50.
struct ResponseShape {
  int64_t id = 0;
  size_t id_begin = 0;  // the id's text is [id_begin, id_end)
  size_t id_end = 0;
};

// Set only when Parse(text, max_bytes) would give a kResponse whose top level is exactly
// "jsonrpc", "id" (this integer) and "result", making the same checks without building it:
// the size cap, no NUL, strict UTF-8 JSON, depth, no repeated key, "jsonrpc": "2.0". Unset
// for anything else, and whenever it is unsure, for Parse to decide: a top-level key written
// with an escape, an object of over 64 keys, two keys whose 64-bit hashes collide, a carriage
// return (a client may split lines on it), an id written in another form than its decimal.
std::optional<ResponseShape> ScanResponse(std::string_view text, size_t max_bytes);

// The text with its id's text replaced by id_json (a JSON string or integer, compact).
std::string SpliceId(std::string_view text, const ResponseShape& shape, std::string_view id_json);

// Where the value of `key` is in the text of a JSON object Parse has already taken (valid,
// no repeated key): [first, second). Unset when no top-level key is written as `key` is, or
// when a top-level key before it is written with an escape (it might be `key`): the caller
// then builds the message instead.
std::optional<std::pair<size_t, size_t>> TopLevelValueSpan(std::string_view text,
                                                           std::string_view key);
// The text with [span.first, span.second) replaced by `with`.
std::string SpliceSpan(std::string_view text, std::pair<size_t, size_t> span,
                       std::string_view with);

// One line, no embedded newline (JSON escapes every control character in strings).
std::string Serialize(const Json& message);

Json MakeRequest(const Json& id, const std::string& method, const Json& params);
Json MakeNotification(const std::string& method, const Json& params);
Json MakeResult(const Json& id, const Json& result);
// A null `id` is omitted (MCP 2025-11-25: an error's id is optional, never null); a null
// `data` or `params` is omitted.
Json MakeError(const Json& id, int code, const std::string& message, const Json& data = nullptr);

// Reads newline-delimited messages from a file descriptor (blocking). A line longer than
// max_bytes is reported as kTooLong and skipped up to its newline, so the stream survives.
// A trailing "\r" is removed. Empty lines are skipped.
class LineReader {
 public:
  enum class Event { kLine, kTooLong, kEof, kError };
  LineReader(int fd, size_t max_bytes);
  Event Next(std::string* line);
  int error() const { return errno_; }  // errno for kError

 private:
  int fd_;
  size_t max_bytes_;
  std::string buf_;  // storage; bytes [start_, end_) are read but not yet returned
  size_t start_ = 0;
  bool eof_ = false;
  int errno_ = 0;
  size_t end_ = 0;
  size_t scanned_ = 0;       // [start_, scanned_) holds no '\n': each byte is searched once
  bool discarding_ = false;  // inside a too-long line: drop bytes up to its '\n'
};

// Writes one message plus "\n" completely (retries EINTR and short writes). False on error
// (EPIPE: the other side is gone). Callers serialise writers on one fd themselves.
bool WriteLine(int fd, std::string_view line);

}  // namespace airlock::mcp
