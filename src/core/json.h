// Canonical JSON: the byte form that hashes are computed over.
//
// nlohmann::json keeps object keys sorted (std::map), so a compact dump is canonical as long
// as numbers are integers or strings. Floats are dumped with the shortest round-trip form.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/types.h"

namespace airlock {

// Compact, sorted keys, UTF-8 as is; invalid UTF-8 is replaced (never throws).
std::string CanonicalJson(const Json& j);
// CanonicalJson of the object `object` with only the keys `keep` accepts, written without
// building that smaller object.
std::string CanonicalJsonOfKeys(const Json& object,
                                const std::function<bool(std::string_view key)>& keep);

// Parses untrusted text. Never throws; depth is limited to `max_depth` to stop stack
// exhaustion from hostile nesting.
Result<Json> ParseJson(std::string_view text, int max_depth = 64);

}  // namespace airlock
