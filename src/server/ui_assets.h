// The approvers' web page, embedded in the binary at build time (cmake/ui_assets.cmake turns
// every file of src/server/ui/ into a byte array), so `airlock serve` needs no files beside it.
#pragma once

#include <string_view>

namespace airlock::server {

struct UiAsset {
  std::string_view path;          // "/", "/ui/app.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// The asset served at `path` ("/" is index.html), or nullptr.
const UiAsset* FindUiAsset(std::string_view path);

}  // namespace airlock::server
