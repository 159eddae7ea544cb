// Feeds arbitrary bytes to the egress proxy's request parser (connectors/shell/
// egress_request.h): what a sandboxed command sends airlock is untrusted. Whatever it is,
// the parser must not crash, and what it accepts must name one host that is either a name
// or caught as an address, one port, one framing, and a path in canonical form. The first
// line is also tried as an `egress:` allow entry. Seeds: fuzz/corpus/egress/ (by scenario).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "connectors/http/url.h"
#include "connectors/shell/egress_request.h"

namespace {

using namespace airlock::shell;

void Require(bool holds) {
  if (!holds) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseEgressRequest(in);
  if (parsed.ok()) {
    const EgressTarget& t = *parsed;
    Require(t.port >= 1 && t.port <= 65535);
    Require(!t.host.empty());
    Require(t.content_length >= 0 && t.content_length <= kMaxEgressBodyBytes);
    Require(!t.tunnel || t.content_length == 0);
    for (char c : t.host) Require(c != '@' && c != '/' && c != ' ' && c != '\r' && c != '\n');
    if (!t.tunnel) {
      // Canonical means stable: the path forwarded is the path the rules saw.
      auto again = airlock::http_target::NormalizePath(t.path);
      Require(again.ok() && *again == t.path);
    }
    for (const auto& [name, value] : t.headers) {
      Require(!name.empty());
      for (char c : name + value) Require(c != '\r' && c != '\n' && c != '\0');
    }
    // A host that passes the check is a name: never an address in any spelling.
    if (CheckEgressHost(t.host).ok()) Require(!IsIpLiteral(t.host));
  }
  const std::string_view first = in.substr(0, in.find('\n'));
  auto allow = ParseEgressAllow(first);
  if (allow.ok()) {
    std::string_view host = allow->host;
    if (host.substr(0, 2) == "*.") host.remove_prefix(2);
    Require(!IsIpLiteral(host));
    (void)EgressAllowed({*allow}, first, 443);
  }
  (void)IsIpLiteral(first);
  return 0;
}
