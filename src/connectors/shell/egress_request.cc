#include "connectors/shell/egress_request.h"

#include <algorithm>
#include <charconv>

#include "connectors/http/url.h"

namespace airlock::shell {
namespace {

Status Bad(const std::string& why) {
  return Status::InvalidArgument(why);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsTchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsHexDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

Result<int> ParsePort(std::string_view text) {
  if (!IsDigits(text) || text.size() > 5) return Bad("bad port");
  int port = 0;
  std::from_chars(text.data(), text.data() + text.size(), port);
  if (port < 1 || port > 65535) return Bad("bad port");
  return port;
}

// "host[:port]" of a request target. An IPv6 literal keeps its brackets; it is refused by
// CheckEgressHost later, with the other addresses, so that the refusal names it.
Status SplitAuthority(std::string_view auth, int default_port, std::string* host, int* port) {
  if (auth.empty()) return Bad("no host");
  if (auth.find('@') != std::string_view::npos) return Bad("userinfo (user@host) is refused");
  if (auth.find_first_of("/?#\\") != std::string_view::npos) return Bad("bad authority");
  std::string_view h = auth, p;
  if (auth.front() == '[') {
    size_t close = auth.find(']');
    if (close == std::string_view::npos) return Bad("unterminated IPv6 literal");
    h = auth.substr(0, close + 1);
    std::string_view rest = auth.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return Bad("bad authority");
      p = rest.substr(1);
      if (p.empty()) return Bad("bad port");
    }
  } else if (size_t colon = auth.rfind(':'); colon != std::string_view::npos) {
    h = auth.substr(0, colon);
    p = auth.substr(colon + 1);
    if (p.empty()) return Bad("bad port");
  }
  if (h.empty()) return Bad("no host");
  *host = Lower(h);
  if (p.empty()) {
    if (default_port == 0) return Bad("CONNECT needs host:port");
    *port = default_port;
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(*port, ParsePort(p));
  return Status::Ok();
}

Status ParseTarget(std::string_view target, EgressTarget* t) {
  for (char c : target) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) return Bad("control, space or non-ASCII byte in the target");
  }
  if (t->tunnel) return SplitAuthority(target, 0, &t->host, &t->port);
  constexpr std::string_view kHttp = "http://";
  if (target.size() < kHttp.size() || Lower(target.substr(0, kHttp.size())) != kHttp) {
    // https:// in absolute form asks the proxy to speak TLS for the client; origin form
    // (GET /path) names no host. Neither is what a proxied client sends.
    return Bad("a proxied request names an absolute http:// URL (or uses CONNECT for https)");
  }
  std::string_view rest = target.substr(kHttp.size());
  size_t end = rest.find_first_of("/?#");
  RETURN_IF_ERROR(SplitAuthority(rest.substr(0, end), 80, &t->host, &t->port));
  std::string_view path = end == std::string_view::npos ? "/" : rest.substr(end);
  if (path.front() == '?') return Bad("a query without a path");
  if (path.front() == '#') return Bad("a fragment in the request target");
  auto normalized = http_target::NormalizePath(path);
  if (!normalized.ok()) return normalized.status();
  t->path = *normalized;
  return Status::Ok();
}

Status ParseRequestLine(std::string_view line, EgressTarget* t) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return Bad("malformed request line");
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Bad("malformed request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return Bad("unsupported HTTP version");
  if (method.empty() ||
      !std::all_of(method.begin(), method.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return Bad("malformed method");
  }
  if (method == "CONNECT") {
    t->method = "CONNECT";
    t->tunnel = true;
  } else {
    auto m = http_target::NormalizeMethod(method);
    if (!m.ok()) return Bad("method " + std::string(method) + " is not supported by the proxy");
    t->method = *m;
  }
  if (target.empty()) return Bad("empty request target");
  return ParseTarget(target, t);
}

bool IsHopByHop(const std::string& lower_name) {
  return lower_name == "connection" || lower_name == "keep-alive" || lower_name == "te" ||
         lower_name == "trailer" || lower_name == "upgrade" || lower_name == "host" ||
         lower_name.rfind("proxy-", 0) == 0;
}

Status ParseHeader(std::string_view line, EgressTarget* t, bool* seen_length) {
  if (line.front() == ' ' || line.front() == '\t') return Bad("obsolete line folding is refused");
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return Bad("malformed header line");
  std::string_view name = line.substr(0, colon);
  if (!std::all_of(name.begin(), name.end(), IsTchar)) return Bad("malformed header name");
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  for (char c : value) {
    const unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7F) return Bad("control byte in a header value");
  }
  const std::string lower = Lower(name);
  if (lower == "transfer-encoding") {
    // Only Content-Length framing is forwarded: one way to read where a body ends.
    return Bad("Transfer-Encoding on a request is refused (send Content-Length)");
  }
  if (lower == "content-length") {
    if (*seen_length) return Bad("more than one Content-Length");
    *seen_length = true;
    if (!IsDigits(value) || value.size() > 18) return Bad("malformed Content-Length");
    std::from_chars(value.data(), value.data() + value.size(), t->content_length);
    if (t->content_length > kMaxEgressBodyBytes) return Bad("the request body is over 1 MiB");
  }
  if (lower == "content-type") t->content_type = std::string(value);
  if (!IsHopByHop(lower)) t->headers.emplace_back(std::string(name), std::string(value));
  return Status::Ok();
}

}  // namespace

