// Checks that run on the raw policy text before yaml-cpp builds a node tree, so that hostile
// input is refused with a clear error instead of exhausting memory or the stack.
// Internal to src/policy/.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace airlock::policy_internal {

inline constexpr size_t kMaxPolicyBytes = size_t{1} << 20;  // 1 MiB
// No real policy nests deeper than ~5 levels; 32 leaves room and keeps every recursive
// walk (yaml-cpp's and ours) shallow.
inline constexpr int kMaxPolicyDepth = 32;

// "FILE:LINE:COLUMN: " from 0-based line and column (yaml-cpp's marks); negative values
// (yaml-cpp's null mark) print as 1.
std::string Where(const std::string& file, int line0, int column0);

// Size, UTF-8 (and control characters), then a streaming YAML pass that refuses aliases,
// nesting deeper than kMaxPolicyDepth and more than one document. Every error is
// InvalidArgument("FILE:LINE:COLUMN: ...").
Status CheckHostileInput(std::string_view text, const std::string& file);

}  // namespace airlock::policy_internal
