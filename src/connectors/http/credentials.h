// The headers an HTTP target adds to every request (policy `headers:`), and where their
// values come from. A value is a credential the agent must never see, so it is read only
// when a request is sent, and no message, effect or log line ever holds it: errors name the
// header and the reference (`env:API_TOKEN`), never the value.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace airlock::http_target {

struct HeaderSpec {
  enum class Source { kLiteral, kEnv, kFile };
  std::string name;  // as written ("Authorization"); a valid header name
  Source source = Source::kLiteral;
  std::string ref;  // the literal value, the variable's name, or the absolute file path
};

// Parses one `headers:` entry. `value` is "env:NAME" (an environment variable of the
// airlock process), "file:PATH" (the file's content, one trailing newline dropped) or a
// literal. Refused: names that are not RFC 9110 tokens, names airlock sets itself (Host,
// Content-Length, Transfer-Encoding, Connection, Expect, Upgrade, TE), and CR/LF/NUL in a
// literal (header injection). A relative file path is the caller's to resolve.
Result<HeaderSpec> ParseHeaderSpec(std::string_view name, std::string_view value);

// The value to send. FailedPrecondition when the variable is unset or the file cannot be
// read; InvalidArgument when the value holds CR, LF or another control character. The
// message names the header and the reference only.
Result<std::string> ResolveHeaderValue(const HeaderSpec& spec);

// "env:API_TOKEN", "file:/etc/airlock/key", "(literal)": what may be shown of a value.
std::string DescribeSource(const HeaderSpec& spec);

}  // namespace airlock::http_target
