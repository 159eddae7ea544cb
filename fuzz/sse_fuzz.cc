// Untrusted bytes from an MCP server reached by url: (mcp/http_upstream.h): the SSE parser
// must never crash, never hand over more than its cap, and give the same events however the
// bytes are sliced (the first byte of the input chooses the cut).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/http_upstream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  constexpr size_t kCap = 4096;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = bytes.empty() ? 0 : data[0] % (bytes.size() + 1);
  std::vector<std::string> whole, sliced;
  airlock::mcp::HttpUpstream::SseParser a(kCap), b(kCap);
  const bool ok_whole = a.Feed(bytes, [&](std::string d) { whole.push_back(std::move(d)); });
  bool ok_sliced =
      b.Feed(bytes.substr(0, cut), [&](std::string d) { sliced.push_back(std::move(d)); });
  if (ok_sliced) {
    ok_sliced = b.Feed(bytes.substr(cut), [&](std::string d) { sliced.push_back(std::move(d)); });
  }
  for (const auto& d : whole) {
    if (d.size() > kCap) __builtin_trap();
  }
  if (ok_whole && ok_sliced && whole != sliced) __builtin_trap();
  return 0;
}
