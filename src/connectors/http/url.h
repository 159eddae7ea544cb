// The request an HTTP target may send, checked before anything else looks at it.
//
// An agent names a METHOD and a PATH; airlock joins the path to the target's base_url. The
// path is the untrusted part: it must stay on the base URL's host and below its prefix, and
// it is brought to one canonical form so that rules and the allow list see what the server
// will see (`/v1/%61dmin` is `/v1/admin`; `/v1/../admin` is refused, never resolved). Pure
// functions, no I/O: the policy loader validates with them, the connector sends with them,
// and fuzz/http_target_fuzz.cc feeds them hostile input.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace airlock::http_target {

inline constexpr size_t kMaxPathBytes = 8 * 1024;
inline constexpr size_t kMaxBaseUrlBytes = 2048;

// A target's base_url: http(s)://host[:port][/prefix], no userinfo, query or fragment.
struct BaseUrl {
  std::string scheme;          // "http" or "https" (lower case)
  std::string host;            // lower case; an IPv6 address keeps its brackets
  std::string port;            // "" when the URL names none
  std::string prefix;          // "" or "/api/v2" (no trailing '/')
  std::string Origin() const;  // "scheme://host[:port]"
};

// InvalidArgument with the reason; the message never quotes the URL (it is policy text,
// but a base URL pasted with a key in it should not end up in CI logs).
Result<BaseUrl> ParseBaseUrl(std::string_view url);

// GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS, in any case -> upper case. CONNECT and
// TRACE (tunnels, reflection) and anything else are refused.
Result<std::string> NormalizeMethod(std::string_view method);

// The canonical form of a request path with its optional query ("/v1/items?limit=5"), or
// InvalidArgument naming what is wrong: not starting with exactly one '/', an absolute URL
// or "//host" (another host), '.' or '..' segments (also percent-encoded), an encoded '/'
// or '\' or NUL, control characters, spaces, CR/LF, '#', non-ASCII bytes, malformed
// percent escapes, or more than kMaxPathBytes. Canonical: percent escapes of unreserved
// characters (A-Z a-z 0-9 - . _ ~) are decoded, the others are upper-cased.
Result<std::string> NormalizePath(std::string_view path);

// The path part of a normalized path (before '?').
std::string_view PathPart(std::string_view normalized);

// base + prefix + normalized path: the URL that is sent.
std::string JoinUrl(const BaseUrl& base, const std::string& normalized_path);

// One entry of a target's `allow:` list: "METHOD /glob" ("GET /v1/**", "* /health").
struct AllowRule {
  std::string method;  // upper case, or "*" for any method
  std::string glob;    // core/glob.h pattern on the path without its leading '/'
};
Result<AllowRule> ParseAllowRule(std::string_view text);
// Whether `rule` admits `method` (normalized) on `normalized_path` (its query is ignored).
bool AllowMatches(const AllowRule& rule, std::string_view method, std::string_view normalized_path);

// A glob for a rule's `path:` that names an HTTP path ("/v1/messages/**"): it starts with
// '/'. Returns the core/glob.h pattern (without the '/'), or InvalidArgument.
Result<std::string> ParsePathGlob(std::string_view text);
bool PathGlobMatches(std::string_view glob, std::string_view normalized_path);

}  // namespace airlock::http_target
