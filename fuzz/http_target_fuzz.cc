// Feeds arbitrary bytes to the HTTP target's request checks (connectors/http/url.h): the
// path an agent names is untrusted, and whatever it is, the check must not crash, and what it
// accepts must keep the request on the base URL's host in one canonical form. Input: the
// first line is tried as a base URL, an allow rule and a header reference; the rest is the
// path. Seeds: fuzz/corpus/http_target/ (by scenario).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "connectors/http/credentials.h"
#include "connectors/http/url.h"
#include "net/curl.h"

namespace {

using namespace airlock::http_target;

void Require(bool holds) {
  if (!holds) __builtin_trap();
}

void CheckAccepted(const std::string& path) {
  Require(!path.empty() && path[0] == '/');
  Require(path.size() < 2 || path[1] != '/');
  for (char c : path) {
    const unsigned char u = static_cast<unsigned char>(c);
    Require(u > 0x20 && u < 0x7F && c != '#' && c != '\\');
  }
  const std::string_view p = PathPart(path);
  size_t start = 1;
  while (start <= p.size()) {
    size_t slash = p.find('/', start);
    std::string_view seg = p.substr(start, slash == std::string_view::npos ? slash : slash - start);
    Require(seg != "." && seg != "..");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  // Canonical means stable: normalizing again changes nothing.
  auto again = NormalizePath(path);
  Require(again.ok() && *again == path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string_view first = in.substr(0, nl);
  const std::string_view rest = nl == std::string_view::npos ? in : in.substr(nl + 1);

  auto base = ParseBaseUrl(first);
  auto fixed = ParseBaseUrl("https://api.example.com:8443/v1");
  Require(fixed.ok());
  auto path = NormalizePath(rest);
  if (path.ok()) {
    CheckAccepted(*path);
    // Joined to any base URL, the request stays on that base URL's origin.
    const std::string url = JoinUrl(*fixed, *path);
    Require(airlock::net::UrlOrigin(url) == fixed->Origin());
    if (base.ok()) {
      Require(airlock::net::UrlOrigin(JoinUrl(*base, *path)) == base->Origin());
    }
  }
  auto rule = ParseAllowRule(first);
  if (rule.ok() && path.ok()) (void)AllowMatches(*rule, "GET", *path);
  (void)NormalizeMethod(first);
  const size_t colon = first.find(':');
  if (colon != std::string_view::npos) {
    (void)ParseHeaderSpec(first.substr(0, colon), first.substr(colon + 1));
  }
  return 0;
}
