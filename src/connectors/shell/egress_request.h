// What a sandboxed command asks airlock's egress proxy (a shell target's `network: proxy`),
// checked before anything else looks at it.
//
// The command is untrusted, and so is every byte it sends the proxy. A request head is
// parsed strictly (RFC 9112 with the obsolete and ambiguous parts refused): one request line
// in absolute form (`GET http://host/path HTTP/1.1`) or authority form (`CONNECT host:443
// HTTP/1.1`), CRLF line ends, no folded header lines, no userinfo, no Transfer-Encoding
// (a chunked body could hide a second request from a server that reads it differently),
// at most one Content-Length. Hosts must be names: an address in any spelling inet_aton or a
// browser accepts (127.0.0.1, 2130706433, 0x7f.1, 0177.1, [::1]) is refused, so the allow
// list cannot be walked around by naming an address. Pure functions, no I/O: the proxy
// uses them, and fuzz/egress_fuzz.cc feeds them hostile input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace airlock::shell {

inline constexpr size_t kMaxEgressHeadBytes = 16 * 1024;
inline constexpr size_t kMaxEgressHeaders = 100;
inline constexpr int64_t kMaxEgressBodyBytes = 1 << 20;

struct EgressTarget {
  std::string method;   // upper case: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or CONNECT
  bool tunnel = false;  // CONNECT: bytes are spliced, nothing more is seen
  std::string host;     // lower case; as written (an IP literal keeps its form, for the audit)
  int port = 0;
  std::string path;  // absolute form only: normalized path and query (http_target rules)
  // Headers to forward, in order, without the hop-by-hop and proxy ones (Connection,
  // Proxy-*, Keep-Alive, TE, Trailer, Upgrade) and without Host (airlock writes its own).
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t content_length = 0;
  std::string content_type;
  std::string Url() const;  // "http://host:port/path" or "host:port" for CONNECT
};

// The bytes before the blank line ending the head ("...\r\n\r\n" excluded or included).
// InvalidArgument with a short reason (safe to send back to the command).
Result<EgressTarget> ParseEgressRequest(std::string_view head);

// Whether `host` is an address rather than a name: an IPv6 literal (brackets or ':'), or a
// string whose last label is a number in any base (WHATWG URL's "ends in a number", which
// covers 127.0.0.1, 127.1, 2130706433, 0x7f.1 and 0177.0.0.1). Names that are not valid
// DNS names (empty labels, bytes outside [a-z0-9-], over 253 bytes) are refused by
// CheckEgressHost, not here.
bool IsIpLiteral(std::string_view host);

// OK for a host the proxy may resolve: a lower-case DNS name, not an address. Otherwise
// PermissionDenied (an address) or InvalidArgument (not a name) with the reason.
Status CheckEgressHost(std::string_view host);

// One entry of a shell target's `egress:` allow list: "HOST" (ports 80 and 443), "HOST:PORT"
// or "HOST:*"; HOST is a name or "*.domain" (any name below domain, not domain itself).
struct EgressAllow {
  std::string host;  // lower case; "*.example.com" or "api.example.com"
  int port = 0;      // 0: 80 or 443; -1: any
};
Result<EgressAllow> ParseEgressAllow(std::string_view text);
bool EgressAllowed(const std::vector<EgressAllow>& allow, std::string_view host, int port);

}  // namespace airlock::shell