std::string EgressTarget::Url() const {
  const std::string authority = host + ":" + std::to_string(port);
  return tunnel ? authority : "http://" + authority + path;
}

Result<EgressTarget> ParseEgressRequest(std::string_view head) {
  if (head.size() > kMaxEgressHeadBytes) return Bad("the request head is over 16 KiB");
  while (head.size() >= 2 && head.substr(head.size() - 2) == "\r\n") head.remove_suffix(2);
  EgressTarget t;
  bool first = true, seen_length = false;
  size_t count = 0;
  while (true) {
    size_t end = head.find("\r\n");
    std::string_view line = head.substr(0, end);
    if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos) {
      return Bad("a bare CR or LF in the request head");
    }
    if (line.find('\0') != std::string_view::npos) return Bad("a NUL byte in the request head");
    if (line.empty()) return Bad(first ? "empty request line" : "an empty line inside the head");
    if (first) {
      RETURN_IF_ERROR(ParseRequestLine(line, &t));
      first = false;
    } else {
      if (++count > kMaxEgressHeaders) return Bad("more than 100 header lines");
      RETURN_IF_ERROR(ParseHeader(line, &t, &seen_length));
    }
    if (end == std::string_view::npos) break;
    head.remove_prefix(end + 2);
  }
  if (t.tunnel && t.content_length != 0) return Bad("CONNECT carries no body");
  if ((t.method == "GET" || t.method == "HEAD") && t.content_length != 0) {
    return Bad(t.method + " carries no body");
  }
  return t;
}

bool IsIpLiteral(std::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[' || host.find(':') != std::string_view::npos) return true;
  if (host.back() == '.') host.remove_suffix(1);
  size_t dot = host.rfind('.');
  std::string_view last = dot == std::string_view::npos ? host : host.substr(dot + 1);
  if (IsDigits(last)) return true;
  if (last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
    return IsHexDigits(last.substr(2));
  }
  return false;
}

Status CheckEgressHost(std::string_view host) {
  if (IsIpLiteral(host)) {
    return Status::PermissionDenied("raw IP address " + std::string(host) +
                                    ": the proxy only connects to names in its allow list");
  }
  if (host.empty() || host.size() > 253) return Bad("bad host name");
  if (host.back() == '.') host.remove_suffix(1);
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return Bad("bad host name");
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
        return Bad("bad host name");
      }
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return Status::Ok();
}

Result<EgressAllow> ParseEgressAllow(std::string_view text) {
  EgressAllow a;
  std::string_view host = text;
  if (size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    host = text.substr(0, colon);
    std::string_view port = text.substr(colon + 1);
    if (port == "*") {
      a.port = -1;
    } else {
      auto p = ParsePort(port);
      if (!p.ok()) return Bad("expected HOST, HOST:PORT or HOST:*");
      a.port = *p;
    }
  }
  std::string name(host);
  if (name != Lower(name)) return Bad("write the host in lower case");
  std::string_view check = name;
  if (check.rfind("*.", 0) == 0) check.remove_prefix(2);
  Status st = CheckEgressHost(check);
  if (st.code() == StatusCode::kPermissionDenied) {
    return Bad("an IP address cannot be allowed: the proxy only connects to names");
  }
  if (!st.ok()) return Bad("expected a host name (or *.domain), got '" + name + "'");
  if (name.back() == '.') name.pop_back();
  a.host = name;
  return a;
}

bool EgressAllowed(const std::vector<EgressAllow>& allow, std::string_view host, int port) {
  std::string h(host);
  if (!h.empty() && h.back() == '.') h.pop_back();
  for (const EgressAllow& a : allow) {
    bool port_ok = a.port == -1 || a.port == port || (a.port == 0 && (port == 80 || port == 443));
    if (!port_ok) continue;
    if (a.host.rfind("*.", 0) == 0) {
      std::string_view suffix = std::string_view(a.host).substr(1);  // ".example.com"
      if (h.size() > suffix.size() &&
          h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return true;
      }
    } else if (a.host == h) {
      return true;
    }
  }
  return false;
}

}  // namespace airlock::shell
