#include "connectors/http/url.h"

#include <algorithm>
#include <cctype>

#include "core/glob.h"

namespace airlock::http_target {
namespace {

char Lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool IsUnreserved(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

// RFC 3986 pchar without '%' (handled apart): unreserved, sub-delims, ':' and '@'.
bool IsPathChar(char c) {
  if (IsUnreserved(c)) return true;
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
    case ':':
    case '@':
      return true;
    default:
      return false;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kHex[] = "0123456789ABCDEF";

// Canonicalises one segment (path) or the query; `in_query` allows '/' and '?' in it.
Status NormalizePart(std::string_view in, bool in_query, std::string* out) {
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      const int hi = i + 1 < in.size() ? HexValue(in[i + 1]) : -1;
      const int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return Status::InvalidArgument("a '%' that is not followed by two hex digits");
      const char decoded = static_cast<char>(hi * 16 + lo);
      if (!in_query && (decoded == '/' || decoded == '\\')) {
        // Servers disagree on whether %2F separates segments: a rule could see one path and
        // the server serve another.
        return Status::InvalidArgument("an encoded '/' or '\\' (%2F, %5C)");
      }
      if (decoded == '\0' || static_cast<unsigned char>(decoded) < 0x20 || decoded == 0x7F) {
        return Status::InvalidArgument("an encoded NUL or control character");
      }
      if (IsUnreserved(decoded)) {
        out->push_back(decoded);
      } else {
        out->push_back('%');
        out->push_back(kHex[hi]);
        out->push_back(kHex[lo]);
      }
      i += 2;
      continue;
    }
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F)
      return Status::InvalidArgument("a control character (CR, LF, NUL, ...)");
    if (u >= 0x80) return Status::InvalidArgument("a non-ASCII byte (percent-encode it)");
    if (c == ' ') return Status::InvalidArgument("a space (percent-encode it as %20)");
    if (c == '#') return Status::InvalidArgument("a fragment ('#'): it is never sent to a server");
    if (c == '\\') return Status::InvalidArgument("a backslash");
    if (IsPathChar(c) || (in_query && (c == '/' || c == '?'))) {
      out->push_back(c);
      continue;
    }
    return Status::InvalidArgument(std::string("the character '") + c + "' (percent-encode it)");
  }
  return Status::Ok();
}

bool IsHostChar(char c, bool bracketed) {
  const unsigned char u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '.' || c == '-' || c == '_' || (bracketed && c == ':');
}

}  // namespace

std::string BaseUrl::Origin() const {
  return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

Result<BaseUrl> ParseBaseUrl(std::string_view url) {
  if (url.size() > kMaxBaseUrlBytes) {
    return Status::InvalidArgument("base_url is longer than " + std::to_string(kMaxBaseUrlBytes) +
                                   " bytes");
  }
  const size_t sep = url.find("://");
  std::string scheme(url.substr(0, sep == std::string_view::npos ? 0 : sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), Lower);
  if (sep == std::string_view::npos || (scheme != "http" && scheme != "https")) {
    return Status::InvalidArgument("base_url must be an http:// or https:// URL");
  }
  BaseUrl b;
  b.scheme = scheme;
  std::string_view rest = url.substr(sep + 3);
  const size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return Status::InvalidArgument(
        "base_url must not hold user:password@ (put credentials in headers: with env: or file:)");
  }
  std::string_view host = authority, port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return Status::InvalidArgument("base_url has an unclosed '['");
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return Status::InvalidArgument("base_url has junk after its host");
      port = authority.substr(close + 2);
      if (port.empty()) return Status::InvalidArgument("base_url has an empty port");
    }
  } else if (size_t colon = authority.find(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty()) return Status::InvalidArgument("base_url has an empty port");
  }
  const bool bracketed = !host.empty() && host[0] == '[';
  std::string_view bare = bracketed ? host.substr(1, host.size() - 2) : host;
  if (bare.empty()) return Status::InvalidArgument("base_url has no host");
  for (char c : bare) {
    if (!IsHostChar(c, bracketed)) {
      return Status::InvalidArgument("base_url's host has a character not allowed in a host name");
    }
  }
  if (!port.empty()) {
    const bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
                          return c >= '0' && c <= '9';
                        });
    if (!digits || std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535) {
      return Status::InvalidArgument("base_url has a bad port: expected 1 to 65535");
    }
  }
  b.host = std::string(host);
  std::transform(b.host.begin(), b.host.end(), b.host.begin(), Lower);
  b.port = std::string(port);
  if (path.find_first_of("?#") != std::string_view::npos) {
    return Status::InvalidArgument("base_url must not have a query or a fragment");
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (!path.empty()) {
    Result<std::string> p = NormalizePath(path);
    if (!p.ok()) return p.status().Annotate("base_url's path");
    b.prefix = *p;
  }
  return b;
}

Result<std::string> NormalizeMethod(std::string_view method) {
  std::string m(method);
  std::transform(m.begin(), m.end(), m.begin(), [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  for (const char* known : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    if (m == known) return m;
  }
  return Status::InvalidArgument(
      "unsupported HTTP method (allowed: GET, HEAD, POST, PUT, PATCH, "
      "DELETE, OPTIONS)");
}

Result<std::string> NormalizePath(std::string_view path) {
  if (path.size() > kMaxPathBytes) {
    return Status::InvalidArgument("the path is longer than " + std::to_string(kMaxPathBytes) +
                                   " bytes");
  }
  if (path.empty() || path[0] != '/') {
    if (path.find("://") != std::string_view::npos) {
      return Status::InvalidArgument(
          "the path is an absolute URL: give a path below the target's base_url, such as "
          "/v1/items");
    }
    return Status::InvalidArgument("the path must start with '/'");
  }
  if (path.size() > 1 && (path[1] == '/' || path[1] == '\\')) {
    return Status::InvalidArgument("the path starts with '//', which names another host");
  }
  const size_t q = path.find('?');
  std::string_view segments = path.substr(1, q == std::string_view::npos ? q : q - 1);
  std::string out = "/";
  size_t start = 0;
  while (true) {
    const size_t slash = segments.find('/', start);
    std::string_view seg =
        segments.substr(start, slash == std::string_view::npos ? slash : slash - start);
    std::string norm;
    Status st = NormalizePart(seg, /*in_query=*/false, &norm);
    if (!st.ok()) return Status::InvalidArgument("the path has " + st.message());
    if (norm == "." || norm == "..") {
      // Resolving them would let "/v1/../admin" pass an allow list for "/v1/**".
      return Status::InvalidArgument("the path has a '.' or '..' segment");
    }
    if (norm.empty() && slash != std::string_view::npos) {
      return Status::InvalidArgument("the path has an empty segment ('//')");
    }
    out += norm;
    if (slash == std::string_view::npos) break;
    out += '/';
    start = slash + 1;
  }
  if (q != std::string_view::npos) {
    std::string query;
    Status st = NormalizePart(path.substr(q + 1), /*in_query=*/true, &query);
    if (!st.ok()) return Status::InvalidArgument("the query has " + st.message());
    out += '?';
    out += query;
  }
  return out;
}

std::string_view PathPart(std::string_view normalized) {
  return normalized.substr(0, normalized.find('?'));
}

std::string JoinUrl(const BaseUrl& base, const std::string& normalized_path) {
  return base.Origin() + base.prefix + normalized_path;
}

Result<AllowRule> ParseAllowRule(std::string_view text) {
  const size_t space = text.find(' ');
  if (space == std::string_view::npos) {
    return Status::InvalidArgument("expected \"METHOD /path-glob\", e.g. \"GET /v1/**\"");
  }
  AllowRule r;
  std::string_view method = text.substr(0, space);
  if (method == "*") {
    r.method = "*";
  } else {
    ASSIGN_OR_RETURN(r.method, NormalizeMethod(method));
  }
  ASSIGN_OR_RETURN(r.glob, ParsePathGlob(text.substr(space + 1)));
  return r;
}

bool AllowMatches(const AllowRule& rule, std::string_view method,
                  std::string_view normalized_path) {
  if (rule.method != "*" && rule.method != method) return false;
  return PathGlobMatches(rule.glob, normalized_path);
}

Result<std::string> ParsePathGlob(std::string_view text) {
  if (text.empty() || text[0] != '/') {
    return Status::InvalidArgument("an HTTP path pattern starts with '/', e.g. /v1/**");
  }
  std::string glob(text.substr(1));
  if (glob.empty()) return glob;  // "/": the root only
  std::string why;
  if (!GlobValid(glob, &why)) return Status::InvalidArgument("bad pattern: " + why);
  return glob;
}

bool PathGlobMatches(std::string_view glob, std::string_view normalized_path) {
  std::string_view path = PathPart(normalized_path);
  if (!path.empty() && path[0] == '/') path.remove_prefix(1);
  if (glob.empty()) return path.empty();
  return GlobMatch(glob, path);
}

}  // namespace airlock::http_target
